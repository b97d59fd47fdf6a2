"""``topk``, ``sort``, ``argsort`` and ``multinomial``: what sampling code (nanoGPT's ``generate``) uses."""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .. import functional as F
from ..random import generator as _generator
from ..random import no_generator

#: ``values, indices = topk(...)`` or ``.values`` / ``.indices``, as torch's return types.
TopK = namedtuple("topk", ["values", "indices"])
Sort = namedtuple("sort", ["values", "indices"])


def _order(a, dim: int, descending: bool, op: str):
    """int64 indices that sort ``a`` along ``dim``; ties keep their original order."""
    xp = a.device.xp
    data = a.data
    if data.dtype == bool:
        data = data.astype(np.int8)
    key = -data if descending and data.dtype.kind != "u" else data
    kind = "stable" if xp is np else None  # CuPy's sort is always stable and takes no other kind
    order = xp.argsort(key, axis=dim, kind=kind)
    if descending and data.dtype.kind == "u":
        order = xp.flip(xp.argsort(data, axis=dim, kind=kind), axis=dim)
    return order.astype(np.int64, copy=False)


def _wrap(like, arr):
    return F._no_grad_result(like, arr)


def sort(input, dim: int = -1, descending: bool = False, stable: bool = False):
    """``(values, indices)`` sorted along ``dim``; the values carry the gradient (as torch).

    The sort is always stable (equal values keep their order), which ``stable=True`` asks for.
    """
    d = F._dim(dim, input.ndim, "sort")
    if input.ndim == 0:
        return Sort(input, _wrap(input, input.device.xp.zeros((), dtype=np.int64)))
    order = _order(input, d, descending, "sort")
    return Sort(F.gather(input, d, _wrap(input, order)), _wrap(input, order))


def argsort(input, dim: int = -1, descending: bool = False, stable: bool = False):
    """The indices that sort ``input`` along ``dim`` (int64, no gradient)."""
    d = F._dim(dim, input.ndim, "argsort")
    if input.ndim == 0:
        return _wrap(input, input.device.xp.zeros((), dtype=np.int64))
    return _wrap(input, _order(input, d, descending, "argsort"))


def topk(input, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """The ``k`` largest (or smallest) entries along ``dim``: ``(values, indices)``, as torch.topk.

    Values carry the gradient back to the picked positions. Returned sorted (largest first), with
    ties in index order; ``sorted=False`` is accepted and gives the same order.
    """
    d = F._dim(dim, input.ndim, "topk")
    n = input.shape[d] if input.ndim else 1
    if not isinstance(k, (int, np.integer)) or not 0 <= k <= n:
        raise ValueError(f"topk: k must be an int in [0, {n}] (the size of dimension {dim}), got {k!r}")
    if input.ndim == 0:
        return TopK(input, _wrap(input, input.device.xp.zeros((), dtype=np.int64)))
    order = _order(input, d, largest, "topk")
    idx = order[(slice(None),) * d + (slice(0, int(k)),)]
    idx = input.device.xp.ascontiguousarray(idx)
    return TopK(F.gather(input, d, _wrap(input, idx)), _wrap(input, idx))


def multinomial(input, num_samples: int, replacement: bool = False, *, generator=None, out=None):
    """Draw ``num_samples`` category indices from each row of ``input`` (weights, need not sum to 1).

    ``input`` is ``(C,)`` or ``(B, C)``; the result is int64 ``(num_samples,)`` or ``(B, num_samples)``.
    Without ``replacement`` a category is drawn at most once per row (torch's default).

    Each draw is one inverse-CDF lookup: ``u = generator.random()`` (float64, from tensorlite's
    seeded generator, :func:`tensorlite.manual_seed`) picks the first category whose cumulative
    weight exceeds ``u`` times the row's total; zero-weight categories are never picked. torch's
    generator is a different one, so the same seed gives other samples than torch.
    """
    no_generator("multinomial", generator)
    if out is not None:
        raise TypeError("multinomial: out= is not supported; use the returned tensor")
    if input.ndim not in (1, 2):
        raise ValueError(f"multinomial: input must be 1-D or 2-D (categories last), got shape {tuple(input.shape)}")
    if input.data.dtype.kind != "f":
        raise TypeError(f"multinomial: input must hold floating-point weights, got dtype {input.dtype}")
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"multinomial: num_samples must be a positive int, got {num_samples!r}")
    xp = input.device.xp
    rows = input.data.reshape(-1, input.shape[-1]).astype(np.float64)
    n = rows.shape[1]
    if isinstance(rows, np.ndarray):  # checked on the CPU only: on a GPU each check is a host sync
        if not np.isfinite(rows).all() or (rows < 0).any():
            raise ValueError("multinomial: weights must be finite and >= 0 (got inf, nan or a negative)")
        if (rows.sum(axis=1) <= 0).any():
            raise ValueError("multinomial: every row needs a positive total weight (got a row of zeros)")
        if not replacement and num_samples > int((rows > 0).sum(axis=1).min()):
            raise ValueError(
                f"multinomial: cannot draw {num_samples} samples without replacement from a row with "
                f"only {int((rows > 0).sum(axis=1).min())} nonzero weights; pass replacement=True"
            )
    gen = _generator(input.device)
    out = xp.empty((rows.shape[0], int(num_samples)), dtype=np.int64)
    if replacement or num_samples == 1:
        cdf = xp.cumsum(rows, axis=1)
        u = gen.random((rows.shape[0], int(num_samples)))
        for i in range(rows.shape[0]):
            out[i] = xp.searchsorted(cdf[i], u[i] * cdf[i, -1], side="right")
    else:
        rows = rows.copy()
        for j in range(int(num_samples)):
            cdf = xp.cumsum(rows, axis=1)
            u = gen.random((rows.shape[0],))
            for i in range(rows.shape[0]):
                out[i, j] = xp.searchsorted(cdf[i], u[i] * cdf[i, -1], side="right")
            rows[xp.arange(rows.shape[0]), out[:, j]] = 0.0
    xp.minimum(out, n - 1, out=out)  # u * total can round up to the total itself
    if input.ndim == 1:
        out = out[0]
    return _wrap(input, out)
