"""Sparse MAE pretraining for every Table 1 row (a-f), images and video.

The encoder is the harness's configurable model built with ``num_classes=0`` and its last q-pool
removed (the decoder then predicts at the stage-before-last resolution, e.g. 2x2 tokens per mask
unit for Hiera at 224px: a 16px prediction patch). A conv pool that the removed q-pool would
hold is still built, frozen and never applied (``ModelConfig.params_q_pool``), so the encoder's
weights are exactly the classifier's. Masked mask units are *deleted* before the
encoder; the decoder sees visible units' (optionally multi-scale fused) features plus a learned
mask token at masked units. ``dense=True`` instead keeps every unit and swaps masked tokens for
a learned mask token right after the patch embed (MaskFeat/SimMIM, paper Fig. 4c), for the
sparse-vs-dense cost comparison.

    mae = build_mae(cfg["model"], cfg["mae"], drop_path=0.2)
    loss, pred, target, keep = mae(x)        # x: (B, C, H, W) or (B, C, T, H, W)
    finetune_model.load_state_dict(mae.encoder_state_dict(), strict=False)  # only head keys missing
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.build import build
from models.config import resolve_blocks
from models.layers import raster_to_units, units_to_raster
from models.mae_decoder import LayerNorm, MAEDecoder, MultiScaleFusion
from models.steps import model_config
from models.targets import hog_target, patch_stats, pixel_target, unpatchify


class MaskedAutoencoder(nn.Module):
    """MAE around an encoder that follows the ``models`` contract (ablations/CONTRACTS.md).

    Needs from the encoder: ``forward_features(x, mask, return_intermediates, mask_token)``,
    ``mask_spatial_shape``, ``num_mask_units``, ``unit_pixels``, ``stage_dims``,
    ``stage_unit_sizes`` and ``cfg``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        mask_ratio: float = 0.6,
        target: str = "pixel",
        norm_pix_loss: bool = True,
        multi_scale: bool = True,
        decoder_depth: int = 8,
        decoder_dim: int = 512,
        decoder_heads: int = 16,
        dense: bool = False,
        hog_cell: int = 8,
        in_chans: int = 3,
    ):
        super().__init__()
        if target not in ("pixel", "hog"):
            raise ValueError(f"mae.target must be 'pixel' or 'hog', got {target!r}")
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mae.mask_ratio must be in (0, 1), got {mask_ratio}")
        self.encoder = encoder
        self.mask_ratio, self.target, self.dense = mask_ratio, target, dense
        self.norm_pix_loss, self.in_chans = norm_pix_loss, in_chans

        self.mask_shape = tuple(encoder.mask_spatial_shape)
        self.num_units = math.prod(self.mask_shape)
        self.last_unit = tuple(encoder.stage_unit_sizes[-1])  # prediction tokens per unit, per dim
        # pixels under one prediction token; video tokens span patch_stride[0] (= 2) frames
        self.pred_patch = tuple(p // u for p, u in zip(encoder.unit_pixels, self.last_unit))
        self.hog_cell = min(hog_cell, *self.pred_patch[-2:])  # CPU sizes predict < 8px patches
        if target == "pixel":
            # video: the first frame of each token only (official get_pixel_label_3d)
            out_dim = math.prod(self.pred_patch[-2:]) * in_chans
        else:
            out_dim = in_chans * 9 * math.prod(p // self.hog_cell for p in self.pred_patch[-2:])

        c_last = encoder.stage_dims[-1]
        self.fusion = MultiScaleFusion(encoder.stage_dims, encoder.stage_unit_sizes, multi_scale)
        # The encoder's own final norm normalises the fused tokens (the official code deletes it and
        # adds a fresh one): no parameter sits unused (DDP would fail) and encoder_state_dict
        # stays complete, so the finetune model misses only its head.
        own = getattr(encoder, "norm", None)
        reuse = isinstance(own, nn.LayerNorm) and tuple(own.normalized_shape) == (c_last,)
        self.encoder_norm = None if reuse else LayerNorm(c_last)
        self.decoder_embed = nn.Linear(c_last, decoder_dim)
        if dense:
            # (C0,) token that replaces masked tokens after the patch embed
            self.enc_mask_token = nn.Parameter(torch.zeros(_embed_dim(encoder)))
        else:
            # created only when used: an unused parameter would break DDP
            self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        num_pred = self.num_units * math.prod(self.last_unit)
        self.decoder = MAEDecoder(num_pred, decoder_dim, decoder_depth, decoder_heads, out_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        # Official Hiera MAE: xavier Linear / zero bias, unit LayerNorm over the whole model
        # (encoder included), and the patch embed initialised like a Linear.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d | nn.Conv3d) and m.in_channels == self.in_chans and m.groups == 1:
                nn.init.xavier_uniform_(m.weight.view(m.weight.shape[0], -1))
        for p in ("mask_token", "enc_mask_token"):
            if hasattr(self, p):
                nn.init.trunc_normal_(getattr(self, p), std=0.02)

    # ------------------------------------------------------------------ masking and targets
    def random_keep(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """(B, U) bool, True = visible; the same count kept per sample (MAE's rand + argsort)."""
        n_keep = int(self.num_units * (1 - self.mask_ratio))
        n_keep = min(max(n_keep, 1), self.num_units - 1)  # never all masked or all visible
        order = torch.rand(batch, self.num_units, device=device).argsort(dim=1)
        keep = torch.zeros(batch, self.num_units, dtype=torch.bool, device=device)
        return keep.scatter_(1, order[:, :n_keep], True)

    @torch.no_grad()
    def make_target(self, x: torch.Tensor) -> torch.Tensor:
        """(B, U, P, D_target) in unit-major order, fp32."""
        x = x.float()
        if self.target == "pixel":
            t = pixel_target(x, self.pred_patch, norm=self.norm_pix_loss)
        else:
            t = hog_target(x, self.pred_patch, cell=self.hog_cell)
        grid = tuple(m * u for m, u in zip(self.mask_shape, self.last_unit))
        return raster_to_units(t, grid, self.last_unit).view(t.shape[0], self.num_units, -1, t.shape[-1])

    # ------------------------------------------------------------------ forward
    def forward_encoder(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Fused, normed encoder features: (B, U_kept, P, C_last) sparse, (B, U, P, C_last) dense."""
        if self.dense:
            _, feats = self.encoder.forward_features(
                x, mask=keep, return_intermediates=True, mask_token=self.enc_mask_token
            )
        else:
            _, feats = self.encoder.forward_features(x, mask=keep, return_intermediates=True)
        norm = self.encoder.norm if self.encoder_norm is None else self.encoder_norm
        return norm(self.fusion(feats))

    def forward_decoder(self, latent: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """latent from :meth:`forward_encoder` -> predictions (B, U, P, D_target)."""
        x = self.decoder_embed(latent)
        if not self.dense:
            B, _, P, D = x.shape
            full = x.new_zeros(B, self.num_units, P, D)
            full[keep] = x.reshape(-1, P, D)  # kept units come back in raster order per sample
            x = torch.where(keep[:, :, None, None], full, self.mask_token.to(x.dtype))
        # dense: the encoder already carried a token for every unit (its own mask token)
        return self.decoder(x)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None):
        """x: (B, C, H, W) / (B, C, T, H, W); keep: optional (B, U) bool, True = visible.

        Returns (loss, pred, target, keep): pred and target (B, U, P, D) for every unit in
        unit-major order; the loss is the MSE over masked units only.
        """
        if keep is None:
            keep = self.random_keep(x.shape[0], x.device)
        self._check_keep(keep, x.shape[0])
        pred = self.forward_decoder(self.forward_encoder(x, keep), keep)
        target = self.make_target(x)
        return self.loss(pred, target, keep), pred, target, keep

    @staticmethod
    def loss(pred: torch.Tensor, target: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """MSE over the masked units only; pred/target (B, U, P, D), keep (B, U). fp32 for bf16 runs."""
        err = (pred.float() - target.float()).pow(2).mean(-1)  # (B, U, P)
        return err[~keep].mean()

    def _check_keep(self, keep: torch.Tensor, batch: int) -> None:
        if keep.dtype != torch.bool or tuple(keep.shape) != (batch, self.num_units):
            got = f"{keep.dtype} {tuple(keep.shape)}"
            raise ValueError(f"keep must be bool of shape {(batch, self.num_units)}, got {got}")
        counts = keep.sum(1)
        if (counts != counts[0]).any():
            raise ValueError(f"keep must keep the same number of units per sample, got {counts.tolist()}")
        if counts[0] == self.num_units:
            raise ValueError("keep masks nothing: the MAE loss is over masked units only")

    # ------------------------------------------------------------------ training helpers
    def set_grad_checkpointing(self, enable: bool | int = True) -> None:
        """Checkpoint the sparse encoder's blocks (all, or the first N); the decoder is small."""
        self.encoder.set_grad_checkpointing(enable)

    def no_weight_decay(self) -> set[str]:
        """The encoder's own no-decay set (position tables), plus the mask tokens and decoder positions."""
        names = {f"encoder.{n}" for n in getattr(self.encoder, "no_weight_decay", set)()}
        own = {n for n, _ in self.named_parameters() if n.endswith("mask_token") or n == "decoder.pos_embed"}
        return names | own

    # ------------------------------------------------------------------ transfer and figures
    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """Encoder weights for ``build(size, step, modality, num_classes=K)``.

        Load with ``strict=False``: only the head is missing. The removed last q-pool's parameters
        (conv pooling only) are in it, at their init: the encoder carries them frozen
        (``ModelConfig.params_q_pool``). A video row with KV pooling may carry extra keys the
        classifier lacks (its last stage pools K/V at stride 1x2x2 during MAE); load ignores them.
        A relative-position row (dense MAE of mvitv2) gets its last stage's tables resized.
        """
        state = {k: v.detach().clone() for k, v in self.encoder.state_dict().items()}
        cfg = getattr(self.encoder, "cfg", None)
        if cfg is None or cfg.position != "relative" or cfg.params_q_pool in (None, cfg.q_pool):
            return state
        # Dense MAE of a relative-position row (mvitv2): without the last q-pool the last stage's
        # grid is larger, and so are its tables; resize them to the classifier's as MViTv2 does
        # when a resolution changes (linear interpolation along the distance axis).
        for spec in resolve_blocks(cfg.replace(q_pool=cfg.params_q_pool, params_q_pool=None)):
            for axis, n in zip(("t", "h", "w")[-cfg.ndim :], spec.rel_pos_sizes or ()):
                key = f"blocks.{spec.index}.attn.rel_pos_{axis}"
                if key in state and state[key].shape[0] != n:
                    table = state[key].t().unsqueeze(0).float()
                    resized = F.interpolate(table, size=n, mode="linear").squeeze(0).t()
                    state[key] = resized.to(state[key].dtype).contiguous()
        return state

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, keep: torch.Tensor | None = None):
        """Pixel-space (masked_input, reconstruction), both shaped like x, for figures.

        masked_input zeroes masked units; reconstruction pastes the visible pixels over the
        prediction (as MAE's figures do). With norm_pix_loss the prediction is un-normalised with
        each patch's own mean/std, as MAE's visualisation does.
        """
        if self.target != "pixel":
            raise ValueError("reconstruct needs target='pixel' (a HOG prediction has no pixel space)")
        _, pred, _, keep = self(x, keep)
        pred = units_to_raster(pred.float(), self.mask_shape, self.last_unit)  # (B, N, D)
        if self.norm_pix_loss:
            mean, std = patch_stats(x.float(), self.pred_patch)
            pred = pred * std + mean
        if x.dim() == 5:  # one predicted frame per token stands for all of its frames
            pt = self.pred_patch[0]
            shape = (x.shape[1], x.shape[2] // pt, *x.shape[3:])
            rec = unpatchify(pred, (1, *self.pred_patch[1:]), shape).repeat_interleave(pt, dim=2)
        else:
            rec = unpatchify(pred, self.pred_patch, tuple(x.shape[1:]))
        rec = rec.to(x.dtype)
        vis = keep.view(x.shape[0], 1, *self.mask_shape)
        for d, n in enumerate(self.encoder.unit_pixels):
            vis = vis.repeat_interleave(n, dim=2 + d)
        return x * vis, torch.where(vis, x, rec)


def _embed_dim(encoder: nn.Module) -> int:
    """Channels right after the patch embed (the dense mask token's width)."""
    dim = getattr(getattr(encoder, "cfg", None), "embed_dim", None)
    return int(dim) if dim is not None else int(encoder.stage_dims[0])


def build_mae(model_cfg: dict, mae_cfg: dict, drop_path: float = 0.0) -> MaskedAutoencoder:
    """MAE for ``cfg["model"]`` ({size, step, modality, overrides}) and ``cfg["mae"]``.

    The encoder drops the last q-pool (``q_pool = default - 1``) and has no head; it keeps the
    classifier's pool parameters (``params_q_pool``), frozen where the dropped q-pool held them.
    """
    size, step = model_cfg["size"], model_cfg.get("step", "f")
    modality = model_cfg.get("modality", "image")
    overrides = dict(model_cfg.get("overrides") or {})
    mae_cfg = dict(mae_cfg)
    if step == "mvitv2" and not mae_cfg.get("dense", False):
        raise ValueError(
            "step 'mvitv2' cannot be pretrained with sparse MAE: its relative position biases and "
            "overlapping conv pooling need the deleted tokens. Use a step a-f, or mae.dense=true."
        )
    q_pool = overrides.pop("q_pool", None)
    if q_pool is None:
        q_pool = model_config(size, step, modality, **overrides).q_pool
    if q_pool < 1:
        raise ValueError(f"MAE removes the last q-pool, but this model has q_pool={q_pool}")
    overrides.update(q_pool=q_pool - 1, params_q_pool=q_pool, drop_path=drop_path)
    encoder = build(size, step, modality, num_classes=0, **overrides)
    known = {"mask_ratio", "target", "norm_pix_loss", "multi_scale", "decoder_depth", "decoder_dim"}
    known |= {"decoder_heads", "dense", "hog_cell"}
    unknown = set(mae_cfg) - known
    if unknown:
        raise ValueError(f"unknown mae config keys {sorted(unknown)}; known: {sorted(known)}")
    return MaskedAutoencoder(encoder, in_chans=getattr(encoder.cfg, "in_chans", 3), **mae_cfg)
