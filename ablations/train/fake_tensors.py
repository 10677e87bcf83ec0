"""Run a model at paper scale without its memory or compute: fake tensors, real small values.

Under ``torch._subclasses.fake_tensor.FakeTensorMode`` every tensor carries its shape, dtype,
strides and storage (size and identity, so views share one) but no data, and every op runs only
its shape logic: a Hiera-L forward on a 16x224x224 clip takes seconds and no memory. Autograd
and autocast sit above the fake mode in the dispatcher, so they cast and save exactly the
tensors they would for real tensors, and scaled_dot_product_attention picks the same CPU kernel
(flash: it saves output + logsumexp).

What fake tensors cannot do is answer questions about values. The sparse MAE asks a few, all
about its small (B, mask units) keep mask: ``x[mask]`` (how many rows?), ``bool((kept !=
kept[0]).any())`` (a check), ``err[~keep]``. ``SmallValues``, entered around the forward, keeps a
real copy beside every small tensor made inside it from known values only (the mask's
rand/argsort/scatter, index arithmetic; never from the model's weights or input, which were
made before it and stay fake however small), so such questions are answered exactly: a boolean
index is replaced by the ``nonzero`` of its real copy (what the real kernel does first), and
``item``/``bool`` read the real copy. Autograd saw the original op, so it saves what it saves
for real tensors.

One fake kernel disagrees with the real CPU kernel on what it returns: ``native_layer_norm`` on
bf16/fp16 input with fp32 weights (autocast: LayerNorm runs on the low-precision input with the
fp32 parameters) returns fp32 mean and rstd on the CPU (and on CUDA), but the fake gives them the
input's dtype; ``SmallValues`` corrects that, since autograd saves both.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensorMode,
)
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.weak import WeakTensorKeyDictionary

SMALL = 2**16  # elements: masks and index tensors are (B, units) or (tokens,); activations are far larger
aten = torch.ops.aten
_INDEX_OPS = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default}


class FakeValueError(RuntimeError):
    """An op needs the values of a tensor that only exists as a fake."""


class SmallValues(TorchDispatchMode):
    """Inside a FakeTensorMode: a real copy of every small tensor computed from known values
    (tensors made before entering are unknown)."""

    def __init__(self, fake_mode: FakeTensorMode, limit: int = SMALL):
        super().__init__()
        self.fake_mode, self.limit = fake_mode, limit
        self.real = WeakTensorKeyDictionary()  # fake tensor -> its real values
        # real storages a fake-only op wrote to, by address; held, so that no new storage reuses one
        self.stale: dict[int, torch.UntypedStorage] = {}

    def _known(self, t: torch.Tensor) -> bool:
        r = self.real.get(t)
        return r is not None and r.untyped_storage()._cdata not in self.stale

    def _to_real(self, x):
        return self.real[x] if isinstance(x, torch.Tensor) else x

    def _small(self, out) -> bool:
        return all(math.prod(t.shape) <= self.limit for t in _tensors(out))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        known = all(self._known(t) for t in _tensors((args, kwargs)))
        try:
            out = func(*args, **kwargs)
        except (DataDependentOutputException, DynamicOutputShapeException):
            if func in _INDEX_OPS and not known:
                return func(*self._long_indices(func, args), **kwargs)
            if not known:
                raise FakeValueError(
                    f"{func} needs the values of a large or fake-only tensor; it cannot run on fake "
                    "tensors (measure this model with real tensors at a smaller input)"
                ) from None
            fake = lambda r: self.fake_mode.from_tensor(r) if isinstance(r, torch.Tensor) else r  # noqa: E731
            return tree_map(fake, self._run_real(func, args, kwargs))
        if func is aten.native_layer_norm.default:
            out = _layer_norm_stats(args, out)
        if known and self._small(out):
            real = self._run_real(func, args, kwargs)
            for f, r in zip(tree_flatten(out)[0], tree_flatten(real)[0]):
                if isinstance(f, torch.Tensor):
                    self.real[f] = r
        else:  # a write with unknown values makes the written tensor's real copy stale
            for a, arg in zip(func._schema.arguments, args):
                if a.alias_info is not None and a.alias_info.is_write and isinstance(arg, torch.Tensor):
                    if arg in self.real:
                        storage = self.real[arg].untyped_storage()
                        self.stale[storage._cdata] = storage
        return out

    def _run_real(self, func, args, kwargs):
        with _disable_current_modes():
            return func(*tree_map(self._to_real, args), **tree_map(self._to_real, kwargs))

    def _long_indices(self, func, args):
        """args with every boolean index replaced by its nonzero() positions (what the kernel does)."""
        self_arg, indices, *rest = args
        long = []
        for i in indices:
            if i is not None and i.dtype in (torch.bool, torch.uint8):
                if not self._known(i):
                    raise FakeValueError(f"{func}: a boolean index without known values")
                with _disable_current_modes():
                    positions = self.real[i].nonzero().unbind(1)
                long += [self.fake_mode.from_tensor(p) for p in positions]
            else:
                long.append(i)
        return (self_arg, long, *rest)


def _tensors(tree) -> list[torch.Tensor]:
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


def _layer_norm_stats(args, out):
    """native_layer_norm's (out, mean, rstd) with the real CPU kernel's stats dtype: fp32 when a
    low-precision input meets fp32 weight or bias (its "mixed type" path), else the input's."""
    x, _, weight, bias = args[:4]
    params = [p for p in (weight, bias) if p is not None]
    mixed = x.dtype in (torch.bfloat16, torch.float16) and any(p.dtype == torch.float32 for p in params)
    if not mixed or out[1].dtype == torch.float32:
        return out
    return out[0], out[1].to(torch.float32), out[2].to(torch.float32)


@contextlib.contextmanager
def fake_tensors(enabled: bool = True):
    """Tensors created inside are fake (when enabled). Yields a function that makes a
    SmallValues context (real copies of small tensors made inside it from known values; each
    one starts knowing nothing); with enabled=False, a no-op context."""
    if not enabled:
        yield contextlib.nullcontext
        return
    with FakeTensorMode() as fake:
        yield lambda: SmallValues(fake)
