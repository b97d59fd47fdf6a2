"""Hand-written kernels: the matmul kernels and the switch that chooses which one ``@`` uses, the
thread pool they share (:mod:`.parallel`), the fused elementwise and row kernels
(:mod:`.fused`) and the attention kernels (:mod:`.attention`).

``"blas"`` (the default matmul) is the backend's own ``matmul`` (OpenBLAS/MKL through NumPy,
cuBLAS through CuPy). The others are ours, for teaching and for measuring against it.
"""

from __future__ import annotations

import contextlib

import numpy as np

from .matmul import matmul_blocked, matmul_blocked_parallel, matmul_naive
from .parallel import get_num_threads, set_num_threads

__all__ = ["available", "current", "get_num_threads", "matmul", "matmul_blas", "matmul_blocked",
           "matmul_blocked_parallel", "matmul_naive", "set_num_threads", "use"]


_F16 = np.dtype(np.float16)


def matmul_blas(a, b):
    """The backend's BLAS matmul (NumPy or CuPy).

    NumPy has no float16 BLAS: its own float16 loop accumulates in float32 and is ~100x slower
    than sgemm, so float16 operands are multiplied in float32 and the product rounded to float16:
    the same arithmetic up to the order of the sums (and what a GPU's tensor cores do).
    """
    if a.dtype == _F16 and type(a) is np.ndarray:
        return (a.astype(np.float32) @ b.astype(np.float32)).astype(_F16)
    return a @ b


_KERNELS = {
    "blas": matmul_blas,
    "blocked": matmul_blocked,
    "blocked_parallel": matmul_blocked_parallel,
    "naive": matmul_naive,
}
_current = ["blas"]


def available() -> list[str]:
    """Names accepted by :func:`use`."""
    return list(_KERNELS)


def current() -> str:
    """The name of the kernel ``@`` uses now."""
    return _current[0]


class use(contextlib.ContextDecorator):
    """Select the matmul kernel behind ``@`` (and its gradients): ``tl.kernels.use("blocked_parallel")``.

    Called plainly it takes effect at once and stays. Used as a context manager (or decorator) it
    selects the kernel on entry and restores the one in force before on exit.
    """

    def __init__(self, name: str) -> None:
        if name not in _KERNELS:
            raise ValueError(f"kernels.use: unknown kernel {name!r}; choose one of {available()}")
        self.name = name
        self._saved = [_current[0]]
        self._fresh = True  # the switch __init__ made is what the first `with` restores
        _current[0] = name

    def __call__(self, fn):
        # as a decorator: undo the switch made at decoration time; each call switches instead
        if self._fresh:
            _current[0] = self._saved.pop()
            self._fresh = False
        return super().__call__(fn)

    def __enter__(self):
        if self._fresh:
            self._fresh = False
        else:
            self._saved.append(_current[0])
            _current[0] = self.name
        return self

    def __exit__(self, *exc):
        _current[0] = self._saved.pop()
        return False


def matmul(a, b):
    """Multiply two arrays with the selected kernel."""
    name = _current[0]
    if name == "blas":
        if a.dtype == _F16:
            return matmul_blas(a, b)
        return a @ b
    return _KERNELS[name](a, b)
