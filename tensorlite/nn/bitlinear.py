"""BitLinear: a linear layer whose forward uses ternary weights in {-1, 0, 1} (BitNet b1.58).

Forward, for the latent (trained, full-precision) weight ``W`` of shape ``(out, in)``:

1. quantisation scale (absmean): ``beta = mean(|W|)``
2. ternary weights: ``W_t = round(clip(W / beta, -1, 1))``, every entry in {-1, 0, 1}
3. output rescale, computed from the **ternary** weights: ``gamma = 1 / sqrt(in * mean(W_t^2))``
4. ``y = x @ (gamma * W_t)^T + b``; activations stay full precision.

Why step 3 uses ``W_t``: the matrix that multiplies ``x`` is ``W_t``, so the output variance is
``Var(y_j) = sum_i W_t[j,i]^2 Var(x_i) ~ in * mean(W_t^2) * Var(x)``. Dividing by the square root of
``in * mean(W_t^2)`` makes every BitLinear variance-preserving (unit-variance in, unit-variance
out), whatever the fraction of zeros. ``mean(W_t^2)`` is exactly that fraction of non-zeros
(about 0.69 for Gaussian latent weights).

Computing the rescale from the latent weights instead, ``1 / sqrt(in * mean(W^2))``, is a bug
(one of :mod:`tensorlite.faults`): latent weights at std 0.02 over-scale the output about 40x per
layer.

Backward: straight-through estimator. ``W_t`` is piecewise constant (zero gradient almost
everywhere), so the gradient of the effective weight ``gamma * W_t`` is passed to ``W`` unchanged,
as if quantisation were the identity.
"""

from __future__ import annotations

import numpy as np

from ..backend import array_module
from . import init
from .layers import linear
from .module import Module, Parameter


def ternarize(w, eps: float = 1e-8):
    """``(W_t, beta)``: ternary weights ``round(clip(W / beta, -1, 1))`` and ``beta = mean(|W|)``
    (arrays; ``eps`` guards an all-zero matrix)."""
    xp = array_module(w)
    beta = xp.abs(w).mean() + eps
    return xp.rint(xp.clip(w / beta, -1, 1)), beta


def ternary_rescale(w_t, in_features: int, eps: float = 1e-8):
    """``1 / sqrt(in_features * mean(W_t^2))``: the variance-preserving output scale."""
    xp = array_module(w_t)
    return 1.0 / xp.sqrt(in_features * (w_t * w_t).mean() + eps)


class BitLinear(Module):
    """``y = x @ (gamma W_t)^T + b`` with ternary ``W_t`` and ``gamma`` from ``W_t`` (see module doc)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=np.float32))
        init.fan_in_uniform_(self.weight, in_features)
        if bias:
            self.bias = Parameter(np.zeros((out_features,), dtype=np.float32))
        else:
            self.bias = None

    def effective_weight(self):
        """The array the forward multiplies by: ``gamma * W_t`` (no graph)."""
        w = self.weight.data
        w_t, _ = ternarize(w)
        gamma = ternary_rescale(w_t, self.in_features)
        return (w_t * gamma).astype(w.dtype, copy=False)

    def forward(self, x):
        return linear(x, self.weight, self.bias, weight_used=self.effective_weight())

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


__all__ = ["BitLinear", "ternarize", "ternary_rescale"]
