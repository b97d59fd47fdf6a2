"""The fused ops written out in primitive differentiable ops: readable, slower, and what the tests
compare the fused kernels with (values and gradients).

Each function is the textbook formula, one tensorlite op per operator, so autograd derives its
gradient; the fused version in :mod:`tensorlite.functional` (kernels in
:mod:`tensorlite.kernels.fused` and :mod:`tensorlite.kernels.attention`) computes the same
numbers in fewer passes. Attention's reference is :func:`tensorlite.functional.attention_reference`.
"""

from __future__ import annotations

import math

import numpy as np

from . import functional as F
from .tensor import Tensor


def gelu_tanh(x):
    """GPT-2's GELU: ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    inner = (x + x * x * x * 0.044715) * math.sqrt(2.0 / math.pi)
    return x * (F.tanh(inner) + 1.0) * 0.5


def layer_norm(x, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the trailing dims (biased variance)."""
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    dims = tuple(range(x.ndim - len(ns), x.ndim))
    mu = F.mean(x, dims, keepdim=True)
    xc = x - mu
    var = F.mean(xc * xc, dims, keepdim=True)
    out = xc * F.rsqrt(var + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def rms_norm(x, normalized_shape, weight=None, eps: float = 1e-6):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the trailing dims."""
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    dims = tuple(range(x.ndim - len(ns), x.ndim))
    out = x * F.rsqrt(F.mean(x * x, dims, keepdim=True) + eps)
    return out * weight if weight is not None else out


def softmax(x, dim: int = -1):
    """``exp(x - max) / sum(exp(x - max))``: the max is a constant shift (no gradient needed)."""
    e = F.exp(x - F.amax(x, dim, keepdim=True).detach())
    return e / F.sum(e, dim, keepdim=True)


def log_softmax(x, dim: int = -1):
    """``x - max - log(sum(exp(x - max)))``."""
    shifted = x - F.amax(x, dim, keepdim=True).detach()
    return shifted - F.log(F.sum(F.exp(shifted), dim, keepdim=True))


def cross_entropy(logits, target, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0):
    """Cross-entropy of ``(N, C)`` logits and ``(N,)`` integer targets, from :func:`log_softmax`."""
    t = target.numpy() if isinstance(target, Tensor) else np.asarray(target)
    n, c = logits.shape
    logp = log_softmax(logits, -1)
    valid = t != ignore_index
    safe = np.where(valid, t, 0)
    onehot = np.zeros((n, c), dtype=logits.data.dtype)
    onehot[np.arange(n), safe] = 1.0
    target_dist = onehot * (1.0 - label_smoothing) + label_smoothing / c
    weights = F.as_tensor_like(target_dist * valid[:, None], logits)
    nll = -F.sum(logp * weights, 1)
    if reduction == "none":
        return nll
    if reduction == "sum":
        return F.sum(nll)
    return F.sum(nll) / max(int(valid.sum()), 1)


def adamw_update(p, g, m, v, *, lr: float, beta1: float, beta2: float, eps: float, step: int,
                 weight_decay: float = 0.0):
    """One AdamW step on NumPy arrays, line by line as in the paper and torch; returns new
    ``(p, m, v)`` (the fused kernel updates them in place)."""
    p = p * (1.0 - lr * weight_decay)
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    m_hat = m / (1.0 - beta1**step)
    v_hat = v / (1.0 - beta2**step)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v
