"""Sparse vs dense MAE training-step cost (paper Fig. 4c / Fig. 7), timed side by side.

    .venv/bin/python -m analysis.bench_mae                       # row f, size B, 224 px, batch 16
    .venv/bin/python -m analysis.bench_mae --size cpu-s --batch 16
    .venv/bin/python -m analysis.bench_mae --rows                # fwd+bwd per Table 1 row a..f
    .venv/bin/python -m analysis.bench_mae --modality video --mask-ratio 0.9 --batch 2
    .venv/bin/python -m analysis.bench_mae --optimizer --csv analysis/figures/bench/mae_sparse_dense.csv

One "step" is forward + backward, as Fig. 7 times training (--optimizer adds the AdamW step).
Sparse deletes masked units before the encoder; dense keeps every token and swaps masked ones
for a mask token (MaskFeat/SimMIM). Both use the same encoder config, decoder and loss, and run
interleaved so drift hits both alike. The decoder is the paper's: 8 blocks x 512, 16 heads for
images, 8 for video (K400 recipe).

Measured with --optimizer on the idle 2-core CPU box (fp32, row f, size B, mask 0.6, decoder
8 x 512): dense / sparse step time 1.65x at batch 2, 1.94x at batch 8, 2.07x at batch 16, with
forward MACs 18.14 vs 10.17 G/im (1.78x). The ratio stays under the encoder's own ~2.5x because
the decoder runs on every unit in both variants (~5.3 G/im, paper-sized): the decoder caps the
gain, as in MAE. Small batches favour dense (per-op overheads dominate both). `--csv PATH` appends
the sparse-vs-dense line to PATH (headed by the command and date when new): docs/results.md's
figures are analysis/figures/bench/mae_sparse_dense.csv.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from ablations.store.measurements import write_measurements
from models.mae import build_mae
from models.summary import count_macs


def _input(mae, batch: int, device: str) -> torch.Tensor:
    return torch.randn(batch, mae.in_chans, *mae.encoder.cfg.input_size, device=device)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _step_fn(mae, x: torch.Tensor, optimizer: bool, amp: bool):
    opt = torch.optim.AdamW(mae.parameters(), lr=1e-4) if optimizer else None
    dtype = torch.bfloat16 if amp else None

    def step():
        with torch.autocast(x.device.type, dtype=dtype, enabled=amp):
            loss = mae(x)[0]
        loss.backward()
        if opt is not None:
            opt.step()
            opt.zero_grad(set_to_none=True)
        else:
            mae.zero_grad(set_to_none=True)

    return step


def forward_gmacs(mae, x: torch.Tensor) -> float:
    """Forward multiply-adds per sample (G), encoder + decoder; load-independent, unlike CPU time."""
    return count_macs(mae, x=x) / x.shape[0] / 1e9


def time_interleaved(fns: dict, warmup: int, repeats: int, device: str) -> dict[str, float]:
    """Median seconds per call for each fn, calls interleaved round-robin (all samples printed)."""
    times = {k: [] for k in fns}
    for i in range(warmup + repeats):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    for k, v in times.items():
        print(f"  {k}: " + " ".join(f"{t * 1e3:.0f}" for t in v) + " ms")
    return {k: statistics.median(v) for k, v in times.items()}


def _mae(args, step: str, dense: bool):
    model_cfg = {"size": args.size, "step": step, "modality": args.modality, "overrides": {}}
    mae_cfg = dict(mask_ratio=args.mask_ratio, decoder_depth=args.decoder_depth, decoder_dim=args.decoder_dim,
                   decoder_heads=args.decoder_heads, dense=dense)  # fmt: skip
    return build_mae(model_cfg, mae_cfg, drop_path=0.0).to(args.device).train()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="B")
    p.add_argument("--step", default="f", help="Table 1 row for the sparse-vs-dense comparison")
    p.add_argument("--modality", default="image", choices=("image", "video"))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--mask-ratio", type=float, default=0.6)
    p.add_argument("--decoder-depth", type=int, default=8)
    p.add_argument("--decoder-dim", type=int, default=512)
    p.add_argument("--decoder-heads", type=int, default=None, help="default 16 (image), 8 (video)")
    p.add_argument("--optimizer", action="store_true", help="also time the AdamW step (default: fwd+bwd)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--amp", action="store_true", help="bf16 autocast")
    p.add_argument("--rows", action="store_true", help="sparse MAE fwd+bwd time per Table 1 row a..f")
    p.add_argument("--csv", metavar="PATH", help="append the sparse-vs-dense line to this CSV "
                   "(docs/results.md shows analysis/figures/bench/mae_sparse_dense.csv)")  # fmt: skip
    args = p.parse_args(argv)
    command = " ".join(["python -m analysis.bench_mae", *(sys.argv[1:] if argv is None else argv)])
    args.decoder_heads = args.decoder_heads or {"image": 16, "video": 8}[args.modality]
    torch.manual_seed(0)
    where = f"{args.device} ({torch.get_num_threads()} threads)" if args.device == "cpu" else args.device
    head = f"size {args.size} {args.modality}, batch {args.batch}, mask {args.mask_ratio}, {where}"
    head += f", decoder {args.decoder_depth} x {args.decoder_dim} / {args.decoder_heads} heads"

    if args.rows:
        print(f"# sparse MAE forward+backward per row, {head}")
        for row in "abcdef":
            mae = _mae(args, row, dense=False)
            x = _input(mae, args.batch, args.device)
            step = _step_fn(mae, x, False, args.amp)
            t = time_interleaved({row: step}, args.warmup, args.repeats, args.device)[row]
            g = forward_gmacs(mae, x)
            print(f"row {row}: {t * 1e3:9.1f} ms/iter  {args.batch / t:8.2f} im/s  fwd {g:.3f} GMACs/im")
            del mae
        return

    sparse, dense = _mae(args, args.step, dense=False), _mae(args, args.step, dense=True)
    x = _input(sparse, args.batch, args.device)
    t = time_interleaved(
        {k: _step_fn(m, x, args.optimizer, args.amp) for k, m in (("sparse", sparse), ("dense", dense))},
        args.warmup, args.repeats, args.device,
    )  # fmt: skip
    g = {"sparse": forward_gmacs(sparse, x), "dense": forward_gmacs(dense, x)}
    what = "fwd+bwd+AdamW" if args.optimizer else "fwd+bwd"
    print(f"# MAE training step ({what}), row {args.step}, {head}")
    for k, v in t.items():
        print(f"{k:>6}: {v * 1e3:9.1f} ms/step  {args.batch / v:8.2f} im/s  fwd {g[k]:.3f} GMACs/im")
    ratio_t, ratio_g = t["dense"] / t["sparse"], g["dense"] / g["sparse"]
    print(f"dense / sparse: time {ratio_t:.2f}x, forward MACs {ratio_g:.2f}x")
    if args.csv:
        line = [args.size, args.modality, args.step, args.batch, args.mask_ratio, what, f"{t['sparse']:.1f}",
                f"{t['dense']:.1f}", f"{ratio_t:.2f}x", f"{g['sparse']:.2f}", f"{g['dense']:.2f}",
                f"{ratio_g:.2f}x"]  # fmt: skip
        write_measurements(
            args.csv, command, CSV_COLUMNS, [line], note="s per step, GMACs per image", append=True
        )


CSV_COLUMNS = ["size", "modality", "row", "batch", "mask_ratio", "step", "sparse_s_per_step",
               "dense_s_per_step", "dense_over_sparse", "sparse_gmacs", "dense_gmacs",
               "macs_ratio"]  # fmt: skip


if __name__ == "__main__":
    main()
