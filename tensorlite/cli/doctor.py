"""``tensorlite doctor``: the preflight checks of a run's model, optimizer, schedule and data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import faults as _faults
from ..debug.doctor import doctor_for_config
from ..train import TrainConfig, config_from_json, read_config
from .errors import CLIError, one_line
from .flags import fault_list

__all__ = ["add_parser", "load_config"]


def load_config(path) -> TrainConfig:
    """The TrainConfig of a run directory (its ``config.json``) or of a JSON file of its fields."""
    p = Path(path)
    try:
        if p.is_dir():
            return read_config(p)
        if not p.is_file():
            raise CLIError(f"{p}: no such run directory or config file")
        return config_from_json(p)
    except (FileNotFoundError, ValueError) as e:
        raise CLIError(one_line(e)) from None


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "doctor",
        help="preflight checks of a run's model, optimizer, schedule and data (seconds)",
        description=(
            "Build the model, optimizer, LR schedule, batcher and loss that `tensorlite train` would "
            "build from RUN_DIR/config.json (or a JSON file of TrainConfig fields), without training, "
            "and run the doctor's checks on them. Prints a table; exit code 1 if any check fails. "
            "See docs/debug/doctor.md."
        ),
    )
    p.add_argument("path", metavar="RUN_DIR_OR_CONFIG", nargs="?", default=None,
                   help="a run directory or a JSON config file")
    p.add_argument("--list-faults", action="store_true",
                   help="print the fault catalogue (name, seed, component, target, catching check) and exit")
    p.add_argument("--faults", type=fault_list, default=None, metavar="NAME[,NAME...]",
                   help="fault names to add to the config's (to see a check catch one)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    if args.list_faults:
        print(_faults.table())
        return 0
    if args.path is None:
        raise CLIError("give a run directory or a JSON config file (or --list-faults)")
    config = load_config(args.path)
    try:
        if args.faults:
            config = config.replace(faults=tuple(config.faults) + tuple(args.faults))
        report = doctor_for_config(config)
    except (ValueError, FileNotFoundError) as e:
        raise CLIError(one_line(e)) from None
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return 0 if report.ok else 1
