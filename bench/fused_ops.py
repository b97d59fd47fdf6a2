"""The memory-bound kernels of a GPT step, several ways: plain NumPy, tensorlite's fused kernels
on one and on two threads, and (when they are installed) numexpr and numba on one and two threads.

Shapes are those of ``bench/train_step.py``'s configs: (a) 2048 tokens of width 64 (FFN 256), (b)
2048 tokens of width 128 (FFN 512), and (c) four times (b)'s tokens, where the norms' blocks are
large enough to share between two threads (``NORM_GRAIN`` in ``tensorlite/kernels/fused.py``
runs smaller norms on one thread). Each kernel runs forward or backward on the same inputs;
the variants are interleaved round by round and the best round is reported (microseconds), so a
neighbour that takes a core for a while slows every variant alike and the best round shows the
code. ``numpy`` is the formula written as one NumPy call per operator over the whole array (what
tensorlite did before), ``fused`` is ``tensorlite.kernels.fused`` (blocks of rows on
tensorlite's thread pool, ``tl.set_num_threads``), ``numexpr`` evaluates the same formula as one
numexpr expression (``numexpr.set_num_threads``; it has no row reductions, so it appears only
for the elementwise kernels), ``numba`` is a ``@njit(parallel=True, fastmath=True)`` loop
(``numba.set_num_threads``; its compile time at the first call is printed at the top). Neither is
a tensorlite dependency: ``pip install numexpr numba`` to see their columns. ``torch`` is
PyTorch's own kernel for the op (``torch.set_num_threads``), when torch is installed.

    python bench/fused_ops.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

S2P = math.sqrt(2.0 / math.pi)


def numpy_gelu(a):
    return 0.5 * a * (1.0 + np.tanh(S2P * (a + 0.044715 * a * a * a)))


def numpy_gelu_backward(a, g):
    t = np.tanh(S2P * (a + 0.044715 * a * a * a))
    return g * (0.5 * (1 + t) + 0.5 * a * (1 - t * t) * S2P * (1 + 3 * 0.044715 * a * a))


def numpy_layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    rstd = 1 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)
    xhat = xc * rstd
    return xhat * w + b, xhat, rstd


def numpy_layer_norm_backward(g, xhat, rstd, w):
    dxhat = g * w
    dx = rstd * (dxhat - dxhat.mean(-1, keepdims=True) - xhat * (dxhat * xhat).mean(-1, keepdims=True))
    return dx, (g * xhat).sum(0), g.sum(0)


def numpy_adamw(p, g, m, v, lr=1e-3, b1=0.9, b2=0.95, eps=1e-8, wd=0.1, step=10):
    p *= 1 - lr * wd
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * g * g
    p -= lr / (1 - b1**step) * m / (np.sqrt(v) / math.sqrt(1 - b2**step) + eps)


def cases(rows: int, d: int, ff: int):
    """(name, {variant: callable}) for one config's shapes."""
    import tensorlite as tl
    from tensorlite.kernels import fused

    rng = np.random.default_rng(0)
    a = rng.standard_normal((rows, ff), dtype=np.float32)
    g_ff = rng.standard_normal((rows, ff), dtype=np.float32)
    x = rng.standard_normal((rows, d), dtype=np.float32)
    g_d = rng.standard_normal((rows, d), dtype=np.float32)
    w, b = np.ones(d, np.float32), np.zeros(d, np.float32)
    _, xhat, rstd = fused.layer_norm(x, w, b, 1, 1e-5)
    p = rng.standard_normal((ff, d), dtype=np.float32)
    gp = rng.standard_normal((ff, d), dtype=np.float32)
    m, v = np.zeros_like(p), np.ones_like(p)

    def threads(n, f):
        def run():
            tl.set_num_threads(n)
            return f()
        return run

    out = {
        f"GELU forward ({rows}x{ff})": {
            "numpy": lambda: numpy_gelu(a),
            "fused 1": threads(1, lambda: fused.gelu_tanh(a)),
            "fused 2": threads(2, lambda: fused.gelu_tanh(a)),
        },
        f"GELU backward ({rows}x{ff})": {
            "numpy": lambda: numpy_gelu_backward(a, g_ff),
            "fused 1": threads(1, lambda: fused.gelu_tanh_backward(a, g_ff)),
            "fused 2": threads(2, lambda: fused.gelu_tanh_backward(a, g_ff)),
        },
        f"LayerNorm forward ({rows}x{d})": {
            "numpy": lambda: numpy_layer_norm(x, w, b),
            "fused 1": threads(1, lambda: fused.layer_norm(x, w, b, 1, 1e-5)),
            "fused 2": threads(2, lambda: fused.layer_norm(x, w, b, 1, 1e-5)),
        },
        f"LayerNorm backward ({rows}x{d})": {
            "numpy": lambda: numpy_layer_norm_backward(g_d, xhat, rstd, w),
            "fused 1": threads(1, lambda: fused.layer_norm_backward(g_d, xhat, rstd, w, True, True)),
            "fused 2": threads(2, lambda: fused.layer_norm_backward(g_d, xhat, rstd, w, True, True)),
        },
        f"AdamW update ({ff}x{d})": {
            "numpy": lambda: numpy_adamw(p, gp, m, v),
            "fused 1": threads(1, lambda: fused.adam_update_(p, gp, m, v, lr=1e-3, beta1=0.9, beta2=0.95,
                                                             eps=1e-8, step=10, decoupled_decay=1e-4)),
            "fused 2": threads(2, lambda: fused.adam_update_(p, gp, m, v, lr=1e-3, beta1=0.9, beta2=0.95,
                                                             eps=1e-8, step=10, decoupled_decay=1e-4)),
        },
    }
    _add_numba(out, rows, d, ff, a, x, w, b)
    _add_torch(out, rows, d, ff, a, g_ff, x, g_d, w, b)
    try:
        import numexpr as ne
    except ImportError:
        return out

    def nx(n, expr, local):
        def run():
            ne.set_num_threads(n)
            return ne.evaluate(expr, local_dict=local)
        return run

    gelu = "0.5 * a * (1 + tanh(0.7978845608 * (a + 0.044715 * a * a * a)))"
    gelu_b = ("g * (0.5 * (1 + tanh(0.7978845608 * (a + 0.044715 * a * a * a))) + 0.5 * a * "
              "(1 - tanh(0.7978845608 * (a + 0.044715 * a * a * a)) ** 2) * 0.7978845608 * (1 + 0.134145 * a * a))")
    adam = "m / (sqrt(v) * 1.2 + 1e-8)"  # the division step alone: numexpr has no in-place multi-output
    for n in (1, 2):
        out[f"GELU forward ({rows}x{ff})"][f"numexpr {n}"] = nx(n, gelu, {"a": a})
        out[f"GELU backward ({rows}x{ff})"][f"numexpr {n}"] = nx(n, gelu_b, {"a": a, "g": g_ff})
        out[f"AdamW update ({ff}x{d})"][f"numexpr {n} (m/denom only)"] = nx(n, adam, {"m": m, "v": v})
    return out


_NUMBA = {}


def _numba_kernels():
    """GELU forward and LayerNorm forward as numba loops over rows, compiled once (timed)."""
    if "gelu" in _NUMBA:
        return _NUMBA
    import numba

    c0, c1 = 0.7978845608, 0.044715

    @numba.njit(parallel=True, fastmath=True)
    def gelu(a, out):
        af, of = a.ravel(), out.ravel()
        for i in numba.prange(af.size):
            v = af[i]
            of[i] = 0.5 * v * (1.0 + math.tanh(c0 * (v + c1 * v * v * v)))

    @numba.njit(parallel=True, fastmath=True)
    def layer_norm(x, w, b, out, eps):
        n, d = x.shape
        for i in numba.prange(n):
            mu = 0.0
            for j in range(d):
                mu += x[i, j]
            mu /= d
            var = 0.0
            for j in range(d):
                var += (x[i, j] - mu) ** 2
            r = 1.0 / math.sqrt(var / d + eps)
            for j in range(d):
                out[i, j] = (x[i, j] - mu) * r * w[j] + b[j]

    t0 = time.perf_counter()
    gelu(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32))
    t1 = time.perf_counter()
    layer_norm(np.zeros((2, 2), np.float32), np.ones(2, np.float32), np.zeros(2, np.float32),
               np.zeros((2, 2), np.float32), 1e-5)
    _NUMBA.update(gelu=gelu, layer_norm=layer_norm, compile_s=(t1 - t0, time.perf_counter() - t1),
                  version=numba.__version__)
    return _NUMBA


def _add_numba(out, rows, d, ff, a, x, w, b):
    try:
        k = _numba_kernels()
    except ImportError:
        return
    import numba

    a_out, x_out = np.empty_like(a), np.empty_like(x)

    def nb(n, f):
        def run():
            numba.set_num_threads(n)
            return f()
        return run

    for n in (1, 2):
        out[f"GELU forward ({rows}x{ff})"][f"numba {n}"] = nb(n, lambda: k["gelu"](a, a_out))
        out[f"LayerNorm forward ({rows}x{d})"][f"numba {n}"] = nb(n, lambda: k["layer_norm"](x, w, b, x_out, 1e-5))


def _add_torch(out, rows, d, ff, a, g_ff, x, g_d, w, b):
    """torch's own kernels for the same ops (its ATen forward and backward functions, no autograd)."""
    try:
        import torch
    except ImportError:
        return
    ta, tga, tx, tgd, tw, tb = (torch.from_numpy(z) for z in (a, g_ff, x, g_d, w, b))
    _, mean, rstd = torch.native_layer_norm(tx, (d,), tw, tb, 1e-5)

    def th(n, f):
        def run():
            torch.set_num_threads(n)
            return f()
        return run

    aten = torch.ops.aten
    for n in (1, 2):
        out[f"GELU forward ({rows}x{ff})"][f"torch {n}"] = th(n, lambda: aten.gelu(ta, approximate="tanh"))
        out[f"GELU backward ({rows}x{ff})"][f"torch {n}"] = th(
            n, lambda: aten.gelu_backward(tga, ta, approximate="tanh"))
        out[f"LayerNorm forward ({rows}x{d})"][f"torch {n}"] = th(
            n, lambda: torch.native_layer_norm(tx, (d,), tw, tb, 1e-5))
        out[f"LayerNorm backward ({rows}x{d})"][f"torch {n}"] = th(
            n, lambda: aten.native_layer_norm_backward(tgd, tx, (d,), mean, rstd, tw, tb, [True, True, True]))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    import tensorlite as tl
    from tensorlite.backend import tune_allocator

    tune_allocator()  # as a training run does: no page faults on fresh temporaries
    threadpool_limits(1)  # BLAS inside the kernels' tasks; the pool is what gets the second core
    try:
        import numexpr
        nx = f"numexpr {numexpr.__version__}"
    except ImportError:
        nx = "numexpr not installed"
    try:
        k = _numba_kernels()
        nb = (f"numba {k['version']} (first call, compiling: GELU {k['compile_s'][0]:.1f} s, "
              f"LayerNorm {k['compile_s'][1]:.1f} s)")
    except ImportError:
        nb = "numba not installed"
    print(f"NumPy {np.__version__}, {nx}, {nb}, {os.cpu_count()} CPUs; load average at start "
          + " ".join(f"{x:.1f}" for x in os.getloadavg()))
    saved = tl.get_num_threads()
    try:
        for label, (rows, d, ff) in (("(a)", (2048, 64, 256)), ("(b)", (2048, 128, 512)),
                                     ("(c) 4x (b)'s tokens", (8192, 128, 512))):
            print(f"\n{label}: best of {args.rounds} rounds, microseconds (and against plain NumPy)")
            for name, variants in cases(rows, d, ff).items():
                best = {k: math.inf for k in variants}
                for f in variants.values():
                    f()
                for _ in range(args.rounds):
                    for k, f in variants.items():
                        t0 = time.perf_counter()
                        f()
                        best[k] = min(best[k], time.perf_counter() - t0)
                base = best["numpy"]
                cells = "  ".join(f"{k} {t * 1e6:7.0f} ({base / t:4.1f}x)" for k, t in best.items())
                print(f"  {name:<28} {cells}")
    finally:
        tl.set_num_threads(saved)


if __name__ == "__main__":
    main()
