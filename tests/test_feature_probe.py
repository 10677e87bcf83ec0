"""analysis.feature_probe: the collapse measures and the command a user types."""

import json

import pytest
import torch
import yaml

from ablations.study.config import preset_config
from analysis import feature_probe as FP


def test_identical_tokens_are_fully_collapsed_and_orthogonal_ones_are_not():
    same = torch.randn(1, 1, 8).expand(2, 5, 8)
    spread, cosine = FP.token_stats(same)
    assert torch.allclose(spread, torch.zeros(2), atol=1e-6) and torch.allclose(cosine, torch.ones(2))
    eye = torch.eye(4).unsqueeze(0)  # 4 orthogonal unit tokens: cosine = 1/4 (only the diagonal)
    spread, cosine = FP.token_stats(eye)
    assert cosine.item() == pytest.approx(0.25) and spread.item() > 1


@pytest.fixture
def run(tmp_path):
    cfg = preset_config("tiny", "image")
    cfg["model"]["step"] = "f"
    cfg["data"].update(train_size=40, val_size=20)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path


def test_probe_reads_a_run_at_random_init(run, capsys):
    assert FP.main([str(run), "--scratch", "--train-items", "40"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["val_items"] == 20 and 0 <= out["linear_probe_top1"] <= 100
    assert 0 < out["token_spread"] and -1 <= out["token_cosine"] <= 1


def test_probe_without_a_pretrained_encoder_names_the_fix(run, capsys):
    assert FP.main([str(run)]) == 2
    assert "--scratch" in capsys.readouterr().err
    assert FP.main([str(run / "nope")]) == 2
    assert "not found; pass a run folder" in capsys.readouterr().err
