"""Sparse MAE on the real configurable model (CPU size cpu-xs): masking, loss, no-leak, transfer."""

import math

import numpy as np
import pytest
import torch

import models
from models.mae import build_mae

SMALL = dict(decoder_depth=1, decoder_dim=32, decoder_heads=2)


def make(step="f", modality="image", drop_path=0.0, **mae):
    torch.manual_seed(0)
    return build_mae({"size": "cpu-xs", "step": step, "modality": modality}, {**SMALL, **mae}, drop_path)


def inputs(mae, batch=2):
    return torch.randn(batch, 3, *mae.encoder.cfg.input_size)


def params(m):
    return sum(p.numel() for p in m.parameters())


def test_random_keep_same_count_and_ratio():
    mae = make(mask_ratio=0.6)
    U = mae.num_units
    keep = mae.random_keep(64)
    assert keep.shape == (64, U) and keep.dtype == torch.bool
    assert (keep.sum(1) == int(U * 0.4)).all()
    assert len({tuple(k.tolist()) for k in keep}) > 1  # per-sample masks
    assert 0.2 < keep.float().mean(0).min() and keep.float().mean(0).max() < 0.6  # uniform over units


def test_loss_only_on_masked_units():
    mae = make()
    loss, pred, target, keep = mae(inputs(mae))
    assert torch.allclose(loss, mae.loss(pred, target, keep))
    poked = pred.detach().clone()
    poked[keep] += 100.0  # visible units
    assert torch.allclose(mae.loss(poked, target, keep), loss)
    poked = pred.detach().clone()
    poked[~keep] += 1.0
    assert not torch.allclose(mae.loss(poked, target, keep), loss)


@pytest.mark.parametrize("step,dense", [("a", False), ("d", False), ("f", False), ("f", True)])
def test_masked_pixels_do_not_reach_the_prediction(step, dense):
    """Everything the decoder predicts depends only on visible pixels (and learned tokens)."""
    mae = make(step, dense=dense).eval()
    x = inputs(mae)
    keep = mae.random_keep(2)
    pix = keep.view(2, 1, *mae.mask_shape)
    for d, n in enumerate(mae.encoder.unit_pixels):
        pix = pix.repeat_interleave(n, dim=2 + d)
    y = torch.where(pix, x, torch.randn_like(x) * 5)
    with torch.no_grad():
        _, p1, t1, _ = mae(x, keep)
        _, p2, t2, _ = mae(y, keep)
    assert torch.allclose(p1, p2, atol=1e-5)
    assert not torch.allclose(t1, t2)  # the targets did change


def test_video_masked_frames_do_not_leak_and_shapes():
    mae = make("f", "video").eval()
    x = inputs(mae)
    keep = mae.random_keep(2)
    loss, pred, target, _ = mae(x, keep)
    P = math.prod(mae.last_unit)
    assert pred.shape == target.shape == (2, mae.num_units, P, 3 * math.prod(mae.pred_patch[1:]))
    assert mae.pred_patch[0] == 2  # a token spans 2 frames; the official target is its first frame
    y = x.clone()
    first = (~keep[0]).nonzero()[0, 0].item()  # a masked unit of sample 0, (t, h, w) raster
    t, h, w = (first // 16, (first // 4) % 4, first % 4)
    uT, uH, uW = mae.encoder.unit_pixels
    y[0, :, t * uT : (t + 1) * uT, h * uH : (h + 1) * uH, w * uW : (w + 1) * uW] += 3.0
    with torch.no_grad():
        assert torch.allclose(mae(y, keep)[1], pred, atol=1e-5)


def test_loss_decreases_on_fixed_batch():
    mae = make(decoder_depth=1, decoder_dim=64, decoder_heads=2)
    torch.manual_seed(1)
    # smooth, image-like inputs: low-frequency noise upsampled
    x = torch.nn.functional.interpolate(torch.randn(8, 3, 8, 8), size=(32, 32), mode="bilinear")
    keep = mae.random_keep(8)
    opt = torch.optim.AdamW(mae.parameters(), lr=2e-3)
    losses = []
    for _ in range(20):
        loss = mae(x, keep)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses


def test_encoder_state_dict_loads_into_finetune_model():
    mae = make("f", drop_path=0.1)
    assert mae.encoder.cfg.q_pool == models.model_config("cpu-xs", "f").q_pool - 1
    ft = models.build("cpu-xs", step="f", num_classes=7)
    missing, unexpected = ft.load_state_dict(mae.encoder_state_dict(), strict=False)
    assert unexpected == []
    assert missing and all(k.startswith("head.") for k in missing)
    for k, v in mae.encoder_state_dict().items():
        assert torch.equal(ft.state_dict()[k], v)
    assert ft(inputs(mae)).shape == (2, 7)


def test_param_counts_multi_scale_and_decoder_depth():
    on, off = make(multi_scale=True), make(multi_scale=False)
    enc = on.encoder
    # one fusion conv per q-pooled stage: C_s -> C_last, kernel = unit size ratio
    expect = 0
    for dim, unit in zip(enc.stage_dims[:-1], enc.stage_unit_sizes[:-1]):
        if tuple(unit) != tuple(enc.stage_unit_sizes[-1]):
            k = math.prod(u // v for u, v in zip(unit, enc.stage_unit_sizes[-1]))
            expect += dim * enc.stage_dims[-1] * k + enc.stage_dims[-1]
    assert expect > 0 and params(on) - params(off) == expect
    d1, d3 = make(decoder_depth=1), make(decoder_depth=3)
    assert params(d3) - params(d1) == 2 * params(d1.decoder.blocks[0])
    D = SMALL["decoder_dim"]
    assert params(d1.decoder.blocks[0]) == 12 * D * D + 13 * D  # timm Block, mlp_ratio 4, qkv bias


def test_dense_variant_and_mvitv2_refusal():
    dense = make("f", dense=True)
    loss, pred, _, keep = dense(inputs(dense))
    loss.backward()
    assert all(p.grad is not None for p in dense.parameters())  # nothing unused (DDP-safe)
    sparse = make("f")
    sparse(inputs(sparse))[0].backward()
    assert all(p.grad is not None for p in sparse.parameters())
    with pytest.raises(ValueError, match="mvitv2.*sparse"):
        make("mvitv2")
    mv = make("mvitv2", dense=True)
    assert torch.isfinite(mv(inputs(mv))[0])


def test_hog_target_and_bad_config():
    mae = make("f", target="hog")
    loss, pred, target, _ = mae(inputs(mae))
    assert torch.isfinite(loss) and pred.shape[-1] == target.shape[-1] == 3 * 9
    with pytest.raises(ValueError, match="unknown mae config"):
        make(decoder_width=3)
    with pytest.raises(ValueError, match="same number"):
        keep = mae.random_keep(2)
        keep[0, keep[0].logical_not().nonzero()[0]] = True
        mae(inputs(mae), keep)


def test_reconstruct_and_figure(tmp_path):
    from ablations.train.reconstructions import reconstruction_arrays, save_reconstruction_arrays
    from analysis.reconstructions import draw_reconstructions, load_arrays

    mae = make()
    x = inputs(mae, 3)
    keep = mae.random_keep(3)
    masked, rec = mae.reconstruct(x, keep)
    assert masked.shape == rec.shape == x.shape
    pix = keep.view(3, 1, *mae.mask_shape).repeat_interleave(8, 2).repeat_interleave(8, 3)
    assert torch.equal(rec[pix.expand_as(x)], x[pix.expand_as(x)])  # visible pixels pasted back
    assert (masked[~pix.expand_as(x)] == 0).all()
    arrays = reconstruction_arrays(mae, x, (0.5,) * 3, (0.25,) * 3, keep)
    assert {a.shape for a in arrays.values()} == {(3, 32, 32, 3)} and arrays["input"].dtype == np.uint8
    saved = save_reconstruction_arrays(arrays, tmp_path / "run" / "rec.npz")
    assert all((load_arrays(saved)[k] == arrays[k]).all() for k in arrays)
    out = draw_reconstructions(load_arrays(saved), tmp_path / "fig" / "rec.png", n=2)
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in out.parent.iterdir()] == ["rec.png"]  # no temp file left behind


def test_sparse_costs_fewer_macs_than_dense():
    from analysis.bench_mae import forward_gmacs

    sparse, dense = make("f", mask_ratio=0.75), make("f", mask_ratio=0.75, dense=True)
    x = inputs(sparse)
    assert forward_gmacs(sparse, x) < 0.7 * forward_gmacs(dense, x)
