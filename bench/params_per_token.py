"""Many parameters per training token: does a big model on a small corpus only memorise?

    python bench/params_per_token.py [--chars 20000] [--steps 1500]

Character-level runs on the first ``--chars`` characters of the default corpus (10% held out):
a small model, and a model with about ten parameters per training character (nanoGPT's
Shakespeare baseline has 10.7M parameters for 1.1M characters), trained without and with
dropout. Prints, per run, the parameters per training character, the best validation loss and
its step (what early stopping keeps), and the final training and validation loss. Used by
docs/guide/convergence.md (model size); a few minutes on one CPU core.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from threadpoolctl import threadpool_limits

from tensorlite.debug import load_metrics
from tensorlite.train import TrainConfig, train


def main(argv=None) -> list:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chars", type=int, default=20_000)
    ap.add_argument("--steps", type=int, default=1500)
    args = ap.parse_args(argv)
    base = dict(seq_len=64, batch_size=32, steps=args.steps, lr=2e-3, lr_min=2e-4, warmup=100, weight_decay=0.1,
                eval_interval=max(1, args.steps // 30), eval_batches=8, ckpt_interval=0,
                corpus_max_chars=args.chars, progress=False, out_dir=tempfile.mkdtemp())
    runs = [("small", dict(d_model=32, n_layers=1, n_heads=4, dropout=0.0)),
            ("big", dict(d_model=64, n_layers=4, n_heads=4, dropout=0.0)),
            ("big + dropout 0.2", dict(d_model=64, n_layers=4, n_heads=4, dropout=0.2))]
    rows = []
    with threadpool_limits(1):  # small matrices: BLAS threads only contend
        for name, model in runs:
            t0 = time.perf_counter()
            res = train(TrainConfig().replace(**base, **model, name=name.replace(" ", "_")))
            m = load_metrics(res.run_dir)
            steps, val = m.series("val_loss")
            n_params = m.header["n_params"]
            train_chars = 0.9 * args.chars
            best = int(np.argmin(val))
            rows.append((name, n_params, n_params / train_chars, float(val[best]), int(steps[best]),
                         float(np.median(res.losses[-20:])), float(val[-1]), time.perf_counter() - t0))
    print(f"{args.chars} characters (90% for training), {args.steps} steps of 32 x 64 characters")
    print(f"{'run':<18} {'params':>8} {'per char':>8} {'best val':>8} {'at step':>7} {'train end':>9} "
          f"{'val end':>7} {'time':>6}")
    for name, n, ratio, bv, bs, tr, ve, dt in rows:
        print(f"{name:<18} {n:>8,} {ratio:>8.1f} {bv:>8.3f} {bs:>7d} {tr:>9.3f} {ve:>7.3f} {dt:>5.0f}s")
    return rows


if __name__ == "__main__":
    main()
