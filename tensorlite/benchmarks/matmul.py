"""Matmul kernels against the backend's BLAS, measured in one run.

For float32 N x N @ N x N it prints GFLOP/s (2 N^3 flops per product) of the backend's BLAS,
``matmul_blocked_parallel``, ``matmul_blocked`` and (small N only) ``matmul_naive``, and each
one's ratio to BLAS. On ``--device cuda`` the rows are cuBLAS (CuPy's ``@``) and the tiled
shared-memory RawKernel that ``matmul_blocked_parallel`` runs on a GPU.

Timing: every method runs in blocks (warm-up calls, then timed calls); the methods' blocks
alternate ``rounds`` times, so a busy spell of the machine hits them all alike. Printed: the
median call (the headline) and the best call (what a kernel does when nothing else competes
for the cores), each with its ratio to BLAS's median or best. Blocks rather than interleaved
single calls because after a multi-threaded BLAS call OpenBLAS's helper threads spin for a
while, which would steal a core from whatever runs right after it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from .. import backend
from ..kernels import matmul_blocked, matmul_blocked_parallel, matmul_naive

NAIVE_MAX = 128
# what `tl.kernels.use(...)` calls each row, for the closing advice
_KERNEL_NAMES = {"blocked_parallel": "blocked_parallel", "blocked": "blocked", "naive": "naive",
                 "tiled RawKernel": "blocked_parallel"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512, 1024, 2048],
                        metavar="N", help="matrix sizes (N x N @ N x N)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating blocks of timed calls per kernel")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")


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


def _methods(a, b, device: backend.Device) -> dict:
    """Name -> a call that finishes its work before returning (a GPU call is synchronised).

    The first entry is the BLAS every other one is compared with.
    """
    if device.type == "cuda":
        def synced(fn):
            def call():
                out = fn()
                device.xp.cuda.get_current_stream().synchronize()
                return out
            return call

        return {"cuBLAS": synced(lambda: a @ b),
                "tiled RawKernel": synced(lambda: matmul_blocked_parallel(a, b))}
    methods = {
        "numpy BLAS": lambda: a @ b,
        "blocked_parallel": lambda: matmul_blocked_parallel(a, b),
        "blocked": lambda: matmul_blocked(a, b),
    }
    if a.shape[0] <= NAIVE_MAX:
        methods["naive"] = lambda: matmul_naive(a, b)
    return methods


def run(args) -> dict[int, dict[str, float]]:
    """Print the table; return {N: {kernel: median GFLOP/s}}, BLAS first, for callers that want them."""
    if any(n < 1 for n in args.sizes):
        raise ValueError(f"--sizes must all be positive, got {args.sizes}")
    if args.rounds < 1:
        raise ValueError(f"--rounds must be at least 1, got {args.rounds}")
    device = backend.get_device(args.device)
    xp = device.xp
    rng = np.random.default_rng(0)
    where = "GPU (CuPy)" if device.type == "cuda" else f"{os.cpu_count()} CPU cores"
    print(f"float32 N x N @ N x N; {where}; GFLOP/s = 2 N^3 / time; {args.rounds} alternating "
          f"blocks of calls per kernel; load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'':<25}{'--- median call ---':>18}{'--- best call ---':>18}")
    print(f"{'N':>5}  {'kernel':<18}{'GFLOP/s':>10}{'x BLAS':>8}{'GFLOP/s':>10}{'x BLAS':>8}")
    results: dict[int, dict[str, float]] = {}
    for n in args.sizes:
        a = xp.asarray(rng.standard_normal((n, n), dtype=np.float32))
        b = xp.asarray(rng.standard_normal((n, n), dtype=np.float32))
        methods = _methods(a, b, device)
        blas = next(iter(methods))
        ref = backend.to_numpy(methods[blas]())
        for name, fn in methods.items():  # a wrong kernel must not get a fast number
            err = np.abs(backend.to_numpy(fn()) - ref).max() / np.abs(ref).max()
            if not err < 1e-5:
                raise RuntimeError(f"{name} at N={n}: relative error {err:.2e} against BLAS")
        times: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(args.rounds):
            for name, fn in methods.items():
                key = "blas" if name == blas else name
                if key == "naive" and times[name]:
                    continue  # seconds per call; one is enough
                repeats, warmup = _repeats(n, key)
                times[name] += _block(fn, repeats, warmup)
        flops = 2.0 * n**3
        med = {k: statistics.median(v) for k, v in times.items()}
        best = {k: min(v) for k, v in times.items()}
        for name in methods:
            print(f"{n:>5}  {name:<18}" + _cols(flops, med[name], med[blas])
                  + _cols(flops, best[name], best[blas]))
        results[n] = {name: flops / t / 1e9 for name, t in med.items()}
    _advise(results)
    return results


def _advise(results: dict[int, dict[str, float]]) -> None:
    """Say which kernel `@` should use for the largest size measured."""
    n = max(results)
    blas = next(iter(results[n]))
    name, gflops = max(results[n].items(), key=lambda kv: kv[1])
    if name == blas:
        print(f"fastest at N={n}: {name}, which @ uses by default (tl.kernels.use('blas'))")
        return
    ratio = gflops / results[n][blas]
    print(f"fastest at N={n}: {name} ({ratio:.2f}x BLAS); "
          f"tl.kernels.use({_KERNEL_NAMES[name]!r}) makes @ use it instead of BLAS")


def _cols(flops, t, t_blas):
    gflops, ratio = flops / t / 1e9, t_blas / t
    if ratio < 0.1:
        return f"{gflops:>10.3g}{ratio:>8.2g}"
    return f"{gflops:>10.1f}{ratio:>8.2f}"
