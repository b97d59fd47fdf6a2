"""``cumsum``: running sums along a dimension (top-p sampling uses it)."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..autograd import Function
from ..backend import array_module


class CumSum(Function):
    def forward(self, a, dim=0):
        self.dim = dim
        return array_module(a).cumsum(a, axis=dim)

    def backward(self, g):
        # each input adds to every later output: the gradient is the reversed running sum
        xp = array_module(g)
        d = self.dim
        return xp.flip(xp.cumsum(xp.flip(g, axis=d), axis=d), axis=d)


def cumsum(input, dim: int, dtype=None):
    """``out[i] = input[0] + ... + input[i]`` along ``dim`` (integers sum in int64, as torch)."""
    if input.ndim == 0:
        return input if dtype is None else F.cast(input, dtype)
    d = F._dim(dim, input.ndim, "cumsum")
    if dtype is not None:
        input = F.cast(input, dtype)
    elif input.data.dtype.kind in "biu":
        input = F.cast(input, np.int64)
    return CumSum.apply(input, dim=d)
