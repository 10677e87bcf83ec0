"""analysis/: tables and plots from runs/ alone, also from partial results; throughput and MACs."""

import json

import numpy as np
import pytest
import torch
import yaml

from ablations.store.predictions import predictions_path, save_predictions
from ablations.study import config as C
from analysis import tables
from analysis.collect import load_runs, paper_numbers
from analysis.report import write_report
from models.model_stats import count_macs, count_params
from models.throughput import measure_throughput


def fake_run(runs_dir, run: C.Run, top1: float, speed: float = 100.0):
    """A finished run folder as ablations.study.runs writes it."""
    folder = runs_dir / run.name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(run.config))
    metrics = {"run": run.meta, "top1": top1, "top5": 99.0, "throughput": speed, "params": 2e6, "macs": 3e8,
               "train_time_s": 10.0, "wall_time_s": 12.0}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))


def runs_of(**kw):
    return {r.entry: r for r in C.resolve(C.Selection(**kw))}


def per_run_speeds(configs, base="mvitv2"):
    """Stands in for analysis.speed_table.table_speeds: each row's speed from its step
    (mvitv2 100, f 250), ratios with a +-4% spread (real timings: tests/test_speed_table.py)."""
    speed = {row: {"mvitv2": 100.0, "f": 250.0}.get(row, 150.0) for row in configs}
    rows = {r: {"throughput": v, "per_round": [v], "ratio": v / 100, "ratio_low": 0.96 * v / 100,
                "ratio_high": 1.04 * v / 100} for r, v in speed.items()}  # fmt: skip
    settings = {"batch_sizes": [1], "warmup": 1, "iters": 1, "rounds": 3, "dtype": "float32", "device": "cpu"}
    return {"settings": settings, "device_name": "fake cpu", "threads": 1, "date": "today", "rows": rows}


@pytest.fixture(autouse=True)
def fake_speeds(monkeypatch):
    calls = []
    monkeypatch.setattr(
        "analysis.speed_table.table_speeds", lambda c, b="mvitv2": calls.append(c) or per_run_speeds(c)
    )
    return calls


def test_partial_results_give_tables_and_plots(tmp_path):
    t1 = runs_of(table="table1")
    fake_run(tmp_path, t1["mvitv2"], 70.0, speed=100.0)
    fake_run(tmp_path, t1["f"], 75.0, speed=250.0)
    (tmp_path / "table1/a/image/cpu/seed0").mkdir(parents=True)  # an unfinished run: ignored
    out = write_report(tmp_path)
    md = (out / "cpu" / "table1.md").read_text()
    assert (
        "| f. replace KV pooling with mask unit attn (Hiera) | 75.00 | 85.6 | 250.0 | 2.50x [2.40-2.60] "
        "| 531.4 |" in md
    )
    assert "| a | a. replace rel pos with absolute | – | 85.6 | – | – | 253.3 | 1.15x |" in md
    assert "image: timed side by side on fake cpu, today: 3 rounds in 1 fresh processes" in md
    assert "video: each run's own throughput" in md
    stems = [
        "table1_accuracy",
        "table1_speed",
        "acc_vs_speed",
        "table1_differences",
    ]
    for stem in stems:
        assert (out / "cpu" / f"{stem}.png").stat().st_size > 1000
        assert (out / "cpu" / f"{stem}.pdf").exists()
    assert not list((out / "cpu").glob("fig8*"))  # Table 1's runs only: no Fig. 8 or Table 3 files
    assert not list((out / "cpu").glob("table3*"))
    assert "table1" in (out / "index.md").read_text()


def test_runs_of_a_recipe_search_stay_out_of_the_main_report(tmp_path):
    """runs/search/<grid>/ holds ordinary run folders one level deeper (analysis.recipe_search):
    they must not count as more seeds of the main table's rows."""
    f = runs_of(step="f")["f"]
    fake_run(tmp_path, f, 40.0)
    fake_run(tmp_path / "search" / "laptop", f, 90.0)
    runs = load_runs(tmp_path)
    assert list(runs["top1"]) == [40.0]
    assert list(load_runs(tmp_path / "search" / "laptop")["top1"]) == [90.0]


def test_empty_runs_dir(tmp_path):
    out = write_report(tmp_path)
    assert "0 finished runs" in (out / "index.md").read_text()


def test_report_is_deterministic(tmp_path, monkeypatch):
    for name in ("table1_accuracy", "table1_speed", "fig8", "acc_vs_speed", "differences"):  # tables only
        monkeypatch.setattr(f"analysis.plots.{name}", lambda *a, **k: [])
    monkeypatch.setattr("analysis.table3_plot.table3", lambda *a, **k: [])
    t1 = runs_of(table="table1", seeds=2)
    for i, run in enumerate(t1.values()):
        fake_run(tmp_path, run, 60.0 + i)
    first = write_report(tmp_path, tmp_path / "r1")
    second = write_report(tmp_path, tmp_path / "r2")
    for p in first.rglob("*.[mc]*[dv]"):
        assert p.read_bytes() == (second / p.relative_to(first)).read_bytes(), p


def test_table3_uses_row_f_for_the_defaults(tmp_path):
    t1, t3 = runs_of(table="table1"), runs_of(table="table3")
    fake_run(tmp_path, t1["f"], 75.0)
    fake_run(tmp_path, t3["mask_ratio-0.5"], 73.0)
    frame, md = tables.table3(load_runs(tmp_path), "cpu", paper_numbers())
    assert "| mask_ratio | 0.6 | 75.00 * | 85.6 * |" in md  # cpu's mask ratio 0.6 = row f = default
    assert "| mask_ratio | 0.5 | 73.00 | 85.5 |" in md
    assert "| drop_path | 0.0 | 75.00 * | 85.2 |" in md  # cpu pretrains without drop path
    assert "| drop_path | 0.2 | – | 85.6 * |" in md
    assert "| epochs | 400 | 75.00 * | 85.6 | – | 84.0 |" in md
    assert frame.set_index(["group", "value"]).loc[("target", "hog"), "video_paper_top1"] == 86.1


def test_fig8_mae_vs_supervised(tmp_path):
    t1, f8 = runs_of(table="table1"), runs_of(table="fig8")
    fake_run(tmp_path, t1["mvitv2"], 70.0)
    fake_run(tmp_path, t1["f"], 75.0)
    fake_run(tmp_path, f8["f"], 65.0)
    frame, md = tables.fig8(load_runs(tmp_path), "cpu", paper_numbers())
    row = frame.set_index("row")
    assert row.loc["f", "image_mae_minus_supervised"] == pytest.approx(10.0)
    assert row.loc["mvitv2", "image_supervised_top1"] == 70.0  # from table1/mvitv2
    assert "| mvitv2 | 70.00 | – | – | 84.4 | – |" in md


def test_paper_numbers_match_the_tables():
    paper = paper_numbers()
    assert list(paper["table1"]["rows"]) == C.list_rows()
    for m in C.MODALITIES:
        for name, _ in C.table_entries("table3", m):
            group, value = name.split("-", 1)
            assert m in paper["table3"]["groups"][group]["entries"][value], name
    assert paper["table1"]["rows"]["f"]["image"] == {"acc": 85.6, "speed": 531.4}


def test_params_macs_and_throughput():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))
    assert count_params(model) == 12 * 5 + 5
    assert count_macs(model, (3, 2, 2)) == 12 * 5
    best, all_ = measure_throughput(model, (3, 2, 2), [1, 4], torch.float32, "cpu", warmup=1, iters=2,
                                    return_all=True)  # fmt: skip
    assert set(all_) == {1, 4} and best == max(all_.values()) > 0
    assert measure_throughput(model, (3, 2, 2), [2], torch.bfloat16, "cpu", warmup=1, iters=1) > 0


def test_macs_count_attention():
    class Attn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(8, 8, bias=False)

        def forward(self, x):  # x: (B, 4 tokens, 8)
            q = self.proj(x)[:, None]
            return torch.nn.functional.scaled_dot_product_attention(q, q, q)

    # projection 4*8*8, then QK^T and AV: 2 * 4*4*8 (counted only under the MATH backend on CPU)
    assert count_macs(Attn(), (4, 8)) == 4 * 8 * 8 + 2 * 4 * 4 * 8


def test_report_shows_mvitv2_with_hiera_conventions_beside_row_a(tmp_path):
    t1 = runs_of(table="table1")
    fake_run(tmp_path, t1["mvitv2"], 70.0)
    metrics = tmp_path / t1["mvitv2"].name / "metrics.json"
    m = json.loads(metrics.read_text())
    metrics.write_text(json.dumps(m | {"params_hiera_conventions": 1.5e6, "macs_hiera_conventions": 2.5e8}))
    fake_run(tmp_path, t1["a"], 71.0)
    md = (write_report(tmp_path) / "cpu" / "table1.md").read_text()
    lines = [ln for ln in md.splitlines() if ln.startswith(("| mvitv2 |", "| mvitv2 with", "| a |"))][-3:]
    assert lines[1] == "| mvitv2 with Hiera conventions | 1.500 | 250.0 | – | – |"
    assert lines[0].startswith("| mvitv2 | 2.000 | 300.0") and lines[2].startswith("| a | 2.000 | 300.0")
    assert "comes mostly from this switch" in md


def fake_predictions(runs_dir, run: C.Run, correct: np.ndarray, labels: np.ndarray):
    wrong = (labels + 1) % 10
    top5 = np.stack([np.where(correct, labels, wrong)] + [(wrong + k) % 10 for k in range(1, 5)], 1)
    path = predictions_path(runs_dir / run.name, run.config["mode"])
    path.parent.mkdir()
    save_predictions({"top5": top5, "label": labels}, path)


def test_report_gives_row_differences_with_intervals(tmp_path, fake_speeds):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 500)
    t1, f8 = runs_of(table="table1"), runs_of(table="fig8")
    base = rng.random(500) < 0.5
    gained = base.copy()
    gained[np.flatnonzero(~base)[:100]] = True  # +20 points
    for row, top1, correct in (("mvitv2", 50.0, base), ("a", 50.0, base), ("b", 70.0, gained)):
        fake_run(tmp_path, t1[row], top1)
        fake_predictions(tmp_path, t1[row], correct, labels)
    fake_run(tmp_path, f8["b"], 50.0)
    fake_predictions(tmp_path, f8["b"], base, labels)
    out = write_report(tmp_path)
    md = (out / "cpu" / "table1.md").read_text()
    assert "| a - mvitv2 | +0.0 [+0.0, +0.0] n.d. | 1 | – | – |" in md  # identical predictions
    line = next(ln for ln in md.splitlines() if ln.startswith("| b - a |"))
    low, high = (float(v) for v in line.split("[")[1].split("]")[0].split(","))
    assert "+20.0 [" in line and "n.d." not in line and low < 20 < high
    assert "| c - b | – | – |" in md  # no run for c
    csv = (out / "cpu" / "table1_differences.csv").read_text()
    assert "b - a,image,20.0000" in csv
    assert "| b: MAE - supervised | +20.0 [" in (out / "cpu" / "fig8.md").read_text()
    assert (out / "cpu" / "table1_differences.png").stat().st_size > 1000
    # the side-by-side speeds were timed once, for the rows with runs, and are cached
    assert len(fake_speeds) == 1 and list(fake_speeds[0]) == ["mvitv2", "a", "b"]
    cache = json.loads((tmp_path / "report/cpu/speed_table1_image.json").read_text())
    assert cache["rows"]["b"]["ratio"] == 1.5 and cache["key"]["settings"]["iters"] == 20
    write_report(tmp_path, tmp_path / "again")
    assert len(fake_speeds) == 1  # same rows and settings: read from the cache
