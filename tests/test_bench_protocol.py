"""The benchmarks follow the paper's protocol: attention as plain
matmuls (no FlashAttention) unless asked otherwise, the k400 decoder and fwd+bwd for video MAE,
and the "mvitv2 with Hiera conventions" line beside row a."""

import pytest
import torch

from analysis import bench_mae, bench_model
from models.throughput import measure_throughput


class FlashProbe(torch.nn.Module):
    """Records whether PyTorch may pick fused attention kernels during its forward."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        fused = torch.backends.cuda.flash_sdp_enabled() or torch.backends.cuda.mem_efficient_sdp_enabled()
        self.seen.append(fused)
        return x


def test_throughput_runs_attention_as_math_by_default():
    probe = FlashProbe()
    measure_throughput(probe, (2,), batch_sizes=(1,), warmup=0, iters=1)
    assert probe.seen and not any(probe.seen)  # the paper's protocol: SDPBackend.MATH only
    probe.seen.clear()
    measure_throughput(probe, (2,), batch_sizes=(1,), warmup=0, iters=1, attn_backend="auto")
    assert all(probe.seen)
    with pytest.raises(ValueError, match="attn_backend must be one of"):
        measure_throughput(probe, (2,), attn_backend="flash")


def test_bench_model_table1_both_backends_and_conventions_line(capsys):
    args = "--skip-timm --table1 image --table1-size cpu-xs --attn-backend both --rounds 1 --iters 1"
    args = [*args.split(), "--warmup", "0", "--batch-sizes", "2", "--device", "cpu"]
    torch.set_num_threads(1)
    bench_model.main(args)
    out = capsys.readouterr().out
    assert "| row | GMACs | ours math (im/s) | math / mvitv2 | ours auto (im/s) | auto / mvitv2 |" in out
    lines = [ln for ln in out.splitlines() if ln.startswith("| ") and "GMACs" not in ln]
    rows = [ln.split(" | ")[0].lstrip("| ") for ln in lines]
    assert rows == ["mvitv2", "mvitv2 with Hiera conventions", "a", "b", "c", "d", "e", "f"]
    assert lines[1].endswith("x | – |") and lines[-1].endswith("x | 2.42x |")


def test_bench_mae_video_uses_the_k400_decoder_and_times_fwd_bwd(capsys):
    torch.set_num_threads(1)
    small = "--size cpu-xs --batch 2 --warmup 0 --repeats 1 --decoder-depth 1 --decoder-dim 32".split()
    bench_mae.main([*small, "--modality", "video", "--mask-ratio", "0.75"])
    out = capsys.readouterr().out
    assert "# MAE training step (fwd+bwd), row f" in out and "/ 8 heads" in out
    bench_mae.main([*small, "--optimizer"])
    out = capsys.readouterr().out
    assert "(fwd+bwd+AdamW)" in out and "/ 16 heads" in out
