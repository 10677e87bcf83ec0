"""Is the builtin data hard in the right way? `python -m ablations.data.sanity [--quick]`

Images: a linear classifier on raw pixels should do poorly, a small CNN well.
Video: a CNN that sees one frame should be near chance, one that sees the clip well above it.
Prints accuracies on the val split and the generation time. Not a test (takes minutes on CPU).
"""

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import build_dataset


def _load(cfg, split, n):
    ds = build_dataset({**cfg, f"{split}_size": n}, split)
    t = time.perf_counter()
    xs, ys = zip(*(ds[i] for i in range(n)))
    return torch.stack(xs), torch.tensor(ys), time.perf_counter() - t


def _fit(model, x, y, xv, yv, epochs, lr=2e-3, wd=0.05, batch=128, view=None, flip=False):
    view = view or (lambda x, train: x)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * -(-len(x) // batch))
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x)).split(batch):
            xb = view(x[idx], True)
            if flip and torch.rand(()) < 0.5:  # shapes keep their class when mirrored
                xb = xb.flip(-1)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(view(xb, False)).argmax(1) for xb in xv.split(512)])
    return (pred == yv).float().mean().item()


def _cnn(in_ch, k):
    layers, c = [], in_ch
    for i, w in enumerate((32, 64, 128)):
        layers += [nn.Conv2d(c, w, 3, stride=1 if i == 0 else 2, padding=1), nn.BatchNorm2d(w), nn.GELU()]
        c = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, k))


def images(n_train, n_val, epochs):
    cfg = {"name": "builtin", "input_size": 32}
    x, y, dt = _load(cfg, "train", n_train)
    xv, yv, _ = _load(cfg, "val", n_val)
    print(f"builtin: generated {n_train} train items in {dt:.1f} s ({dt / n_train * 1e3:.2f} ms/item)")
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), 10))
    acc_lin = _fit(lin, x, y, xv, yv, epochs=30, lr=1e-3, wd=0.1)
    t = time.perf_counter()
    acc_cnn = _fit(_cnn(3, 10), x, y, xv, yv, epochs=epochs, flip=True)
    took = time.perf_counter() - t
    print(
        f"builtin: linear probe on pixels {acc_lin:.3f}, small CNN {acc_cnn:.3f} ({took:.0f} s), chance 0.100"
    )


def video(n_train, n_val, epochs):
    cfg = {"name": "builtin_video", "input_size": 32, "num_frames": 8}
    x, y, dt = _load(cfg, "train", n_train)  # (N, C, T, H, W)
    xv, yv, _ = _load(cfg, "val", n_val)
    print(f"builtin_video: generated {n_train} train clips in {dt:.1f} s ({dt / n_train * 1e3:.2f} ms/clip)")

    def one_frame(x, train):  # a random frame per clip in training, the middle frame at eval
        t = torch.randint(0, x.shape[2], (len(x),)) if train else torch.full((len(x),), x.shape[2] // 2)
        return x[torch.arange(len(x)), :, t]

    torch.manual_seed(0)
    acc_frame = _fit(_cnn(3, 10), x, y, xv, yv, epochs=epochs, view=one_frame)
    t = time.perf_counter()
    # Early fusion (frames stacked as channels), like a video patch embed spanning frames: cheap on CPU.
    acc_clip = _fit(
        _cnn(3 * x.shape[2], 10), x, y, xv, yv, epochs=epochs, view=lambda x, train: x.flatten(1, 2)
    )
    took = time.perf_counter() - t
    print(
        f"builtin_video: one-frame CNN {acc_frame:.3f}, clip CNN (frames as channels) {acc_clip:.3f} "
        f"({took:.0f} s); chance 0.1"
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer items and epochs")
    p.add_argument("--only", choices=["images", "video"])
    a = p.parse_args()
    n, nv, ep = (1000, 500, 5) if a.quick else (4000, 1000, 15)
    if a.only != "video":
        images(n, nv, ep)
    if a.only != "images":
        video(n // 2 if a.quick else n, nv, 2 * ep)
