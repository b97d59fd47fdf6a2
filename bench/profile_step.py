"""Where a tensorlite training step spends its time: forward and backward of each op class.

Builds the GPT of ``bench/train_step.py`` (config (a), the ``tensorlite train`` default, or (b),
the larger one), wraps ``forward`` and ``backward`` of every ``Function`` subclass with a timer
for the length of the run, takes a few warm-up steps and then ``--steps`` timed ones, and prints
per op class the wall-clock milliseconds per step of its forward and its backward and its share
of the step. ``AdamW`` is the optimizer's step; ``(rest)`` is what no op accounts for: the graph
bookkeeping of ``backward()`` (gradient accumulation of shared inputs, hooks), ``zero_grad``, the
loss's ``.item()`` and Python's own overhead between ops.

Threads are as in ``train_step.py``: ``--threads N`` limits BLAS and tensorlite's own pool to N
(default: every core). With one thread the clock is the process's CPU time (``--clock cpu``),
which a neighbour that takes the core for a while does not inflate; with more threads it is the
wall clock (CPU time would add up the threads), and the table shows which ops gain from the
second core. The timers add about a microsecond per op call, a fraction of a percent of a step.

    python bench/profile_step.py [--config a b] [--threads 1] [--steps 10] [--clock cpu|wall]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # as `import tensorlite` sets it: before NumPy loads OpenBLAS

import argparse
import collections
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # train_step.py, beside this file


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


class OpTimer:
    """Wraps every Function subclass's forward/backward with a timer (``clock``) while active."""

    def __init__(self, clock=time.perf_counter) -> None:
        self.clock = clock
        self.fwd = collections.Counter()
        self.bwd = collections.Counter()
        self.calls = collections.Counter()
        self._saved = []

    def __enter__(self):
        import tensorlite.nn  # noqa: F401  (its Function subclasses must exist before they are wrapped)
        from tensorlite.autograd import Function

        for cls in set(_subclasses(Function)):
            for attr, table in (("forward", self.fwd), ("backward", self.bwd)):
                fn = cls.__dict__.get(attr)
                if fn is None:
                    continue

                def timed(obj, *a, _fn=fn, _t=table, _n=cls.__name__, _c=self.calls, _fwd=attr == "forward",
                          _clock=self.clock, **kw):
                    t0 = _clock()
                    try:
                        return _fn(obj, *a, **kw)
                    finally:
                        _t[_n] += _clock() - t0
                        if _fwd:
                            _c[_n] += 1

                self._saved.append((cls, attr, fn))
                setattr(cls, attr, timed)
        return self

    def __exit__(self, *exc):
        for cls, attr, fn in self._saved:
            setattr(cls, attr, fn)
        self._saved.clear()
        return False

    def reset(self) -> None:
        self.fwd.clear()
        self.bwd.clear()
        self.calls.clear()


def profile(name: str, steps: int, clock=time.perf_counter) -> tuple[float, list]:
    """(s per step, rows of (op, calls per step, fwd s, bwd s)) for config ``name``."""
    from train_step import build, config, tl_step

    (model, opt), _, _, (x, y) = build(config(name))
    with OpTimer(clock) as timer:
        for _ in range(3):
            tl_step(model, opt, x, y)
        opt_time = 0.0
        step_opt = opt.step

        def timed_step():
            nonlocal opt_time
            t0 = clock()
            step_opt()
            opt_time += clock() - t0

        opt.step = timed_step
        timer.reset()
        t0 = clock()
        for _ in range(steps):
            tl_step(model, opt, x, y)
        total = (clock() - t0) / steps
        del opt.step
    rows = [(k, timer.calls[k] / steps, timer.fwd[k] / steps, timer.bwd[k] / steps)
            for k in set(timer.fwd) | set(timer.bwd)]
    rows.sort(key=lambda r: -(r[2] + r[3]))
    rows.append(("AdamW", 1.0, opt_time / steps, 0.0))
    rows.append(("(rest)", 0.0, total - sum(r[2] + r[3] for r in rows), 0.0))
    return total, rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", nargs="+", choices=("a", "b"), default=["a", "b"])
    ap.add_argument("--threads", type=int, default=None, help="threads (default: os.cpu_count())")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--clock", choices=("cpu", "wall"), default=None,
                    help="cpu: process CPU time (the default with one thread), wall: perf_counter")
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_limits

    from tensorlite.kernels import set_num_threads

    threads = args.threads or os.cpu_count() or 1
    if args.threads:
        threadpool_limits(threads)
    set_num_threads(threads)
    clock = args.clock or ("cpu" if threads == 1 else "wall")
    print(f"threads: {threads}; clock: {clock}; load average at start "
          + " ".join(f"{x:.1f}" for x in os.getloadavg()))
    from train_step import config

    for name in args.config:
        cfg = config(name)
        total, rows = profile(name, args.steps, time.process_time if clock == "cpu" else time.perf_counter)
        print(f"\n({name}) d_model {cfg['d_model']}, {cfg['n_layers']} layers, {cfg['n_heads']} heads, "
              f"context {cfg['seq_len']}, batch {cfg['batch']}: {total * 1e3:.1f} ms per step ({clock})")
        print(f"  {'op':<20} {'calls':>5} {'fwd ms':>7} {'bwd ms':>7} {'total':>7} {'share':>6}")
        for op, calls, f, b in rows:
            calls_s = f"{calls:5.0f}" if calls else "     "
            bwd_s = f"{b * 1e3:7.2f}" if b else "       "
            print(f"  {op:<20} {calls_s} {f * 1e3:7.2f} {bwd_s} {(f + b) * 1e3:7.2f} {(f + b) / total:6.1%}")


if __name__ == "__main__":
    main()
