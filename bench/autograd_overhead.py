"""Autograd overhead: microseconds per op for a long chain of small elementwise ops.

A 300-op chain of mul / add / tanh on 64x64 float32 tensors (then a sum), forward + backward, in
tensorlite and in PyTorch, in the same run, with the same thread count. At this size the
arithmetic takes a microsecond or two per op, so the number is mostly what each library spends
per op on bookkeeping: building the node, wrapping the output, walking the graph backward and
accumulating gradients.

Timing: the two libraries' steps alternate (tensorlite, torch, tensorlite, ...), ``--repeats``
steps each, so a busy spell of the machine hits both alike. Printed per library: the median and
the best (minimum) step time, divided by the number of ops. The median is the headline; the
best is what each gets when nothing else competes for the cores, and tells whether a ratio
comes from the code or from the machine's load.

    python bench/autograd_overhead.py [--ops 300] [--size 64] [--repeats 200] [--chain mul,add,tanh]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

STEPS = {
    "mul": lambda h, x, w: h * w,
    "add": lambda h, x, w: h + x,
    "sub": lambda h, x, w: h - x,
    "tanh": lambda h, x, w: h.tanh(),
    "sigmoid": lambda h, x, w: h.sigmoid(),
}


def chain(x, w, n_ops, kinds=("mul", "add", "tanh")):
    """The same code for both libraries: they share the operator and method names."""
    steps = [STEPS[k] for k in kinds]
    h = x
    for _ in range(n_ops // len(steps)):
        for step in steps:
            h = step(h, x, w)
    return h.sum()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="autograd overhead per op: tensorlite vs PyTorch")
    ap.add_argument("--ops", type=int, default=300, help="ops in the chain (a multiple of 3)")
    ap.add_argument("--size", type=int, default=64, help="tensors are size x size float32")
    ap.add_argument("--repeats", type=int, default=200, help="timed steps per library")
    ap.add_argument("--chain", default="mul,add,tanh",
                    help=f"comma-separated op kinds repeated in the chain, from {sorted(STEPS)}")
    args = ap.parse_args(argv)

    import torch

    import tensorlite as tl

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    load = os.getloadavg()[0]  # other work on the machine skews both numbers: say how busy it was
    kinds = tuple(args.chain.split(","))
    n_ops = args.ops - args.ops % len(kinds)
    total_ops = n_ops + 1  # the chain and the final sum; backward visits one node per op
    rng = np.random.default_rng(0)
    xa = rng.standard_normal((args.size, args.size)).astype(np.float32)
    wa = (0.5 * rng.standard_normal((args.size, args.size))).astype(np.float32)

    tx, tw = tl.tensor(xa, requires_grad=True), tl.tensor(wa, requires_grad=True)
    px, pw = torch.tensor(xa, requires_grad=True), torch.tensor(wa, requires_grad=True)

    def step_tl():
        tx.grad = tw.grad = None
        chain(tx, tw, n_ops, kinds).backward()

    def step_torch():
        px.grad = pw.grad = None
        chain(px, pw, n_ops, kinds).backward()

    # same values, same gradients: the two loops do the same work
    step_tl()
    step_torch()
    np.testing.assert_allclose(tx.grad.numpy(), px.grad.numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(tw.grad.numpy(), pw.grad.numpy(), rtol=1e-3, atol=1e-4)

    for _ in range(5):  # warm-up: allocator caches, first-call paths
        step_tl()
        step_torch()
    times = {"tensorlite": [], "pytorch": []}
    for _ in range(args.repeats):
        for name, step in (("tensorlite", step_tl), ("pytorch", step_torch)):
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) / total_ops * 1e6 for k, v in times.items()}
    best = {k: min(v) / total_ops * 1e6 for k, v in times.items()}

    print(f"chain: {n_ops} ops ({', '.join(kinds)}) + sum on {args.size}x{args.size} float32, forward + backward; "
          f"torch.set_num_threads({threads}); {args.repeats} alternating steps each; "
          f"load average before: {load:.2f}")
    print(f"{'library':<12}{'median us/op':>14}{'best us/op':>12}")
    for k in times:
        print(f"{k:<12}{med[k]:>14.2f}{best[k]:>12.2f}")
    print(f"ratio tensorlite/pytorch: {med['tensorlite'] / med['pytorch']:.2f}x (median), "
          f"{best['tensorlite'] / best['pytorch']:.2f}x (best)")


if __name__ == "__main__":
    main()
