"""``tensorlite dashboard``: a run's six-panel dashboard and its diagnosis."""

from __future__ import annotations

import argparse

from .._docs import docs_url
from ..debug.dashboard import dashboard
from ..debug.diagnose import diagnose
from ..debug.metrics import resolve_metrics_path
from .errors import CLIError, one_line

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "run"]


HELP = "write a run's six-panel dashboard (self-contained HTML) and print its diagnosis"
DESCRIPTION = (
    "Write RUN_DIR/dashboard.html from RUN_DIR/metrics.jsonl: loss, learning rate, gradient norm "
    "before and after clipping, activation RMS per layer, spectral norms, dead units and heads, "
    f"with the diagnosis on top. One file, no network needed to open it. See {docs_url('debug/dashboard.md')}"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN_DIR", help="a run directory (or its metrics.jsonl)")
    p.add_argument("--out", default=None, help="output file (default: RUN_DIR/dashboard.html)")
    p.add_argument("--reference", metavar="RUN_DIR", default=None,
                   help="a healthy run to draw in grey behind every panel")
    p.add_argument("--title", default=None, help="page title (default: the run directory's name)")


def run(args) -> int:
    try:
        resolve_metrics_path(args.run)
        if args.reference is not None:
            resolve_metrics_path(args.reference)
        out = dashboard(args.run, out=args.out, reference=args.reference, title=args.title)
        diag = diagnose(args.run)
    except (FileNotFoundError, ValueError) as e:
        raise CLIError(one_line(e)) from None
    print(f"wrote {out}")
    print(diag.name if diag.healthy else f"diagnosis: {', '.join(diag.names)}")
    return 0
