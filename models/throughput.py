"""Inference throughput with the paper's protocol (Appendix A.3): the model alone on random
input, several batch sizes, warmup first, the best batch size reported.
fp16 on GPU (as the paper); fp32 and bf16 on CPU.

Attention backend: the paper measured with PyTorch 1.12 and no FlashAttention, i.e. attention
as plain matmuls. PyTorch 2's F.scaled_dot_product_attention instead picks a fused kernel per
call (flash for global attention, memory-efficient for the relative-position rows' float mask,
math for 5-D mask unit attention), which shifts the row ratios. attn_backend="math" (default)
forces SDPBackend.MATH, the paper's protocol; "auto" leaves the choice to PyTorch.
"""

from __future__ import annotations

import contextlib
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

ATTN_BACKENDS = ("math", "auto")


def attn_backend_context(attn_backend: str):
    """The context to time attention in: SDPBackend.MATH for "math", PyTorch's own pick for "auto"."""
    if attn_backend not in ATTN_BACKENDS:
        raise ValueError(f"attn_backend must be one of {ATTN_BACKENDS}, got {attn_backend!r}")
    return sdpa_kernel(SDPBackend.MATH) if attn_backend == "math" else contextlib.nullcontext()


def default_dtypes(device: torch.device | str) -> list[torch.dtype]:
    return [torch.float16] if torch.device(device).type == "cuda" else [torch.float32, torch.bfloat16]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def measure_throughput(
    model: torch.nn.Module,
    input_shape: tuple[int, ...],
    batch_sizes=(1, 8, 32, 64),
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    warmup: int = 3,
    iters: int = 10,
    return_all: bool = False,
    attn_backend: str = "math",
):
    """Best samples/s over batch_sizes for inputs of shape (B, *input_shape).

    dtype float16/bfloat16 runs under autocast (the official Hiera benchmark does the same);
    float32 runs plain. A batch size that runs out of memory is skipped. With return_all, returns
    (best, {batch_size: samples/s}). attn_backend: "math" (the paper's protocol) or "auto".
    """
    attn_backend_context(attn_backend)  # checks the name before any work
    device = torch.device(device)
    model = model.eval().to(device)
    amp = dtype in (torch.float16, torch.bfloat16)
    results = {}
    for bs in batch_sizes:
        x = torch.randn(bs, *input_shape, device=device)
        try:
            with attn_backend_context(attn_backend), torch.autocast(device.type, dtype=dtype, enabled=amp):
                for _ in range(warmup):
                    model(x)
                _sync(device)
                t0 = time.perf_counter()
                for _ in range(iters):
                    model(x)
                _sync(device)
            results[bs] = bs * iters / (time.perf_counter() - t0)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
    if not results:
        raise RuntimeError(f"no batch size in {list(batch_sizes)} fits on {device}")
    best = max(results.values())
    return (best, results) if return_all else best
