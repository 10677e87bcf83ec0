"""torch.compile of a whole model, or of each of its transformer blocks (regional compilation).

Compiling the whole model traces every block into one graph: Hiera-B's 24 blocks are compiled as
24 copies of a few distinct blocks, forward and backward, and the compile time grows with depth.
Compiling each block instead (``nn.Module.compile`` in place, PyTorch's "regional compilation")
compiles one graph per distinct block configuration (dims, strides, attention kind) and reuses it
for every block that shares it; the code between blocks (patch embed, unit reshapes, head, MAE
decoder input) stays eager. Which is faster to run is measured by ``analysis.bench_compile``.
"""

from __future__ import annotations

import torch
from torch import nn

MODES = (False, True, "model", "blocks")  # runtime.compile; True = "model"


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """The modules held in any ``blocks`` container of the model (timm's naming): the encoder's
    blocks, and the MAE decoder's."""
    out = []
    for name, module in model.named_modules():
        parts = name.split(".")
        if len(parts) >= 2 and parts[-2] == "blocks":
            out.append(module)
    return out


def compile_blocks(model: nn.Module, **compile_kw) -> int:
    """Compile each transformer block of `model` in place; returns how many. Dynamo keeps one
    cache entry per distinct block configuration on the shared ``forward``, so its recompile
    limit is raised to the block count (past the limit it would silently run the rest eager)."""
    blocks = transformer_blocks(model)
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no `blocks` to compile; use runtime.compile=model")
    cfg = torch._dynamo.config
    cfg.recompile_limit = max(cfg.recompile_limit, len(blocks))
    cfg.accumulated_recompile_limit = max(cfg.accumulated_recompile_limit, 4 * len(blocks))
    # Static shapes: blocks of different stages see different token counts, and dynamo would
    # otherwise turn the shared forward's shapes symbolic on the second one (slower kernels, and
    # MViTv2's relative-position code does not trace with symbolic sizes).
    compile_kw.setdefault("dynamic", False)
    for block in blocks:
        block.compile(**compile_kw)
    return len(blocks)


def compile_for_training(model: nn.Module, net: nn.Module, mode) -> nn.Module:
    """Apply runtime.compile: "blocks" compiles `model`'s blocks in place and returns `net`
    unchanged; True / "model" returns torch.compile(net) (net: the model, or its DDP wrapper)."""
    if mode not in MODES:
        raise ValueError(f"runtime.compile must be one of {MODES}, got {mode!r}")
    if mode == "blocks":
        compile_blocks(model)
        return net
    return torch.compile(net) if mode else net
