"""Autograd overhead: microseconds per op for a long chain of small elementwise ops.

A 300-op chain of mul / add / tanh on 64x64 float32 tensors (then a sum), forward + backward, in
tensorlite and in PyTorch, in the same run, with the same thread count. At this size the
arithmetic takes a microsecond or two per op, so the number is mostly what each library spends
per op on bookkeeping: building the node, wrapping the output, walking the graph backward and
accumulating gradients. Without PyTorch installed, tensorlite's figures are printed alone.

Timing: the two libraries' steps alternate (tensorlite, torch, tensorlite, ...), ``--repeats``
steps each, so a busy spell of the machine hits both alike. Printed per library: the median and
the best (minimum) step time, divided by the number of ops. The median is the headline; the
best is what each gets when nothing else competes for the cores, and tells whether a ratio
comes from the code or from the machine's load.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import statistics
import time

import numpy as np

import tensorlite as tl

STEPS = {
    "mul": lambda h, x, w: h * w,
    "add": lambda h, x, w: h + x,
    "sub": lambda h, x, w: h - x,
    "tanh": lambda h, x, w: h.tanh(),
    "sigmoid": lambda h, x, w: h.sigmoid(),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ops", type=int, default=300,
                        help="ops in the chain (rounded down to a multiple of the chain's length)")
    parser.add_argument("--size", type=int, default=64, help="tensors are size x size float32")
    parser.add_argument("--repeats", type=int, default=200, help="timed steps per library")
    parser.add_argument("--chain", default="mul,add,tanh",
                        help=f"comma-separated op kinds repeated in the chain, from {sorted(STEPS)}")


def chain(x, w, n_ops, kinds=("mul", "add", "tanh")):
    """The same code for both libraries: they share the operator and method names."""
    steps = [STEPS[k] for k in kinds]
    h = x
    for _ in range(n_ops // len(steps)):
        for step in steps:
            h = step(h, x, w)
    return h.sum()


@contextlib.contextmanager
def _torch_threads(n):
    """torch's intra-op pool at ``n`` threads for the benchmark, and the caller's count back after
    it (a test process that runs this must not leave its later torch code on other threads)."""
    if n is None:
        yield
        return
    import torch  # noqa: PLC0415  (optional)

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _library_steps(xa, wa, n_ops, kinds, with_torch: bool) -> dict:
    """Library name -> a function running one forward + backward; both checked to agree."""
    tx, tw = tl.tensor(xa, requires_grad=True), tl.tensor(wa, requires_grad=True)

    def step_tl():
        tx.grad = tw.grad = None
        chain(tx, tw, n_ops, kinds).backward()

    steps = {"tensorlite": step_tl}
    if not with_torch:
        return steps
    import torch  # noqa: PLC0415  (optional)

    px, pw = torch.tensor(xa, requires_grad=True), torch.tensor(wa, requires_grad=True)

    def step_torch():
        px.grad = pw.grad = None
        chain(px, pw, n_ops, kinds).backward()

    # same values, same gradients: the two loops do the same work
    step_tl()
    step_torch()
    for ours, theirs in ((tx, px), (tw, pw)):  # a chain without mul never touches w
        assert (ours.grad is None) == (theirs.grad is None)
        if ours.grad is not None:
            np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-3, atol=1e-4)
    steps["pytorch"] = step_torch
    return steps


def run(args) -> dict[str, float]:
    """Print the table; return {library: median microseconds per op}."""
    kinds = tuple(k.strip() for k in args.chain.split(","))
    unknown = [k for k in kinds if k not in STEPS]
    if unknown:
        raise ValueError(f"--chain: unknown op kind(s) {unknown}; choose from {sorted(STEPS)}")
    if args.ops < len(kinds):
        raise ValueError(f"--ops must be at least the chain's length {len(kinds)}, got {args.ops}")
    if args.size < 1 or args.repeats < 1:
        raise ValueError(f"--size and --repeats must be positive, got {args.size} and {args.repeats}")
    with_torch = importlib.util.find_spec("torch") is not None
    threads = os.cpu_count() or 1
    load = os.getloadavg()[0]  # other work on the machine skews both numbers: say how busy it was
    n_ops = args.ops - args.ops % len(kinds)
    total_ops = n_ops + 1  # the chain and the final sum; backward visits one node per op
    rng = np.random.default_rng(0)
    xa = rng.standard_normal((args.size, args.size)).astype(np.float32)
    wa = (0.5 * rng.standard_normal((args.size, args.size))).astype(np.float32)
    with _torch_threads(threads if with_torch else None):
        steps = _library_steps(xa, wa, n_ops, kinds, with_torch)
        for _ in range(5):  # warm-up: allocator caches, first-call paths
            for step in steps.values():
                step()
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.repeats):
            for name, step in steps.items():
                t0 = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) / total_ops * 1e6 for k, v in times.items()}
    best = {k: min(v) / total_ops * 1e6 for k, v in times.items()}

    torch_part = f"torch.set_num_threads({threads}); " if with_torch else "PyTorch not installed; "
    print(f"chain: {n_ops} ops ({', '.join(kinds)}) + sum on {args.size}x{args.size} float32, forward + backward; "
          f"{torch_part}{args.repeats} alternating steps each; load average before: {load:.2f}")
    print(f"{'library':<12}{'median us/op':>14}{'best us/op':>12}")
    for k in times:
        print(f"{k:<12}{med[k]:>14.2f}{best[k]:>12.2f}")
    if with_torch:
        print(f"ratio tensorlite/pytorch: {med['tensorlite'] / med['pytorch']:.2f}x (median), "
              f"{best['tensorlite'] / best['pytorch']:.2f}x (best)")
    return med
