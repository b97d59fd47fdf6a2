"""In-place ops with torch's trailing underscore: ``copy_``, ``add_``, ``mul_``, ``fill_``, ...

They write into the tensor's array and are **not recorded in the graph**. torch records an
in-place op on a tensor of the graph and refuses one on a leaf that requires grad; tensorlite
refuses both (outside ``no_grad``), and refuses writing a value that requires grad into a tensor,
which torch would turn into a graph node. The messages say what to write instead.
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..autograd import is_grad_enabled
from ..backend import CPU, to_device
from ..random import generator as _generator
from ..random import no_generator


def _check(t, op: str, *values) -> None:
    if not is_grad_enabled():
        return
    if t.requires_grad:
        if t.grad_fn is None:
            raise RuntimeError(
                f"{op}: a tensor that requires grad is being modified in place; wrap the update in "
                "`with tl.no_grad():` (as optimizers and nn.init do; torch refuses this too)"
            )
        raise RuntimeError(
            f"{op}: this tensor is part of the autograd graph; torch would record the in-place op, "
            "tensorlite does not record in-place ops: use the out-of-place form (x = x + y, "
            "x = x.masked_fill(mask, v), x = tl.where(mask, v, x)), or detach() first"
        )
    for v in values:
        if isinstance(v, F._Tensor) and v.requires_grad:
            raise RuntimeError(
                f"{op}: the value written requires grad; torch would make this tensor part of the graph, "
                "tensorlite's in-place ops are not recorded: build a new tensor (y = x.clone(), "
                "tl.cat, tl.where, ...) instead"
            )


def _array(t, v):
    """``v`` as an array (or a Python number) on ``t``'s device."""
    if isinstance(v, F._Tensor):
        return v.data if v.device is t.device else to_device(v.data, t.device)
    if isinstance(v, F._SCALARS):
        return v
    return to_device(np.asarray(v), t.device) if t.device.type == "cpu" else t.device.xp.asarray(v)


def _run(t, op: str, fn, *values):
    _check(t, op, *values)
    arrays = [_array(t, v) for v in values]
    try:
        fn(t.data, *arrays)
    except ValueError:
        raise F._broadcast_error(op, t.shape, np.shape(arrays[0]) if arrays else ()) from None
    return t


def copy_(t, src, non_blocking: bool = False):
    """Copy ``src`` (broadcast, converted to ``t``'s dtype and device) into ``t``; returns ``t``."""
    def fn(dst, s):
        t.device.xp.copyto(dst, s, casting="unsafe")

    return _run(t, "copy_", fn, src)


def fill_(t, value):
    """Set every element to ``value``."""
    def fn(dst, v):
        dst[...] = v

    return _run(t, "fill_", fn, value)


def zero_(t):
    """Set every element to 0 (``x.grad.zero_()`` resets an accumulated gradient)."""
    def fn(dst):
        dst[...] = 0

    return _run(t, "zero_", fn)


def add_(t, other, alpha=1):
    """``t += alpha * other``."""
    def fn(dst, o):
        dst += o if alpha == 1 else o * alpha

    return _run(t, "add_", fn, other)


def sub_(t, other, alpha=1):
    """``t -= alpha * other``."""
    def fn(dst, o):
        dst -= o if alpha == 1 else o * alpha

    return _run(t, "sub_", fn, other)


def mul_(t, other):
    """``t *= other``."""
    def fn(dst, o):
        dst *= o

    return _run(t, "mul_", fn, other)


def div_(t, other):
    """``t /= other``."""
    def fn(dst, o):
        dst /= o

    return _run(t, "div_", fn, other)


def clamp_(t, min=None, max=None):
    """Limit to ``[min, max]`` in place."""
    if min is None and max is None:
        raise ValueError("clamp_: at least one of min and max must be given")

    def fn(dst):
        t.device.xp.clip(dst, min, max, out=dst)

    return _run(t, "clamp_", fn)


def masked_fill_(t, mask, value):
    """Write ``value`` where ``mask`` (bool, broadcast to ``t``) is True."""
    m = mask.data if isinstance(mask, F._Tensor) else mask
    if getattr(getattr(m, "dtype", None), "kind", None) != "b":
        raise TypeError(f"masked_fill_: mask must be a bool tensor, got dtype {getattr(m, 'dtype', type(m).__name__)}")

    def fn(dst, mk):
        t.device.xp.copyto(dst, dst.dtype.type(value), where=mk)

    return _run(t, "masked_fill_", fn, mask)


def addcmul_(t, tensor1, tensor2, value=1):
    """``t += value * tensor1 * tensor2`` (Adam's second moment)."""
    def fn(dst, a, b):
        dst += value * (a * b)

    return _run(t, "addcmul_", fn, tensor1, tensor2)


def addcdiv_(t, tensor1, tensor2, value=1):
    """``t += value * tensor1 / tensor2`` (Adam's update)."""
    def fn(dst, a, b):
        dst += value * (a / b)

    return _run(t, "addcdiv_", fn, tensor1, tensor2)


def lerp_(t, end, weight):
    """``t += weight * (end - t)`` (an exponential moving average)."""
    def fn(dst, e, *w):
        dst += (w[0] if w else weight) * (e - dst)

    values = (end, weight) if isinstance(weight, F._Tensor) else (end,)
    return _run(t, "lerp_", fn, *values)


def normal_(t, mean: float = 0.0, std: float = 1.0, *, generator=None):
    """Fill with samples of N(mean, std^2) from tensorlite's seeded CPU generator."""
    no_generator("normal_", generator)
    def fn(dst):
        dst[...] = to_device((_generator(CPU).standard_normal(t.shape) * std + mean).astype(dst.dtype), t.device)

    return _run(t, "normal_", fn)


def uniform_(t, a: float = 0.0, b: float = 1.0, *, generator=None):
    """Fill with samples of U(a, b) from tensorlite's seeded CPU generator."""
    no_generator("uniform_", generator)
    def fn(dst):
        dst[...] = to_device(_generator(CPU).uniform(a, b, t.shape).astype(dst.dtype), t.device)

    return _run(t, "uniform_", fn)
