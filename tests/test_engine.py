"""Engine pieces with stand-ins: lr scaling and schedule, layer-decay groups, the non-finite
loss stop, multi-view evaluation, and the phase pipeline (run_training) with stand-in builders."""

import json
import math

import pytest
import torch
from torch import nn

import ablations.train.phases as T
from ablations.train.checkpoint import load_checkpoint, seed_everything
from ablations.train.engine import NonFiniteLossError, evaluate
from ablations.train.optim import build_optimizer, lr_at, resolve_lr


class TinyNet(nn.Module):
    """A timm-style classifier: stem, blocks.{i}, head, with group_matcher/no_weight_decay."""

    def __init__(self, d_in=12, d=16, num_classes=3, depth=3):
        super().__init__()
        self.embed = nn.Linear(d_in, d)
        self.pos = nn.Parameter(torch.zeros(1, d, 1))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU()) for _ in range(depth)
        )
        self.head = nn.Linear(d, num_classes) if num_classes else nn.Identity()

    def forward(self, x):
        x = self.embed(x.flatten(1)) + self.pos[..., 0]
        for b in self.blocks:
            x = x + b(x)
        return self.head(x)

    def no_weight_decay(self):
        return {"pos"}

    def group_matcher(self, coarse=False):
        return {"stem": r"^embed|^pos", "blocks": [(r"^blocks\.(\d+)", None)]}


class TinyMAE(nn.Module):
    """Stand-in for models.mae: returns (loss, pred, target, keep) and exposes the encoder."""

    def __init__(self):
        super().__init__()
        self.encoder = TinyNet(num_classes=0)
        self.decoder = nn.Linear(16, 12)

    def forward(self, x):
        keep = torch.rand(x.shape[0], 12, device=x.device) > 0.5
        pred = self.decoder(self.encoder(x * keep.view_as(x)))
        target = x.flatten(1)
        return ((pred - target) ** 2)[~keep].mean(), pred, target, keep

    def encoder_state_dict(self):
        return self.encoder.state_dict()


def _data(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 2, 2, generator=g)
    return torch.utils.data.TensorDataset(x, (x.sum((1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 1).long())


PHASE = {
    "epochs": 2,
    "batch_size": 8,
    "blr": 1e-2,
    "lr": None,
    "weight_decay": 0.05,
    "betas": [0.9, 0.999],
    "warmup_epochs": 1,
    "min_lr": 1e-5,
    "layer_decay": 0.75,
    "drop_path": 0.0,
    "dropout": 0.0,
    "clip_grad": None,
    "mixup": 0.0,
    "cutmix": 0.0,
    "smoothing": 0.1,
}


def test_lr_scaling():
    assert resolve_lr({"blr": 1e-3, "lr": None, "batch_size": 256}) == 1e-3  # batch_size: global
    assert resolve_lr({"blr": 1.5e-4, "lr": None, "batch_size": 128}) == 1.5e-4 / 2
    assert resolve_lr({"blr": 1e-3, "lr": 0.02, "batch_size": 64}) == 0.02  # an explicit lr wins


def test_warmup_cosine_values():
    kw = {"base_lr": 1.0, "min_lr": 0.1, "warmup_updates": 10, "total_updates": 110}
    assert lr_at(0, **kw) == 0.0
    assert lr_at(5, **kw) == pytest.approx(0.5)
    assert lr_at(10, **kw) == pytest.approx(1.0)
    assert lr_at(60, **kw) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the cosine
    assert lr_at(110, **kw) == pytest.approx(0.1)
    vals = [lr_at(i, **kw) for i in range(10, 111)]
    assert all(a >= b for a, b in zip(vals, vals[1:]))


def test_layer_decay_groups():
    model = TinyNet(depth=3)
    opt = build_optimizer(model, {**PHASE, "layer_decay": 0.5}, lr=1.0)
    scale = {}
    for g in opt.param_groups:
        for p in g["params"]:
            scale[p] = (g["lr_scale"], g["weight_decay"])
    # stem -> layer 0, blocks.i -> i + 1, head -> last layer (scale 1)
    assert scale[model.head.weight][0] == 1.0
    assert scale[model.embed.weight][0] == pytest.approx(0.5**4)
    assert scale[model.blocks[2][1].weight][0] == pytest.approx(0.5)
    assert scale[model.blocks[0][1].weight][0] == pytest.approx(0.5**3)
    # no weight decay for model.no_weight_decay() and 1-D params
    assert scale[model.pos][1] == 0.0 and scale[model.blocks[0][0].weight][1] == 0.0
    assert scale[model.head.weight][1] == 0.05
    # layer_decay 1.0 = off: no scaled groups
    opt = build_optimizer(model, {**PHASE, "layer_decay": 1.0}, lr=1.0)
    assert all(g.get("lr_scale", 1.0) == 1.0 for g in opt.param_groups)


def test_non_finite_loss_stops_with_message_and_resumable_checkpoint(tmp_path):
    seed_everything(0)
    crit = nn.CrossEntropyLoss()
    calls = {"n": 0}

    def bad_loss(m, x, y):  # goes NaN at epoch 1, step 3 (8 steps per epoch)
        calls["n"] += 1
        loss = crit(m(x), y)
        return loss * float("nan") if calls["n"] == 8 + 4 else loss

    phase = {**PHASE, "epochs": 3}
    rt = {"device": "cpu", "amp": "none"}
    with pytest.raises(NonFiniteLossError, match=r"phase 't', epoch 1, step 3.*amp=bf16 / none"):
        T.fit(
            TinyNet(),
            bad_loss,
            _data(64),
            None,
            phase,
            phase_dir=tmp_path,
            phase="t",
            runtime=rt,
            progress=False,
        )
    ck = load_checkpoint(tmp_path / "checkpoint-last.pth")  # weights_only=True
    assert (ck["epoch"], ck["step"]) == (1, 0)
    assert all(torch.isfinite(v).all() for v in ck["model"].values())
    out = T.fit(
        TinyNet(),
        lambda m, x, y: crit(m(x), y),
        _data(64),
        _data(16, 1),
        phase,
        phase_dir=tmp_path,
        phase="t",
        runtime=rt,
        progress=False,
    )
    assert math.isfinite(out["loss_last"]) and out["top1"] is not None


def test_evaluate_averages_softmax_over_views():
    class ViewNet(nn.Module):  # view 0 votes class 0 strongly, view 1 class 1 weakly
        def forward(self, x):
            v = x[:, 0, 0, 0, 0]
            return torch.stack([v * 4, (1 - v) * 1, torch.zeros_like(v)], -1)

    x = torch.zeros(2, 2, 1, 1, 1, 1)  # (B, V, C, T, H, W)
    x[:, 0] = 1.0
    loader = [(x, torch.tensor([0, 1]))]
    m = evaluate(ViewNet(), loader, torch.device("cpu"), multi_view=True)
    assert m["top1"] == 50.0 and m["top5"] == 100.0 and m["val_samples"] == 2


def _patch_builders(monkeypatch, built):
    monkeypatch.setattr(
        T,
        "data_info",
        lambda cfg: {"num_classes": 3, "modality": "image", "input_size": (2, 2), "mean": 0, "std": 1},
    )
    monkeypatch.setattr(T, "build_data", lambda cfg, split, aug: _data(48 if split == "train" else 16))

    def mae(cfg):
        built.append("mae")
        return TinyMAE()

    def clf(cfg, pc, num_classes):
        built.append("clf")
        return TinyNet(num_classes=num_classes)

    monkeypatch.setattr(T, "build_mae_model", mae)
    monkeypatch.setattr(T, "build_classifier", clf)


CFG = {
    "mode": "mae",
    "seed": 0,
    "data": {"num_workers": 0},
    "model": {},
    "runtime": {"device": "cpu", "amp": "bf16", "log_every": 2, "eval_every": 1},
    "pretrain": {**PHASE, "betas": [0.9, 0.95], "layer_decay": None},
    "finetune": PHASE,
    "supervised": {**PHASE, "layer_decay": 1.0},
}


def test_run_training_mae_pipeline(tmp_path, monkeypatch):
    built = []
    _patch_builders(monkeypatch, built)
    m = T.run_training(CFG, tmp_path, progress=False)
    assert built == ["mae", "clf"]
    for p in ("pretrain", "finetune"):
        for f in ("checkpoint-last.pth", "log.jsonl", "done.json"):
            assert (tmp_path / p / f).exists()
    assert (tmp_path / "pretrain" / "encoder.pth").exists()
    assert {"top1", "top5", "train_time_s", "pretrain_loss_first", "pretrain_loss_last"} <= set(m)
    assert m["pretrain_loss_first"] is not None and m["top1"] is not None
    recs = [json.loads(line) for line in (tmp_path / "finetune" / "log.jsonl").read_text().splitlines()]
    assert {"epoch", "step", "loss", "lr", "throughput"} <= set(recs[0])
    assert "top1" in recs[-1] and "train_loss" in recs[-1]
    # Finished phases are not rerun: nothing is built the second time, same metrics come back.
    m2 = T.run_training(CFG, tmp_path, progress=False)
    assert built == ["mae", "clf"] and m2["top1"] == m["top1"]


def test_run_training_supervised_with_mixup(tmp_path, monkeypatch):
    built = []
    _patch_builders(monkeypatch, built)
    cfg = {**CFG, "mode": "supervised", "supervised": {**CFG["supervised"], "mixup": 0.8, "cutmix": 1.0}}
    m = T.run_training(cfg, tmp_path, progress=False)
    assert built == ["clf"] and sorted(p.name for p in tmp_path.iterdir()) == ["supervised"]
    assert m["top1"] is not None and math.isfinite(m["supervised_loss_last"])


def test_load_encoder_rejects_missing_body(tmp_path):
    enc = TinyNet(num_classes=0)
    torch.save(enc.state_dict(), tmp_path / "enc.pth")
    clf = TinyNet(num_classes=3)
    T.load_encoder(clf, tmp_path / "enc.pth")  # only the head is missing: fine
    assert torch.equal(clf.embed.weight, enc.embed.weight)
    torch.save({k: v for k, v in enc.state_dict().items() if "blocks.0" not in k}, tmp_path / "bad.pth")
    with pytest.raises(RuntimeError, match="blocks.0"):
        T.load_encoder(clf, tmp_path / "bad.pth")
