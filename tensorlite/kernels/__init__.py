"""Hand-written matmul kernels and the switch that chooses which one ``@`` uses.

``"blas"`` (the default) is the backend's own ``matmul`` (OpenBLAS/MKL through NumPy, cuBLAS
through CuPy). The others are ours, for teaching and for measuring against it.
"""

from __future__ import annotations

import contextlib

from .matmul import matmul_blocked, matmul_blocked_parallel, matmul_naive

__all__ = ["available", "current", "matmul", "matmul_blas", "matmul_blocked",
           "matmul_blocked_parallel", "matmul_naive", "use"]


def matmul_blas(a, b):
    """The backend's BLAS matmul (NumPy or CuPy)."""
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
    """Select the matmul kernel behind ``@``: ``tl.kernels.use("blocked_parallel")``.

    Takes effect at once; used as a context manager it restores the previous kernel on exit.
    """

    def __init__(self, name: str) -> None:
        if name not in _KERNELS:
            raise ValueError(f"kernels.use: unknown kernel {name!r}; choose one of {available()}")
        self.previous = _current[0]
        _current[0] = name

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _current[0] = self.previous
        return False


def matmul(a, b):
    """Multiply two arrays with the selected kernel."""
    name = _current[0]
    if name == "blas":
        return a @ b
    return _KERNELS[name](a, b)
