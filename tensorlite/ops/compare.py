"""``allclose``, ``isclose``, ``equal``: value comparisons outside the graph, as torch."""

from __future__ import annotations

from .. import functional as F


def isclose(input, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False):
    """Elementwise ``|input - other| <= atol + rtol * |other|`` (bool)."""
    a, b = F._pair(input, other, "isclose")
    return F._no_grad_result(a, a.device.xp.isclose(a.data, b.data, rtol=rtol, atol=atol, equal_nan=equal_nan))


def allclose(input, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
    """True when every element is close (see :func:`isclose`)."""
    return bool(isclose(input, other, rtol, atol, equal_nan).data.all())


def equal(input, other) -> bool:
    """True when both have the same shape and the same values."""
    return tuple(input.shape) == tuple(other.shape) and bool((input.data == other.data).all())
