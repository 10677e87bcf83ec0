"""Fixtures shared by several test files."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Two OpenMP threads on a busy 2-core machine can be 40x slower than one (real forwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def paper_figures_off(monkeypatch):
    """The report without the paper tables' figures and speed timing (slow, and drawn by
    tests/test_analysis.py); the tables, sweeps and interaction figures are still written."""
    monkeypatch.setattr("analysis.report.table1_speeds", lambda *a, **k: {})
    for name in ("table1_accuracy", "table1_speed", "fig8", "acc_vs_speed", "differences"):
        monkeypatch.setattr(f"analysis.plots.{name}", lambda *a, **k: None)
    monkeypatch.setattr("analysis.table3_plot.table3", lambda *a, **k: None)
