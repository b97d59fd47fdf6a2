"""NaN provenance: ``detect_anomaly()`` stops at the first op that produces NaN or Inf.

While the context is active every op is observed through :class:`tensorlite.autograd.observe`.
In the forward pass the output of each op is tested; in the backward pass the gradients each
node returns are tested. The first non-finite value raises :class:`AnomalyError` naming the op,
the statistics of its inputs, and the line of user code (the first stack frame outside
tensorlite) that created the op.
"""

from __future__ import annotations

import linecache
import os
import sys

import numpy as np

from .. import autograd
from ..backend import to_numpy

__all__ = ["AnomalyError", "detect_anomaly", "TensorStats"]

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class AnomalyError(RuntimeError):
    """The first op whose output (forward) or input gradient (backward) holds NaN or Inf.

    Attributes: ``phase`` ("forward" or "backward"), ``op`` (the Function's name), ``inputs``
    (a list of :class:`TensorStats`), ``location`` ((filename, lineno, source line) of the user code
    that created the op, or None), ``bad`` (the statistics of the offending array).
    """

    def __init__(self, phase, op, inputs, location, bad, which=None):
        self.phase, self.op, self.inputs, self.location, self.bad = phase, op, inputs, location, bad
        self.which = which
        super().__init__(self._message())

    def _message(self) -> str:
        what = "output" if self.phase == "forward" else f"gradient for input #{self.which}"
        kind = "NaN" if self.bad.has_nan else "Inf"
        lines = [f"{self.phase}: {self.op} produced {kind} in its {what} ({self.bad.n_bad} of {self.bad.size} values)"]
        if self.location is not None:
            fname, lineno, src = self.location
            lines.append(f"  created at {fname}:{lineno}" + (f": {src}" if src else ""))
        else:
            lines.append("  created at: unknown (no frame outside tensorlite)")
        for i, s in enumerate(self.inputs):
            lines.append(f"  input #{i}: {s}")
        return "\n".join(lines)


class TensorStats:
    """min / max / NaN / Inf of one array, measured with NaN and Inf excluded from min and max."""

    __slots__ = ("shape", "dtype", "size", "min", "max", "has_nan", "has_inf", "n_bad")

    def __init__(self, arr):
        a = to_numpy(arr)
        self.shape, self.dtype, self.size = tuple(a.shape), str(a.dtype), int(a.size)
        if a.dtype.kind in "fc":
            nan, inf = np.isnan(a), np.isinf(a)
            self.has_nan, self.has_inf = bool(nan.any()), bool(inf.any())
            self.n_bad = int(nan.sum() + inf.sum())
            finite = a[~(nan | inf)]
        else:
            self.has_nan = self.has_inf = False
            self.n_bad = 0
            finite = a.ravel()
        self.min = float(finite.min()) if finite.size else float("nan")
        self.max = float(finite.max()) if finite.size else float("nan")

    def __repr__(self) -> str:
        return (
            f"shape {self.shape} {self.dtype}: min {self.min:.4g}, max {self.max:.4g}, "
            f"has NaN: {self.has_nan}, has Inf: {self.has_inf}"
        )


def _user_frame(depth: int = 2):
    """(filename, lineno) of the first frame outside the tensorlite package, or None."""
    f = sys._getframe(depth)
    while f is not None and f.f_code.co_filename.startswith(_PKG_DIR):
        f = f.f_back
    if f is None:
        return None
    return f.f_code.co_filename, f.f_lineno


def _location(site):
    if site is None:
        return None
    fname, lineno = site
    return fname, lineno, linecache.getline(fname, lineno).strip()


def _nonfinite(arr) -> bool:
    # One reduction and one host sync per op: the price of debug mode (see docs/debug/anomaly.md).
    if arr is None or arr.dtype.kind not in "fc":
        return False
    xp = np if isinstance(arr, np.ndarray) else sys.modules[type(arr).__module__.split(".")[0]]
    return not bool(xp.isfinite(arr).all())


class detect_anomaly:
    """Context manager (and decorator) that raises :class:`AnomalyError` at the first op whose
    forward output, or whose backward input-gradient, holds NaN or Inf.

    ``forward`` / ``backward`` switch the two checks. Slow on purpose: every op pays an
    ``isfinite`` reduction and a walk of the Python stack. Example::

        with tl.debug.detect_anomaly():
            loss = model.loss(x, y)
            loss.backward()
    """

    def __init__(self, forward: bool = True, backward: bool = True):
        self.forward, self.backward = forward, backward
        self._observer = None

    def _on_forward(self, fn, inputs, result):
        site = _user_frame(3)
        if result.requires_grad:
            fn._anomaly_site = site  # read back if this node's backward goes bad
        if self.forward and _nonfinite(result.data):
            stats = [TensorStats(t.data) for t in inputs]
            raise AnomalyError("forward", fn.name, stats, _location(site), TensorStats(result.data))

    def _on_backward(self, fn, input_grads):
        for i, g in enumerate(input_grads):
            if g is not None and _nonfinite(g):
                stats = [TensorStats(t.data) for t in fn.inputs]
                site = fn.__dict__.get("_anomaly_site")
                raise AnomalyError("backward", fn.name, stats, _location(site), TensorStats(g), which=i)

    def __enter__(self):
        self._observer = autograd.observe(self._on_forward, self._on_backward if self.backward else None)
        self._observer.__enter__()
        return self

    def __exit__(self, *exc):
        self._observer.__exit__(*exc)
        self._observer = None
        return False

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with detect_anomaly(self.forward, self.backward):
                return fn(*args, **kwargs)

        wrapper.__name__ = getattr(fn, "__name__", "wrapper")
        wrapper.__doc__ = getattr(fn, "__doc__", None)
        return wrapper
