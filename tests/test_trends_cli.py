"""The trend verdicts printed by the commands users type: ablate.py --table 1 / --fig 8 and
python -m analysis (fake trainer that writes per-sample predictions)."""

import numpy as np

from ablations.store.predictions import save_predictions
from ablations.study import runs as R
from analysis.__main__ import main as analysis_main
from tests import test_cli as shared
from tests.test_cli import FakeTrainer, ablate

fake, plotted = shared.fake, shared.plotted  # fixtures: fake trainer; plots recorded, not drawn (autouse)

N = 400


class PredictingTrainer(FakeTrainer):
    """FakeTrainer's accuracies, with predictions.npz: the first top1% of N samples right, so a
    higher accuracy is right wherever a lower one is (clear differences)."""

    def __call__(self, cfg, run_dir, progress=True):
        metrics = super().__call__(cfg, run_dir, progress)
        labels = np.arange(N) % 10
        right = np.arange(N) < round(metrics["top1"] / 100 * N)
        top5 = np.stack(
            [np.where(right, labels, (labels + 1) % 10)] + [(labels + k) % 10 for k in range(2, 6)], 1
        )
        phase = "supervised" if cfg["mode"] == "supervised" else "finetune"
        save_predictions({"top5": top5, "label": labels}, run_dir / phase / "predictions.npz")
        return metrics


def test_table_and_fig_print_the_trend_verdicts(tmp_path, capsys, fake, monkeypatch):
    monkeypatch.setattr(R, "run_training", PredictingTrainer())  # after fake: its measure_model stays
    # FakeTrainer: MAE rows a-f 62-67%, supervised rows 56-62% (+ 10 x mask ratio 0.6 for all)
    assert ablate(tmp_path, "--table", "1") == 0
    out = capsys.readouterr().out
    assert "The paper's trends at this scale" in out
    assert "(1) MAE keeps accuracy across rows a-f: holds. MAE f - MAE a: +5.0 [" in out
    assert "(3) MAE-pretrained f beats supervised f: not known yet." in out  # no supervised f yet
    assert "\nBuilds: " in out and "\nBuilds:\n" not in out  # the table's build mark, not a bare heading
    assert ablate(tmp_path, "--fig", "8") == 0
    out = capsys.readouterr().out
    assert "(2) supervised from scratch loses accuracy from mvitv2 to f: does not hold." in out
    assert "(3) MAE-pretrained f beats supervised f: holds. MAE f - supervised f: +5.0 [" in out
    assert ablate(tmp_path, "--step", "f") == 0
    assert "trends at this scale" not in capsys.readouterr().out  # one row: its table line only
    assert analysis_main(["--runs-dir", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "report/cpu/trends.md:\nimage:\n  (1) MAE keeps accuracy across rows a-f: holds." in out
    assert "video:\n  No Table 1 or Fig. 8 runs.\n" in out
