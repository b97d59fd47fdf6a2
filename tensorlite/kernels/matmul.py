"""Matmul three ways: the textbook triple loop, cache blocking, and blocking over CPU threads.

All take NumPy or CuPy arrays of shape ``(..., M, K) @ (..., K, N)`` (batch dims broadcast).
On a GPU the blocked kernels run one tiled shared-memory CUDA kernel (see ``cuda.py``).
"""

from __future__ import annotations

import numpy as np

from ..backend import array_module
from . import parallel
from .parallel import blas_threads


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
    xp = array_module(a)
    a = xp.broadcast_to(a, batch + a.shape[-2:])
    b = xp.broadcast_to(b, batch + b.shape[-2:])
    out = xp.empty(batch + (a.shape[-2], b.shape[-1]), dtype=np.result_type(a.dtype, b.dtype))
    for idx in np.ndindex(*batch):
        out[idx] = kernel(a[idx], b[idx], **kw)
    return out


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
    return array_module(a).asarray(np.asarray(out, dtype=np.result_type(a.dtype, b.dtype)))


def matmul_blocked(a, b, block: int = 64):
    """Cache-blocked matmul: ``block x block`` output tiles, each accumulated over K in blocks.

    Every tile product is a small BLAS call, so the loop shows the blocking structure while the
    arithmetic stays vectorised.
    """
    _check(a, b, "matmul_blocked")
    if block <= 0:
        raise ValueError(f"matmul_blocked: block must be positive, got {block}")
    if array_module(a) is not np:
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


def matmul_blocked_parallel(a, b, block: int = 128, workers: int | None = None):
    """Row panels of the output computed on a thread pool, one single-threaded BLAS call each.

    One panel per worker (``workers`` defaults to the CPU count), each at least ``block`` rows
    times all columns: a tall call keeps BLAS at full speed and packs ``b`` once per panel. BLAS
    is pinned to one thread while the workers run (once per call, with threadpoolctl) so they
    do not oversubscribe the cores; NumPy releases the GIL inside each call, so the panels
    really run in parallel. A matrix with fewer than ``2 * block`` rows is a single panel: one
    BLAS call on up to ``workers`` threads. Batched inputs hand whole matrices to the workers.
    """
    _check(a, b, "matmul_blocked_parallel")
    if block <= 0:
        raise ValueError(f"matmul_blocked_parallel: block must be positive, got {block}")
    if array_module(a) is not np:
        from .cuda import matmul_tiled  # noqa: PLC0415

        return _batched(matmul_tiled, a, b)
    workers = workers or parallel.get_num_threads()
    dtype = np.result_type(a.dtype, b.dtype)
    m, n = a.shape[-2], b.shape[-1]
    if a.ndim == 2 and b.ndim == 2:
        out = np.empty((m, n), dtype=dtype)
        # one panel per worker, each at least `block` rows: a tall panel keeps BLAS at full speed
        # and packs `b` once per panel (more, smaller panels for load balancing measured slower)
        n_panels = max(1, min(workers, m // block))
        step = max(1, -(-m // n_panels))
        starts = list(range(0, m, step))

        def task(i):
            r = starts[i]
            np.matmul(a[r : r + step], b, out=out[r : r + step])
    else:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a = np.broadcast_to(a, batch + a.shape[-2:])
        b = np.broadcast_to(b, batch + b.shape[-2:])
        out = np.empty(batch + (m, n), dtype=dtype)
        starts = list(np.ndindex(*batch))

        def task(i):
            idx = starts[i]
            np.matmul(a[idx], b[idx], out=out[idx])

    if len(starts) == 1 or workers == 1:  # one BLAS call at a time, on up to `workers` threads
        with blas_threads(workers):
            for i in range(len(starts)):
                task(i)
        return out
    if not parallel._lock.acquire(blocking=False):  # nested in another parallel region: serially
        for i in range(len(starts)):
            task(i)
        return out
    try:
        with blas_threads(1):  # the BLAS thread limit is process-wide
            parallel.run_shared(task, len(starts), workers)
    finally:
        parallel._lock.release()
    return out
