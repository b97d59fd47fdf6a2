"""Fused forward and backward kernels of the memory-bound ops: GELU, LayerNorm, RMSNorm, softmax,
softmax + cross-entropy, and the Adam(W) update.

Written once for NumPy and CuPy (``xp`` is the array module of the input). On the CPU a large
array is cut into blocks of rows that tensorlite's thread pool (:mod:`.parallel`) runs: NumPy
releases the GIL inside every ufunc and reduction, so several cores work. Each kernel makes
its passes in place or into its outputs, one temporary at a time; the only full-size arrays are
the outputs and what backward needs. On a GPU the body runs once over the whole array (CuPy's own
kernels are parallel).

Row sums and means go through a matrix-vector product with a vector of ones: BLAS reads the
rows once with SIMD, about four times faster than NumPy's pairwise ``sum(axis=-1)`` over rows of
a hundred elements. The tasks therefore run with BLAS pinned to one thread (``blas=True``).

Every kernel has a readable reference built from primitive ops in :mod:`tensorlite.reference`,
and ``tests/test_fused.py`` compares them (values and gradients, float32 and float64, and with
torch).
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import array_module
from . import parallel

# Elements per block of the pool (and half the size below which an op runs on the calling thread
# alone): waking a worker and sharing the GIL cost tens of microseconds, which only an array of a
# few hundred thousand elements repays (bench/fused_ops.py).
GRAIN = 1 << 16
# The norms make about ten NumPy calls per block, each a short pass or a matrix-vector product
# with the mean vector, and each takes the GIL: two threads only repay it from about half a
# million elements (bench/fused_ops.py: 2048 x 64 and 2048 x 128 ran at 0.8x on two threads,
# 8192 x 128 at 1.7x).
NORM_GRAIN = 1 << 18

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


def _for_rows(xp, n_rows: int, row_size: int, body, blas: bool = True, grain: int = GRAIN) -> int:
    """Run ``body(i, lo, hi)`` over row blocks of about ``grain`` elements; returns the number of
    blocks (for partial sums). An array of fewer than ``2 * grain`` elements (most of decoding's)
    is one direct call, without the pool."""
    if xp is not np or n_rows * row_size < 2 * grain:
        body(0, 0, n_rows)
        return 1
    bounds = parallel.blocks(n_rows, max(1, grain // max(row_size, 1)))
    parallel.run(lambda i: body(i, *bounds[i]), len(bounds), blas=blas)
    return len(bounds)


_SMALL = 4096  # elements: below this an op is a handful of direct NumPy calls (decoding's rows)

def _ones(xp, n: int, dtype, value: float = 1.0):
    """A vector of ``n`` copies of ``value`` (made per call, about a microsecond: a kept one would
    make the memory a graph holds depend on which op ran first in the process)."""
    return xp.full((n,), value, dtype=dtype)


def column_sums(a2):
    """``a2.sum(axis=0)`` of a 2-D array as ``ones @ a2`` (BLAS: about three times faster)."""
    xp = array_module(a2)
    if a2.dtype.kind != "f":
        return a2.sum(axis=0)
    return _ones(xp, a2.shape[0], a2.dtype) @ a2


def _rows(a):
    """A contiguous 2-D ``(rows, last)`` view (a copy only if ``a`` is not contiguous)."""
    xp = array_module(a)
    a = xp.ascontiguousarray(a)
    return a.reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1)


# ---- GELU (tanh approximation) -------------------------------------------------------------------
def gelu_tanh(a):
    """``0.5 a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3)))``. Backward needs only ``a``."""
    xp = array_module(a)
    x = _rows(a)
    out = xp.empty_like(x)
    c1 = _GELU_C * _SQRT_2_OVER_PI

    def body(i, lo, hi):
        xb, o = x[lo:hi], out[lo:hi]
        xp.multiply(xb, xb, out=o)
        o *= c1
        o += _SQRT_2_OVER_PI
        o *= xb  # u = sqrt(2/pi) (a + 0.044715 a^3)
        xp.tanh(o, out=o)
        o += 1.0
        o *= xb
        o *= 0.5

    _for_rows(xp, x.shape[0], x.shape[1], body, blas=False)
    return out.reshape(np.shape(a))


def gelu_tanh_backward(a, g):
    """``g * d gelu/da``, recomputing ``tanh`` instead of keeping it from forward: one ``a``-sized
    array less per GELU in the graph (torch's choice too), for about a third more backward time
    (``bench/fused_ops.py``)::

        d/da = 0.5 (1 + t) + 0.5 a (1 - t^2) u'
        u = sqrt(2/pi) (a + 0.044715 a^3),   u' = sqrt(2/pi) (1 + 3 * 0.044715 a^2),   t = tanh(u)
    """
    xp = array_module(a)
    x, gr = _rows(a), _rows(g)
    out = xp.empty_like(x)
    c1 = _GELU_C * _SQRT_2_OVER_PI

    def body(i, lo, hi):
        xb, o = x[lo:hi], out[lo:hi]
        sq = xp.multiply(xb, xb)
        xp.multiply(sq, 1.5 * c1, out=o)
        o += 0.5 * _SQRT_2_OVER_PI  # 0.5 u'
        t = xp.multiply(sq, c1)
        t += _SQRT_2_OVER_PI
        t *= xb
        xp.tanh(t, out=t)
        xp.multiply(t, t, out=sq)
        xp.subtract(1.0, sq, out=sq)
        # 1 - t^2 before a: for a huge |a| it is 0, and a * u' alone would overflow (0 * inf = NaN)
        o *= sq
        o *= xb
        t += 1.0
        t *= 0.5
        o += t
        o *= gr[lo:hi]

    _for_rows(xp, x.shape[0], x.shape[1], body, blas=False)
    return out.reshape(np.shape(a))


# ---- LayerNorm / RMSNorm -------------------------------------------------------------------------
def layer_norm(x, w, b, n_axes: int, eps: float):
    """LayerNorm over the last ``n_axes`` dims: returns ``(out, xhat, rstd)``; ``xhat`` and
    ``rstd`` (one per row) are what backward needs."""
    xp = array_module(x)
    shape = x.shape
    d = math.prod(shape[len(shape) - n_axes:])
    x2 = xp.ascontiguousarray(x).reshape(-1, d)
    n = x2.shape[0]
    mean_vec = _ones(xp, d, x2.dtype, 1.0 / d)
    w2 = None if w is None else w.reshape(d)
    b2 = None if b is None else b.reshape(d)
    if x2.size <= _SMALL:  # a decoding step's row: the same formula with the fewest calls
        xhat = x2 - (x2 @ mean_vec)[:, None]
        rstd = xp.sqrt((xhat * xhat) @ mean_vec + eps)[:, None]
        xp.divide(1.0, rstd, out=rstd)
        xhat *= rstd
        out = xhat if w2 is None else xhat * w2
        if b2 is not None:
            out = out + b2
        return out.reshape(shape), xhat, rstd
    xhat = xp.empty_like(x2)
    out = xp.empty_like(x2) if w is not None or b is not None else xhat
    rstd = xp.empty((n, 1), dtype=x2.dtype)

    def body(i, lo, hi):
        xb, xh = x2[lo:hi], xhat[lo:hi]
        mu = xb @ mean_vec
        xp.subtract(xb, mu[:, None], out=xh)
        sq = xp.multiply(xh, xh)
        r = rstd[lo:hi]
        xp.matmul(sq, mean_vec, out=r[:, 0])
        r += eps
        xp.sqrt(r, out=r)
        xp.divide(1.0, r, out=r)
        xh *= r
        if w2 is not None:
            o = out[lo:hi]
            xp.multiply(xh, w2, out=o)
            if b2 is not None:
                o += b2
        elif b2 is not None:
            xp.add(xh, b2, out=out[lo:hi])

    _for_rows(xp, n, d, body, grain=NORM_GRAIN)
    return out.reshape(shape), xhat, rstd


def layer_norm_backward(g, xhat, rstd, w, want_w: bool, want_b: bool):
    """``(dx, dw, db)`` of :func:`layer_norm` from the output gradient ``g``::

        dxhat = g * w
        dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))

    The two row means come from ``g`` and ``g * xhat`` as products with ``w / d``, so ``dxhat``
    is formed once, in the output buffer (ten passes over the rows where the formula reads
    eleven).
    """
    xp = array_module(g)
    n, d = xhat.shape
    g2 = xp.ascontiguousarray(g).reshape(n, d)
    dx = xp.empty_like(xhat)
    w2 = None if w is None else w.reshape(d)
    w_mean = _ones(xp, d, xhat.dtype, 1.0 / d) if w2 is None else w2 * (1.0 / d)
    partial = {}

    def body(i, lo, hi):
        gb, xh, dxb = g2[lo:hi], xhat[lo:hi], dx[lo:hi]
        ones_rows = _ones(xp, hi - lo, xhat.dtype)
        gx = xp.multiply(gb, xh)
        partial[i] = (ones_rows @ gx if want_w else None, ones_rows @ gb if want_b else None)
        proj = gx @ w_mean  # mean(dxhat * xhat)
        mdx = gb @ w_mean  # mean(dxhat)
        if w2 is not None:
            xp.multiply(gb, w2, out=dxb)  # dxhat
        else:
            dxb[...] = gb
        dxb -= mdx[:, None]
        xp.multiply(xh, proj[:, None], out=gx)
        dxb -= gx
        dxb *= rstd[lo:hi]

    n_blocks = _for_rows(xp, n, d, body, grain=NORM_GRAIN)
    dw = db = None
    if want_w:
        dw = partial[0][0] if n_blocks == 1 else sum(partial[i][0] for i in range(n_blocks))
    if want_b:
        db = partial[0][1] if n_blocks == 1 else sum(partial[i][1] for i in range(n_blocks))
    return dx, dw, db


def rms_norm(x, w, n_axes: int, eps: float):
    """RMSNorm over the last ``n_axes`` dims: ``(out, xhat, r)`` with ``r = 1/sqrt(mean(x^2) + eps)``."""
    xp = array_module(x)
    shape = x.shape
    d = math.prod(shape[len(shape) - n_axes:])
    x2 = xp.ascontiguousarray(x).reshape(-1, d)
    n = x2.shape[0]
    xhat = xp.empty_like(x2)
    out = xp.empty_like(x2) if w is not None else xhat
    r_all = xp.empty((n, 1), dtype=x2.dtype)
    mean_vec = _ones(xp, d, x2.dtype, 1.0 / d)
    w2 = None if w is None else w.reshape(d)

    def body(i, lo, hi):
        xb, xh, r = x2[lo:hi], xhat[lo:hi], r_all[lo:hi]
        xp.multiply(xb, xb, out=xh)
        xp.matmul(xh, mean_vec, out=r[:, 0])
        r += eps
        xp.sqrt(r, out=r)
        xp.divide(1.0, r, out=r)
        xp.multiply(xb, r, out=xh)
        if w2 is not None:
            xp.multiply(xh, w2, out=out[lo:hi])

    _for_rows(xp, n, d, body, grain=NORM_GRAIN)
    return out.reshape(shape), xhat, r_all


def rms_norm_backward(g, xhat, r, w, want_w: bool):
    """``(dx, dw)`` of :func:`rms_norm`: ``dx = r * (dxhat - xhat * mean(dxhat * xhat))``."""
    xp = array_module(g)
    n, d = xhat.shape
    g2 = xp.ascontiguousarray(g).reshape(n, d)
    dx = xp.empty_like(xhat)
    mean_vec = _ones(xp, d, xhat.dtype, 1.0 / d)
    w2 = None if w is None else w.reshape(d)
    partial = {}

    def body(i, lo, hi):
        gb, xh, dxb = g2[lo:hi], xhat[lo:hi], dx[lo:hi]
        gx = xp.multiply(gb, xh)
        if want_w:
            partial[i] = _ones(xp, hi - lo, xhat.dtype) @ gx
        if w2 is not None:
            gx *= w2
            xp.multiply(gb, w2, out=dxb)
        else:
            dxb[...] = gb
        proj = gx @ mean_vec
        xp.multiply(xh, proj[:, None], out=gx)
        dxb -= gx
        dxb *= r[lo:hi]

    n_blocks = _for_rows(xp, n, d, body, grain=NORM_GRAIN)
    dw = None
    if want_w:
        dw = partial[0] if n_blocks == 1 else sum(partial[i] for i in range(n_blocks))
    return dx, dw


# ---- softmax and cross-entropy over the last axis ------------------------------------------------
def softmax_lastdim(a, log: bool = False):
    """Softmax (or log-softmax) over the last axis, max-subtracted, in one output buffer."""
    xp = array_module(a)
    x = _rows(a)
    out = xp.empty_like(x)
    ones = _ones(xp, x.shape[1], x.dtype)

    def body(i, lo, hi):
        xb, o = x[lo:hi], out[lo:hi]
        xp.subtract(xb, xb.max(axis=1, keepdims=True), out=o)
        if log:
            e = xp.exp(o)
            o -= xp.log(e @ ones)[:, None]
        else:
            xp.exp(o, out=o)
            o /= (o @ ones)[:, None]

    _for_rows(xp, x.shape[0], x.shape[1], body)
    return out.reshape(np.shape(a))


def softmax_backward_lastdim(out, g):
    """``out * (g - sum(g * out))`` over the last axis (the softmax's vector-Jacobian product)."""
    xp = array_module(out)
    y, gr = _rows(out), _rows(g)
    dx = xp.empty_like(y)
    ones = _ones(xp, y.shape[1], y.dtype)

    def body(i, lo, hi):
        yb, d = y[lo:hi], dx[lo:hi]
        xp.multiply(gr[lo:hi], yb, out=d)
        s = d @ ones
        xp.subtract(gr[lo:hi], s[:, None], out=d)
        d *= yb

    _for_rows(xp, y.shape[0], y.shape[1], body)
    return dx.reshape(np.shape(out))


def logsumexp_rows(logits):
    """``log(sum(exp(logits), axis=1))`` of a 2-D array, max-shifted: shape ``(N,)``."""
    xp = array_module(logits)
    x = xp.ascontiguousarray(logits)
    n, c = x.shape
    lse = xp.empty((n,), dtype=x.dtype)
    ones = _ones(xp, c, x.dtype)

    def body(i, lo, hi):
        xb = x[lo:hi]
        m = xb.max(axis=1)
        e = xp.subtract(xb, m[:, None])
        xp.exp(e, out=e)
        xp.log(e @ ones, out=lse[lo:hi])
        lse[lo:hi] += m

    _for_rows(xp, n, c, body)
    return lse


def cross_entropy_backward(logits, lse, target, weight_rows, smoothing: float):
    """Gradient of ``sum_i weight_rows[i] * nll_i`` with respect to the logits ``(N, C)``:
    ``weight_rows[i] * (softmax(logits_i) - onehot(target_i) (1 - s) - s / C)``.

    Only the logits and their per-row logsumexp come from forward; the softmax is recomputed
    into the gradient buffer (it would be an ``(N, C)`` array kept alive otherwise).
    """
    xp = array_module(logits)
    n, c = logits.shape
    grad = xp.empty_like(logits)

    def body(i, lo, hi):
        gb = grad[lo:hi]
        xp.subtract(logits[lo:hi], lse[lo:hi, None], out=gb)
        xp.exp(gb, out=gb)
        if smoothing:
            gb -= smoothing / c
        rows = xp.arange(hi - lo)
        gb[rows, target[lo:hi]] -= 1.0 - smoothing
        gb *= weight_rows[lo:hi, None]

    _for_rows(xp, n, c, body, blas=False)
    return grad


# ---- Adam / AdamW --------------------------------------------------------------------------------
def adam_update_(p, grad, exp_avg, exp_avg_sq, *, lr: float, beta1: float, beta2: float, eps: float,
                 step: int, decoupled_decay: float = 0.0) -> None:
    """One Adam step in place on ``p``, ``exp_avg`` and ``exp_avg_sq`` (torch's formula)::

        p *= 1 - decoupled_decay                       (AdamW: lr * weight_decay)
        m = beta1 m + (1 - beta1) g
        v = beta2 v + (1 - beta2) g^2
        p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Block by block with one block-sized temporary; the bias corrections are host floats (no
    device sync on a GPU).
    """
    xp = array_module(p)
    step_size = lr / (1.0 - beta1**step)
    inv_bc2 = 1.0 / math.sqrt(1.0 - beta2**step)
    if xp is not np or p.size < 2 * GRAIN or not (p.flags.c_contiguous and grad.flags.c_contiguous):
        # one block: a small parameter (most of a GPT's) pays no pool overhead
        _adam_block(xp, p, grad, exp_avg, exp_avg_sq, step_size, inv_bc2, beta1, beta2, eps, decoupled_decay)
        return
    fp, fg, fm, fv = p.reshape(-1), grad.reshape(-1), exp_avg.reshape(-1), exp_avg_sq.reshape(-1)

    def body(i, lo, hi):
        _adam_block(xp, fp[lo:hi], fg[lo:hi], fm[lo:hi], fv[lo:hi], step_size, inv_bc2, beta1, beta2, eps,
                    decoupled_decay)

    _for_rows(xp, fp.size, 1, body, blas=False)


def _adam_block(xp, p, g, m, v, step_size, inv_bc2, beta1, beta2, eps, decay) -> None:
    if decay:
        p *= 1.0 - decay
    t = xp.multiply(g, 1.0 - beta1, out=xp.empty_like(m))  # an array even for 0-d parameters
    m *= beta1
    m += t
    xp.multiply(g, g, out=t)
    t *= 1.0 - beta2
    v *= beta2
    v += t
    xp.sqrt(v, out=t)
    t *= inv_bc2
    t += eps
    xp.divide(m, t, out=t)
    t *= step_size
    p -= t
