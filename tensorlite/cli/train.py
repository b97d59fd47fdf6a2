"""``tensorlite train``: train a GPT, write runs/<name>/ (with its dashboard), print a sample."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..backend import get_device
from ..checkpoint import CheckpointError
from ..debug import Probes, WriteDashboard
from ..train import NonFiniteLossError, TrainConfig, Trainer, TrainingInterrupted, read_config, sample_text
from .errors import CLIError, one_line
from .flags import add_config_flags, given_fields

_DEFAULTS = TrainConfig()
HELP = "train a GPT and write runs/<name>/"
DESCRIPTION = (
    f"Train a small GPT (default: {_DEFAULTS.model.n_layers} layers, d_model {_DEFAULTS.model.d_model}, "
    f"{_DEFAULTS.model.n_heads} heads, context {_DEFAULTS.model.seq_len}, char tokenizer, {_DEFAULTS.optim.steps} steps) on a "
    "corpus (default: the Python standard library's source) and write runs/<name>/ with config.json, "
    "tokenizer.json, metrics.jsonl, checkpoint/ and dashboard.html. Every field of TrainConfig "
    "has a flag; with --resume, the flags given override the run's saved config where a resume "
    "allows it (optimisation and run settings, not the model, the data or the faults)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue the run in RUN_DIR from its checkpoint")
    add_config_flags(p, _DEFAULTS)
    extra = p.add_argument_group("this command")
    extra.add_argument("--probe-interval", type=int, default=25, metavar="N",
                       help="steps between debug probes: activations, attention, spectral norms, 0 = none "
                            "(default: 25)")
    extra.add_argument("--sample-tokens", type=int, default=200, metavar="N",
                       help="tokens to sample at the end, 0 = none (default: 200)")
    extra.add_argument("--prompt", default="def ", help="prompt of the sample printed at the end (default: 'def ')")
    extra.add_argument("--quiet", action="store_true", help="no progress bar and no summary")


def config_from_args(args) -> TrainConfig:
    """The TrainConfig the flags describe (with --resume: the run's own, with the flags given)."""
    given = given_fields(args)
    if args.quiet:
        given["progress"] = False
    base = read_config(Path(args.resume)) if args.resume is not None else TrainConfig()
    return base.replace(**given)


def run(args) -> int:
    if args.probe_interval < 0:
        raise CLIError(f"--probe-interval must be >= 0, got {args.probe_interval}")
    try:
        config = config_from_args(args)
        get_device(config.run.device)
        callbacks = [Probes(interval=args.probe_interval)] if args.probe_interval else []
        trainer = Trainer(config, callbacks=callbacks + [WriteDashboard()], resume=args.resume)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError,
            IsADirectoryError, CheckpointError, RuntimeError) as e:
        raise CLIError(one_line(e)) from None
    quiet = not trainer.config.run.progress
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
                           temperature=0.8, seed=trainer.config.run.seed)
        print(f"sample (prompt {prompt!r}, temperature 0.8):")
        print(text)
    return 0
