"""Gradient clipping by global norm."""

from __future__ import annotations

import math

import numpy as np

from ..backend import array_module, to_numpy
from ..tensor import Tensor


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    eps: float = 1e-6) -> float:
    """Scale all gradients in place so their global ``norm_type`` norm is at most ``max_norm``.

    Returns the norm *before* clipping as a Python float (what a training log should record).
    As ``torch.nn.utils.clip_grad_norm_``: the gradients are multiplied by
    ``min(1, max_norm / (total_norm + eps))``, so nothing changes while the norm is below the
    threshold. The norms are reduced on the device and fetched once.

    A non-finite norm (an ``inf`` or ``nan`` somewhere in the gradients) is returned as is and,
    like torch, still scales the gradients (by 0 for ``inf``, by ``nan`` for ``nan``): the step
    that follows is garbage, which is why a training loop should check the returned value.
    ``error_if_nonfinite=True`` raises ``RuntimeError`` instead, leaving the gradients alone.
    ``max_norm=math.inf`` only measures: the gradients are never touched.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad.data for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    max_norm, norm_type = float(max_norm), float(norm_type)
    xp = array_module(grads[0])
    with np.errstate(over="ignore", invalid="ignore"):  # inf/nan are reported by the return value
        total = _total_norm(xp, grads, norm_type, robust=False)
        if math.isinf(total) and norm_type == 2.0:
            # A float32 sum of squares overflows above ~1.8e19 while the norm itself may be
            # finite: recompute (rare, so the extra host syncs do not matter) rescaled.
            total = _total_norm(xp, grads, norm_type, robust=True)
    if not math.isfinite(total) and error_if_nonfinite:
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is {total}, so "
            "they cannot be clipped; set error_if_nonfinite=False to clip anyway (the gradients "
            "become 0 or nan)"
        )
    if math.isinf(max_norm) and max_norm > 0:
        return total  # clipping switched off: measure only (torch would scale an inf norm by nan)
    coef = min(max_norm / (total + eps), 1.0) if not math.isnan(total) else math.nan
    if not coef >= 1.0:  # true for nan too: torch multiplies by the nan coefficient
        with np.errstate(invalid="ignore"):
            for g in grads:
                g *= coef
    return total


def _total_norm(xp, grads, p: float, robust: bool) -> float:
    norms = [(_robust_l2 if robust else _vector_norm)(xp, g, p) for g in grads]
    if len({n.dtype for n in norms}) > 1:
        norms = [n.astype(xp.float64) for n in norms]
    # The only device-to-host transfer of the normal path.
    return float(to_numpy(_vector_norm(xp, xp.stack(norms).astype(xp.float64), p)))


def _vector_norm(xp, x, p: float):
    x = x.reshape(-1)
    if not x.size:
        return xp.zeros((), dtype=x.dtype)
    if p == 2.0:
        return xp.sqrt(xp.dot(x, x))
    if math.isinf(p):
        return xp.abs(x).max() if p > 0 else xp.abs(x).min()
    if p == 0:
        return (x != 0).sum().astype(x.dtype)
    return (xp.abs(x) ** p).sum() ** (1.0 / p)


def _robust_l2(xp, x, p: float):
    x = x.reshape(-1).astype(xp.float64)
    if not x.size:
        return xp.zeros((), dtype=xp.float64)
    scale = xp.abs(x).max()
    if not bool(xp.isfinite(scale)) or float(scale) == 0.0:
        return scale
    y = x / scale
    return scale * xp.sqrt(xp.dot(y, y))
