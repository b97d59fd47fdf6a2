"""``tensorlite generate RUN_DIR``: sample text from a trained run."""

from __future__ import annotations

import argparse
import sys

from ..backend import get_device
from ..checkpoint import CheckpointError
from ..train import load_run, sample_text
from .errors import CLIError, one_line
from .interactive import InteractiveSession, Settings

HELP = "sample text from a trained run"
DESCRIPTION = (
    "Load RUN_DIR/checkpoint and continue --prompt (printed with the continuation). With "
    "--interactive, read prompts line by line instead; /temp, /topk, /topp, /tokens, /penalty "
    "and /seed change the sampling settings (the flags set their starting values), /config "
    "shows them, /help lists the commands, /quit or Ctrl-D leaves."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `tensorlite train`")
    p.add_argument("--prompt", default="def ", help="text to continue (default: 'def ')")
    p.add_argument("--max-new-tokens", type=int, default=200, help="tokens to generate (default: 200)")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default: 0.8)")
    p.add_argument("--top-k", type=int, default=None, help="sample from the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling threshold")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages repeats (default: 1.0)")
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible samples")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context each token")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the model runs (default: cpu)")
    p.add_argument("-i", "--interactive", action="store_true", help="a prompt loop with /commands for the settings")


def run(args) -> int:
    if args.max_new_tokens < 0:
        raise CLIError(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")
    if args.temperature < 0:
        raise CLIError(f"--temperature must be >= 0, got {args.temperature}")
    if args.top_k is not None and args.top_k < 1:
        raise CLIError(f"--top-k must be >= 1, got {args.top_k}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise CLIError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.repetition_penalty <= 0:
        raise CLIError(f"--repetition-penalty must be > 0, got {args.repetition_penalty}")
    try:
        get_device(args.device)
        model, tokenizer, config = load_run(args.run_dir, device=args.device)
    except (FileNotFoundError, NotADirectoryError, CheckpointError, ValueError, RuntimeError) as e:
        raise CLIError(one_line(e)) from None
    if args.interactive:
        settings = Settings(args.temperature, args.top_k, args.top_p, args.max_new_tokens,
                            args.repetition_penalty, args.seed)

        def generate_text(prompt, s):
            tokenizer.encode(prompt)  # a ValueError names the characters it does not know
            return sample_text(model, tokenizer, prompt, s.max_new_tokens, temperature=s.temperature,
                               top_k=s.top_k, top_p=s.top_p, repetition_penalty=s.repetition_penalty,
                               seed=s.seed, use_cache=not args.no_cache)

        return InteractiveSession(generate_text, settings).run()
    if not args.prompt:
        raise CLIError("--prompt must not be empty")
    try:
        tokenizer.encode(args.prompt)
    except ValueError as e:
        raise CLIError(f"--prompt: {' '.join(str(e).split())}") from None
    text = sample_text(model, tokenizer, args.prompt, args.max_new_tokens, temperature=args.temperature,
                       top_k=args.top_k, top_p=args.top_p, repetition_penalty=args.repetition_penalty,
                       seed=args.seed, use_cache=not args.no_cache)
    sys.stdout.write(text + "\n")
    return 0
