"""``tensorlite train``: train a GPT, write runs/<name>/, print a sample."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from ..backend import get_device
from ..checkpoint import CheckpointError
from ..cli import CLIError
from ..train import NonFiniteLossError, TrainConfig, Trainer, TrainingInterrupted, sample_text

_DEFAULTS = TrainConfig()

# (flag, field, type, help); every flag defaults to None so that --resume can tell what was given
_FLAGS = [
    ("--d-model", "d_model", int, "width of the residual stream"),
    ("--n-layers", "n_layers", int, "number of transformer blocks"),
    ("--n-heads", "n_heads", int, "attention heads (must divide --d-model)"),
    ("--seq-len", "seq_len", int, "context length in tokens"),
    ("--d-ff", "d_ff", int, "hidden width of the feed-forward layer (default 4*d_model)"),
    ("--dropout", "dropout", float, "dropout probability"),
    ("--norm", "norm", str, "layernorm | rmsnorm"),
    ("--ffn", "ffn", str, "gelu | swiglu"),
    ("--pos", "pos", str, "learned | rope"),
    ("--linear", "linear", str, "dense | bitlinear"),
    ("--corpus", "corpus", str, "a text file or a folder of text files (default: Python stdlib source)"),
    ("--max-chars", "corpus_max_chars", int, "use only the first N characters of the corpus"),
    ("--tokenizer", "tokenizer", str, "char | bpe"),
    ("--vocab-size", "vocab_size", int, "vocabulary size of the BPE tokenizer"),
    ("--steps", "steps", int, "optimizer steps"),
    ("--batch-size", "batch_size", int, "sequences per micro-batch"),
    ("--grad-accum", "grad_accum", int, "micro-batches per optimizer step"),
    ("--lr", "lr", float, "peak learning rate"),
    ("--lr-min", "lr_min", float, "learning rate at the end of the cosine decay"),
    ("--warmup", "warmup", int, "linear warmup steps (0 = none)"),
    ("--weight-decay", "weight_decay", float, "AdamW weight decay (not on norms and biases)"),
    ("--clip", "clip", float, "clip the gradient norm to this (0 = no clipping)"),
    ("--eval-interval", "eval_interval", int, "steps between validation losses (0 = never)"),
    ("--eval-batches", "eval_batches", int, "batches per validation loss"),
    ("--ckpt-interval", "ckpt_interval", int, "steps between checkpoints (0 = only at the end)"),
    ("--log-interval", "log_interval", int, "steps between metrics lines"),
    ("--probe-interval", "probe_interval", int, "steps between debug probes (0 = none)"),
    ("--seed", "seed", int, "random seed"),
    ("--device", "device", str, "cpu | cuda"),
    ("--out", "out_dir", str, "parent folder of run directories"),
    ("--name", "name", str, "run directory name (default: the date and time)"),
]


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    d = _DEFAULTS
    p = subparsers.add_parser(
        "train",
        help="train a GPT and write runs/<name>/",
        description=(
            f"Train a small GPT (default: {d.n_layers} layers, d_model {d.d_model}, {d.n_heads} heads, "
            f"context {d.seq_len}, char tokenizer, {d.steps} steps) on a corpus (default: Python "
            "standard library source) and write runs/<name>/ with config.json, tokenizer.json, "
            "metrics.jsonl, checkpoint/ and dashboard.html."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for flag, name, typ, help_ in _FLAGS:
        default = getattr(d, name)
        p.add_argument(flag, dest=name, type=typ, default=None,
                       help=f"{help_} (default: {default})" if default is not None else help_)
    p.add_argument("--bias", dest="bias", action=argparse.BooleanOptionalAction, default=None,
                   help=f"biases in linear layers and norms (default: {d.bias})")
    p.add_argument("--tie-weights", dest="tie_weights", action=argparse.BooleanOptionalAction, default=None,
                   help=f"share the token embedding with the output layer (default: {d.tie_weights})")
    p.add_argument("--gradient-checkpointing", dest="gradient_checkpointing",
                   action=argparse.BooleanOptionalAction, default=None,
                   help="recompute each block in backward instead of keeping its graph "
                        f"(default: {d.gradient_checkpointing})")
    p.add_argument("--faults", dest="faults", type=_fault_list, default=None,
                   help="comma-separated fault names to switch on (the bug catalogue)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue the run in RUN_DIR from its checkpoint (flags given override "
                        "its config where that is allowed, e.g. --steps)")
    p.add_argument("--sample-tokens", type=int, default=200, help="tokens to sample at the end (0 = none)")
    p.add_argument("--prompt", default="def ", help="prompt of the sample printed at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    p.set_defaults(func=run_train)
    return p


def _fault_list(s: str) -> tuple:
    return tuple(f.strip() for f in s.split(",") if f.strip())


def config_from_args(args) -> TrainConfig | None:
    """The TrainConfig the flags describe (None with --resume and no flags: the run's own)."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
             if getattr(args, f.name, None) is not None}
    if args.quiet:
        given["progress"] = False
    if args.resume is not None:
        base = _saved_config(Path(args.resume))
        return base.replace(**given) if given else base
    return TrainConfig(**given)


def _saved_config(run_dir: Path) -> TrainConfig:
    if not run_dir.is_dir():
        raise CLIError(f"run directory '{run_dir}' does not exist")
    f = run_dir / "config.json"
    if not f.is_file():
        raise CLIError(f"{f}: missing; is '{run_dir}' a tensorlite run directory?")
    try:
        return TrainConfig.from_dict(json.loads(f.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as e:
        raise CLIError(f"{f}: not a valid run config ({e})") from None


def run_train(args) -> int:
    try:
        config = config_from_args(args)
        get_device(config.device)
        trainer = Trainer(config, resume=args.resume)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError,
            IsADirectoryError, CheckpointError, RuntimeError) as e:
        raise CLIError(_one_line(e)) from None
    quiet = not trainer.config.progress
    if not quiet:
        where = f"resuming {trainer.run_dir} at step {trainer.step}" if args.resume else str(trainer.run_dir)
        n_params = sum(p.data.size for p in trainer.model.parameters())
        print(f"run: {where} | {n_params:,} parameters | vocab {trainer.tokenizer.vocab_size} | "
              f"{trainer.config.tokens_per_step} tokens/step", file=sys.stderr)
    try:
        result = trainer.fit()
    except TrainingInterrupted as e:
        print(f"tensorlite train: interrupted after step {e.step}; checkpoint saved in {e.checkpoint} "
              f"(continue with: tensorlite train --resume {e.run_dir})", file=sys.stderr)
        return 130
    except NonFiniteLossError as e:
        print(f"tensorlite train: {e}", file=sys.stderr)
        return 1
    if quiet:
        return 0
    val = f", val loss {result.final_val_loss:.4f}" if result.final_val_loss is not None else ""
    print(f"done: {result.steps} steps in {result.wall_time:.1f}s, loss {result.final_loss:.4f}{val}")
    print(f"run directory: {result.run_dir}")
    dash = result.run_dir / "dashboard.html"
    if dash.exists():
        print(f"dashboard: {dash}")
    if args.sample_tokens > 0:
        prompt = args.prompt
        try:
            trainer.tokenizer.encode(prompt)
        except ValueError:
            prompt = trainer.tokenizer.decode([0])
        text = sample_text(trainer.model, trainer.tokenizer, prompt, args.sample_tokens,
                           temperature=0.8, seed=trainer.config.seed)
        print(f"sample (prompt {prompt!r}, temperature 0.8):")
        print(text)
    return 0


def _one_line(e: BaseException) -> str:
    msg = str(e).strip()
    if isinstance(e, KeyError):
        msg = str(e.args[0]) if e.args else msg
    return " ".join(msg.split()) or type(e).__name__
