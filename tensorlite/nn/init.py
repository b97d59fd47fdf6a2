"""In-place parameter initialisers, as ``torch.nn.init``. They draw from tensorlite's seeded
generator (:func:`tensorlite.manual_seed`) and write into ``tensor.data`` without a graph."""

from __future__ import annotations

import math

from ..backend import CPU, to_device
from ..random import generator


def _fill(tensor, values) -> None:
    # Drawn on the CPU generator so a seed gives the same weights on every device.
    tensor.data[...] = to_device(values.astype(tensor.data.dtype, copy=False), tensor.device)


def normal_(tensor, mean: float = 0.0, std: float = 1.0):
    """Fill with samples of N(mean, std^2)."""
    _fill(tensor, generator(CPU).standard_normal(tensor.shape) * std + mean)
    return tensor


def uniform_(tensor, a: float = 0.0, b: float = 1.0):
    """Fill with samples of U(a, b)."""
    _fill(tensor, generator(CPU).uniform(a, b, tensor.shape))
    return tensor


def zeros_(tensor):
    tensor.data[...] = 0
    return tensor


def ones_(tensor):
    tensor.data[...] = 1
    return tensor


def constant_(tensor, value: float):
    tensor.data[...] = value
    return tensor


def fan_in_uniform_(tensor, fan_in: int):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): torch's default for ``Linear`` weights and biases."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return uniform_(tensor, -bound, bound)
