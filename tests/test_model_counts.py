"""Params and multiply-adds of rows f and mvitv2 match the paper (Table 2, Table 8, Table 4)."""

import pytest
import torch

import models
from models.summary import count_macs, count_params

# (size, step, modality, paper params M, paper GMACs). The paper rounds GMACs to integers for
# images, so a figure may be off by the rounding (0.5) as well as by 5%.
PAPER = [
    ("T", "f", "image", 28, 5),
    ("S", "f", "image", 35, 6),
    ("B", "f", "image", 52, 9),
    ("B+", "f", "image", 70, 13),
    ("L", "f", "image", 214, 40),
    ("H", "f", "image", 673, 125),
    ("T", "mvitv2", "image", 24, 5),
    ("S", "mvitv2", "image", 35, 7),
    ("B", "mvitv2", "image", 52, 10),
    ("L", "mvitv2", "image", 218, 42),
    ("B", "f", "video", 51, 102),
    ("B+", "f", "video", 69, 133),
    ("L", "f", "video", 213, 413),
    ("H", "f", "video", 672, 1159),
]


@pytest.mark.parametrize("size,step,modality,params,gmacs", PAPER)
def test_params_and_macs_match_paper(size, step, modality, params, gmacs):
    with torch.device("meta"):  # shapes only: counting a 673M-param model costs no memory or time
        model = models.build(size, step=step, modality=modality)
        macs = count_macs(model) / 1e9
    p = count_params(model) / 1e6
    assert abs(p - params) <= 0.02 * params + 0.5, p
    assert abs(macs - gmacs) <= max(0.05 * gmacs, 0.5), macs


def test_rows_are_cumulative_one_change_each():
    rows = models.load_rows()
    names = list(rows)
    assert names == ["mvitv2", "a", "b", "c", "d", "e", "f"]
    flags = ["position", "pool", "stride1_pools", "overlap", "attn_residual", "kv"]
    for prev, row in zip(names, names[1:]):
        changed = [f for f in flags if rows[prev][f] != rows[row][f]]
        assert len(changed) == 1, (row, changed)


def test_row_f_has_no_kv_pooling_and_hiera_attention_pattern():
    with torch.device("meta"):
        for modality in ("image", "video"):
            m = models.build("B", step="f", modality=modality)
            assert all(s.kv_pool is None for s in m.specs)
            # Mask unit attention while the block input is at stage-1/2 resolution (one-block lag).
            kinds = [(s.stage, s.attention) for s in m.specs]
            assert kinds[5] == (2, "mask_unit") and kinds[6] == (2, "global")
            assert all(a == "mask_unit" for st, a in kinds if st < 2)
