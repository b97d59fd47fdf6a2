"""``tensorlite attention``: a page of attention heatmaps, one per layer and head, for a prompt."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..checkpoint import CheckpointError
from ..data import load_tokenizer
from ..debug.attention_maps import attention_maps
from ..debug.dashboard import dashboard
from ..train import load_run
from .errors import CLIError, one_line
from .factory import parts_from_factory

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "run"]

#: The longest prompt drawn by default: 48 x 48 cells per head stay readable and the page small.
MAX_TOKENS = 48


HELP = "write attention heatmaps (one per layer and head) for a prompt as one HTML page"
DESCRIPTION = (
    "Run one forward of a model on --prompt and write one self-contained HTML page of its "
    "attention weights: a heatmap per layer and head, queries down, keys across, token labels "
    "on both axes, the weight on hover; weight on later tokens (a leaking causal mask) in red. "
    "The model: RUN_DIR (a run of `tensorlite train`; the page goes to RUN_DIR/attention.html, "
    "which the dashboard links) or --model MODULE:FACTORY (your tensorlite or PyTorch model). "
    "See docs/debug/attention-maps.md."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", nargs="?", default=None, help="a run directory")
    p.add_argument("--model", metavar="MODULE:FACTORY", default=None,
                   help="a factory returning a model (or (model, optimizer, ...)): pkg.module:make or file.py:make")
    p.add_argument("--prompt", default=None, help="the text to look at (tokenized by the run's tokenizer)")
    p.add_argument("--tokens", default=None, metavar="IDS",
                   help="token ids instead of --prompt, separated by spaces or commas")
    p.add_argument("--tokenizer", default=None, metavar="PATH",
                   help="with --model: a tensorlite tokenizer.json (or a run directory holding one) for --prompt")
    p.add_argument("--out", default=None, help="output file (default: RUN_DIR/attention.html, or ./attention.html)")
    p.add_argument("--max-tokens", type=int, default=MAX_TOKENS,
                   help=f"draw the first N tokens of the prompt (default: {MAX_TOKENS})")
    p.add_argument("--not-causal", action="store_true",
                   help="the model may attend ahead (an encoder): weight on later tokens is not called a leak")
    p.add_argument("--title", default=None, help="page title")


def _token_ids(text: str) -> list:
    try:
        ids = [int(t) for t in text.replace(",", " ").split()]
    except ValueError:
        raise CLIError(f"--tokens: expected integers separated by spaces or commas, got {text!r}") from None
    if any(i < 0 for i in ids):
        raise CLIError(f"--tokens: token ids must be >= 0, got {text!r}")
    return ids


def _tokenizer_from(path: str):
    p = Path(path)
    f = p / "tokenizer.json" if p.is_dir() else p
    if not f.is_file():
        raise CLIError(f"--tokenizer: no tokenizer at {f}")
    try:
        return load_tokenizer(f)
    except (ValueError, KeyError) as e:
        raise CLIError(f"--tokenizer {f}: {one_line(e)}") from None


def run(args) -> int:
    if (args.run_dir is None) == (args.model is None):
        raise CLIError("give a run directory or --model MODULE:FACTORY (one of them)")
    if (args.prompt is None) == (args.tokens is None):
        raise CLIError("give --prompt TEXT or --tokens IDS (one of them)")
    if args.max_tokens < 2:
        raise CLIError(f"--max-tokens must be >= 2, got {args.max_tokens}")
    ids = _token_ids(args.tokens) if args.tokens is not None else None
    tokenizer = None
    if args.run_dir is not None:
        if args.tokenizer is not None:
            raise CLIError("--tokenizer is for --model; a run directory has its own")
        try:
            model, tokenizer, _ = load_run(args.run_dir)
        except (FileNotFoundError, NotADirectoryError, CheckpointError, ValueError, RuntimeError) as e:
            raise CLIError(one_line(e)) from None
        out = Path(args.out) if args.out else Path(args.run_dir) / "attention.html"
        title = args.title or f"{Path(args.run_dir).name} · attention maps"
    else:
        model = parts_from_factory(args.model)[0]
        if args.tokenizer is not None:
            tokenizer = _tokenizer_from(args.tokenizer)
        out = Path(args.out) if args.out else Path("attention.html")
        title = args.title or f"{type(model).__name__} from {args.model} · attention maps"
    if ids is None:
        if tokenizer is None:
            raise CLIError("--prompt needs a tokenizer: with --model, pass --tokenizer PATH or give --tokens IDS")
        try:
            ids = list(tokenizer.encode(args.prompt))
        except ValueError as e:
            raise CLIError(f"--prompt: {one_line(e)}") from None
    ids = ids[: args.max_tokens]
    if len(ids) < 2:
        raise CLIError(f"the prompt is {len(ids)} token(s) long; attention maps need at least 2")
    labels = [tokenizer.decode([i]) for i in ids] if tokenizer is not None else None
    try:
        path = attention_maps(model, ids, out, labels, title=title, causal=not args.not_causal)
    except (TypeError, ValueError, IndexError) as e:
        raise CLIError(one_line(e)) from None
    print(f"wrote {path}")
    if args.run_dir is not None and path.resolve().parent == Path(args.run_dir).resolve():
        board = Path(args.run_dir) / "dashboard.html"
        if board.is_file():  # written when the run ended, before the maps existed: link them now
            try:
                dashboard(args.run_dir, out=board)
                print(f"updated {board} (it links the maps)")
            except (FileNotFoundError, ValueError) as e:
                raise CLIError(one_line(e)) from None
    return 0
