"""finetune.init: finetune from a pretrained checkpoint (ours or official formats), skip
pretraining, and put the checkpoint's hash into the run's identity."""

import pytest
import torch
import yaml

import ablations.train.phases as T
import models
from ablations.cli import main as cli
from ablations.study import config as C
from models.mae import build_mae
from tests.test_engine import CFG, TinyNet, _patch_builders


def pretrained(tmp_path):
    """A cpu-xs row f MAE with non-default weights, saved in three formats."""
    torch.manual_seed(0)
    mae = build_mae(
        {"size": "cpu-xs", "step": "f"}, {"decoder_depth": 1, "decoder_dim": 32, "decoder_heads": 2}
    )
    with torch.no_grad():
        for p in mae.parameters():
            p.add_(torch.randn_like(p))
    enc = mae.encoder_state_dict()
    torch.save(enc, tmp_path / "encoder.pth")  # ours: <run>/pretrain/encoder.pth
    torch.save({"model": mae.state_dict(), "epoch": 3}, tmp_path / "checkpoint-last.pth")  # ours, full MAE
    official = {("encoder_norm." + k[5:] if k.startswith("norm.") else k): v for k, v in enc.items()}
    official["decoder_embed.weight"] = torch.zeros(4, 4)  # MAE-only keys are dropped
    torch.save({"model_state": official}, tmp_path / "official_mae.pth")
    return enc


@pytest.mark.parametrize("name", ["encoder.pth", "checkpoint-last.pth", "official_mae.pth"])
def test_load_init_formats(tmp_path, name):
    enc = pretrained(tmp_path)
    clf = models.build("cpu-xs", step="f", num_classes=7)
    info = T.load_init(clf, tmp_path / name)
    assert info["new_head"] == ["head.bias", "head.weight"]
    own = clf.state_dict()
    assert all(torch.equal(own[k], v) for k, v in enc.items())
    with pytest.raises(KeyError, match="same size"):  # another size does not load silently
        T.load_init(models.build("cpu-s", step="f", num_classes=7), tmp_path / name)
    with pytest.raises(RuntimeError, match="changed"):
        T.load_init(clf, tmp_path / name, sha256="0" * 64)


def test_run_training_skips_pretraining(tmp_path, monkeypatch):
    built = []
    _patch_builders(monkeypatch, built)
    torch.save(TinyNet(num_classes=0).state_dict(), tmp_path / "init.pth")
    cfg = {**CFG, "finetune": {**CFG["finetune"], "init": str(tmp_path / "init.pth")}}
    out = T.run_training(cfg, tmp_path / "run", progress=False)
    assert built == ["clf"] and sorted(p.name for p in (tmp_path / "run").iterdir()) == ["finetune"]
    assert out["top1"] is not None


def test_identity_follows_the_file_content(tmp_path, capsys):
    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    torch.save({"x": torch.zeros(2)}, a)
    torch.save({"x": torch.ones(2)}, b)

    def dry(path):
        assert (
            cli.main(["--step", "f", "--preset", "tiny", "--dry-run", "--set", f"finetune.init={path}"]) == 0
        )
        text = capsys.readouterr().out
        return text.split("\n")[0], yaml.safe_load(text)

    (name_a, cfg_a), (name_b, cfg_b) = dry(a), dry(b)
    assert cfg_a["finetune"]["init_sha256"] == C.file_sha256(a) != cfg_b["finetune"]["init_sha256"]
    assert name_a != name_b and "+" in name_a  # another checkpoint, another folder
    a.rename(tmp_path / "moved.pth")
    assert dry(tmp_path / "moved.pth")[0] == name_a  # the same file elsewhere: the same run
    for args, words in [
        (["--set", f"finetune.init={tmp_path / 'none.pth'}"], "no such file"),
        (["--set", f"finetune.init={b}", "--mode", "supervised"], "--mode mae"),
        (["--set", "finetune.init_sha256=abc"], "computed from the file"),
    ]:
        assert cli.main(["--step", "f", "--preset", "tiny", "--dry-run", *args]) == 2
        assert words in capsys.readouterr().err
