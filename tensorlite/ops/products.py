"""``mm``, ``bmm``, ``addmm``, ``outer``: the products torch names separately (through ``matmul`` and ``*``)."""

from __future__ import annotations

from .. import functional as F


def mm(input, mat2):
    """``(n, k) @ (k, m)``; both must be 2-D (use ``matmul`` for batches and broadcasting)."""
    if input.ndim != 2 or mat2.ndim != 2:
        raise ValueError(f"mm: both operands must be 2-D, got {tuple(input.shape)} and {tuple(mat2.shape)}")
    return F.matmul(input, mat2)


def bmm(input, mat2):
    """``(b, n, k) @ (b, k, m)``: batches of equal size, no broadcasting."""
    if input.ndim != 3 or mat2.ndim != 3 or input.shape[0] != mat2.shape[0]:
        raise ValueError(
            f"bmm: expects two 3-D tensors with the same batch size, got {tuple(input.shape)} and {tuple(mat2.shape)}"
        )
    return F.matmul(input, mat2)


def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat1 @ mat2)`` (Hugging Face's ``Conv1D`` computes its output so)."""
    prod = mm(mat1, mat2)
    if alpha != 1:
        prod = prod * alpha
    return (input if beta == 1 else input * beta) + prod


outer = ger = F.outer  # ger: torch's older name
