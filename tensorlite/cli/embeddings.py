"""``tensorlite embeddings RUN_DIR``: the token embeddings of a trained run as a 2-D map (HTML)."""

from __future__ import annotations

import argparse

from ..checkpoint import CheckpointError
from ..debug.embeddings import METHODS, embedding_map
from ..train import load_run
from .errors import CLIError, one_line

HELP = "draw a run's token embeddings in 2-D (PCA or t-SNE) as one HTML page"
DESCRIPTION = (
    "Project the token embedding matrix of RUN_DIR's checkpoint to 2-D (PCA by NumPy's SVD, or "
    "t-SNE when scikit-learn is installed) and write a self-contained HTML scatter: one point "
    "per token, its text on hover. Opens offline."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `tensorlite train`")
    p.add_argument("--method", default="pca", choices=METHODS, help="pca (linear, exact) or tsne (needs scikit-learn) (default: pca)")
    p.add_argument("--out", default=None, help="output file (default: RUN_DIR/embeddings.html)")
    p.add_argument("--seed", type=int, default=0, help="t-SNE's random state (default: 0)")
    p.add_argument("--perplexity", type=float, default=None, help="t-SNE perplexity (default: min(30, (V-1)/3))")


def run(args) -> int:
    try:
        model, tokenizer, _ = load_run(args.run_dir)
    except (FileNotFoundError, NotADirectoryError, CheckpointError, ValueError, RuntimeError) as e:
        raise CLIError(one_line(e)) from None
    out = args.out or f"{args.run_dir.rstrip('/')}/embeddings.html"
    try:
        info = embedding_map(model, tokenizer, out, args.method, seed=args.seed, perplexity=args.perplexity,
                             title=f"Token embeddings of {args.run_dir}")
    except (ImportError, ValueError, OSError) as e:
        raise CLIError(one_line(e)) from None
    detail = f"PCA, {info['explained']:.0%} of the variance" if info["method"] == "pca" else "t-SNE"
    print(f"wrote {info['path']} ({info['tokens']} tokens, {detail})")
    return 0
