"""Every differentiable op: a ``Function`` (forward and backward side by side) and the public
wrapper that checks its arguments and speaks the user's language when they are wrong."""

from __future__ import annotations

import builtins
import math
from collections import namedtuple

import numpy as np

from . import backend, kernels
from .amp import state as _amp
from .autograd import Function, unbroadcast
from .backend import array_module, scatter_add
from .backend import erf as _erf
from .kernels import attention as attention_kernels
from .kernels import fused
from .random import generator

_SCALARS = (int, float, bool, np.number, np.bool_)


# ================================================================================================
# argument handling
# ================================================================================================
_Tensor = None  # tensorlite.tensor.Tensor, bound by tensor.py (which imports this module)


def _tensor_cls():
    return _Tensor


def as_tensor_like(x, like):
    """``x`` as a Tensor on ``like``'s device (arrays and scalars are wrapped, never graphed)."""
    Tensor = _tensor_cls()
    if isinstance(x, Tensor):
        return x
    xp = like.device.xp
    arr = xp.asarray(x)
    if arr.dtype.kind == "f" and like.dtype.kind == "f":
        arr = arr.astype(like.dtype, copy=False)
    elif arr.dtype.kind in "iub" and like.dtype.kind == "f" and np.ndim(x) == 0:
        arr = arr.astype(like.dtype)
    return Tensor._wrap(arr, like.device, False)


def _pair(a, b, op: str):
    """Two tensors of one device and one dtype, or a clear TypeError."""
    Tensor = _tensor_cls()
    if not isinstance(b, Tensor):
        b = as_tensor_like(b, a)
    if not isinstance(a, Tensor):
        a = as_tensor_like(a, b)
    if a.device is not b.device:
        raise TypeError(
            f"{op}: tensors are on different devices ({a.device} and {b.device}); "
            "move one with .to(device)"
        )
    da, db = a.data.dtype, b.data.dtype
    if da != db:
        fa, fb = da.kind == "f", db.kind == "f"
        if fa and fb:
            if _amp.dtype is None:
                raise TypeError(
                    f"{op}: dtype mismatch ({da} and {db}); cast one with .to(dtype=...) or .float()/.double()"
                )
            wide = np.promote_types(da, db)  # under autocast the widest wins, as in torch
            return cast(a, wide), cast(b, wide)
        if fa:
            b = cast(b, da)
        elif fb:
            a = cast(a, db)
    return a, b


def _broadcast_error(op: str, sa, sb) -> ValueError:
    ra, rb = tuple(sa)[::-1], tuple(sb)[::-1]
    for i in range(builtins.min(len(ra), len(rb))):
        if ra[i] != rb[i] and ra[i] != 1 and rb[i] != 1:
            dim = -(i + 1)
            return ValueError(
                f"{op}: shapes {tuple(sa)} and {tuple(sb)} cannot be broadcast: "
                f"dimension {dim} is {ra[i]} in one and {rb[i]} in the other"
            )
    return ValueError(f"{op}: shapes {tuple(sa)} and {tuple(sb)} cannot be broadcast")


def _binary(cls, op: str, a, b):
    # fast path: two tensors of one device and dtype need no conversion
    if not (isinstance(a, _Tensor) and isinstance(b, _Tensor) and a.device is b.device
            and a.data.dtype == b.data.dtype):
        a, b = _pair(a, b, op)
    try:
        return cls.apply(a, b)
    except ValueError:
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise _broadcast_error(op, a.shape, b.shape) from None
        raise


def _dims(dim, ndim: int, op: str = "dim"):
    """Normalise ``dim`` (None, int or tuple) to a tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (list, tuple)):
        return tuple(_dim(d, ndim, op) for d in dim)
    return (_dim(dim, ndim, op),)


def _dim(d: int, ndim: int, op: str = "dim") -> int:
    n = builtins.max(ndim, 1)
    if not -n <= d < n:
        raise IndexError(f"{op}: dimension {d} out of range for a tensor with {ndim} dimensions")
    return d % n


def _autocast_lower(*tensors):
    """Under autocast: float tensors in the lower precision (float16); others as they are."""
    dt = _amp.dtype
    return tuple(t if t is None or t.data.dtype.kind != "f" else cast(t, dt) for t in tensors)


def _autocast_fp32(*tensors):
    """Under autocast: float16 tensors in float32 (float64 stays float64)."""
    dt = _amp.dtype
    return tuple(t if t is None or t.data.dtype != dt else cast(t, np.float32) for t in tensors)


# ================================================================================================
# elementwise arithmetic
# ================================================================================================
class Add(Function):
    def forward(self, a, b):
        self.sa, self.sb = a.shape, b.shape
        return a + b

    def backward(self, g):
        return unbroadcast(g, self.sa), unbroadcast(g, self.sb)


class Sub(Function):
    def forward(self, a, b):
        self.sa, self.sb = a.shape, b.shape
        return a - b

    def backward(self, g):
        return unbroadcast(g, self.sa), unbroadcast(-g, self.sb)


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        na, nb = self.needs_input_grad
        ga = unbroadcast(g * self.b, self.a.shape) if na else None
        gb = unbroadcast(g * self.a, self.b.shape) if nb else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        na, nb = self.needs_input_grad
        ga = g / self.b
        gb = unbroadcast(-ga * self.a / self.b, self.b.shape) if nb else None
        return (unbroadcast(ga, self.a.shape) if na else None), gb


class Pow(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a**b
        return self.out

    def backward(self, g):
        na, nb = self.needs_input_grad
        a, b = self.a, self.b
        ga = unbroadcast(g * b * a ** (b - 1), a.shape) if na else None
        gb = None
        if nb:
            xp = array_module(a)
            safe = xp.where(a > 0, a, 1)
            gb = unbroadcast(g * self.out * xp.log(safe), b.shape)
        return ga, gb


class ScalarAdd(Function):
    def forward(self, a, scalar):
        return a + scalar

    def backward(self, g):
        return g


class ScalarMul(Function):
    def forward(self, a, scalar):
        self.scalar = scalar
        return a * scalar

    def backward(self, g):
        return g * self.scalar


class ScalarPow(Function):
    def forward(self, a, exponent):
        self.a, self.p = a, exponent
        return a**exponent

    def backward(self, g):
        p = self.p
        if p == 2:
            return g * (2 * self.a)
        return g * (p * self.a ** (p - 1))


class ScalarRPow(Function):
    """``base ** x`` for a Python number ``base``."""

    def forward(self, a, base):
        self.out = base**a
        self.logb = math.log(base) if base > 0 else float("nan")
        return self.out

    def backward(self, g):
        return g * self.out * self.logb


class ScalarRDiv(Function):
    """``scalar / x``."""

    def forward(self, a, scalar):
        self.a, self.out = a, scalar / a
        return self.out

    def backward(self, g):
        return -g * self.out / self.a


def _is_scalar(x) -> bool:
    return isinstance(x, _SCALARS)


def _weak(x):
    """A NumPy scalar as the Python number it holds: like torch, ``t * np.float64(2)`` keeps
    ``t``'s dtype (NumPy would promote float16/float32 to the scalar's float64)."""
    return x.item() if isinstance(x, np.generic) else x


def add(a, b):
    """``a + b`` with broadcasting."""
    if isinstance(b, _Tensor):  # the common case first: tensor op tensor
        return _binary(Add, "add", a, b)
    if isinstance(b, _SCALARS) and isinstance(a, _Tensor):
        return ScalarAdd.apply(a, scalar=_weak(b))
    return _binary(Add, "add", a, b)


def sub(a, b):
    """``a - b`` with broadcasting."""
    if isinstance(b, _Tensor):  # the common case first: tensor op tensor
        return _binary(Sub, "sub", a, b)
    if isinstance(b, _SCALARS) and isinstance(a, _Tensor):
        return ScalarAdd.apply(a, scalar=-_weak(b))
    return _binary(Sub, "sub", a, b)


def rsub(a, b):
    """``b - a`` (for ``scalar - tensor``)."""
    if _is_scalar(b):
        return ScalarAdd.apply(neg(a), scalar=_weak(b))
    return _binary(Sub, "sub", b, a)


def mul(a, b):
    """``a * b`` with broadcasting."""
    if isinstance(b, _Tensor):  # the common case first: tensor op tensor
        return _binary(Mul, "mul", a, b)
    if isinstance(b, _SCALARS) and isinstance(a, _Tensor):
        return ScalarMul.apply(a, scalar=_weak(b))
    return _binary(Mul, "mul", a, b)


def div(a, b):
    """``a / b`` with broadcasting (true division)."""
    Tensor = _tensor_cls()
    if isinstance(a, Tensor) and _is_scalar(b):
        if a.data.dtype.kind != "f":
            a = cast(a, np.float32)
        return ScalarMul.apply(a, scalar=1.0 / _weak(b))
    a2 = a if not isinstance(a, Tensor) or a.data.dtype.kind == "f" else cast(a, np.float32)
    return _binary(Div, "div", a2, b)


def rdiv(a, b):
    """``b / a`` (for ``scalar / tensor``)."""
    if _is_scalar(b):
        return ScalarRDiv.apply(a, scalar=_weak(b))
    return _binary(Div, "div", b, a)


def pow(a, exponent):
    """``a ** exponent``; the exponent may be a number or a tensor."""
    Tensor = _tensor_cls()
    if isinstance(a, Tensor) and _is_scalar(exponent):
        return ScalarPow.apply(a, exponent=_weak(exponent))
    return _binary(Pow, "pow", a, exponent)


def rpow(a, base):
    """``base ** a``."""
    if _is_scalar(base):
        return ScalarRPow.apply(a, base=_weak(base))
    return _binary(Pow, "pow", base, a)


# ================================================================================================
# unary ops
# ================================================================================================
class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class Exp(Function):
    def forward(self, a):
        self.out = array_module(a).exp(a)
        return self.out

    def backward(self, g):
        return g * self.out


class Log(Function):
    def forward(self, a):
        self.a = a
        return array_module(a).log(a)

    def backward(self, g):
        return g / self.a


class Sqrt(Function):
    def forward(self, a):
        self.out = array_module(a).sqrt(a)
        return self.out

    def backward(self, g):
        return g / (2 * self.out)


class Rsqrt(Function):
    def forward(self, a):
        self.out = 1 / array_module(a).sqrt(a)
        return self.out

    def backward(self, g):
        return g * (-0.5 * self.out * self.out * self.out)


class Abs(Function):
    def forward(self, a):
        self.a = a
        return array_module(a).abs(a)

    def backward(self, g):
        return g * array_module(self.a).sign(self.a)


class Tanh(Function):
    def forward(self, a):
        self.out = array_module(a).tanh(a)
        return self.out

    def backward(self, g):
        out = self.out  # 1 - tanh^2, built in one buffer (ufuncs with out= keep 0-d arrays arrays)
        xp = array_module(out)
        d = xp.empty_like(out)
        xp.multiply(out, out, out=d)
        xp.subtract(1, d, out=d)
        xp.multiply(d, g, out=d)
        return d


class Sigmoid(Function):
    def forward(self, a):
        xp = array_module(a)
        # the two branches avoid overflow of exp for large |a|
        e = xp.exp(-xp.abs(a))
        self.out = xp.where(a >= 0, 1 / (1 + e), e / (1 + e))
        return self.out

    def backward(self, g):
        return g * self.out * (1 - self.out)


class Sin(Function):
    def forward(self, a):
        self.a = a
        return array_module(a).sin(a)

    def backward(self, g):
        return g * array_module(self.a).cos(self.a)


class Cos(Function):
    def forward(self, a):
        self.a = a
        return array_module(a).cos(a)

    def backward(self, g):
        return -g * array_module(self.a).sin(self.a)


class Erf(Function):
    def forward(self, a):
        self.a = a
        return _erf(array_module(a), a)

    def backward(self, g):
        a = self.a
        return g * (2.0 / math.sqrt(math.pi)) * array_module(a).exp(-a * a)


class Log1p(Function):
    def forward(self, a):
        self.a = a
        return array_module(a).log1p(a)

    def backward(self, g):
        return g / (1 + self.a)


class Relu(Function):
    def forward(self, a):
        self.mask = a > 0
        return a * self.mask

    def backward(self, g):
        return g * self.mask


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


class Gelu(Function):
    def forward(self, a, approximate="none"):
        xp = array_module(a)
        self.a, self.approximate = a, approximate
        if approximate == "tanh":
            # fused: one pass per cached block, on every core; backward recomputes the tanh
            return fused.gelu_tanh(a)
        self.cdf = 0.5 * (1 + _erf(xp, a / math.sqrt(2.0)))
        return a * self.cdf

    def backward(self, g):
        a, xp = self.a, array_module(self.a)
        if self.approximate == "tanh":
            return fused.gelu_tanh_backward(a, g)
        pdf = xp.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
        return g * (self.cdf + a * pdf)


class Silu(Function):
    def forward(self, a):
        xp = array_module(a)
        e = xp.exp(-xp.abs(a))
        self.a = a
        self.s = xp.where(a >= 0, 1 / (1 + e), e / (1 + e))
        return a * self.s

    def backward(self, g):
        s = self.s
        return g * (s * (1 + self.a * (1 - s)))


class Clamp(Function):
    def forward(self, a, lo=None, hi=None):
        xp = array_module(a)
        self.mask = xp.ones(a.shape, dtype=bool)
        if lo is not None:
            self.mask &= a >= lo
        if hi is not None:
            self.mask &= a <= hi
        return xp.clip(a, lo, hi)

    def backward(self, g):
        return g * self.mask


def neg(a):
    """Elementwise ``-a``."""
    return Neg.apply(a)


def sin(a):
    """Elementwise sine (rotary embeddings' tables: ``emb.sin()``)."""
    return Sin.apply(a)


def cos(a):
    """Elementwise cosine."""
    return Cos.apply(a)


def erf(a):
    """Elementwise error function (the exact GELU written out: ``0.5 * x * (1 + erf(x / sqrt(2)))``)."""
    return Erf.apply(a)


def log1p(a):
    """Elementwise ``log(1 + a)``, accurate for small ``a``."""
    return Log1p.apply(a)


def reciprocal(a):
    """Elementwise ``1 / a``."""
    return 1.0 / a


def outer(a, b):
    """``a[:, None] * b[None, :]`` of two 1-D tensors (LLaMA's rotary frequencies:
    ``torch.outer(t, inv_freq)``)."""
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"outer: both operands must be 1-D, got {tuple(a.shape)} and {tuple(b.shape)}")
    return a.reshape(-1, 1) * b.reshape(1, -1)


def logsumexp(a, dim, keepdim: bool = False):
    """``log(sum(exp(a), dim))`` without overflow (PaLM's z-loss: ``logsumexp(logits, -1) ** 2``)."""
    xp = array_module(a.data)
    m = xp.max(a.data, axis=dim, keepdims=True)  # a constant shift: the gradient is softmax(a) either way
    m = xp.where(xp.isfinite(m), m, 0).astype(a.data.dtype)
    out = log(exp(a - m).sum(dim=dim, keepdim=True)) + m
    return out if keepdim else out.squeeze(dim)


def exp(a):
    """Elementwise ``e ** a``."""
    return Exp.apply(a)


def log(a):
    """Elementwise natural logarithm."""
    return Log.apply(a)


def sqrt(a):
    """Elementwise square root."""
    return Sqrt.apply(a)


def rsqrt(a):
    """``1 / sqrt(a)``."""
    return Rsqrt.apply(a)


def abs(a):
    """Elementwise absolute value (gradient ``sign(a)``, 0 at 0)."""
    return Abs.apply(a)


def tanh(a):
    """Elementwise hyperbolic tangent."""
    return Tanh.apply(a)


def sigmoid(a):
    """Elementwise logistic ``1 / (1 + exp(-a))``, computed without overflow."""
    return Sigmoid.apply(a)


def relu(a):
    """Elementwise ``max(a, 0)`` (gradient 0 at 0, as torch)."""
    return Relu.apply(a)


def gelu(a, approximate: str = "none"):
    """GELU: ``a * Phi(a)`` exactly (``approximate="none"``) or with GPT-2's tanh formula."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return Gelu.apply(a, approximate=approximate)


def silu(a):
    """SiLU (swish): ``a * sigmoid(a)``."""
    return Silu.apply(a)


def clamp(a, min=None, max=None):
    """Limit values to ``[min, max]``; the gradient is 1 inside the range and 0 outside."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    return Clamp.apply(a, lo=min, hi=max)


# ================================================================================================
# reductions
# ================================================================================================
def _expand_grad(g, shape, axes, keepdim):
    if not keepdim:
        g = array_module(g).expand_dims(g, axes) if axes else g
    return array_module(g).broadcast_to(g, shape)


class Sum(Function):
    def forward(self, a, axes=None, keepdim=False):
        self.shape, self.axes, self.keepdim = a.shape, axes, keepdim
        return a.sum(axis=axes, keepdims=keepdim)

    def backward(self, g):
        return _expand_grad(g, self.shape, self.axes, self.keepdim)


class Mean(Function):
    def forward(self, a, axes=None, keepdim=False):
        self.shape, self.axes, self.keepdim = a.shape, axes, keepdim
        self.n = 1
        for ax in axes:
            self.n *= a.shape[ax]
        return a.mean(axis=axes, keepdims=keepdim)

    def backward(self, g):
        return _expand_grad(g / self.n, self.shape, self.axes, self.keepdim)


class Var(Function):
    def forward(self, a, axes=None, keepdim=False, correction=1):
        n = 1
        for ax in axes:
            n *= a.shape[ax]
        self.centered = a - a.mean(axis=axes, keepdims=True)
        self.denom = builtins.max(n - correction, 0)
        self.axes, self.keepdim = axes, keepdim
        return (self.centered**2).sum(axis=axes, keepdims=keepdim) / self.denom

    def backward(self, g):
        g = _expand_grad(g, self.centered.shape, self.axes, self.keepdim)
        # np.float64: with no degrees of freedom left this is inf (as the forward), not a ZeroDivisionError
        return g * (np.float64(2.0) / self.denom) * self.centered


class Std(Var):
    def forward(self, a, axes=None, keepdim=False, correction=1):
        self.out = array_module(a).sqrt(super().forward(a, axes, keepdim, correction))
        return self.out

    def backward(self, g):
        xp = array_module(g)
        out = self.out
        safe = xp.where(out == 0, 1, out)
        return super().backward(xp.where(out == 0, 0, g / (2 * safe)))


class AMax(Function):
    """Max (or min) over axes; ties share the gradient equally (as torch.amax)."""

    def forward(self, a, axes=None, keepdim=False, use_min=False):
        out = a.min(axis=axes, keepdims=True) if use_min else a.max(axis=axes, keepdims=True)
        self.mask = a == out
        self.axes, self.keepdim = axes, keepdim
        return out if keepdim else out.squeeze(axis=axes)

    def backward(self, g):
        mask = self.mask
        if not self.keepdim:
            g = array_module(g).expand_dims(g, self.axes)
        return mask * (g / mask.sum(axis=self.axes, keepdims=True))


class MaxWithIndices(Function):
    """``max(dim)`` / ``min(dim)`` values; the gradient goes to the returned index (as torch)."""

    def forward(self, a, dim=0, keepdim=False, use_min=False):
        xp = array_module(a)
        idx = xp.argmin(a, axis=dim) if use_min else xp.argmax(a, axis=dim)
        self.idx = xp.expand_dims(idx, dim)
        self.shape, self.dim, self.keepdim = a.shape, dim, keepdim
        vals = xp.take_along_axis(a, self.idx, axis=dim)
        return vals if keepdim else vals.squeeze(axis=dim)

    def backward(self, g):
        xp = array_module(g)
        out = xp.zeros(self.shape, dtype=g.dtype)
        if not self.keepdim:
            g = xp.expand_dims(g, self.dim)
        xp.put_along_axis(out, self.idx, g, axis=self.dim)
        return out


MaxResult = namedtuple("MaxResult", ["values", "indices"])


def sum(a, dim=None, keepdim: bool = False):
    """Sum over ``dim`` (an int, a tuple, or all dims when None)."""
    return Sum.apply(a, axes=_dims(dim, a.ndim, "sum"), keepdim=keepdim)


def mean(a, dim=None, keepdim: bool = False):
    """Mean over ``dim`` (an int, a tuple, or all dims when None)."""
    if a.data.dtype.kind != "f":
        raise TypeError(f"mean: needs a floating-point tensor, got {a.dtype}; call .float() first")
    return Mean.apply(a, axes=_dims(dim, a.ndim, "mean"), keepdim=keepdim)


def var(a, dim=None, keepdim: bool = False, correction: int = 1, unbiased=None):
    """Variance over ``dim`` with Bessel's ``correction`` (1 by default, as torch)."""
    if unbiased is not None:
        correction = 1 if unbiased else 0
    return Var.apply(a, axes=_dims(dim, a.ndim, "var"), keepdim=keepdim, correction=correction)


def std(a, dim=None, keepdim: bool = False, correction: int = 1, unbiased=None):
    """Standard deviation over ``dim``; a zero std gets a zero gradient (as torch), not NaN."""
    if unbiased is not None:
        correction = 1 if unbiased else 0
    return Std.apply(a, axes=_dims(dim, a.ndim, "std"), keepdim=keepdim, correction=correction)


def amax(a, dim=None, keepdim: bool = False):
    """Maximum over ``dim``; ties share the gradient."""
    return AMax.apply(a, axes=_dims(dim, a.ndim, "amax"), keepdim=keepdim)


def amin(a, dim=None, keepdim: bool = False):
    """Minimum over ``dim``; ties share the gradient."""
    return AMax.apply(a, axes=_dims(dim, a.ndim, "amin"), keepdim=keepdim, use_min=True)


def max(a, dim=None, keepdim: bool = False):
    """With ``dim``: ``(values, indices)`` like torch.max; without: the largest element."""
    if dim is None:
        return amax(a)
    if isinstance(dim, _tensor_cls()):
        return maximum(a, dim)
    dim = _dim(dim, a.ndim, "max")
    vals = MaxWithIndices.apply(a, dim=dim, keepdim=keepdim)
    return MaxResult(vals, argmax(a, dim, keepdim))


def min(a, dim=None, keepdim: bool = False):
    """With ``dim``: ``(values, indices)`` like torch.min; without: the smallest element."""
    if dim is None:
        return amin(a)
    if isinstance(dim, _tensor_cls()):
        return minimum(a, dim)
    dim = _dim(dim, a.ndim, "min")
    vals = MaxWithIndices.apply(a, dim=dim, keepdim=keepdim, use_min=True)
    return MaxResult(vals, argmin(a, dim, keepdim))


def _no_grad_result(a, arr):
    return _tensor_cls()._wrap(arr, a.device, False)


def argmax(a, dim=None, keepdim: bool = False):
    """Index of the largest element over ``dim`` (of the flattened tensor when None); int64, no gradient."""
    xp = array_module(a)
    if dim is None:
        return _no_grad_result(a, xp.asarray(xp.argmax(a.data), dtype=np.int64))
    dim = _dim(dim, a.ndim, "argmax")
    return _no_grad_result(a, xp.argmax(a.data, axis=dim, keepdims=keepdim).astype(np.int64))


def argmin(a, dim=None, keepdim: bool = False):
    """Index of the smallest element over ``dim`` (of the flattened tensor when None); int64, no gradient."""
    xp = array_module(a)
    if dim is None:
        return _no_grad_result(a, xp.asarray(xp.argmin(a.data), dtype=np.int64))
    dim = _dim(dim, a.ndim, "argmin")
    return _no_grad_result(a, xp.argmin(a.data, axis=dim, keepdims=keepdim).astype(np.int64))


def any(a, dim=None, keepdim: bool = False):
    """True where any element over ``dim`` is nonzero (bool, no gradient)."""
    return _no_grad_result(a, a.data.any(axis=_dims(dim, a.ndim, "any"), keepdims=keepdim))


def all(a, dim=None, keepdim: bool = False):
    """True where every element over ``dim`` is nonzero (bool, no gradient)."""
    return _no_grad_result(a, a.data.all(axis=_dims(dim, a.ndim, "all"), keepdims=keepdim))


def _check_broadcast(op: str, sa, sb) -> None:
    try:
        np.broadcast_shapes(sa, sb)
    except ValueError:
        raise _broadcast_error(op, sa, sb) from None


def maximum(a, b):
    """Elementwise maximum; ties send the gradient to ``a``."""
    a, b = _pair(a, b, "maximum")
    _check_broadcast("maximum", a.shape, b.shape)
    return where(a >= b, a, b)


def minimum(a, b):
    """Elementwise minimum; ties send the gradient to ``a``."""
    a, b = _pair(a, b, "minimum")
    _check_broadcast("minimum", a.shape, b.shape)
    return where(a <= b, a, b)


def norm(a, p=2, dim=None, keepdim: bool = False):
    """The ``p``-norm over ``dim`` (2 or 1)."""
    if p == 2:
        return sqrt(sum(a * a, dim, keepdim))
    if p == 1:
        return sum(abs(a), dim, keepdim)
    raise ValueError(f"norm: only p=1 and p=2 are supported, got {p!r}")


# ================================================================================================
# comparisons and predicates (no gradient)
# ================================================================================================
_COMPARE = {
    "eq": lambda x, y: x == y,
    "ne": lambda x, y: x != y,
    "lt": lambda x, y: x < y,
    "le": lambda x, y: x <= y,
    "gt": lambda x, y: x > y,
    "ge": lambda x, y: x >= y,
    "and": lambda x, y: x & y,
    "or": lambda x, y: x | y,
    "xor": lambda x, y: x ^ y,
}


def compare(a, b, op: str):
    """Elementwise comparison ``op`` ("eq", "lt", ... "and", "or"): a bool tensor outside the graph."""
    Tensor = _tensor_cls()
    bd = b.data if isinstance(b, Tensor) else b
    try:
        return _no_grad_result(a, _COMPARE[op](a.data, bd))
    except ValueError:
        raise _broadcast_error(op, a.shape, np.shape(bd)) from None


def logical_not(a):
    """Elementwise logical not (bool result)."""
    return _no_grad_result(a, ~a.data if a.data.dtype == bool else a.data == 0)


def isnan(a):
    """Elementwise NaN test (bool)."""
    return _no_grad_result(a, array_module(a).isnan(a.data))


def isinf(a):
    """Elementwise infinity test (bool)."""
    return _no_grad_result(a, array_module(a).isinf(a.data))


def isfinite(a):
    """Elementwise finiteness test (bool)."""
    return _no_grad_result(a, array_module(a).isfinite(a.data))


# ================================================================================================
# dtype, device, copies, in-place updates
# ================================================================================================
class Cast(Function):
    def forward(self, a, dtype=None):
        self.src = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return g.astype(self.src) if self.src.kind == "f" else None


class ToDevice(Function):
    def forward(self, a, device=None):
        self.src = backend.device_of(a)
        return backend.to_device(a, device)

    def backward(self, g):
        return backend.to_device(g, self.src)


class Clone(Function):
    def forward(self, a):
        return a.copy()

    def backward(self, g):
        return g


def cast(a, dtype):
    """Convert to ``dtype``; differentiable between float dtypes, cut from the graph otherwise."""
    dtype = np.dtype(dtype)
    if a.data.dtype == dtype:
        return a
    out = Cast.apply(a, dtype=dtype)
    if dtype.kind != "f":
        out.requires_grad, out.grad_fn = False, None
    return out


def to_device(a, device):
    """Copy to ``device`` (differentiable: the gradient is copied back)."""
    if a.device is device:
        return a
    out = ToDevice.apply(a, device=device)
    out.device = device
    return out


def clone(a):
    """A copy with its own memory (differentiable)."""
    return Clone.apply(a)


def inplace(t, other, op: str):
    """In-place ``t op= other`` on the data; refused on a tensor that needs grad while grad mode is on."""
    _inplace_check(t, f"in-place {op}", other)
    Tensor = _tensor_cls()
    od = other.data if isinstance(other, Tensor) else other
    try:
        if op == "add":
            t.data += od
        elif op == "sub":
            t.data -= od
        elif op == "mul":
            t.data *= od
        else:
            t.data /= od
    except ValueError:
        raise _broadcast_error(f"in-place {op}", t.shape, np.shape(od)) from None
    return t


def setitem_(t, key, value):
    """``t[key] = value`` on the data; refused on a tensor that needs grad while grad mode is on."""
    _inplace_check(t, "setitem", value)
    Tensor = _tensor_cls()
    v = value.data if isinstance(value, Tensor) else value
    try:
        t.data[_index_key(key)] = v
    except ValueError:
        raise ValueError(
            f"setitem: value of shape {tuple(np.shape(v))} cannot be broadcast into the indexed part "
            f"of a tensor of shape {tuple(t.shape)}"
        ) from None


# ================================================================================================
# shape ops
# ================================================================================================
def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(int(s) for s in shape)


class Reshape(Function):
    def forward(self, a, shape=None):
        self.src = a.shape
        return a.reshape(shape)

    def backward(self, g):
        return g.reshape(self.src)


class Permute(Function):
    def forward(self, a, dims=None):
        self.inv = tuple(np.argsort(dims))
        return a.transpose(dims)

    def backward(self, g):
        return g.transpose(self.inv)


class Expand(Function):
    def forward(self, a, shape=None):
        self.src = a.shape
        return array_module(a).broadcast_to(a, shape)

    def backward(self, g):
        return unbroadcast(g, self.src)


def reshape(a, *shape):
    """A tensor with the same data and a new shape (one dimension may be -1)."""
    shape = _shape_arg(shape)
    try:
        return Reshape.apply(a, shape=shape)
    except ValueError:
        raise ValueError(
            f"reshape: cannot reshape tensor of shape {tuple(a.shape)} ({a.data.size} elements) "
            f"into shape {shape}"
        ) from None



def transpose(a, dim0: int, dim1: int):
    """Swap two dimensions."""
    d0, d1 = _dim(dim0, a.ndim, "transpose"), _dim(dim1, a.ndim, "transpose")
    dims = list(range(a.ndim))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return Permute.apply(a, dims=tuple(dims))


def permute(a, *dims):
    """Reorder the dimensions: ``permute(a, 2, 0, 1)``."""
    dims = _shape_arg(dims)
    if sorted(d % builtins.max(a.ndim, 1) for d in dims) != list(range(a.ndim)):
        raise ValueError(f"permute: {dims} is not a permutation of the {a.ndim} dims of {tuple(a.shape)}")
    return Permute.apply(a, dims=tuple(d % a.ndim for d in dims))


def unsqueeze(a, dim: int):
    """Insert a dimension of size 1 at ``dim``."""
    dim = _dim(dim, a.ndim + 1, "unsqueeze")
    shape = a.shape[:dim] + (1,) + a.shape[dim:]
    return Reshape.apply(a, shape=shape)


def squeeze(a, dim=None):
    """Remove dimensions of size 1 (all, or those in ``dim``)."""
    if dim is None:
        shape = tuple(s for s in a.shape if s != 1)
    else:
        axes = _dims(dim, a.ndim, "squeeze")
        shape = tuple(s for i, s in enumerate(a.shape) if not (i in axes and s == 1))
    return Reshape.apply(a, shape=shape)


def expand(a, *sizes):
    """Broadcast to ``sizes`` without copying (-1 keeps a dimension)."""
    sizes = _shape_arg(sizes)
    lead = len(sizes) - a.ndim
    if lead < 0:
        raise ValueError(f"expand: cannot expand shape {tuple(a.shape)} to fewer dimensions {sizes}")
    shape = tuple(a.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    try:
        return Expand.apply(a, shape=shape)
    except ValueError:
        raise ValueError(f"expand: cannot expand shape {tuple(a.shape)} to {sizes}") from None


def broadcast_to(a, shape):
    """Same as :func:`expand` with a shape tuple."""
    return expand(a, *shape)


def flatten(a, start_dim: int = 0, end_dim: int = -1):
    """Merge dimensions ``start_dim..end_dim`` into one."""
    if a.ndim == 0:
        return reshape(a, 1)
    s, e = _dim(start_dim, a.ndim), _dim(end_dim, a.ndim)
    n = 1
    for d in a.shape[s : e + 1]:
        n *= d
    return Reshape.apply(a, shape=a.shape[:s] + (n,) + a.shape[e + 1 :])


class Cat(Function):
    def forward(self, *arrays, dim=0):
        self.dim = dim
        self.sizes = [x.shape[dim] for x in arrays]
        return array_module(arrays[0]).concatenate(arrays, axis=dim)

    def backward(self, g):
        bounds = np.cumsum(self.sizes)[:-1].tolist()
        return tuple(array_module(g).split(g, bounds, axis=self.dim))


class Stack(Function):
    def forward(self, *arrays, dim=0):
        self.dim = dim
        return array_module(arrays[0]).stack(arrays, axis=dim)

    def backward(self, g):
        xp = array_module(g)
        return tuple(xp.take(g, i, axis=self.dim) for i in range(g.shape[self.dim]))


def _same_device_dtype(tensors, op):
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    first = tensors[0]
    out = [first]
    for t in tensors[1:]:
        out.append(_pair(first, t, op)[1])
    return out


def cat(tensors, dim: int = 0):
    """Join tensors along an existing dimension."""
    tensors = _same_device_dtype(tensors, "cat")
    d = _dim(dim, tensors[0].ndim, "cat")
    ref = tensors[0].shape
    for t in tensors[1:]:
        if t.ndim != len(ref) or any_mismatch(t.shape, ref, d):
            raise ValueError(
                f"cat: shapes {tuple(ref)} and {tuple(t.shape)} differ outside dimension {dim}"
            )
    return Cat.apply(*tensors, dim=d)


def any_mismatch(a, b, skip):
    """True when shapes ``a`` and ``b`` differ in a dimension other than ``skip``."""
    return builtins.any(x != y for i, (x, y) in enumerate(zip(a, b)) if i != skip)


def stack(tensors, dim: int = 0):
    """Join tensors of one shape along a new dimension."""
    tensors = _same_device_dtype(tensors, "stack")
    for t in tensors[1:]:
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: shapes {tuple(tensors[0].shape)} and {tuple(t.shape)} differ")
    return Stack.apply(*tensors, dim=_dim(dim, tensors[0].ndim + 1, "stack"))


def split(a, split_size_or_sections, dim: int = 0):
    """Split into pieces of ``split_size`` (the last may be smaller) or of the given sizes."""
    d = _dim(dim, a.ndim, "split")
    n = a.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sizes = [builtins.min(step, n - i) for i in range(0, n, step)]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} do not add up to dimension {dim} of size {n}")
    out, start = [], 0
    for s in sizes:
        key = (slice(None),) * d + (slice(start, start + s),)
        out.append(getitem(a, key))
        start += s
    return tuple(out)


def chunk(a, chunks: int, dim: int = 0):
    """Split into ``chunks`` pieces of (nearly) equal size, as torch.chunk."""
    n = a.shape[_dim(dim, a.ndim, "chunk")]
    return split(a, -(-n // chunks), dim)


# ================================================================================================
# indexing
# ================================================================================================
def _index_key(key):
    Tensor = _tensor_cls()
    if isinstance(key, tuple):
        return tuple(k.data if isinstance(k, Tensor) else k for k in key)
    return key.data if isinstance(key, Tensor) else key


def _is_advanced(key) -> bool:
    parts = key if isinstance(key, tuple) else (key,)
    for k in parts:
        if isinstance(k, (list,)) or (hasattr(k, "ndim") and not isinstance(k, _SCALARS)):
            return True
    return False


class GetItem(Function):
    def forward(self, a, key=None):
        self.shape, self.dtype, self.key = a.shape, a.dtype, key
        return a[key]

    def backward(self, g):
        xp = array_module(g)
        out = xp.zeros(self.shape, dtype=g.dtype)
        if _is_advanced(self.key):
            scatter_add(xp, out, self.key, g)  # repeated indices accumulate
        else:
            out[self.key] = g
        return out


def getitem(a, key):
    """``a[key]`` for basic and integer-array indexing; repeated indices accumulate gradients."""
    k = _index_key(key)
    try:
        return GetItem.apply(a, key=k)
    except IndexError as e:
        raise IndexError(f"index: {e} (tensor shape {tuple(a.shape)})") from None


class Where(Function):
    def forward(self, a, b, cond=None):
        self.cond, self.sa, self.sb = cond, a.shape, b.shape
        return array_module(a).where(cond, a, b)

    def backward(self, g):
        zero = g.dtype.type(0)
        xp = array_module(g)
        return (
            unbroadcast(xp.where(self.cond, g, zero), self.sa),
            unbroadcast(xp.where(self.cond, zero, g), self.sb),
        )


def where(condition, a, b):
    """Pick ``a`` where ``condition`` holds, else ``b`` (with broadcasting)."""
    Tensor = _tensor_cls()
    ref = a if isinstance(a, Tensor) else b
    a, b = _pair(as_tensor_like(a, ref), as_tensor_like(b, ref), "where")
    cond = condition.data if isinstance(condition, Tensor) else condition
    try:
        np.broadcast_shapes(np.shape(cond), a.shape, b.shape)
    except ValueError:
        raise ValueError(
            f"where: condition {tuple(np.shape(cond))}, input {tuple(a.shape)} and other "
            f"{tuple(b.shape)} cannot be broadcast together"
        ) from None
    return Where.apply(a, b, cond=cond.astype(bool) if hasattr(cond, "astype") else cond)


class MaskedFill(Function):
    def forward(self, a, mask=None, value=0.0):
        self.mask, self.shape = mask, a.shape
        return array_module(a).where(mask, a.dtype.type(value), a)

    def backward(self, g):
        return unbroadcast(array_module(g).where(self.mask, g.dtype.type(0), g), self.shape)


def masked_fill(a, mask, value):
    """Replace the elements where ``mask`` is True by ``value``."""
    Tensor = _tensor_cls()
    m = mask.data if isinstance(mask, Tensor) else mask
    if m.dtype != bool:
        raise TypeError(f"masked_fill: mask must be a bool tensor, got dtype {m.dtype}")
    try:
        np.broadcast_shapes(m.shape, a.shape)
    except ValueError:
        raise _broadcast_error("masked_fill", a.shape, m.shape) from None
    return MaskedFill.apply(a, mask=m, value=value)


class Tri(Function):
    def forward(self, a, k=0, upper=False):
        self.k, self.upper = k, upper
        xp = array_module(a)
        return xp.triu(a, k) if upper else xp.tril(a, k)

    def backward(self, g):
        xp = array_module(g)
        return xp.triu(g, self.k) if self.upper else xp.tril(g, self.k)


def tril(a, diagonal: int = 0):
    """Keep the lower triangle (``j <= i + diagonal``) of the last two dims, zero the rest."""
    return Tri.apply(a, k=diagonal)


def triu(a, diagonal: int = 0):
    """Keep the upper triangle (``j >= i + diagonal``) of the last two dims, zero the rest."""
    return Tri.apply(a, k=diagonal, upper=True)


def one_hot(indices, num_classes: int = -1):
    """int64 one-hot encoding with a new last dimension of size ``num_classes``."""
    xp = array_module(indices)
    idx = indices.data
    if idx.dtype.kind not in "iu":
        raise TypeError(f"one_hot: indices must be an integer tensor, got {idx.dtype}")
    if num_classes < 0:
        num_classes = int(idx.max()) + 1 if idx.size else 0
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= num_classes):
        raise ValueError(f"one_hot: indices must lie in [0, {num_classes}), got {int(idx.min())}..{int(idx.max())}")
    out = (idx[..., None] == xp.arange(num_classes)).astype(np.int64)
    return _no_grad_result(indices, out)


class Embedding(Function):
    def forward(self, weight, idx=None):
        self.idx, self.shape = idx, weight.shape
        return weight[idx]

    def backward(self, g):
        xp = array_module(g)
        out = xp.zeros(self.shape, dtype=g.dtype)
        flat, rows = self.idx.reshape(-1), g.reshape(-1, self.shape[1])
        if xp is np and flat.size:
            # Sort, then sum runs of equal ids: several times faster than np.add.at on the CPU.
            order = np.argsort(flat, kind="stable")
            ids, starts = np.unique(flat[order], return_index=True)
            out[ids] = np.add.reduceat(rows[order], starts, axis=0)
        else:
            scatter_add(xp, out, flat, rows)
        return out


def embedding(input, weight):
    """Rows of ``weight`` picked by the integer tensor ``input`` (gradients scatter-add)."""
    idx = input.data if isinstance(input, _tensor_cls()) else np.asarray(input)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be an integer tensor, got dtype {idx.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, dim), got shape {tuple(weight.shape)}")
    # Bounds are checked on the CPU only: on a GPU the check would cost a host sync every step.
    if idx.size and isinstance(idx, np.ndarray):
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= weight.shape[0]:
            raise IndexError(
                f"embedding: index {hi if hi >= weight.shape[0] else lo} is out of range for "
                f"{weight.shape[0]} embeddings"
            )
    return Embedding.apply(weight, idx=idx)


class Gather(Function):
    def forward(self, a, dim=0, index=None):
        self.shape, self.dim, self.index = a.shape, dim, index
        return array_module(a).take_along_axis(a, index, axis=dim)

    def backward(self, g):
        xp = array_module(g)
        out = xp.zeros(self.shape, dtype=g.dtype)
        # a list: NumPy 2 returns a tuple, and the gather dim's grid is replaced by the index
        grids = list(xp.meshgrid(*[xp.arange(n) for n in self.index.shape], indexing="ij"))
        grids[self.dim] = self.index
        scatter_add(xp, out, tuple(grids), g)
        return out


def gather(a, dim: int, index):
    """``out[i][j] = a[i][index[i][j]]`` along ``dim``, as torch.gather."""
    d = _dim(dim, a.ndim, "gather")
    idx = index.data if hasattr(index, "data") else np.asarray(index)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"gather: index must be an integer tensor, got dtype {idx.dtype}")
    if idx.ndim != a.ndim:
        raise ValueError(f"gather: index {tuple(idx.shape)} and input {tuple(a.shape)} need the same number of dims")
    if idx.size and (int(idx.min()) < -a.shape[d] or int(idx.max()) >= a.shape[d]):
        bad = int(idx.max()) if int(idx.max()) >= a.shape[d] else int(idx.min())
        raise IndexError(f"gather: index {bad} is out of range for dimension {d} of size {a.shape[d]}")
    return Gather.apply(a, dim=d, index=idx)


# ================================================================================================
# matmul
# ================================================================================================
class MatMul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return kernels.matmul(a, b)

    def backward(self, g):
        na, nb = self.needs_input_grad
        a, b = self.a, self.b
        ga = unbroadcast(kernels.matmul(g, b.swapaxes(-1, -2)), a.shape) if na else None
        gb = unbroadcast(kernels.matmul(a.swapaxes(-1, -2), g), b.shape) if nb else None
        return ga, gb


def matmul(a, b):
    """Matrix product with NumPy's rules (1-D operands, batched broadcasting).

    The kernel is the one selected with :func:`tensorlite.kernels.use` (BLAS by default).
    """
    a, b = _pair(a, b, "matmul")
    if _amp.dtype is not None:
        a, b = _autocast_lower(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got {tuple(a.shape)} @ {tuple(b.shape)}")
    ka = a.shape[-1]
    kb = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if ka != kb:
        raise ValueError(
            f"matmul: {tuple(a.shape)} @ {tuple(b.shape)}: inner dimensions {ka} and {kb} differ"
        )
    if a.ndim > 2 and b.ndim > 2:
        try:
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise ValueError(
                f"matmul: {tuple(a.shape)} @ {tuple(b.shape)}: batch dimensions "
                f"{tuple(a.shape[:-2])} and {tuple(b.shape[:-2])} cannot be broadcast"
            ) from None
    if a.ndim == 1 and b.ndim == 1:
        return sum(a * b)
    if a.ndim == 1:
        return squeeze(MatMul.apply(unsqueeze(a, 0), b), -2)
    if b.ndim == 1:
        return squeeze(MatMul.apply(a, unsqueeze(b, -1)), -1)
    return MatMul.apply(a, b)


# ================================================================================================
# softmax family and losses (fused: one node each, with a readable reference in the tests)
# ================================================================================================
def _softmax_array(x, axis):
    xp = array_module(x)
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


class Softmax(Function):
    def forward(self, a, dim=-1):
        self.dim = dim
        last = dim == a.ndim - 1
        self.out = fused.softmax_lastdim(a) if last else _softmax_array(a, dim)
        return self.out

    def backward(self, g):
        out = self.out
        if self.dim == out.ndim - 1:
            return fused.softmax_backward_lastdim(out, g)
        return out * (g - (g * out).sum(axis=self.dim, keepdims=True))


class LogSoftmax(Function):
    def forward(self, a, dim=-1):
        xp = array_module(a)
        self.dim = dim
        if dim == a.ndim - 1:
            self.out = fused.softmax_lastdim(a, log=True)
            return self.out
        shifted = a - a.max(axis=dim, keepdims=True)
        self.out = shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
        return self.out

    def backward(self, g):
        return g - array_module(g).exp(self.out) * g.sum(axis=self.dim, keepdims=True)


def softmax(a, dim: int = -1, _stacklevel: int = 3, dtype=None):
    """``exp(a) / sum(exp(a))`` along ``dim``, computed stably (max subtracted); ``dtype`` casts first."""
    if dtype is not None:
        a = cast(a, dtype)
    elif _amp.dtype is not None:
        (a,) = _autocast_fp32(a)
    return Softmax.apply(a, dim=_dim(dim, a.ndim, "softmax"))


def log_softmax(a, dim: int = -1, _stacklevel: int = 3, dtype=None):
    """``log(softmax(a))`` along ``dim`` without forming the softmax (no log(0)); ``dtype`` casts first."""
    if dtype is not None:
        a = cast(a, dtype)
    elif _amp.dtype is not None:
        (a,) = _autocast_fp32(a)
    return LogSoftmax.apply(a, dim=_dim(dim, a.ndim, "log_softmax"))


class CrossEntropy(Function):
    """Fused log-softmax + NLL: saves only the logits' per-row logsumexp (the input is kept by
    reference); backward recomputes the softmax straight into the gradient buffer."""

    def forward(self, logits, target=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        xp = array_module(logits)
        n, c = logits.shape
        lse = fused.logsumexp_rows(logits)
        valid = target != ignore_index
        safe = xp.where(valid, target, 0)
        nll = lse - logits[xp.arange(n), safe]
        if label_smoothing:  # the mean over classes of -log p = lse - mean(logits)
            nll *= 1 - label_smoothing
            nll += label_smoothing * (lse - logits.mean(axis=1))
        nll = xp.where(valid, nll, 0)
        self.logits, self.lse, self.safe, self.valid = logits, lse, safe, valid
        self.reduction, self.smoothing = reduction, label_smoothing
        self.count = valid.sum()
        if reduction == "mean":
            return (nll.sum() / xp.maximum(self.count, 1)).astype(logits.dtype)
        if reduction == "sum":
            return nll.sum()
        return nll

    def backward(self, g):
        xp = array_module(g)
        weight = self.valid.astype(self.logits.dtype)  # d loss / d nll_i
        weight *= g / xp.maximum(self.count, 1) if self.reduction == "mean" else g
        return fused.cross_entropy_backward(self.logits, self.lse, self.safe, weight, self.smoothing)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                  reduction: str = "mean", label_smoothing: float = 0.0):
    """Cross-entropy between ``input`` logits ``(N, C)`` and integer class ``target`` ``(N,)``.

    As torch: ``(C,)`` with a 0-d target, and ``(N, C, d1, ...)`` with ``(N, d1, ...)`` targets,
    are accepted too. Targets equal to ``ignore_index`` contribute nothing, and the mean is over
    the remaining ones. ``weight`` (one per class) weighs each target's term, and the mean is then
    over the weights of the counted targets (torch's definition).
    """
    _no_legacy_reduction("cross_entropy", size_average, reduce)
    if weight is not None:
        if label_smoothing:
            raise ValueError("cross_entropy: weight together with label_smoothing is not supported")
        return nll_loss(log_softmax(input, 1 if input.ndim > 1 else 0), target, weight,
                        ignore_index=ignore_index, reduction=reduction)
    Tensor = _tensor_cls()
    if _amp.dtype is not None:
        (input,) = _autocast_fp32(input)
    if not isinstance(target, Tensor):
        target = as_tensor_like(target, input)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if target.data.dtype.kind not in "iu":
        raise TypeError(
            f"cross_entropy: target must hold integer class indices, got dtype {target.dtype}"
        )
    if input.ndim == 1:
        out = cross_entropy(unsqueeze(input, 0), reshape(target, 1), ignore_index=ignore_index,
                            reduction=reduction, label_smoothing=label_smoothing)
        return out if reduction != "none" else squeeze(out, 0)
    if input.ndim > 2:  # (N, C, d1, ...) -> (N*d1*..., C)
        c = input.shape[1]
        moved = permute(input, 0, *range(2, input.ndim), 1)
        flat = cross_entropy(reshape(moved, -1, c), reshape(target, -1), ignore_index=ignore_index,
                             reduction=reduction, label_smoothing=label_smoothing)
        return flat if reduction != "none" else reshape(flat, *target.shape)
    n, c = input.shape
    if target.shape != (n,):
        raise ValueError(
            f"cross_entropy: input {tuple(input.shape)} needs target of shape ({n},), got {tuple(target.shape)}"
        )
    t = target.data
    bad = (t != ignore_index) & ((t < 0) | (t >= c))
    if isinstance(t, np.ndarray) and bad.any():  # CPU only: on a GPU this would sync every step
        raise IndexError(
            f"cross_entropy: target {int(t[bad][0])} is out of range for {c} classes"
        )
    return CrossEntropy.apply(
        input, target=t, ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing
    )


def _no_legacy_reduction(op, size_average, reduce):
    if size_average is not None or reduce is not None:
        raise TypeError(
            f"{op}: size_average and reduce are deprecated in torch and not supported here; "
            "use reduction='mean' | 'sum' | 'none'"
        )


def nll_loss(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
             reduction: str = "mean"):
    """Negative log-likelihood of integer ``target`` under log-probabilities ``input``, as torch.

    ``input`` is ``(N, C)``, ``(C,)`` or ``(N, C, d1, ...)``; ``target`` has the shape without the
    class dim. Targets equal to ``ignore_index`` count for nothing; ``weight`` (one per class)
    weighs each term, and ``reduction="mean"`` divides by the summed weights of the counted targets.
    """
    _no_legacy_reduction("nll_loss", size_average, reduce)
    if _amp.dtype is not None:
        (input,) = _autocast_fp32(input)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"nll_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    Tensor = _tensor_cls()
    if not isinstance(target, Tensor):
        target = as_tensor_like(target, input)
    if target.data.dtype.kind not in "iu":
        raise TypeError(f"nll_loss: target must hold integer class indices, got dtype {target.dtype}")
    if input.ndim == 0:
        raise ValueError("nll_loss: input needs a class dimension, got a 0-d tensor")
    cdim = 0 if input.ndim == 1 else 1
    c = input.shape[cdim]
    expected = tuple(input.shape[:cdim]) + tuple(input.shape[cdim + 1:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"nll_loss: input {tuple(input.shape)} needs target of shape {expected}, got {tuple(target.shape)}"
        )
    if weight is not None and tuple(weight.shape) != (c,):
        raise ValueError(f"nll_loss: weight must have shape ({c},) (one per class), got {tuple(weight.shape)}")
    xp = array_module(input)
    t = target.data
    valid = t != ignore_index
    safe = xp.where(valid, t, 0)
    if isinstance(t, np.ndarray) and ((safe < 0) | (safe >= c)).any():
        raise IndexError(f"nll_loss: target {int(safe[(safe < 0) | (safe >= c)][0])} is out of range for {c} classes")
    picked = squeeze(gather(input, cdim, _tensor_cls()._wrap(xp.expand_dims(safe, cdim), input.device, False)), cdim)
    w = xp.asarray(valid, dtype=input.dtype)
    if weight is not None:
        w = w * weight.data[safe]
    losses = -picked * _tensor_cls()._wrap(w, input.device, False)
    if reduction == "none":
        return losses
    total = sum(losses)
    if reduction == "sum":
        return total
    denom = _tensor_cls()._wrap(w.sum().astype(input.dtype), input.device, False)
    with np.errstate(invalid="ignore", divide="ignore"):  # nothing counted: nan, as torch
        return div(total, denom)


def mse_loss(input, target, reduction: str = "mean"):
    """Mean squared error."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"mse_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if _amp.dtype is not None:
        (input,) = _autocast_fp32(input)
        if isinstance(target, _tensor_cls()):
            (target,) = _autocast_fp32(target)
    _check_broadcast("mse_loss", input.shape, np.shape(target.data if hasattr(target, "data") else target))
    diff = sub(input, target)
    sq = diff * diff
    if reduction == "mean":
        return mean(sq)
    if reduction == "sum":
        return sum(sq)
    return sq


class LayerNorm(Function):
    """Fused layer norm (``kernels.fused.layer_norm``): saves the normalised input and one
    reciprocal std per row."""

    def forward(self, x, w=None, b=None, n_axes=1, eps=1e-5):
        out, self.xhat, self.rstd = fused.layer_norm(x, w, b, n_axes, eps)
        self.w, self.has_b, self.shape = w, b is not None, x.shape
        return out

    def backward(self, g):
        need, w = self.needs_input_grad, self.w
        want_w = w is not None and need[1]
        want_b = self.has_b and need[2]
        dx, dw, db = fused.layer_norm_backward(g, self.xhat, self.rstd, w, want_w, want_b)
        dx = dx.reshape(self.shape)
        if w is None:
            return (dx,)
        dw = None if dw is None else dw.reshape(w.shape)
        if not self.has_b:
            return dx, dw
        return dx, dw, (None if db is None else db.reshape(w.shape))


def _norm_shape(x, normalized_shape, op):
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(normalized_shape)
    if tuple(x.shape[x.ndim - len(normalized_shape):]) != normalized_shape:
        raise ValueError(
            f"{op}: input of shape {tuple(x.shape)} does not end with normalized_shape {normalized_shape}"
        )
    return normalized_shape


def _check_affine(op, ns, **params):
    for name, p in params.items():
        if p is not None and tuple(p.shape) != ns:
            raise ValueError(f"{op}: {name} of shape {tuple(p.shape)} does not match normalized_shape {ns}")


def layer_norm(x, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    """Normalise over the trailing ``normalized_shape`` dims to zero mean and unit variance, then
    scale by ``weight`` and shift by ``bias`` (fused: one node)."""
    if _amp.dtype is not None:
        x, weight, bias = _autocast_fp32(x, weight, bias)
    ns = _norm_shape(x, normalized_shape, "layer_norm")
    _check_affine("layer_norm", ns, weight=weight, bias=bias)
    if bias is not None and weight is None:
        raise ValueError("layer_norm: a bias without a weight is not supported")
    inputs = [t for t in (x, weight, bias) if t is not None]
    return LayerNorm.apply(*inputs, n_axes=len(ns), eps=eps)


class RMSNorm(Function):
    """Fused RMS norm (``kernels.fused.rms_norm``): saves the normalised input and one scale per row."""

    def forward(self, x, w=None, n_axes=1, eps=1e-6):
        out, self.xhat, self.r = fused.rms_norm(x, w, n_axes, eps)
        self.w, self.shape = w, x.shape
        return out

    def backward(self, g):
        w = self.w
        want_w = w is not None and self.needs_input_grad[1]
        dx, dw = fused.rms_norm_backward(g, self.xhat, self.r, w, want_w)
        dx = dx.reshape(self.shape)
        if w is None:
            return (dx,)
        return dx, (None if dw is None else dw.reshape(w.shape))


def rms_norm(x, normalized_shape, weight=None, eps: float | None = 1e-6):
    """Scale to unit root-mean-square over the trailing dims: ``x / sqrt(mean(x^2) + eps) * weight``.

    ``eps=0`` is allowed (it is what a buggy RMSNorm does: an all-zero row then gives NaN).
    """
    if _amp.dtype is not None:
        x, weight = _autocast_fp32(x, weight)
    ns = _norm_shape(x, normalized_shape, "rms_norm")
    _check_affine("rms_norm", ns, weight=weight)
    if eps is None:
        eps = float(np.finfo(x.dtype).eps)
    inputs = [x] if weight is None else [x, weight]
    return RMSNorm.apply(*inputs, n_axes=len(ns), eps=eps)


class Dropout(Function):
    def forward(self, x, p=0.5, mask=None):
        self.scaled_mask = mask.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
        return x * self.scaled_mask

    def backward(self, g):
        return g * self.scaled_mask


def dropout(x, p: float = 0.5, training: bool = True):
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)`` (training only)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    mask = generator(x.device).random(x.shape, dtype=np.float32) >= p
    return Dropout.apply(x, p=p, mask=mask)


# ================================================================================================
# attention
# ================================================================================================
def causal_mask(xp, t_q: int, t_k: int):
    """Boolean ``(t_q, t_k)`` mask, True where query i may attend key j.

    Queries are the *last* ``t_q`` positions of the ``t_k`` keys (bottom-right aligned), which is
    what KV-cache decoding needs; for ``t_q == t_k`` it is the usual lower triangle.
    """
    return xp.tril(xp.ones((t_q, t_k), dtype=bool), k=t_k - t_q)


class Attention(Function):
    """Fused ``softmax(q k^T * scale + mask) v``: one node, saving only the attention weights
    (``kernels.attention.fused_forward``: blocks of batch x heads on the thread pool)."""

    def forward(self, q, k, v, mask=None, scale=1.0):
        out, self.p, batch = attention_kernels.fused_forward(q, k, v, mask, scale)
        self.q, self.k, self.v, self.scale = q, k, v, scale
        return out.reshape(batch + out.shape[-2:])

    def backward(self, g):
        q, k, v = self.q, self.k, self.v
        dq, dk, dv = attention_kernels.fused_backward(g, q, k, v, self.p, self.scale)
        return _unflatten_grads(dq, dk, dv, q, k, v, g.shape[:-2])


class TiledAttention(Function):
    """Attention that never forms the ``Tq x Tk`` scores (``kernels.attention.tiled_forward``):
    saves q, k, v, the output and one logsumexp per query row; backward recomputes each tile."""

    def forward(self, q, k, v, mask=None, scale=1.0, causal=False, block_size=128):
        out, self.lse, batch = attention_kernels.tiled_forward(q, k, v, mask, scale, causal, block_size, block_size)
        self.q, self.k, self.v, self.out, self.mask = q, k, v, out, mask
        self.scale, self.causal, self.block = scale, causal, block_size
        return out.reshape(batch + out.shape[-2:])

    def backward(self, g):
        q, k, v = self.q, self.k, self.v
        dq, dk, dv = attention_kernels.tiled_backward(g, q, k, v, self.out, self.lse, self.mask, self.scale,
                                                      self.causal, self.block, self.block)
        return _unflatten_grads(dq, dk, dv, q, k, v, g.shape[:-2])


class PackedSelfAttention(Function):
    """Self-attention straight from a ``Linear(d, 3d)``'s packed ``(B, T, 3C)`` output to the
    merged ``(B, T, C)``: head split, attention and head merge in one node. Backward writes
    ``dq``, ``dk``, ``dv`` into one ``(B, T, 3C)`` gradient, where three separate head-split
    nodes would each send a zero-padded ``(B, T, 3C)`` array for autograd to add up."""

    def forward(self, qkv, n_heads=1, causal=True, scale=1.0, tiled=False, block_size=128):
        b, t, c3 = qkv.shape
        self.split = (b, t, 3, n_heads, c3 // (3 * n_heads))
        q, k, v = _heads(qkv.reshape(self.split))
        self.q, self.k, self.v, self.scale, self.tiled = q, k, v, scale, tiled
        if tiled:
            out, self.lse, _ = attention_kernels.tiled_forward(q, k, v, None, scale, causal, block_size, block_size)
            self.out, self.causal, self.block = out, causal, block_size
        else:
            mask = causal_mask(array_module(qkv), t, t) if causal else None
            out, self.p, _ = attention_kernels.fused_forward(q, k, v, mask, scale)
        return out.transpose(0, 2, 1, 3).reshape(b, t, c3 // 3)

    def backward(self, g):
        b, t, _, h, hd = self.split
        g4 = g.reshape(b, t, h, hd).transpose(0, 2, 1, 3)
        xp = array_module(g)
        dqkv = (xp.zeros if self.tiled else xp.empty)(self.split, dtype=g.dtype)
        views = _heads(dqkv)
        if self.tiled:
            attention_kernels.tiled_backward(g4, self.q, self.k, self.v, self.out, self.lse, None, self.scale,
                                             self.causal, self.block, self.block, grads=views)
        else:
            attention_kernels.fused_backward(g4, self.q, self.k, self.v, self.p, self.scale, out=views)
        return dqkv.reshape(b, t, -1)


def _heads(parts):
    """``(q, k, v)`` as ``(B, H, T, D)`` views of a ``(B, T, 3, H, D)`` array."""
    return tuple(parts[:, :, i].transpose(0, 2, 1, 3) for i in range(3))


def packed_self_attention(qkv, n_heads: int, is_causal: bool = True, scale=None, tiled: bool = False,
                          block_size: int = 128):
    """Multi-head self-attention of the packed ``(B, T, 3C)`` ``q|k|v`` (heads of ``C / n_heads``)
    as one node: ``merge_heads(sdpa(split_heads(qkv)))`` (``tiled=True``: with the tiled kernel)."""
    if qkv.ndim != 3 or qkv.shape[-1] % (3 * n_heads):
        raise ValueError(
            f"packed_self_attention: qkv must be (B, T, 3 * C) with C divisible by n_heads={n_heads}, "
            f"got {tuple(qkv.shape)}"
        )
    if scale is None:
        scale = 1.0 / math.sqrt(qkv.shape[-1] // (3 * n_heads))
    if _amp.dtype is not None:  # autocast: attention in float16, as scaled_dot_product_attention
        (qkv,) = _autocast_lower(qkv)
    return PackedSelfAttention.apply(qkv, n_heads=n_heads, causal=bool(is_causal), scale=scale, tiled=tiled,
                                     block_size=block_size)


def _unflatten_grads(dq, dk, dv, q, k, v, batch):
    """The kernels' gradients in the inputs' shapes (summed over broadcast batch dims)."""
    return tuple(unbroadcast(d.reshape(tuple(batch) + d.shape[-2:]), t.shape)
                 for d, t in ((dq, q), (dk, k), (dv, v)))


def _attention_args(q, k, v, attn_mask, is_causal, scale):
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.ndim < 2:
            raise ValueError(f"scaled_dot_product_attention: {name} needs shape (..., T, D), got {tuple(t.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"scaled_dot_product_attention: q {tuple(q.shape)} and k {tuple(k.shape)}: "
            f"head dims {q.shape[-1]} and {k.shape[-1]} differ"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"scaled_dot_product_attention: k {tuple(k.shape)} and v {tuple(v.shape)}: "
            f"key counts {k.shape[-2]} and {v.shape[-2]} differ"
        )
    try:
        batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except ValueError:
        raise ValueError(
            f"scaled_dot_product_attention: batch dims of q {tuple(q.shape)}, k {tuple(k.shape)} "
            f"and v {tuple(v.shape)} cannot be broadcast together"
        ) from None
    xp = array_module(q)
    mask = None
    if attn_mask is not None:
        mask = attn_mask.data if isinstance(attn_mask, _tensor_cls()) else xp.asarray(attn_mask)
        scores = tuple(batch) + (q.shape[-2], k.shape[-2])
        try:
            np.broadcast_shapes(mask.shape, scores)
        except ValueError:
            raise ValueError(
                f"scaled_dot_product_attention: attn_mask {tuple(mask.shape)} does not broadcast to "
                f"the scores {scores} (batch..., queries, keys)"
            ) from None
    if is_causal:
        cm = causal_mask(xp, q.shape[-2], k.shape[-2])
        mask = cm if mask is None else (mask & cm if mask.dtype == bool else xp.where(cm, mask, -xp.inf))
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    return mask, scale


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale=None, enable_gqa: bool = False, *, mask=None):
    """Fused attention ``softmax(query @ key^T * scale + mask) @ value`` over the last two dims,
    with torch's arguments.

    ``attn_mask`` (alias ``mask``) broadcasts to the scores ``(..., T_q, T_k)``: boolean (True =
    may attend) or additive float (``-inf`` blocks). A query that may attend no key gets a zero
    output and zero gradients, as in torch. ``scale`` defaults to ``1/sqrt(head_dim)``.
    ``dropout_p`` drops attention weights (always: pass ``0.0`` at eval, as torch expects).
    ``enable_gqa`` lets ``key``/``value`` have fewer heads (dim -3) than ``query``; each is then
    shared by ``H_q / H_kv`` query heads.

    ``is_causal`` lets query i see keys up to its own position, combined with ``attn_mask`` when
    both are given (as torch). With fewer queries than keys the queries are taken to be the *last*
    ones (bottom-right, what KV-cache decoding needs); torch aligns them top-left instead. For
    ``T_q == T_k``, the usual case, the two agree.
    """
    if mask is not None:
        if attn_mask is not None:
            raise ValueError("scaled_dot_product_attention: pass attn_mask or its alias mask, not both")
        attn_mask = mask
    q, k, v = query, key, value
    if _amp.dtype is not None:
        q, k, v = _autocast_lower(q, k, v)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1), got {dropout_p}")
    if enable_gqa:
        k, v = _repeat_kv_heads(q, k, "key"), _repeat_kv_heads(q, v, "value")
    m, s = _attention_args(q, k, v, attn_mask, is_causal, scale)
    dead = _dead_queries(m) if attn_mask is not None else None
    if dead is not None:  # rows that see no key: attend anywhere, then zero them (torch's answer)
        m = m | dead if m.dtype == bool else array_module(m).where(dead, 0.0, m)
    if dropout_p > 0.0:
        out, _ = attention_reference(q, k, v, m, scale=s, dropout_p=dropout_p, _resolved=True)
    else:
        out = Attention.apply(q, k, v, mask=m, scale=s)
    if dead is not None:
        out = masked_fill(out, dead, 0.0)
    return out


def _repeat_kv_heads(q, kv, name):
    """``kv`` with each of its ``H_kv`` heads repeated for ``H_q / H_kv`` query heads (dim -3)."""
    if q.ndim < 3 or kv.ndim < 3 or q.shape[-3] % kv.shape[-3]:
        raise ValueError(
            f"scaled_dot_product_attention: enable_gqa needs query heads (dim -3) to be a multiple of "
            f"{name} heads, got query {tuple(q.shape)} and {name} {tuple(kv.shape)}"
        )
    n = q.shape[-3] // kv.shape[-3]
    return kv if n == 1 else repeat_interleave(kv, n, dim=-3)  # tensorlite/ops, imported at the end


def _dead_queries(m):
    """Bool ``(..., T_q, 1)``: queries the mask lets see no key, or None when there are none."""
    xp = array_module(m)
    dead = ~m.any(axis=-1, keepdims=True) if m.dtype == bool else xp.isneginf(m).all(axis=-1, keepdims=True)
    return dead if bool(dead.any()) else None


def tiled_attention(q, k, v, attn_mask=None, is_causal: bool = False, scale=None, block_size: int = 128):
    """:func:`scaled_dot_product_attention` computed over ``block_size`` key (and query) blocks
    with an online softmax, forward and backward, never forming the ``Tq x Tk`` scores: memory
    linear in the sequence length (FlashAttention-2's algorithm, see ``kernels/attention.py``).
    Same arguments and result as the fused op, within float rounding."""
    if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < 1:
        raise ValueError(f"tiled_attention: block_size must be a positive integer, got {block_size!r}")
    if _amp.dtype is not None:
        q, k, v = _autocast_lower(q, k, v)
    if attn_mask is not None or (is_causal and q.shape[-2] > k.shape[-2]):
        # a mask that may leave a query no key: resolved as scaled_dot_product_attention does
        m, s = _attention_args(q, k, v, attn_mask, is_causal, scale)
        dead = _dead_queries(m)
        if dead is not None:
            m = m | dead if m.dtype == bool else array_module(m).where(dead, 0.0, m)
        out = TiledAttention.apply(q, k, v, mask=m, scale=s, causal=False, block_size=block_size)
        return out if dead is None else masked_fill(out, dead, 0.0)
    m, s = _attention_args(q, k, v, None, False, scale)  # the causal mask is made tile by tile
    return TiledAttention.apply(q, k, v, mask=m, scale=s, causal=bool(is_causal), block_size=block_size)


def attention_reference(q, k, v, attn_mask=None, is_causal: bool = False, scale=None, dropout_p: float = 0.0,
                        _resolved: bool = False):
    """The same attention built from primitive ops: readable, slower, and the baseline the fused
    op is tested against. Returns ``(output, weights)``; with ``dropout_p`` the weights are the
    ones used (after dropout)."""
    if _resolved:  # mask and scale already resolved by scaled_dot_product_attention
        m, s = attn_mask, scale
    else:
        m, s = _attention_args(q, k, v, attn_mask, is_causal, scale)
    scores = matmul(q, transpose(k, -2, -1)) * s
    if m is not None:  # in the scores' dtype, which autocast makes float16 for float32 inputs
        if m.dtype == bool:
            scores = masked_fill(scores, ~m, float(np.finfo(scores.dtype).min))
        else:
            scores = scores + _tensor_cls()._wrap(m.astype(scores.dtype), q.device, False)
    weights = softmax(scores, -1)
    if dropout_p:
        weights = dropout(weights, dropout_p, True)
    return matmul(weights, v), weights


# ================================================================================================
# ops added for code written against torch (tensorlite/ops/, by family)
# ================================================================================================
from .ops import *  # noqa: E402, F403  (public names: ops/__init__.py's __all__)
from .ops.inplace import _check as _inplace_check  # noqa: E402
from .ops.shape import repeat_interleave  # noqa: E402
