"""Exact resume: a run interrupted mid-epoch and resumed ends bit-identical to one run straight
through (CPU, fp32). The stand-in model has dropout and the data has random augmentation and
Mixup, so torch, numpy and python RNG restore, data order and skipped batches all matter."""

import json
import random
import shutil

import pytest
import torch
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from torch import nn

from ablations.train.checkpoint import load_checkpoint, seed_everything
from ablations.train.phases import fit


class TinyNet(nn.Module):
    def __init__(self, d_in=48, d=16, num_classes=4):
        super().__init__()
        self.embed = nn.Linear(d_in, d)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU()) for _ in range(2)
        )
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(d, num_classes)

    def forward(self, x):
        x = self.embed(x.flatten(1))
        for b in self.blocks:
            x = x + b(x)
        return self.head(self.drop(x))


class NoisyData(torch.utils.data.Dataset):
    """Random augmentation from torch and python RNGs, like RandomResizedCrop would use."""

    def __init__(self, n=64):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, 4, 4, generator=g)
        self.y = torch.randint(0, 4, (n,), generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x = self.x[i] + 0.1 * torch.randn(3, 4, 4)
        if random.random() < 0.5:
            x = x.flip(-1)
        return x, int(self.y[i])


PHASE = {
    "epochs": 3,
    "batch_size": 16,  # global: 8 per step x 2 accumulation (runtime.max_batch_per_device)
    "lr": 5e-3,
    "weight_decay": 0.05,
    "betas": [0.9, 0.999],
    "warmup_epochs": 1,
    "min_lr": 1e-5,
    "clip_grad": 1.0,
}
RUNTIME = {"device": "cpu", "amp": "none", "log_every": 2, "ckpt_every_steps": 4, "max_batch_per_device": 8}


class Interrupt(Exception):
    pass


def _run(run_dir, stop_at=None, seed=0):
    seed_everything(seed)
    model = TinyNet()
    mixup = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=4)
    crit = SoftTargetCrossEntropy()

    def hook(epoch, steps_done):
        if (epoch, steps_done) == stop_at:
            raise Interrupt

    fit(
        model,
        lambda m, x, y: crit(m(x), y),
        NoisyData(),
        None,
        PHASE,
        phase_dir=run_dir,
        phase="t",
        runtime=RUNTIME,
        mixup_fn=mixup,
        progress=False,
        after_update=hook,
    )
    return model.state_dict()


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """(folder, final weights) of the run straight through: one for every test that compares."""
    folder = tmp_path_factory.mktemp("straight")
    return folder, _run(folder)


@pytest.mark.parametrize("stop_at", [(1, 6), (1, 8), (0, 4)])
def test_interrupted_run_resumes_bit_identical(tmp_path, stop_at, straight):
    # (1, 6): killed 2 steps after the mid-epoch checkpoint at step 4 -> those steps are redone;
    # (1, 8): killed at the end of the epoch before its checkpoint -> resumes from step 4;
    # (0, 4): killed right after the first mid-epoch checkpoint.
    ref_dir, ref = straight
    with pytest.raises(Interrupt):
        _run(tmp_path / "resumed", stop_at=stop_at)
    ck = load_checkpoint(tmp_path / "resumed" / "checkpoint-last.pth")
    assert (ck["epoch"], ck["step"]) == (stop_at[0], 4)
    # Different seed on the resumed leg: only the checkpoint's RNG state may decide the outcome.
    got = _run(tmp_path / "resumed", seed=123)
    for k in ref:
        assert torch.equal(ref[k], got[k]), k

    # The log has no duplicate steps from the redone part, and matches the straight run's steps.
    def steps(d):
        return [(r["epoch"], r["step"]) for r in map(json.loads, (d / "log.jsonl").read_text().splitlines())]

    assert steps(tmp_path / "resumed") == steps(ref_dir)


def test_finished_run_is_not_retrained(tmp_path, straight):
    ref_dir, ref = straight
    shutil.copytree(ref_dir, tmp_path / "a")
    ck = load_checkpoint(tmp_path / "a" / "checkpoint-last.pth")
    assert (ck["epoch"], ck["step"]) == (3, 0)
    again = _run(tmp_path / "a", seed=5)  # loads the final checkpoint, trains nothing
    for k in ref:
        assert torch.equal(ref[k], again[k])


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGUSR1"])
def test_a_signal_saves_the_exact_step_and_resumes_bit_identical(tmp_path, signame, straight):
    # A real Ctrl-C (or Slurm's SIGTERM / SIGUSR1) mid-epoch: the update in flight finishes, a
    # checkpoint is written at that very step (not at the last periodic one), and the resumed run
    # ends where a straight run ends.
    import os
    import signal

    from ablations.train.interrupt import Stopped

    ref = straight[1]
    seed_everything(0)
    model, sent = TinyNet(), []
    mixup = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=4)
    crit = SoftTargetCrossEntropy()

    def press_ctrl_c(epoch, steps_done):
        if (epoch, steps_done) == (1, 6) and not sent:
            sent.append(1)
            os.kill(os.getpid(), getattr(signal, signame))

    before = signal.getsignal(getattr(signal, signame))
    with pytest.raises(Stopped, match="epoch 1, step 6") as stopped:
        fit(model, lambda m, x, y: crit(m(x), y), NoisyData(), None, PHASE, phase_dir=tmp_path / "r",
            phase="t", runtime=RUNTIME, mixup_fn=mixup, progress=False,
            after_update=press_ctrl_c)  # fmt: skip
    assert stopped.value.signal == signame
    assert signal.getsignal(getattr(signal, signame)) is before  # the handler is put back
    ck = load_checkpoint(tmp_path / "r" / "checkpoint-last.pth")
    assert (ck["epoch"], ck["step"]) == (1, 6)
    got = _run(tmp_path / "r", seed=123)
    for k in ref:
        assert torch.equal(ref[k], got[k]), k


def test_a_signal_during_the_stop_all_reduce_is_kept_for_the_next_update(monkeypatch):
    """scancel --signal=USR1 reaches every rank at once, often while all of them wait inside the
    all_reduce that agrees on stopping. That signal must not be overwritten by the reduced
    "no signal": this update goes on on every rank (they stay in step), the next one stops."""
    import signal

    import torch.distributed as dist

    from ablations.train import interrupt
    from ablations.train.interrupt import StopRequest

    stop = StopRequest(enabled=False)
    monkeypatch.setattr(interrupt, "is_dist", lambda: True)  # the names interrupt.py imported
    monkeypatch.setattr(interrupt, "control_group", lambda: None)
    arrive = [signal.SIGUSR1]

    def all_reduce(code, op=None, group=None):  # one rank's view; the signal lands mid-collective
        if arrive:
            stop._handle(arrive.pop(), None)

    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    # Inside the training loop a first signal waits for the next vote; one still pending when
    # the loop's block ends stops there.
    with pytest.raises(interrupt.Stopped, match="SIGUSR1"), stop.listening():
        assert stop.agreed() is None  # the reduced value was built before the signal came
        assert stop.agreed() == "SIGUSR1"  # kept: the next update stops
