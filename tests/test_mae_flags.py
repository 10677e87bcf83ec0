"""MAE pretraining transfers to finetuning for every flag change MAE accepts, not only rows a-f.

The MAE encoder removes the last q-pool (paper Sec. 4). A pool with parameters (conv pooling put
back into Hiera) must still be in the encoder's state dict, or the finetune loader refuses it
(it was: "pretrained encoder ... lacks non-head weights: ['blocks.3.attn.pool_q.weight', ...]").
"""

import warnings

import pytest
import torch

import models
from ablations.train.build import load_encoder, unused_weights_note
from models.mae import build_mae

SMALL = dict(decoder_depth=1, decoder_dim=32, decoder_heads=2)

# Each single-flag change of row f that sparse MAE accepts (relative positions need kv=pool and
# a dense grid; stride1_pools alone is a no-op without overlap, so it comes with it).
SINGLE_FLAG_CHANGES = {
    "pool=conv": dict(pool="conv"),
    "pool=max": dict(pool="max"),
    "pool=avg": dict(pool="avg"),
    "stride1_pools": dict(stride1_pools=True),
    "overlap+separate_and_pad": dict(overlap=True, separate_and_pad=True),
    "stride1_pools+overlap+separate_and_pad": dict(stride1_pools=True, overlap=True, separate_and_pad=True),
    "attn_residual": dict(attn_residual=True),
    "kv=pool": dict(kv="pool"),
}


def mae_for(step, modality, overrides, **mae):
    torch.manual_seed(0)
    cfg = {"size": "cpu-xs", "step": step, "modality": modality, "overrides": overrides}
    return build_mae(cfg, {**SMALL, **mae})


@pytest.mark.parametrize("modality", ["image", "video"])
@pytest.mark.parametrize("change", list(SINGLE_FLAG_CHANGES))
def test_encoder_state_dict_loads_into_classifier_for_each_flag_change_of_row_f(change, modality, tmp_path):
    overrides = SINGLE_FLAG_CHANGES[change]
    mae = mae_for("f", modality, overrides)
    x = torch.randn(2, 3, *mae.encoder.cfg.input_size)
    loss, *_ = mae(x)
    loss.backward()  # pretraining runs: every trainable parameter gets a gradient
    no_grad = [n for n, p in mae.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, no_grad
    clf = models.build("cpu-xs", "f", modality, num_classes=10, **overrides)
    state = mae.encoder_state_dict()
    result = clf.load_state_dict(state, strict=False)
    assert sorted(result.missing_keys) == ["head.bias", "head.weight"]
    assert not result.unexpected_keys
    # the harness's finetune loader accepts it (it raises on any missing non-head weight)
    torch.save(state, tmp_path / "encoder.pth")
    load_encoder(models.build("cpu-xs", "f", modality, num_classes=10, **overrides), tmp_path / "encoder.pth")
    for k, v in clf.state_dict().items():
        if not k.startswith("head."):
            assert torch.equal(v, state[k]), k


def test_conv_pool_of_the_removed_q_pool_is_carried_frozen_and_never_applied():
    mae = mae_for("f", "image", dict(pool="conv"))
    enc = mae.encoder
    assert enc.cfg.q_pool == models.model_config("cpu-xs", "f").q_pool - 1
    assert enc.cfg.params_q_pool == enc.cfg.q_pool + 1
    last = next(b for b in enc.specs if b.dormant)  # the first block of the last stage
    assert [name for name, _ in last.dormant] == ["q"] and last.q_pool is None
    attn = enc.blocks[last.index].attn
    assert not any(p.requires_grad for p in (*attn.pool_q.parameters(), *attn.norm_q.parameters()))
    # the encoder computes exactly what the q_pool - 1 model without the frozen pool computes
    plain = models.build("cpu-xs", "f", num_classes=0, pool="conv", q_pool=enc.cfg.q_pool).eval()
    missing, unexpected = plain.load_state_dict(enc.state_dict(), strict=False)
    assert not missing and unexpected == [f"blocks.{last.index}.attn.{n}" for n in _pool_q_keys()]
    x = torch.randn(2, 3, *enc.cfg.input_size)
    keep = mae.random_keep(2)
    with torch.no_grad():
        assert torch.equal(enc.eval().forward_features(x, mask=keep), plain.forward_features(x, mask=keep))
    # no dormant module for parameter-free pools: row f's encoder is unchanged
    f = mae_for("f", "image", {}).encoder
    assert not any(b.dormant for b in f.specs)
    assert all(p.requires_grad for p in f.parameters())


def _pool_q_keys():
    return ["pool_q.weight", "norm_q.weight", "norm_q.bias"]


@pytest.mark.parametrize("step", ["a", "b", "c"])
def test_conv_pooling_on_rows_a_to_c_transfers(step):
    """Rows a-c with conv pooling: only head keys are missing. (Rows c-e with conv also carry the
    last stage's K/V conv pool that MAE's finer grid needs and the classifier does not: extra
    keys, which the loader ignores with a warning.)"""
    mae = mae_for(step, "image", dict(pool="conv"))
    clf = models.build("cpu-xs", step, num_classes=10, pool="conv")
    missing, _ = clf.load_state_dict(mae.encoder_state_dict(), strict=False)
    assert sorted(missing) == ["head.bias", "head.weight"]


def test_dense_mae_of_mvitv2_resizes_relative_position_tables():
    mae = mae_for("mvitv2", "image", {}, dense=True)
    clf = models.build("cpu-xs", "mvitv2", num_classes=10)
    missing, unexpected = clf.load_state_dict(mae.encoder_state_dict(), strict=False)
    assert sorted(missing) == ["head.bias", "head.weight"] and not unexpected


def test_params_q_pool_is_validated():
    with pytest.raises(ValueError, match="params_q_pool"):
        models.model_config("cpu-xs", "f", q_pool=2, params_q_pool=1)


def test_kv_pools_the_classifier_has_no_place_for_are_explained_in_one_line(tmp_path):
    """Row e with conv pooling: MAE keeps its last stage unpooled, so K/V are pooled there (stride
    2); the classifier's KV stride there is 1 and, without stride-1 pools, it has no KV pool."""
    mae = mae_for("e", "image", dict(pool="conv"))
    torch.save(mae.encoder_state_dict(), tmp_path / "encoder.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Python warning with a source line
        unused = load_encoder(
            models.build("cpu-xs", "e", num_classes=10, pool="conv"), tmp_path / "encoder.pth"
        )
    assert len(unused) == 12 and all(".attn." in k for k in unused)
    note = unused_weights_note(unused)
    assert "\n" not in note and note.startswith(
        "[finetune] 12 pretrained weights unused, the K/V pools of blocks"
    )
    assert unused_weights_note([]) is None
    assert "no place in the classifier, unused" in unused_weights_note(["decoder.x"])
