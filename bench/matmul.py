"""Matmul kernels against NumPy's BLAS, measured in one run.

For float32 N x N @ N x N at N = 128 .. 2048 prints GFLOP/s (2 N^3 flops per product) of NumPy's
BLAS, ``matmul_blocked_parallel``, ``matmul_blocked`` and (small N only) ``matmul_naive``, and
each one's ratio to BLAS.

Timing: every method runs in blocks (warm-up calls, then timed calls); the methods' blocks
alternate ``rounds`` times, so a busy spell of the machine hits them all alike. Printed: the
median call (the headline) and the best call (what a kernel does when nothing else competes
for the cores), each with its ratio to BLAS's median or best. Blocks rather than interleaved
single calls because after a multi-threaded BLAS call OpenBLAS's helper threads spin for a
while, which would steal a core from whatever runs right after it.

    python bench/matmul.py [--sizes 128 256 512 1024 2048] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from tensorlite.kernels import matmul_blocked, matmul_blocked_parallel, matmul_naive

NAIVE_MAX = 128


def _block(fn, repeats: int, warmup: int, warmup_s: float = 0.1) -> list[float]:
    """Times of ``repeats`` calls of ``fn``, after warming up."""
    # warm up for a minimum time too: it outlasts OpenBLAS's spinning helper threads
    t_end = time.perf_counter() + warmup_s
    done = 0
    while done < warmup or (warmup and time.perf_counter() < t_end):
        fn()
        done += 1
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _repeats(n: int, name: str) -> tuple[int, int]:
    """(timed calls, warm-up calls) per block: fewer where one call is slow."""
    if name == "naive":
        return 1, 0
    if name == "blocked":
        return (3, 1) if n >= 1024 else (5, 1)
    return (5, 2) if n >= 2048 else (15, 3)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="matmul kernels vs NumPy BLAS (float32)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512, 1024, 2048])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    print(f"float32 N x N @ N x N; {os.cpu_count()} CPU cores; GFLOP/s = 2 N^3 / time; "
          f"{args.rounds} alternating blocks of calls per kernel; load average before: "
          f"{os.getloadavg()[0]:.2f}")
    print(f"{'':<25}{'--- median call ---':>18}{'--- best call ---':>18}")
    print(f"{'N':>5}  {'kernel':<18}{'GFLOP/s':>10}{'x BLAS':>8}{'GFLOP/s':>10}{'x BLAS':>8}")
    for n in args.sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        ref = a @ b
        methods = {
            "numpy BLAS": lambda a=a, b=b: a @ b,
            "blocked_parallel": lambda a=a, b=b: matmul_blocked_parallel(a, b),
            "blocked": lambda a=a, b=b: matmul_blocked(a, b),
        }
        if n <= NAIVE_MAX:
            methods["naive"] = lambda a=a, b=b: matmul_naive(a, b)
        for name, fn in methods.items():  # a wrong kernel must not get a fast number
            err = np.abs(fn() - ref).max() / np.abs(ref).max()
            assert err < 1e-5, f"{name} at N={n}: relative error {err:.2e}"
        times: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(args.rounds):
            for name, fn in methods.items():
                key = name.replace("numpy BLAS", "blas")
                if key == "naive" and times[name]:
                    continue  # seconds per call; one is enough
                repeats, warmup = _repeats(n, key)
                times[name] += _block(fn, repeats, warmup)
        flops = 2.0 * n**3
        med = {k: statistics.median(v) for k, v in times.items()}
        best = {k: min(v) for k, v in times.items()}
        for name in methods:
            print(f"{n:>5}  {name:<18}" + _cols(flops, med[name], med["numpy BLAS"])
                  + _cols(flops, best[name], best["numpy BLAS"]))


def _cols(flops, t, t_blas):
    gflops, ratio = flops / t / 1e9, t_blas / t
    if ratio < 0.1:
        return f"{gflops:>10.3g}{ratio:>8.2g}"
    return f"{gflops:>10.1f}{ratio:>8.2f}"


if __name__ == "__main__":
    main()
