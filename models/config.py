"""The model's configuration, and the resolver that turns its flags into per-block settings.

One frozen `ModelConfig` describes every model from MViTv2 to Hiera, images (2D) and video (3D).
The Table 1 flags (position, pool, stride1_pools, overlap, attn_residual, kv, separate_and_pad)
and the non-ablated conventions (expand, head_order, mua_lag) are plain fields; the named rows
live in models/rows.yaml. `resolve_blocks(cfg)` is the only place that interprets them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields

CHOICES = {
    "position": ("relative", "absolute"),
    "pool": ("conv", "max", "avg"),
    "kv": ("pool", "mask_unit"),
    "head_order": ("norm_mean", "mean_norm"),
    "expand": ("attn", "mlp"),
    "unit_pool_pad": ("zero", "-inf"),
    "patch_bias_init": ("pytorch", "zero"),
}

# Spatial fields with one value per input dimension.
_PER_DIM = (
    "patch_kernel",
    "patch_stride",
    "patch_padding",
    "mask_unit_size",
    "q_stride",
    "kv_stride_adaptive",
)


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines one model. Defaults: Hiera-B (row f), 224 px images.

    Spatial fields are tuples with one entry per dimension: (H, W) for images, (T, H, W) for
    video. Token-level sizes (mask_unit_size, q_stride, kv_stride_adaptive) are in tokens.
    """

    input_size: tuple[int, ...] = (224, 224)
    in_chans: int = 3
    num_classes: int = 1000
    embed_dim: int = 96
    num_heads: int = 1
    depths: tuple[int, ...] = (2, 3, 16, 3)
    dim_mul: float = 2.0
    head_mul: float = 2.0
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    patch_kernel: tuple[int, ...] = (7, 7)
    patch_stride: tuple[int, ...] = (4, 4)
    patch_padding: tuple[int, ...] = (3, 3)
    mask_unit_size: tuple[int, ...] = (8, 8)
    q_stride: tuple[int, ...] = (2, 2)
    # Stage transitions that pool Q (and the skip). MAE pretraining uses one less (the last
    # q-pool removed, paper Sec. 4).
    q_pool: int = 3
    # The q_pool whose pool *parameters* the model carries (None: q_pool). The MAE encoder is built
    # with q_pool - 1 and params_q_pool = the classifier's q_pool: a pool with parameters (conv)
    # that the removed q-pool would have held is still built, frozen and never applied, so the
    # encoder's state dict is the classifier's (those weights stay at their init until finetuning).
    params_q_pool: int | None = None
    kv_stride_adaptive: tuple[int, ...] = (4, 4)  # MViTv2: stage-1 KV stride, divided at each q-pool
    pool_kernel: int = 3  # kernel of the overlapping pools (rows mvitv2..c)
    mask_unit_attn: tuple[bool, ...] = (True, True, False, False)  # per stage, when kv == "mask_unit"
    # Hiera lags mask unit attention by one block: the first block of a stage still attends
    # within mask units, because its input is at the previous stage's resolution.
    mua_lag: bool = True
    # --- Table 1 flags (values at the Hiera end) ---
    position: str = "absolute"
    # Q/K/V pooling: "conv" (depthwise conv + LayerNorm, MViTv2), "max", or "avg" (mean over the
    # window, no norm; padding is not counted, see layers.pool_tokens). The skip pool is always max.
    pool: str = "max"
    stride1_pools: bool = False
    overlap: bool = False
    attn_residual: bool = False
    kv: str = "mask_unit"
    separate_and_pad: bool = False
    # What separate-and-pad pads each mask unit with before a max pool (rows a-c). The paper
    # (Sec. 3.2, row b) describes zeros: "with padding and small mask units, this in effect
    # performs a relu on every feature map". "-inf" is F.max_pool's own padding (padding never
    # wins), shown for contrast. Dense max pools (row mvitv2) always pad with -inf, as MViTv2.
    unit_pool_pad: str = "zero"
    # --- conventions that differ between published MViTv2 and Hiera but are not Table 1 rows ---
    head_order: str = "mean_norm"  # MViTv2: norm then mean; Hiera: mean then norm
    expand: str = "attn"  # where channels double: first block's attention, or last block's MLP
    # --- regularisation ---
    drop_path: float = 0.0
    drop_rate: float = 0.0
    # --- init ---
    # Hiera scales the head's init by 1e-3 (right for finetuning features that already exist).
    # From scratch it stalls a small model: with a ~0 head the body gets ~0 gradient, and cpu-xs
    # row f sat at chance for 7 epochs (measured); MViTv2's supervised recipe uses 1.0.
    head_init_scale: float = 1e-3
    # Official Hiera leaves the patch conv's bias at PyTorch's init, U(+-1/sqrt(fan_in)), beside
    # trunc-normal(0.02) weights. With a 7x7x3 kernel (fan_in 147) the input's part of a token is
    # ~3x the bias; with the CPU sizes' 3x3x3 kernel (fan_in 27) the bias (+-0.19) outweighs the
    # input (std ~0.1x pixels) and every image starts with nearly the same feature (cosine 0.992
    # between images at init, cpu-xs row f; 0.81 with a zero bias). "zero" is used by the CPU sizes.
    patch_bias_init: str = "pytorch"

    def __post_init__(self):
        for name in ("input_size", "depths", "mask_unit_attn", *_PER_DIM):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name, valid in CHOICES.items():
            if getattr(self, name) not in valid:
                raise ValueError(f"{name}={getattr(self, name)!r} is not valid; choose one of {valid}")
        D = len(self.input_size)
        for name in _PER_DIM:
            if len(getattr(self, name)) != D:
                raise ValueError(
                    f"{name}={getattr(self, name)} has {len(getattr(self, name))} dims but "
                    f"input_size={self.input_size} has {D}; give one value per dimension"
                )
        if not 0 <= self.q_pool < len(self.depths):
            raise ValueError(f"q_pool={self.q_pool} must be in [0, {len(self.depths) - 1}] for {self.depths}")
        last = len(self.depths) - 1
        if self.params_q_pool is not None and not self.q_pool <= self.params_q_pool <= last:
            raise ValueError(f"params_q_pool={self.params_q_pool} must be in [q_pool={self.q_pool}, {last}]")
        if len(self.mask_unit_attn) < len(self.depths):
            raise ValueError(f"mask_unit_attn needs one entry per stage ({len(self.depths)})")
        if self.position == "relative" and self.kv == "mask_unit":
            raise ValueError(
                "position='relative' with kv='mask_unit' is not supported: relative position "
                "biases are defined over the whole grid; use position='absolute' (row a onward)"
            )
        grid = self.token_grid
        for d in range(D):
            if self.input_size[d] % self.patch_stride[d]:
                raise ValueError(
                    f"input size {self.input_size} is not divisible by the patch stride "
                    f"{self.patch_stride}; use a multiple of the mask unit in pixels, "
                    f"{self.unit_pixels}"
                )
            if grid[d] % self.mask_unit_size[d]:
                raise ValueError(
                    f"input size {self.input_size} gives a token grid {grid} that does not split into "
                    f"mask units of {self.mask_unit_size} tokens; use an input size that is a multiple "
                    f"of {self.unit_pixels} pixels (e.g. {tuple(u * 7 for u in self.unit_pixels)})"
                )
            if self.mask_unit_size[d] % (self.q_stride[d] ** self.q_pool):
                raise ValueError(
                    f"mask unit {self.mask_unit_size} tokens cannot be q-pooled {self.q_pool} times by "
                    f"{self.q_stride}; every stage needs at least one token per mask unit"
                )

    @property
    def ndim(self) -> int:
        return len(self.input_size)

    @property
    def modality(self) -> str:
        return "video" if self.ndim == 3 else "image"

    @property
    def token_grid(self) -> tuple[int, ...]:
        return tuple(i // s for i, s in zip(self.input_size, self.patch_stride))

    @property
    def mask_spatial_shape(self) -> tuple[int, ...]:
        return tuple(g // u for g, u in zip(self.token_grid, self.mask_unit_size))

    @property
    def unit_pixels(self) -> tuple[int, ...]:
        return tuple(p * u for p, u in zip(self.patch_stride, self.mask_unit_size))

    def replace(self, **changes) -> ModelConfig:
        valid = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - valid)
        if unknown:
            raise ValueError(f"unknown model option(s) {unknown}; valid options: {sorted(valid)}")
        return type(self)(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changes})


@dataclass(frozen=True)
class PoolSpec:
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    zero_pad: bool = False  # a max pool pads with zeros (separate-and-pad), not -inf
    op: str = "max"  # "max", "avg" or "conv" (the conv's weights live in layers.Attention)

    @property
    def is_reshape(self) -> bool:
        """Non-overlapping: a max / avg pool is then a view + elementwise max / sum, no padding, no copy."""
        return self.kernel == self.stride and not any(self.padding)


@dataclass(frozen=True)
class BlockSpec:
    """Per-block settings. Units: tokens. `stage` is the stage the block's output belongs to."""

    index: int
    stage: int
    dim_in: int
    dim_out: int
    attn_dim: int  # channels inside attention (= dim_out when expanding in attention)
    heads: int
    proj: str | None  # where the shortcut gets a Linear: "attn", "mlp" or None
    q_pool: PoolSpec | None
    kv_pool: PoolSpec | None
    skip_pool: PoolSpec | None
    attention: str  # "global" or "mask_unit"
    in_grid: tuple[int, ...]  # full token grid at the block input
    out_grid: tuple[int, ...]
    rel_pos_sizes: tuple[int, ...] | None  # relative-position table length per dim
    drop_path: float
    # Pools whose parameters the block carries but never applies, as (name, spec), name "q", "k"
    # or "v": the MAE encoder's share of the classifier's last q-pool (ModelConfig.params_q_pool).
    dormant: tuple[tuple[str, PoolSpec], ...] = ()


def _pool_spec(cfg: ModelConfig, stride: tuple[int, ...], skip: bool = False) -> PoolSpec | None:
    """The pool with this stride under the row's flags, or None where the row deletes it.

    Q/K/V pools use cfg.pool's op; the skip pool is always a max pool (MViTv2 and Hiera)."""
    strided = math.prod(stride) > 1
    if not strided and not (cfg.stride1_pools and cfg.overlap and not skip):
        return None
    op = "max" if skip else cfg.pool
    if cfg.overlap:
        # MViTv2: Q/K/V pools use kernel 3 everywhere; the skip pool uses stride + 1 (= 3 at stride 2).
        kernel = tuple((s + 1 if s > 1 else s) if skip else cfg.pool_kernel for s in stride)
        # Zero padding is a max pool's separate-and-pad (the paper's "relu"; a conv pads with
        # zeros anyway); an avg pool never counts padding (layers.pool_tokens).
        zero_pad = cfg.separate_and_pad and cfg.unit_pool_pad == "zero" and op != "avg"
        return PoolSpec(kernel, stride, tuple(k // 2 for k in kernel), zero_pad, op)
    # kernel = stride needs padding 0 (k // 2 would turn 56 into 29).
    return PoolSpec(stride, stride, (0,) * len(stride), op=op)


def pooled_size(size: tuple[int, ...], spec: PoolSpec | None) -> tuple[int, ...]:
    if spec is None:
        return tuple(size)
    return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, spec.kernel, spec.stride, spec.padding))


def resolve_blocks(cfg: ModelConfig) -> list[BlockSpec]:
    """Turns the flags into one BlockSpec per block (the whole architecture, readable)."""
    S, D = len(cfg.depths), cfg.ndim
    ones = (1,) * D
    dims = [int(cfg.embed_dim * cfg.dim_mul**i) for i in range(S)]
    heads = [int(cfg.num_heads * cfg.head_mul**i) for i in range(S)]
    stage_q = [cfg.q_stride if 0 < i <= cfg.q_pool else ones for i in range(S)]
    # MViTv2's adaptive KV stride: divided by the q stride at each q-pool, never below 1.
    kv_strides, kv = [], cfg.kv_stride_adaptive
    for i in range(S):
        kv = tuple(max(k // q, 1) for k, q in zip(kv, stage_q[i]))
        kv_strides.append(kv)
    total = sum(cfg.depths)
    specs, grid, dim, idx = [], cfg.token_grid, dims[0], 0
    for i, depth in enumerate(cfg.depths):
        for j in range(depth):
            first = j == 0
            qs = stage_q[i] if first else ones
            if cfg.expand == "attn":
                dim_out, attn_dim = dims[i], dims[i]
                proj = "attn" if dim != dim_out else None
            else:
                attn_dim = dim
                dim_out = dims[i + 1] if (j == depth - 1 and i < S - 1) else dim
                proj = "mlp" if dim != dim_out else None
            mua_stage = i - 1 if (first and i > 0 and cfg.mua_lag) else i
            use_mua = cfg.kv == "mask_unit" and cfg.mask_unit_attn[mua_stage]
            q_pool = _pool_spec(cfg, qs)
            # Row f removes KV pooling everywhere (mask unit attention replaces it in the early
            # stages; with video's 1x8x8 adaptive stride a stage-3 KV pool would otherwise survive).
            kv_pool = None if cfg.kv == "mask_unit" else _pool_spec(cfg, kv_strides[i])
            rel = None
            if cfg.position == "relative":
                q_size = [g // s for g, s in zip(grid, qs)]
                kv_size = [g // s for g, s in zip(grid, kv_strides[i])]
                rel = tuple(2 * max(a, b) - 1 for a, b in zip(q_size, kv_size))
            out_grid = pooled_size(grid, q_pool)
            if attn_dim % heads[i]:
                raise ValueError(f"block {idx}: {attn_dim} channels do not split into {heads[i]} heads")
            specs.append(
                BlockSpec(
                    index=idx,
                    stage=i,
                    dim_in=dim,
                    dim_out=dim_out,
                    attn_dim=attn_dim,
                    heads=heads[i],
                    proj=proj,
                    q_pool=q_pool,
                    kv_pool=kv_pool,
                    skip_pool=_pool_spec(cfg, qs, skip=True),
                    attention="mask_unit" if use_mua else "global",
                    in_grid=grid,
                    out_grid=out_grid,
                    rel_pos_sizes=rel,
                    drop_path=cfg.drop_path * idx / max(total - 1, 1),
                )
            )
            grid, dim, idx = out_grid, dim_out, idx + 1
    if cfg.params_q_pool is not None and cfg.params_q_pool != cfg.q_pool:
        specs = _with_dormant_pools(
            specs, resolve_blocks(cfg.replace(q_pool=cfg.params_q_pool, params_q_pool=None))
        )
    return specs


def _with_dormant_pools(specs: list[BlockSpec], full: list[BlockSpec]) -> list[BlockSpec]:
    """Marks the parametrised (conv) pools that the model with `full`'s q_pool has and this one
    does not apply: the block builds them (frozen) so both models share one state dict."""
    out = []
    for own, other in zip(specs, full):
        dormant = []
        for name, mine, theirs in (("q", own.q_pool, other.q_pool), ("k", own.kv_pool, other.kv_pool)):
            if theirs is None or theirs.op != "conv":
                continue
            if mine is None:
                dormant += [(name, theirs)] if name == "q" else [("k", theirs), ("v", theirs)]
            elif mine.kernel != theirs.kernel:  # cannot happen for the Table 1 geometry; guard it
                raise ValueError(
                    f"block {own.index}: the {name} pool's kernel {mine.kernel} differs from the "
                    f"classifier's {theirs.kernel}; their weights could not be shared"
                )
        out.append(dataclasses.replace(own, dormant=tuple(dormant)))
    return out
