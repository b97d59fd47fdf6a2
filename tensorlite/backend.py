"""Where arrays live. A :class:`Device` carries its array module (NumPy or CuPy).

This is the only module that imports CuPy; everything else asks a device for ``xp``.
"""

from __future__ import annotations

import numpy as np

try:  # CuPy is an optional extra (``pip install tensorlite[gpu]``).
    import cupy as _cupy
except Exception:  # ImportError, or a CUDA library that fails to load
    _cupy = None


class Device:
    """A place arrays live: ``Device("cpu")`` (NumPy) or ``Device("cuda")`` (CuPy)."""

    __slots__ = ("type", "xp")

    def __init__(self, type: str, xp) -> None:
        self.type = type
        self.xp = xp

    def __repr__(self) -> str:
        return f"device(type='{self.type}')"

    def __str__(self) -> str:
        return self.type

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            return self.type == other
        return isinstance(other, Device) and other.type == self.type

    def __hash__(self) -> int:
        return hash(self.type)

    def __reduce__(self):
        # A device holds a module object, which cannot be pickled; rebuild it from its name.
        return (get_device, (self.type,))


CPU = Device("cpu", np)


def tune_allocator() -> bool:
    """Keep freed array memory in the process instead of handing it back to the OS (glibc only).

    glibc serves blocks above 128 KiB with a fresh ``mmap`` and returns them on ``free``, so each
    activation of a training step is a new mapping whose every page faults on first touch: tens
    of thousands of page faults per step of a small GPT, close to half its time on a VM. Serving
    them from the heap and not trimming it makes a step reuse the previous step's pages.

    It changes the whole process, so importing tensorlite does not do it: :func:`tensorlite.train.train`
    calls it when a run starts, and a hand-written loop may call it once.
    ``TENSORLITE_MALLOC_TUNE=0`` in the environment turns it off. Returns whether the settings
    were applied.
    """
    import os  # noqa: PLC0415  (import-time helper)
    import sys  # noqa: PLC0415

    if os.environ.get("TENSORLITE_MALLOC_TUNE", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes  # noqa: PLC0415

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 256 << 20) == 1  # blocks up to 256 MiB from the heap
        ok = libc.mallopt(m_trim_threshold, 1 << 30) == 1 and ok  # keep up to 1 GiB of free heap
        return ok
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False


_CUDA: Device | None = None


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    if _cupy is None:
        return False
    try:
        return _cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def get_device(device) -> Device:
    """Turn ``"cpu"``, ``"cuda"``, ``"cuda:0"`` or a :class:`Device` into a :class:`Device`."""
    global _CUDA
    if isinstance(device, Device):
        return device
    if device is None or device == "cpu":
        return CPU
    if isinstance(device, str) and device.split(":")[0] == "cuda":
        if not cuda_available():
            reason = "CuPy is not installed" if _cupy is None else "no CUDA device is visible"
            raise RuntimeError(
                f"device 'cuda' requested but {reason}; install the GPU extra "
                "(pip install 'tensorlite[gpu]') on a machine with an NVIDIA GPU, or use device='cpu'"
            )
        if _CUDA is None:
            _CUDA = Device("cuda", _cupy)
        return _CUDA
    raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")


def device_of(array) -> Device:
    """The device an array lives on."""
    if isinstance(array, np.ndarray) or _cupy is None:
        return CPU
    if isinstance(array, _cupy.ndarray):
        return get_device("cuda")
    return CPU


def array_module(x):
    """The array module (NumPy or CuPy) of an array, a NumPy scalar or a Tensor."""
    if isinstance(x, (np.ndarray, np.generic)):  # the hot path: every op asks
        return np
    device = getattr(x, "device", None)
    if isinstance(device, Device):
        return device.xp
    return device_of(x).xp


def to_device(array, device: Device):
    """Copy ``array`` to ``device`` (no copy when it is already there)."""
    if device.type == "cpu":
        if _cupy is not None and isinstance(array, _cupy.ndarray):
            return _cupy.asnumpy(array)
        return np.asarray(array)
    return device.xp.asarray(array)


def to_numpy(array) -> np.ndarray:
    """A NumPy view or copy of any backend array (a host transfer for CuPy)."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy.asnumpy(array)
    return np.asarray(array)


def scatter_add(xp, target, index, values) -> None:
    """``target[index] += values`` with repeated indices accumulated (NumPy's ``add.at``)."""
    if xp is np:
        np.add.at(target, index, values)
    else:  # CuPy
        import cupyx  # noqa: PLC0415  (only reached on a GPU)

        cupyx.scatter_add(target, index, values)


def erf(xp, x):
    """Error function for any backend, accurate to about 1e-13 in float64.

    NumPy has no ``erf``; SciPy would be a heavy dependency for one function. Taylor series for
    |x| < 2.5, continued fraction for erfc beyond; computed in float64 and cast back.
    """
    dtype = x.dtype
    z = x.astype(xp.float64)
    a = xp.abs(z)
    small = xp.minimum(a, 2.5)
    # Taylor: erf(x) = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
    term = small.copy()
    total = small.copy()
    sq = small * small
    for n in range(1, 60):
        term = term * (-sq) / n
        total = total + term / (2 * n + 1)
    series = total * (2.0 / np.sqrt(np.pi))
    # erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))) for x >= 2.5
    big = xp.maximum(a, 2.5)
    frac = big.copy()
    for k in range(60, 0, -1):
        frac = big + (k / 2.0) / frac
    erfc = xp.exp(-big * big) / (np.sqrt(np.pi) * frac)
    out = xp.where(a < 2.5, series, 1.0 - erfc)
    return (xp.sign(z) * out).astype(dtype)
