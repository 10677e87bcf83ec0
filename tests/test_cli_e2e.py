"""One end-to-end run with the real pieces (model, MAE, data, engine) on the tiny preset."""

import json

import pytest
import torch

from ablations import cli


@pytest.fixture
def one_thread():
    """Two OpenMP threads on a busy 2-core machine can be 40x slower than one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_step_f_tiny_end_to_end(tmp_path, capsys, one_thread):
    runs = tmp_path / "runs"
    assert cli.main(["--step", "f", "--preset", "tiny", "--runs-dir", str(runs), "--quiet"]) == 0
    folder = runs / "table1/f/image/tiny/seed0"
    m = json.loads((folder / "metrics.json").read_text())
    assert 0 <= m["top1"] <= 100 and m["params"] > 1e4 and m["macs"] > 1e5 and m["throughput"] > 0
    assert set(m["model"]["throughput_by_dtype"]) == {"float32", "bfloat16"}
    for phase in ("pretrain", "finetune"):  # the engine's files, inside the run folder
        assert (folder / phase / "done.json").exists() and (folder / phase / "log.jsonl").exists()
    assert (runs / "report/tiny/table1.md").exists() and (runs / "report/tiny/table1_speed.png").exists()
    # MAE reconstructions: written when pretraining ends, gathered into the report
    png = (folder / "pretrain" / "reconstructions.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (runs / "report/tiny/reconstructions_table1_f_image_seed0.png").read_bytes() == png
    assert "| f | f. replace KV pooling" in capsys.readouterr().out

    assert cli.main(["--step", "f", "--preset", "tiny", "--runs-dir", str(runs), "--quiet"]) == 0
    assert "[skip] table1/f/image/tiny/seed0" in capsys.readouterr().out
