"""Check analytic gradients against central differences, for any function of tensors."""

from __future__ import annotations

import numpy as np

from .backend import to_numpy
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised by :func:`gradcheck` when an analytic gradient disagrees with the numerical one."""


def gradcheck(fn, *inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True) -> bool:
    """Compare ``fn``'s autograd gradients with float64 central differences.

    ``inputs`` are tensors; those with ``requires_grad=True`` are checked (they should be float64,
    or the finite differences drown in rounding). ``fn`` may return a tensor of any shape: it is
    reduced with a fixed random projection so every output element is tested.
    Returns True, or raises :class:`GradcheckError` naming the input and the worst element.
    """
    checked = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for t in checked:
        if t.dtype != np.float64:
            raise TypeError(f"gradcheck: inputs should be float64 for finite differences, got {t.dtype}")
    out = fn(*inputs)
    proj = np.random.default_rng(0).standard_normal(out.shape)
    xp = out.device.xp
    proj_dev = xp.asarray(proj)

    def scalar():
        return float(to_numpy((fn(*inputs).data * proj_dev).sum()))

    for t in checked:
        t.grad = None
    (fn(*inputs) * Tensor(proj_dev, device=out.device)).sum().backward()
    for n, t in enumerate(checked):
        analytic = to_numpy(t.grad.data) if t.grad is not None else np.zeros(t.shape)
        numeric = np.zeros(t.shape)
        flat = t.data.reshape(-1)
        for i in range(flat.size):
            orig = float(flat[i])
            flat[i] = orig + eps
            plus = scalar()
            flat[i] = orig - eps
            minus = scalar()
            flat[i] = orig
            numeric.reshape(-1)[i] = (plus - minus) / (2 * eps)
        err = np.abs(analytic - numeric)
        bad = err > atol + rtol * np.abs(numeric)
        if bad.any():
            i = np.unravel_index(np.argmax(err - rtol * np.abs(numeric)), t.shape)
            msg = (
                f"gradcheck: input {n} (shape {tuple(t.shape)}) element {tuple(int(j) for j in i)}: "
                f"analytic {analytic[i]:.6g} vs numerical {numeric[i]:.6g} "
                f"({int(bad.sum())} of {bad.size} elements outside atol={atol}, rtol={rtol})"
            )
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True
