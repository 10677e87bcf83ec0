"""analysis.speed_table: rows timed round-robin in a rotating order, ratios per round."""

import json

import pytest
import torch

from ablations.study import config as C
from analysis import speed_table


class Net(torch.nn.Module):
    def __init__(self, name):
        super().__init__()
        self.name, self.cfg = name, type("Cfg", (), {"in_chans": 3, "input_size": (4, 4)})


def test_rounds_rotate_and_ratios_are_taken_per_round(monkeypatch):
    order, load = [], iter([1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 2.0, 2.0, 2.0])  # the machine's load per call
    true = {"mvitv2": 100.0, "d": 150.0, "f": 200.0}

    def fake_measure(model, shape, **kw):
        assert shape == (3, 4, 4) and kw == {"batch_sizes": [1], "warmup": 0}
        order.append(model.name)
        return true[model.name] * next(load)

    monkeypatch.setattr(speed_table, "measure_throughput", fake_measure)
    out = speed_table.time_side_by_side({k: Net(k) for k in true}, "mvitv2", 3, batch_sizes=[1], warmup=0)
    assert order == ["mvitv2", "d", "f", "d", "f", "mvitv2", "f", "mvitv2", "d"]  # no row always first
    # each round's load hits every row alike, so the per-round ratios are exact
    assert out["f"]["ratio"] == out["f"]["ratio_low"] == out["f"]["ratio_high"] == pytest.approx(2.0)
    assert out["d"]["per_round"] == [150.0, 75.0, 300.0] and out["d"]["throughput"] == 150.0
    with pytest.raises(ValueError, match="rounds"):
        speed_table.time_side_by_side({"f": Net("f")}, rounds=0)


@pytest.mark.slow  # real timing in 2 fresh processes (~25 s): the rotation logic above is the fast check
def test_real_models_timed_side_by_side_and_cached(tmp_path):
    configs = {r.entry: r.config for r in C.resolve(C.Selection(table="table1", preset="tiny"))}
    configs = {k: configs[k] for k in ("mvitv2", "f")}
    path = tmp_path / "speed_table1_image.json"
    first = speed_table.cached_table_speeds(configs, path)
    rows = first["rows"]
    assert rows["mvitv2"]["ratio"] == 1.0 and rows["f"]["throughput"] > 0
    assert rows["f"]["ratio_low"] <= rows["f"]["ratio"] <= rows["f"]["ratio_high"]
    # tiny: 2 rounds, one in each of 2 fresh processes, pooled
    assert len(rows["f"]["per_round"]) == first["settings"]["rounds"] == 2
    assert first["settings"]["processes"] == 2
    assert first["settings"]["batch_sizes"] == [2] and first["settings"]["dtype"] == "float32"
    assert json.loads(path.read_text())["date"] == first["date"]
    assert speed_table.cached_table_speeds(configs, path) == first  # same key: not timed again
    configs["f"] = {**configs["f"], "bench": {"batch_sizes": [3], "warmup": 1, "iters": 1}}
    del configs["mvitv2"]  # other rows or settings: timed again
    again = speed_table.cached_table_speeds(configs, path)
    assert list(again["rows"]) == ["f"] and again["settings"]["batch_sizes"] == [3]
