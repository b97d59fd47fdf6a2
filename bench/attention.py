"""Attention's graph memory and time at long contexts: the reference (primitive ops), the fused
kernel (keeps the weights) and the tiled kernel (online softmax over key blocks, recomputed in
backward), causal, float32, one batch of ``--heads`` heads of width ``--head-dim``.

Memory is ``tl.debug.array_memory``: the NumPy array bytes the graph holds once the forward has
run (inputs excluded, the output included), the number that grows with the context. Time is one
forward plus backward, best of ``--repeats`` rounds, on one thread (BLAS and tensorlite's pool),
the variants interleaved round by round. ``max |diff|`` compares each output and the three input
gradients with the reference.

    python bench/attention.py [--lengths 512 1024 2048] [--heads 4] [--head-dim 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048])
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_limits

    import tensorlite as tl
    import tensorlite.functional as F
    from tensorlite.backend import tune_allocator

    tune_allocator()
    threadpool_limits(1)
    tl.set_num_threads(1)
    variants = {
        "reference": lambda q, k, v: F.attention_reference(q, k, v, is_causal=True)[0],
        "fused": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        "tiled": lambda q, k, v: F.tiled_attention(q, k, v, is_causal=True),
    }
    print(f"causal attention, float32, 1 x {args.heads} heads x T x {args.head_dim}, one thread; "
          "load average at start " + " ".join(f"{x:.1f}" for x in os.getloadavg()))
    print(f"  {'T':>5} {'variant':<10} {'graph MiB':>10} {'fwd+bwd ms':>11} {'max |diff|':>11}")
    rng = np.random.default_rng(0)
    for t in args.lengths:
        shape = (1, args.heads, t, args.head_dim)
        arrays = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]
        g = tl.tensor(rng.standard_normal(shape).astype(np.float32))
        held, best, results = {}, {k: float("inf") for k in variants}, {}
        for r in range(args.repeats):
            for name, fn in variants.items():
                q, k, v = (tl.tensor(a, requires_grad=True) for a in arrays)
                t0 = time.perf_counter()
                if r == 0:
                    with tl.debug.array_memory() as mem:
                        out = fn(q, k, v)
                    held[name] = mem.held_mib
                else:
                    out = fn(q, k, v)
                out.backward(g)
                best[name] = min(best[name], time.perf_counter() - t0)
                results[name] = [out.numpy()] + [x.grad.numpy() for x in (q, k, v)]
                del out
        for name in variants:
            diff = max(float(np.abs(a - b).max()) for a, b in zip(results[name], results["reference"]))
            print(f"  {t:>5} {name:<10} {held[name]:10.1f} {best[name] * 1e3:11.1f} {diff:11.1e}")


if __name__ == "__main__":
    main()
