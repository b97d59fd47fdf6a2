"""In-place parameter initialisers, as ``torch.nn.init``: same names, arguments and formulas.

They draw from tensorlite's seeded CPU generator (:func:`tensorlite.manual_seed`), so a seed gives
the same weights on every device (torch's generator is another one: same seed, other numbers), and
write into ``tensor.data`` without a graph.
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import CPU, to_device
from ..random import generator, no_generator

__all__ = [
    "calculate_gain", "constant_", "kaiming_normal_", "kaiming_uniform_", "normal_", "ones_",
    "trunc_normal_", "uniform_", "xavier_normal_", "xavier_uniform_", "zeros_",
]


def _fill(tensor, values) -> None:
    # Drawn on the CPU generator so a seed gives the same weights on every device.
    tensor.data[...] = to_device(np.asarray(values).astype(tensor.data.dtype, copy=False), tensor.device)


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None):
    """Fill with samples of N(mean, std^2)."""
    no_generator("normal_", generator)
    _fill(tensor, _gen().standard_normal(tensor.shape) * std + mean)
    return tensor


def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None):
    """Fill with samples of U(a, b)."""
    no_generator("uniform_", generator)
    _fill(tensor, _gen().uniform(a, b, tensor.shape))
    return tensor


def trunc_normal_(tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, generator=None):
    """Fill with N(mean, std^2) samples redrawn until they lie in ``[a, b]`` (absolute bounds, as
    torch: the default ``[-2, 2]`` truncates at 2 std only when std=1)."""
    no_generator("trunc_normal_", generator)
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    gen = _gen()
    values = gen.standard_normal(tensor.shape) * std + mean
    bad = (values < a) | (values > b)
    for _ in range(1000):  # each round keeps the in-range draws; the rest are redrawn
        if not bad.any():
            break
        values[bad] = gen.standard_normal(int(bad.sum())) * std + mean
        bad = (values < a) | (values > b)
    else:
        raise ValueError(f"trunc_normal_: [{a}, {b}] holds almost no mass of N({mean}, {std}^2)")
    _fill(tensor, values)
    return tensor


def zeros_(tensor):
    tensor.data[...] = 0
    return tensor


def ones_(tensor):
    tensor.data[...] = 1
    return tensor


def constant_(tensor, val: float):
    tensor.data[...] = val
    return tensor


def calculate_gain(nonlinearity: str, param=None):
    """The gain torch recommends for ``nonlinearity`` (``"relu"``: sqrt(2), ``"tanh"``: 5/3, ...)."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1  # an int, as torch returns
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"calculate_gain: negative_slope {slope!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor):
    """``(fan_in, fan_out)`` of a weight ``(out, in, *kernel)``, as torch."""
    if tensor.ndim < 2:
        raise ValueError(
            f"fan in and fan out can not be computed for a tensor with fewer than 2 dimensions "
            f"(shape {tuple(tensor.shape)})"
        )
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def xavier_uniform_(tensor, gain: float = 1.0, generator=None):
    """U(-a, a) with ``a = gain * sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain: float = 1.0, generator=None):
    """N(0, std^2) with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None):
    """U(-b, b) with ``b = gain * sqrt(3 / fan)`` (He et al.); torch's defaults."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None):
    """N(0, std^2) with ``std = gain / sqrt(fan)``."""
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode)), generator)


def fan_in_uniform_(tensor, fan_in: int):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): torch's default for ``Linear`` weights and biases."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return uniform_(tensor, -bound, bound)


def _gen():
    return generator(CPU)
