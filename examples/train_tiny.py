"""Train a tiny GPT for a few seconds, resume it, and sample from it.

    python examples/train_tiny.py [--steps 60] [--out runs]

The same loop as ``tensorlite train``, from Python: ``TrainConfig`` holds every setting in four
sections (``model``, ``data``, ``optim``, ``run``), ``train`` runs it and writes a run directory,
``train(resume=...)`` continues it, ``load_run`` reads it back.
"""

from __future__ import annotations

import argparse
import tempfile

from tensorlite.nn import GPTConfig
from tensorlite.train import DataConfig, OptimConfig, RunConfig, TrainConfig, load_run, sample_text, train


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--out", default=None, help="parent of the run directory (default: a temp dir)")
    args = ap.parse_args(argv)
    out = args.out or tempfile.mkdtemp()

    config = TrainConfig(
        model=GPTConfig(d_model=48, n_layers=2, n_heads=2, seq_len=48),
        data=DataConfig(corpus_max_chars=100_000),
        optim=OptimConfig(steps=args.steps, batch_size=16, warmup=10, lr=3e-3),
        run=RunConfig(eval_interval=20, eval_batches=4, ckpt_interval=20, out_dir=out, name="tiny", progress=False),
    )
    half = train(config.replace(steps=args.steps // 2))
    print(f"{half.steps} steps: loss {half.losses[0]:.2f} -> {half.final_loss:.2f}")
    result = train(config, resume=half.run_dir)  # the same run, continued to config.optim.steps
    print(f"{result.steps} steps: loss {result.final_loss:.2f}, val loss {result.final_val_loss:.2f}")
    print(f"run directory: {result.run_dir}")

    model, tokenizer, _ = load_run(result.run_dir)
    print(sample_text(model, tokenizer, "def ", 80, temperature=0.8, seed=0))


if __name__ == "__main__":
    main()
