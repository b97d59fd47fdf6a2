"""``tensorlite doctor`` and ``tensorlite dashboard``: the debug tools on the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..cli import CLIError
from ..train import TRAIN_FAULTS, TrainConfig
from .dashboard import dashboard
from .diagnose import diagnose
from .doctor import doctor_for_config
from .faults import table as faults_table
from .metrics import resolve_metrics_path

__all__ = ["add_dashboard_parser", "add_doctor_parser", "load_config"]


def load_config(path) -> TrainConfig:
    """The :class:`~tensorlite.train.TrainConfig` of a run directory (its ``config.json``) or of a
    JSON file holding TrainConfig fields. User errors raise :class:`~tensorlite.cli.CLIError`."""
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
        if not p.is_file():
            raise CLIError(f"{p.parent}: no config.json; is it a tensorlite run directory?")
    elif not p.is_file():
        raise CLIError(f"{p}: no such run directory or config file")
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CLIError(f"{p}: not a JSON config ({e})") from None
    if not isinstance(d, dict):
        raise CLIError(f"{p}: expected a JSON object of TrainConfig fields")
    try:
        return TrainConfig.from_dict(d)
    except (TypeError, ValueError) as e:
        raise CLIError(f"{p}: {e}") from None


def _faults(text: str) -> tuple:
    return tuple(f.strip() for f in text.split(",") if f.strip())


def add_doctor_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "doctor",
        help="preflight checks of a run's model, optimizer, schedule and data (seconds)",
        description=(
            "Build the model, optimizer, LR schedule, batcher and loss that `tensorlite train` would "
            "build from RUN_DIR/config.json (or a JSON file of TrainConfig fields), without training, "
            "and run the doctor's checks on them: loss at init vs ln(vocab), attention normalisation and "
            "scale, causal leak, RoPE, norms on zeros, residual and pre-norm, init scale, gradient flow, "
            "overfitting one batch, graph size, AdamW decay, warmup, input/label alignment. Prints a "
            "table; exit code 1 if any check fails. See docs/debug/doctor.md."
        ),
    )
    p.add_argument("path", metavar="RUN_DIR_OR_CONFIG", nargs="?", default=None,
                   help="a run directory or a JSON config file")
    p.add_argument("--list-faults", action="store_true",
                   help="print the fault catalogue (name, seed, component, switch, catching check) and exit")
    p.add_argument("--faults", type=_faults, default=None,
                   help="comma-separated fault names to add to the config's (to see a check catch one)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run_doctor)
    return p


def run_doctor(args) -> int:
    if getattr(args, "list_faults", False):
        print(faults_table())
        return 0
    if args.path is None:
        raise CLIError("give a run directory or a JSON config file (or --list-faults)")
    config = load_config(args.path)
    if args.faults:
        try:
            config = config.replace(faults=tuple(config.faults) + tuple(args.faults))
            config.gpt_config(vocab_size=256)  # unknown model faults raise here, naming the known ones
        except ValueError as e:
            raise CLIError(str(e)) from None
        unknown = [f for f in args.faults if f not in TRAIN_FAULTS and f not in config.gpt_config(256).faults]
        if unknown:
            raise CLIError(f"--faults: unknown fault(s) {', '.join(unknown)}")
    try:
        report = doctor_for_config(config)
    except (ValueError, FileNotFoundError) as e:
        raise CLIError(" ".join(str(e).split())) from None
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return 0 if report.ok else 1


def add_dashboard_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "dashboard",
        help="write a run's six-panel dashboard (self-contained HTML) and print its diagnosis",
        description=(
            "Write RUN_DIR/dashboard.html from RUN_DIR/metrics.jsonl: loss, learning rate, gradient norm "
            "before and after clipping, activation RMS per layer, spectral norms, dead units and heads, "
            "with the diagnosis on top. One file, no network needed to open it. See docs/debug/dashboard.md."
        ),
    )
    p.add_argument("run", metavar="RUN_DIR", help="a run directory (or its metrics.jsonl)")
    p.add_argument("--out", default=None, help="output file (default: RUN_DIR/dashboard.html)")
    p.add_argument("--reference", metavar="RUN_DIR", default=None,
                   help="a healthy run to draw in grey behind every panel")
    p.add_argument("--title", default=None, help="page title (default: the run directory's name)")
    p.set_defaults(func=run_dashboard)
    return p


def run_dashboard(args) -> int:
    try:
        resolve_metrics_path(args.run)
        if args.reference is not None:
            resolve_metrics_path(args.reference)
        out = dashboard(args.run, out=args.out, reference=args.reference, title=args.title)
        diag = diagnose(args.run)
    except (FileNotFoundError, ValueError) as e:
        raise CLIError(" ".join(str(e).split())) from None
    print(f"wrote {out}")
    print(diag.name if diag.healthy else f"diagnosis: {', '.join(diag.names)}")
    return 0
