"""tensorlite's own CPU threads: one kept pool, a parallel-for over index ranges, the thread count.

NumPy releases the GIL inside its ufunc loops, reductions and BLAS calls, so Python threads that
each run NumPy on a separate slice of an array really do run on separate cores. That is all the
parallelism here is: the blocked-parallel matmul hands row panels to the pool, the fused kernels
(``fused.py``) hand blocks of rows, the attention kernels blocks of heads. The caller's thread
is one of the workers, and each worker takes the next block when it finishes (dynamic balancing
without a queue), so a neighbour that holds one core slows the step instead of stalling it.

On a GPU none of this runs: CuPy launches its own kernels and the callers skip the pool.
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

_CPUS = os.cpu_count() or 1  # read once: os.cpu_count() costs ~8 us a call on Linux
_threads = [_CPUS]
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_controller = None
# One parallel region at a time (the BLAS thread limit is process-wide). A region that finds the
# lock taken (a nested call from inside a block, or another user thread) runs serially instead
# of waiting, so nesting can never deadlock.
_lock = threading.Lock()


def get_num_threads() -> int:
    """Threads tensorlite's own CPU kernels use (``torch.get_num_threads``'s counterpart)."""
    return _threads[0]


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in tensorlite's CPU kernels (the pool; BLAS keeps its own setting, which
    ``threadpoolctl.threadpool_limits`` changes). ``1`` runs everything on the calling thread."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive integer, got {n!r}")
    _threads[0] = n


def _get_pool(workers: int) -> ThreadPoolExecutor:
    """One pool, kept between calls: starting threads per call would cost more than small blocks."""
    global _pool, _pool_size
    if _pool is None or _pool_size < workers:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tl-worker")
        _pool_size = workers
    return _pool


def blas_threads(n: int):
    """A context that limits BLAS to ``n`` threads (nothing to do when ``n`` covers every core).
    The controller scans the loaded libraries once; ``threadpool_limits(...)`` would rescan them
    on every call (about 0.5 ms), ``limit`` on a kept controller costs about 10 us."""
    global _controller
    if n >= _CPUS:
        return nullcontext()
    if _controller is None:
        from threadpoolctl import ThreadpoolController  # noqa: PLC0415  (loaded on first use)

        _controller = ThreadpoolController()
    return _controller.limit(limits=n, user_api="blas")


def run_shared(task, n_tasks: int, workers: int) -> None:
    """Run ``task(0..n_tasks-1)`` on ``workers`` threads (the caller is one of them).

    The caller waits for the tasks, not for the helpers: a helper that a busy machine has not
    scheduled yet by the time the caller has taken the last task finds nothing left when it does
    run, and nobody waited for it. (Waiting for every helper to start would tie each parallel
    region to the slowest wake-up on the machine.) A task's exception is re-raised here.
    """
    counter = itertools.count()
    remaining = [n_tasks]
    count_lock = threading.Lock()
    finished = threading.Event()
    errors = []
    # A helper that runs after the last task only looks at the counter; the task (and the arrays
    # its closure holds) is dropped from this cell once every task is done, so a queued helper
    # keeps no array alive.
    cell = [task]

    def worker():
        while (i := next(counter)) < n_tasks:
            try:
                cell[0](i)
            except BaseException as e:  # re-raised by the caller
                errors.append(e)
            with count_lock:
                remaining[0] -= 1
                if not remaining[0]:
                    finished.set()

    pool = _get_pool(workers - 1)
    for _ in range(min(workers, n_tasks) - 1):
        pool.submit(worker)
    del task
    worker()
    finished.wait()
    cell[0] = None
    if errors:
        raise errors[0]


def blocks(n: int, grain: int) -> list[tuple[int, int]]:
    """``[0, n)`` cut into ``(lo, hi)`` blocks of at least ``grain`` items for the pool: one block
    when there are too few items, else up to four. Few large blocks, because every NumPy call a
    worker makes takes and releases the GIL: with blocks of a few microseconds of work, waiting
    for the GIL costs more than the second core gives. The cut does not depend on the thread
    count, so the partial sums a kernel adds up are the same, and so are its results, on one
    thread or several."""
    n_blocks = min(n // max(grain, 1), 4)
    if n_blocks <= 1:
        return [(0, n)] if n else []
    step = -(-n // n_blocks)
    return [(lo, min(lo + step, n)) for lo in range(0, n, step)]


def run(task, n_tasks: int, *, blas: bool = False) -> None:
    """``task(i)`` for ``i`` in ``range(n_tasks)``, on the pool when there is more than one.

    One task, one thread, or a call from inside another parallel region (the lock is taken) runs
    on the caller's thread, in order. ``blas=True`` pins BLAS to one thread while the workers
    run, so that tasks calling matmul do not oversubscribe the cores.
    """
    workers = _threads[0]
    if n_tasks > 1 and workers > 1 and _lock.acquire(blocking=False):
        try:
            with blas_threads(1) if blas else nullcontext():
                run_shared(task, n_tasks, workers)
        finally:
            _lock.release()
        return
    for i in range(n_tasks):
        task(i)


def parallel_for(n: int, body, grain: int, *, blas: bool = False) -> None:
    """Call ``body(lo, hi)`` over ``[0, n)`` in the :func:`blocks` of ``grain``, with :func:`run`.

    Fewer than ``2 * grain`` items, or one thread, is a single call on the caller's thread (no
    pool, no locks): small arrays pay nothing.
    """
    bounds = blocks(n, grain)
    run(lambda i: body(*bounds[i]), len(bounds), blas=blas)
