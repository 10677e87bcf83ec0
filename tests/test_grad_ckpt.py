"""Activation checkpointing (runtime.grad_ckpt): the same gradients, drop path included."""

import pytest
import torch

import models
from models.mae import build_mae


def grads(model, loss_fn, ckpt, seed=0):
    """Parameter gradients of one forward+backward with the first `ckpt` blocks checkpointed."""
    model.set_grad_checkpointing(ckpt)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the same drop-path draws (and MAE mask) with and without
    loss_fn(model).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same(a, b):
    assert a.keys() == b.keys() and len(a) > 0
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("step", ["mvitv2", "b", "f"])
def test_classifier_gradients_equal_with_and_without(step):
    torch.manual_seed(0)
    m = models.build("cpu-xs", step=step, num_classes=10, drop_path=0.3).train()
    x, y = torch.randn(3, 3, 32, 32), torch.tensor([1, 2, 3])
    loss = lambda net: torch.nn.functional.cross_entropy(net(x), y)  # noqa: E731
    plain = grads(m, loss, 0)
    assert_same(plain, grads(m, loss, True))
    assert_same(plain, grads(m, loss, 2))  # the first 2 blocks only
    # drop path really draws: another seed gives other gradients
    assert not torch.allclose(
        plain["blocks.0.mlp.fc1.weight"], grads(m, loss, 0, seed=1)["blocks.0.mlp.fc1.weight"]
    )


@pytest.mark.parametrize("modality", ["image", "video"])
def test_sparse_mae_encoder_gradients_equal_with_and_without(modality):
    torch.manual_seed(0)
    mae = build_mae(
        {"size": "cpu-xs", "step": "f", "modality": modality},
        {"decoder_depth": 1, "decoder_dim": 32, "decoder_heads": 2},
        drop_path=0.3,
    ).train()
    x = torch.randn(2, 3, *mae.encoder.cfg.input_size)
    loss = lambda net: net(x)[0]  # noqa: E731  (the mask is drawn from the seeded RNG)
    assert_same(grads(mae, loss, 0), grads(mae, loss, True))
    assert mae.encoder.grad_ckpt_blocks == len(mae.encoder.blocks)


def test_no_checkpointing_without_grad_and_bad_n():
    m = models.build("cpu-xs", step="f", num_classes=10)
    m.set_grad_checkpointing(True)
    with torch.no_grad():
        m(torch.randn(1, 3, 32, 32))  # eval path runs the blocks directly
    with pytest.raises(ValueError, match="blocks"):
        m.set_grad_checkpointing(len(m.blocks) + 1)
