"""Factory functions: ``tensor``, ``zeros``, ``randn`` ... with torch's names and arguments."""

from __future__ import annotations

import numpy as np

from .backend import get_device, to_device
from .random import generator as _rng
from .random import no_generator
from .tensor import Tensor

float16, float32, float64 = np.dtype("float16"), np.dtype("float32"), np.dtype("float64")
int32, int64, bool_ = np.dtype("int32"), np.dtype("int64"), np.dtype("bool")
long, double, half = int64, float64, float16
default_dtype = float32


def _default_dtype_for(arr: np.ndarray):
    if arr.dtype.kind == "f":
        return float32 if arr.dtype == np.float64 and not isinstance(arr, np.ndarray) else arr.dtype
    if arr.dtype.kind in "iu":
        return int64
    return arr.dtype


def tensor(data, dtype=None, requires_grad: bool = False, device="cpu") -> Tensor:
    """A new tensor holding a copy of ``data`` (list, scalar, NumPy/CuPy array or Tensor).

    Python floats become float32 and Python ints int64, as in torch; a NumPy array keeps its dtype.
    """
    if isinstance(data, Tensor):
        data = data.data
    dev = get_device(device)
    if dtype is None:
        if hasattr(data, "dtype"):
            dtype = data.dtype
            if dtype.kind in "iu":
                dtype = int64 if dtype.itemsize > 4 or dtype.kind == "u" else dtype
        else:
            arr = np.asarray(data)
            if arr.dtype.kind == "f":
                dtype = float32
            elif arr.dtype.kind in "iu":
                dtype = int64
            elif arr.dtype.kind == "b":
                dtype = bool_
            else:
                raise TypeError(f"tensor: cannot make a tensor from data of type {arr.dtype}")
    arr = to_device(data, dev)
    arr = dev.xp.array(arr, dtype=dtype, copy=True)
    return Tensor(arr, requires_grad=requires_grad, device=dev)


def as_tensor(data, dtype=None, device="cpu") -> Tensor:
    """Like :func:`tensor` but shares memory with a NumPy array when it can."""
    if isinstance(data, Tensor) and dtype is None:
        return data
    dev = get_device(device)
    arr = dev.xp.asarray(to_device(data, dev), dtype=dtype)
    return Tensor(arr, device=dev)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with a NumPy array (its dtype kept)."""
    return Tensor(array)


def _shape(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(size[0])
    return tuple(int(s) for s in size)


def _make(fill, size, dtype, requires_grad, device):
    dev = get_device(device)
    arr = fill(dev.xp, _shape(size), np.dtype(dtype or default_dtype))
    return Tensor(arr, requires_grad=requires_grad, device=dev)


def zeros(*size, dtype=None, requires_grad=False, device="cpu") -> Tensor:
    """A tensor of zeros (float32 unless ``dtype``)."""
    return _make(lambda xp, s, d: xp.zeros(s, dtype=d), size, dtype, requires_grad, device)


def ones(*size, dtype=None, requires_grad=False, device="cpu") -> Tensor:
    """A tensor of ones (float32 unless ``dtype``)."""
    return _make(lambda xp, s, d: xp.ones(s, dtype=d), size, dtype, requires_grad, device)


def empty(*size, dtype=None, requires_grad=False, device="cpu") -> Tensor:
    """An uninitialised tensor (float32 unless ``dtype``)."""
    return _make(lambda xp, s, d: xp.empty(s, dtype=d), size, dtype, requires_grad, device)


def full(size, fill_value, dtype=None, requires_grad=False, device="cpu") -> Tensor:
    """A tensor of ``size`` filled with ``fill_value`` (bool/int64/float32 after the value, unless ``dtype``)."""
    if dtype is None and isinstance(fill_value, bool):
        dtype = bool_
    elif dtype is None and isinstance(fill_value, int):
        dtype = int64
    return _make(lambda xp, s, d: xp.full(s, fill_value, dtype=d), (size,), dtype, requires_grad, device)


def eye(n: int, m: int | None = None, dtype=None, requires_grad=False, device="cpu") -> Tensor:
    """The ``n x m`` identity matrix."""
    return _make(lambda xp, s, d: xp.eye(n, m, dtype=d), ((),), dtype, requires_grad, device)


def arange(start, end=None, step=1, dtype=None, requires_grad=False, device="cpu") -> Tensor:
    """Values from ``start`` to ``end`` (exclusive) in steps (int64 for ints, else float32)."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_int = all(isinstance(v, int) for v in (start, end, step))
        dtype = int64 if is_int else float32
    dev = get_device(device)
    return Tensor(dev.xp.arange(start, end, step, dtype=dtype), requires_grad=requires_grad, device=dev)


def linspace(start, end, steps: int, dtype=None, requires_grad=False, device="cpu") -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    dev = get_device(device)
    arr = dev.xp.linspace(start, end, steps, dtype=dtype or default_dtype)
    return Tensor(arr, requires_grad=requires_grad, device=dev)


def randn(*size, dtype=None, requires_grad=False, device="cpu", generator=None) -> Tensor:
    """Standard normal samples from the seeded generator (see :func:`manual_seed`)."""
    no_generator("randn", generator)
    def fill(xp, s, d):
        return _rng(get_device(device)).standard_normal(s, dtype=d)

    return _make(fill, size, dtype, requires_grad, device)


def rand(*size, dtype=None, requires_grad=False, device="cpu", generator=None) -> Tensor:
    """Uniform samples in [0, 1)."""
    no_generator("rand", generator)
    def fill(xp, s, d):
        return _rng(get_device(device)).random(s, dtype=d)

    return _make(fill, size, dtype, requires_grad, device)


def randint(low, high=None, size=None, dtype=None, device="cpu", requires_grad: bool = False,
            generator=None) -> Tensor:
    """Integers uniform in ``[low, high)``; as torch, ``randint(high, size)`` means ``low=0``."""
    no_generator("randint", generator)
    if size is None and isinstance(high, (tuple, list)):  # randint(high, (n,)): torch's two-argument form
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint: missing the size argument, e.g. randint(10, (3,)) or randint(0, 10, (3,))")
    if requires_grad:
        raise TypeError("randint: only floating-point tensors can require gradients")
    if isinstance(size, (int, np.integer)):
        size = (int(size),)
    dev = get_device(device)
    arr = _rng(dev).integers(low, high, size=tuple(size), dtype=np.int64)
    return Tensor(arr.astype(dtype or int64), device=dev)


def randperm(n: int, device="cpu", generator=None) -> Tensor:
    """A random permutation of ``0..n-1`` (int64)."""
    no_generator("randperm", generator)
    dev = get_device(device)
    return Tensor(_rng(dev).permutation(n).astype(np.int64), device=dev)


def _like(fn, t, dtype, requires_grad, **kw):
    return fn(*t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=t.device, **kw)


def zeros_like(t, dtype=None, requires_grad=False) -> Tensor:
    """Zeros with ``t``'s shape, dtype and device."""
    return _like(zeros, t, dtype, requires_grad)


def ones_like(t, dtype=None, requires_grad=False) -> Tensor:
    """Ones with ``t``'s shape, dtype and device."""
    return _like(ones, t, dtype, requires_grad)


def empty_like(t, dtype=None, requires_grad=False) -> Tensor:
    """Uninitialised, with ``t``'s shape, dtype and device."""
    return _like(empty, t, dtype, requires_grad)


def randn_like(t, dtype=None, requires_grad=False) -> Tensor:
    """Standard normal samples with ``t``'s shape, dtype and device."""
    return _like(randn, t, dtype, requires_grad)


def rand_like(t, dtype=None, requires_grad=False) -> Tensor:
    """Uniform [0, 1) samples with ``t``'s shape, dtype and device."""
    return _like(rand, t, dtype, requires_grad)


def full_like(t, fill_value, dtype=None, requires_grad=False) -> Tensor:
    """``fill_value`` with ``t``'s shape, dtype and device."""
    return full(t.shape, fill_value, dtype=dtype or t.dtype, requires_grad=requires_grad, device=t.device)
