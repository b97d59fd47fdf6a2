"""How high a learning rate a GPT tolerates, by width: a small AdamW sweep.

    python bench/lr_vs_width.py [--steps 150] [--widths 32 128 512]

For each width (2 layers, context 32, batch 16, character-level default corpus, AdamW with a
10-step warmup and no clipping) and each learning rate, trains ``--steps`` steps and prints the
loss at the end and the highest training loss after step 10. A run counts as unstable when that
peak goes above ln V (worse than a uniform guess after the warmup) or turns NaN. The largest
stable rate falls as the width grows: a rate that trains a small model well makes a big one
spike. Used by docs/guide/nan.md (lower the learning rate?); a minute or two on two CPU cores.
"""

from __future__ import annotations

import argparse
import math
import tempfile

import numpy as np
from threadpoolctl import threadpool_limits

from tensorlite.train import NonFiniteLossError, TrainConfig, train

LRS = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 128, 512])
    args = ap.parse_args(argv)
    out = tempfile.mkdtemp()
    table: dict = {}
    with threadpool_limits(2):
        for d in args.widths:
            for lr in LRS:
                cfg = TrainConfig().replace(d_model=d, n_layers=2, n_heads=4, seq_len=32, batch_size=16,
                                            steps=args.steps, lr=lr, lr_min=lr / 10, warmup=10, clip=0.0,
                                            weight_decay=0.1, eval_interval=0, eval_batches=1, ckpt_interval=0,
                                            corpus_max_chars=200_000, progress=False, out_dir=out,
                                            name=f"d{d}-lr{lr}")
                try:
                    res = train(cfg)
                    losses = np.asarray(res.losses)
                    table[d, lr] = (float(np.median(losses[-10:])), float(losses[10:].max()), False)
                except NonFiniteLossError:
                    table[d, lr] = (float("nan"), float("inf"), True)
    ln_v = math.log(96)  # the character vocabulary of the default corpus (95 or 96 symbols)
    print(f"final loss (peak after step 10) by width and AdamW learning rate, {args.steps} steps, no clipping;")
    print(f"* = unstable: the peak above ln V = {ln_v:.2f}, or NaN")
    print(f"{'d_model':>8} " + " ".join(f"{lr:>14g}" for lr in LRS))
    for d in args.widths:
        cells = []
        for lr in LRS:
            final, peak, nan = table[d, lr]
            mark = "*" if nan or peak > ln_v else " "
            cells.append(f"{'NaN':>6}{'':>8}" if nan else f"{final:6.2f} ({peak:5.2f}){mark}")
        stable = [lr for lr in LRS if not table[d, lr][2] and table[d, lr][1] <= ln_v]
        print(f"{d:>8} " + " ".join(f"{c:>14}" for c in cells) + f"   largest stable {max(stable) if stable else '-'}")
    return table


if __name__ == "__main__":
    main()
