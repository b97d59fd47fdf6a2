"""Attention kernels: the fused one that keeps the attention weights, and the tiled one that
never forms them.

Both take arrays ``q (..., Tq, D)``, ``k (..., Tk, D)``, ``v (..., Tk, Dv)`` with broadcastable
batch dims, a ``mask`` (None, boolean with True = may attend, or additive float) that broadcasts
to ``(..., Tq, Tk)``, and a ``scale``, and work on NumPy or CuPy arrays (``xp``). On the CPU the first batch dim is
cut into blocks that tensorlite's thread pool runs with BLAS pinned to one thread each: every
block is a few large batched matmuls on views of the inputs (nothing is copied to make them
contiguous), so the GIL is seldom contended.

* :func:`fused_forward` / :func:`fused_backward`: ``softmax(q k^T * scale + mask) v`` with the
  ``(..., Tq, Tk)`` weights kept for backward. Simple and fast for short contexts, but its
  memory is quadratic in the sequence length.
* :func:`tiled_forward` / :func:`tiled_backward`: FlashAttention-2's algorithm. The forward walks
  the keys in blocks with an online softmax (a running row max ``m``, row sum ``l`` and output
  accumulator, rescaled by ``exp(m_old - m_new)`` when the max grows) and keeps only the output
  and one logsumexp per query row. The backward recomputes each block's probabilities from the
  logsumexp, ``p = exp(s - lse)``, and accumulates ``dq``, ``dk``, ``dv`` block by block using
  ``D = rowsum(dout * out)`` for the softmax's Jacobian. Peak memory beyond inputs and outputs
  is one ``block_q x block_k`` score tile per batch entry; blocks above a causal diagonal are
  skipped.
"""

from __future__ import annotations

import numpy as np

from ..backend import array_module
from . import parallel
from .fused import _ones

#: work per pool task, in score elements (batch entries x Tq x Tk): large enough that a task is a
#: few hundred microseconds of matmul, so taking the GIL between calls costs little
GRAIN = 1 << 16


def _prepare(q, k, v, mask):
    """``(batch, q, k, v, mask)``: q, k, v broadcast (as views) to one batch shape, with a leading
    batch dim of 1 added when there is none; the mask as None, a shared ``(Tq, Tk)`` array, or a
    view broadcast to the work arrays' batch shape."""
    xp = array_module(q)
    mask_batch = () if mask is None or mask.ndim <= 2 else tuple(mask.shape[:-2])
    batch = tuple(q.shape[:-2])
    if not (k.shape[:-2] == batch and v.shape[:-2] == batch and (not mask_batch or mask_batch == batch)):
        batch = tuple(np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2], mask_batch))

    def full(a):
        a = a if a.shape[:-2] == batch else xp.broadcast_to(a, batch + a.shape[-2:])
        return a if batch else a[None]

    tq, tk = q.shape[-2], k.shape[-2]
    if mask is not None:
        mask = xp.asarray(mask)
        if any(n != 1 for n in mask_batch):
            mask = full(xp.broadcast_to(mask, mask.shape[:-2] + (tq, tk)))
        else:
            mask = xp.broadcast_to(mask.reshape(mask.shape[-2:]) if mask.ndim >= 2 else mask, (tq, tk))
    return batch, full(q), full(k), full(v), mask


def _mask_block(mask, lo, hi, rows=slice(None), cols=slice(None)):
    """The mask entries of batch entries ``lo:hi`` (or the shared 2-D mask) for a score tile."""
    if mask is None:
        return None
    if mask.ndim == 2:
        return mask[rows, cols]
    return mask[lo:hi, ..., rows, cols]


def _apply_mask(xp, s, m, dtype):
    if m is None:
        return
    if m.dtype == bool:
        xp.copyto(s, dtype.type(np.finfo(dtype).min), where=~m)
    else:
        s += m


def _matmul(xp, a, b, out) -> None:
    """``out[...] = a @ b``: in place on NumPy (any strides), through a temporary on CuPy, whose
    matmul wants a contiguous ``out`` (the packed op's gradients are strided views)."""
    if xp is np:
        np.matmul(a, b, out=out)
    else:
        out[...] = xp.matmul(a, b)


def _run_blocks(xp, q, per_entry: int, body) -> None:
    """``body(lo, hi)`` over blocks of the first batch dim (on the pool when it pays)."""
    n = q.shape[0]
    per_entry *= q[:1].size // (q.shape[-2] * q.shape[-1])  # the other batch dims
    if xp is not np or n * per_entry < 2 * GRAIN or parallel.get_num_threads() == 1:
        body(0, n)  # one direct call: no pool for a GPU, one thread, or a decoding step's scores
        return
    parallel.parallel_for(n, body, max(1, GRAIN // max(per_entry, 1)), blas=True)


# ---- fused: keeps the weights --------------------------------------------------------------------
def fused_forward(q, k, v, mask, scale):
    """``(out, p, batch)``: output and weights ``(..., Tq, Tk)`` (with a leading 1 when the inputs
    have no batch dims), and the broadcast batch shape."""
    xp = array_module(q)
    batch, q, k, v, mask = _prepare(q, k, v, mask)
    tq, tk = q.shape[-2], k.shape[-2]
    dtype = q.dtype
    p = xp.empty(q.shape[:-1] + (tk,), dtype=dtype)
    out = xp.empty(q.shape[:-1] + (v.shape[-1],), dtype=dtype)
    scale = dtype.type(scale)
    ones = _ones(xp, tk, dtype)

    def body(lo, hi):
        s = p[lo:hi]
        _matmul(xp, q[lo:hi] * scale, k[lo:hi].swapaxes(-1, -2), s)  # scaling q: Tk/D times less work
        _apply_mask(xp, s, _mask_block(mask, lo, hi), dtype)
        s -= s.max(axis=-1, keepdims=True)
        xp.exp(s, out=s)
        s /= (s @ ones)[..., None]  # row sums as a product with ones: BLAS reads the rows once, with SIMD
        _matmul(xp, s, v[lo:hi], out[lo:hi])

    _run_blocks(xp, q, tq * tk, body)
    return out, p, batch


def _grad_buffers(xp, q, k, v, out, zero: bool):
    if out is not None:  # views the caller wants written (the packed op's one qkv gradient)
        return out
    make = xp.zeros if zero else xp.empty
    return make(q.shape, q.dtype), make(k.shape, k.dtype), make(v.shape, v.dtype)


def fused_backward(g, q, k, v, p, scale, out=None):
    """``(dq, dk, dv)`` in the broadcast batch shape, from ``g`` and the saved weights ``p``;
    written into ``out`` (three arrays of those shapes) when given."""
    xp = array_module(g)
    _, q, k, v, _ = _prepare(q, k, v, None)
    g = g.reshape(p.shape[:-1] + g.shape[-1:])
    dq, dk, dv = _grad_buffers(xp, q, k, v, out, zero=False)
    scale = p.dtype.type(scale)
    ones = _ones(xp, p.shape[-1], p.dtype)

    def body(lo, hi):
        pb, gb = p[lo:hi], g[lo:hi]
        _matmul(xp, pb.swapaxes(-1, -2), gb, dv[lo:hi])
        ds = xp.matmul(gb, v[lo:hi].swapaxes(-1, -2))  # dp
        ds -= ((ds * pb) @ ones)[..., None]  # dp - rowsum(dp * p)
        ds *= pb
        _matmul(xp, ds, k[lo:hi] * scale, dq[lo:hi])  # ds = p * (dp - rowsum(dp * p)) * scale
        _matmul(xp, ds.swapaxes(-1, -2), q[lo:hi] * scale, dk[lo:hi])

    _run_blocks(xp, q, p.shape[-2] * p.shape[-1], body)
    return dq, dk, dv


# ---- tiled: online softmax, recomputation in backward --------------------------------------------
def _key_blocks(tq: int, tk: int, q0: int, q1: int, block_k: int, causal: bool):
    """Key block starts for query rows ``q0:q1``; with ``causal`` (bottom-right aligned, as
    :func:`tensorlite.functional.causal_mask`) the blocks wholly above the diagonal are skipped.
    A causal mask with more queries than keys leaves some rows no key; then nothing is skipped so
    those rows see every (masked) key, as the reference does."""
    last = tk if not causal or tq > tk else min(tk, q1 + tk - tq)
    return range(0, last, block_k)


def _tile_mask(xp, s, mask, lo, hi, q0, q1, k0, k1, tq, tk, causal, dtype):
    """Mask one score tile in place: the user's mask slice, then the causal triangle (made for
    the tile, never for the whole ``Tq x Tk``) where the tile crosses the diagonal."""
    _apply_mask(xp, s, _mask_block(mask, lo, hi, slice(q0, q1), slice(k0, k1)), dtype)
    if causal and k1 - 1 > q0 + tk - tq:  # some key of the tile lies above some query's diagonal
        allowed = xp.arange(k0, k1)[None, :] <= xp.arange(q0, q1)[:, None] + (tk - tq)
        xp.copyto(s, dtype.type(np.finfo(dtype).min), where=~allowed)


def tiled_forward(q, k, v, mask, scale, causal: bool, block_q: int = 128, block_k: int = 128):
    """``(out, lse, batch)``: the output, the row logsumexp ``(..., Tq)`` of the scaled, masked
    scores, and the broadcast batch shape. ``mask`` is an optional extra mask; ``causal`` adds
    the causal one tile by tile (and skips the key blocks it hides entirely)."""
    xp = array_module(q)
    batch, q, k, v, mask = _prepare(q, k, v, mask)
    tq, tk = q.shape[-2], k.shape[-2]
    dtype = q.dtype
    out = xp.empty(q.shape[:-1] + (v.shape[-1],), dtype=dtype)
    lse = xp.empty(q.shape[:-1], dtype=dtype)
    scale = dtype.type(scale)
    zero = dtype.type(0)

    def body(lo, hi):
        for q0 in range(0, tq, block_q):
            q1 = min(q0 + block_q, tq)
            qb = q[lo:hi, ..., q0:q1, :]
            m = xp.full(qb.shape[:-1] + (1,), -np.inf, dtype=dtype)
            row_sum = xp.zeros(qb.shape[:-1] + (1,), dtype=dtype)
            acc = out[lo:hi, ..., q0:q1, :]
            acc[...] = 0
            for k0 in _key_blocks(tq, tk, q0, q1, block_k, causal):
                k1 = min(k0 + block_k, tk)
                s = xp.matmul(qb, k[lo:hi, ..., k0:k1, :].swapaxes(-1, -2))
                s *= scale
                _tile_mask(xp, s, mask, lo, hi, q0, q1, k0, k1, tq, tk, causal, dtype)
                m_new = xp.maximum(m, s.max(axis=-1, keepdims=True))
                # a row that has seen only -inf keeps m = -inf; subtract 0 there, not -inf (NaN)
                m_safe = xp.where(m_new == -np.inf, zero, m_new)
                s -= m_safe
                xp.exp(s, out=s)  # this tile's probabilities, unnormalised
                alpha = xp.exp(m - m_safe)  # rescales what was accumulated under the old max
                row_sum *= alpha
                row_sum += s.sum(axis=-1, keepdims=True)
                acc *= alpha
                acc += xp.matmul(s, v[lo:hi, ..., k0:k1, :])
                m = m_new
            acc /= row_sum
            lse[lo:hi, ..., q0:q1] = (m + xp.log(row_sum))[..., 0]

    _run_blocks(xp, q, min(tq, block_q) * tk, body)
    return out, lse, batch


def tiled_backward(g, q, k, v, out, lse, mask, scale, causal: bool, block_q: int = 128, block_k: int = 128,
                   grads=None):
    """``(dq, dk, dv)`` in the broadcast batch shape: FlashAttention-2's backward, recomputing
    each score tile from ``q``, ``k`` and the saved logsumexp; accumulated into ``grads`` (three
    zeroed arrays) when given."""
    xp = array_module(g)
    _, q, k, v, mask = _prepare(q, k, v, mask)
    tq, tk = q.shape[-2], k.shape[-2]
    g = g.reshape(out.shape)
    dtype = q.dtype
    dq, dk, dv = _grad_buffers(xp, q, k, v, grads, zero=True)
    scale = dtype.type(scale)

    def body(lo, hi):
        d_all = (g[lo:hi] * out[lo:hi]).sum(axis=-1, keepdims=True)  # D = rowsum(dout * out)
        for q0 in range(0, tq, block_q):
            q1 = min(q0 + block_q, tq)
            qb, gb, db = q[lo:hi, ..., q0:q1, :], g[lo:hi, ..., q0:q1, :], d_all[..., q0:q1, :]
            lse_b = lse[lo:hi, ..., q0:q1, None]
            dqb = dq[lo:hi, ..., q0:q1, :]
            for k0 in _key_blocks(tq, tk, q0, q1, block_k, causal):
                k1 = min(k0 + block_k, tk)
                kb, vb = k[lo:hi, ..., k0:k1, :], v[lo:hi, ..., k0:k1, :]
                p = xp.matmul(qb, kb.swapaxes(-1, -2))
                p *= scale
                _tile_mask(xp, p, mask, lo, hi, q0, q1, k0, k1, tq, tk, causal, dtype)
                p -= lse_b
                xp.exp(p, out=p)  # the tile's probabilities, recomputed
                dv[lo:hi, ..., k0:k1, :] += xp.matmul(p.swapaxes(-1, -2), gb)
                ds = xp.matmul(gb, vb.swapaxes(-1, -2))  # dp
                ds -= db
                ds *= p
                ds *= scale  # ds = p * (dp - D) * scale
                dqb += xp.matmul(ds, kb)
                dk[lo:hi, ..., k0:k1, :] += xp.matmul(ds.swapaxes(-1, -2), qb)

    _run_blocks(xp, q, min(tq, block_q) * tk, body)
    return dq, dk, dv
