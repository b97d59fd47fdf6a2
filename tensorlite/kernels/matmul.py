"""Matmul three ways: the textbook triple loop, cache blocking, and blocking over CPU threads.

All take NumPy or CuPy arrays of shape ``(..., M, K) @ (..., K, N)`` (batch dims broadcast).
On a GPU the blocked kernels run one tiled shared-memory CUDA kernel (see ``cuda.py``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def _check(a, b, op):
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"{op}: operands need at least 2 dimensions, got {a.shape} @ {b.shape}")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(
            f"{op}: {tuple(a.shape)} @ {tuple(b.shape)}: inner dimensions "
            f"{a.shape[-1]} and {b.shape[-2]} differ"
        )


def _batched(kernel, a, b, **kw):
    """Apply a 2-D kernel over broadcast batch dimensions."""
    if a.ndim == 2 and b.ndim == 2:
        return kernel(a, b, **kw)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    xp = _xp(a)
    a = xp.broadcast_to(a, batch + a.shape[-2:])
    b = xp.broadcast_to(b, batch + b.shape[-2:])
    out = xp.empty(batch + (a.shape[-2], b.shape[-1]), dtype=np.result_type(a.dtype, b.dtype))
    for idx in np.ndindex(*batch):
        out[idx] = kernel(a[idx], b[idx], **kw)
    return out


def _xp(a):
    if isinstance(a, np.ndarray):
        return np
    import cupy  # noqa: PLC0415

    return cupy


def matmul_naive(a, b):
    """The triple loop of the Go guide, in pure Python: for teaching, and small sizes only."""
    _check(a, b, "matmul_naive")
    return _batched(_naive_2d, a, b)


def _naive_2d(a, b):
    m, k = a.shape
    n = b.shape[1]
    al, bl = np.asarray(a).tolist(), np.asarray(b).tolist()
    out = [[0.0] * n for _ in range(m)]
    for i in range(m):
        row, ai = out[i], al[i]
        for p in range(k):
            aip, bp = ai[p], bl[p]
            for j in range(n):
                row[j] += aip * bp[j]
    return _xp(a).asarray(np.asarray(out, dtype=np.result_type(a.dtype, b.dtype)))


def matmul_blocked(a, b, block: int = 64):
    """Cache-blocked matmul: ``block x block`` output tiles, each accumulated over K in blocks.

    Every tile product is a small BLAS call, so the loop shows the blocking structure while the
    arithmetic stays vectorised.
    """
    _check(a, b, "matmul_blocked")
    if block <= 0:
        raise ValueError(f"matmul_blocked: block must be positive, got {block}")
    if _xp(a) is not np:
        from .cuda import matmul_tiled  # noqa: PLC0415

        return _batched(matmul_tiled, a, b)
    return _batched(_blocked_2d, a, b, block=block)


def _blocked_2d(a, b, block):
    m, k = a.shape
    n = b.shape[1]
    out = np.zeros((m, n), dtype=np.result_type(a.dtype, b.dtype))
    for i in range(0, m, block):
        for j in range(0, n, block):
            acc = out[i : i + block, j : j + block]
            for p in range(0, k, block):
                acc += a[i : i + block, p : p + block] @ b[p : p + block, j : j + block]
    return out


_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _get_pool(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    if _pool is None or _pool_size != workers:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tl-matmul")
        _pool_size = workers
    return _pool


def matmul_blocked_parallel(a, b, block: int = 128, workers: int | None = None):
    """Output tiles of ``block`` rows computed on a thread pool, one BLAS call per tile.

    BLAS is pinned to one thread per worker (threadpoolctl) so the workers do not oversubscribe
    the cores; NumPy releases the GIL inside each call, so the tiles really run in parallel.
    Row panels (all columns at once) keep each call large enough for BLAS to reach full speed.
    """
    _check(a, b, "matmul_blocked_parallel")
    if block <= 0:
        raise ValueError(f"matmul_blocked_parallel: block must be positive, got {block}")
    if _xp(a) is not np:
        from .cuda import matmul_tiled  # noqa: PLC0415

        return _batched(matmul_tiled, a, b)
    workers = workers or os.cpu_count() or 1
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    with threadpool_limits(limits=1, user_api="blas"):
        return _batched(_parallel_2d, a, b, block=block, workers=workers)


def _parallel_2d(a, b, block, workers):
    m = a.shape[0]
    out = np.empty((m, b.shape[1]), dtype=np.result_type(a.dtype, b.dtype))
    # at least one panel per worker, so a small matrix still uses every core
    step = max(1, min(block, -(-m // workers)))
    starts = range(0, m, step)
    if len(starts) == 1:
        np.matmul(a, b, out=out)
        return out

    def tile(i):
        np.matmul(a[i : i + step], b, out=out[i : i + step])

    list(_get_pool(workers).map(tile, starts))
    return out
