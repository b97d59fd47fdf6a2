"""What ``tl.debug.detect_anomaly()`` costs: one GPT training step (forward + backward) with and
without it, and the cost per op, measured in one run.

The anomaly mode tests every op's output (forward) and every gradient a node returns (backward)
with an ``isfinite`` reduction (one more pass over the data, and on a GPU one host sync per op),
and walks the Python stack at each op to find the user's line (a fixed cost per op). The bench
runs a chain of 300 small elementwise ops (the fixed cost dominates) and two GPT sizes.

    python bench/anomaly_overhead.py [--repeats 10] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def time_run(step, repeats):
    """Median wall time of ``step()`` over ``repeats`` runs, after two warm-up runs."""
    for _ in range(2):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> list:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    import tensorlite as tl
    from tensorlite import autograd, nn
    from tensorlite.debug import detect_anomaly

    sizes = [
        ("tiny", dict(vocab_size=96, seq_len=64, d_model=64, n_layers=2, n_heads=4), 8),
        ("small", dict(vocab_size=96, seq_len=128, d_model=256, n_layers=4, n_heads=8), 8),
    ]
    print(f"device: {args.device}; threads: {os.cpu_count()}; load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'workload':<10}{'params':>10}{'ops/step':>10}{'plain ms':>10}{'anomaly ms':>12}{'ratio':>8}{'us/op extra':>13}")
    rows = []
    # a chain of small ops: what the anomaly mode costs per op, when the data is small
    xa = tl.tensor(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32), requires_grad=True,
                   device=args.device)

    def chain():
        xa.grad = None
        h = xa
        for _ in range(100):
            h = (h * 0.9 + xa).tanh()
        h.sum().backward()

    def chain_anomaly():
        with detect_anomaly():
            chain()

    p = min(time_run(chain, args.repeats) for _ in range(3))
    a = min(time_run(chain_anomaly, args.repeats) for _ in range(3))
    print(f"{'chain':<10}{'-':>10}{301:>10}{p * 1e3:>10.2f}{a * 1e3:>12.2f}{a / p:>7.2f}x{(a - p) / 602 * 1e6:>13.1f}")
    rows.append(("chain", 0, 301, p, a))
    for name, cfg, batch in sizes:
        tl.manual_seed(0)
        model = nn.GPT(nn.GPTConfig(**cfg)).to(args.device)
        rng = np.random.default_rng(0)
        x = tl.tensor(rng.integers(0, cfg["vocab_size"], size=(batch, cfg["seq_len"])), device=args.device)
        y = tl.tensor(rng.integers(0, cfg["vocab_size"], size=(batch, cfg["seq_len"])), device=args.device)

        def step(model=model, x=x, y=y):
            model.zero_grad()
            model.loss(x, y).backward()

        def step_anomaly(step=step):
            with detect_anomaly():
                step()

        counted = []
        autograd._forward_observers.append(lambda fn, inputs, out, c=counted: c.append(1))
        step()
        autograd._forward_observers.clear()
        n_ops = len(counted)
        plain, anomaly = [], []
        for _ in range(3):  # interleaved, so drift of the machine affects both alike
            plain.append(time_run(step, args.repeats))
            anomaly.append(time_run(step_anomaly, args.repeats))
        p, a = min(plain), min(anomaly)
        extra_us = (a - p) / (2 * n_ops) * 1e6  # forward and backward: two checks per op
        n_params = model.num_parameters()
        print(f"{name:<10}{n_params:>10,}{n_ops:>10}{p * 1e3:>10.2f}{a * 1e3:>12.2f}{a / p:>7.2f}x{extra_us:>13.1f}")
        rows.append((name, n_params, n_ops, p, a))
    return rows


if __name__ == "__main__":
    main()
