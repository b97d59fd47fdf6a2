"""The ``tensorlite`` command: train | generate | embeddings | doctor | dashboard | bench."""

from __future__ import annotations

import argparse
import importlib
import sys

from ._version import __version__


class CLIError(Exception):
    """A user error: printed as one line on stderr, exit code 2, no traceback."""


# (module, function): each adds one subcommand. Imported when the parser is built, because the
# command modules import CLIError from here.
_COMMANDS = [
    ("tensorlite.commands.train", "add_train_parser"),
    ("tensorlite.commands.generate", "add_generate_parser"),
    ("tensorlite.commands.embeddings", "add_embeddings_parser"),
    ("tensorlite.debug.cli", "add_doctor_parser"),
    ("tensorlite.debug.cli", "add_dashboard_parser"),
    ("tensorlite.commands.bench", "add_bench_parser"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tensorlite",
        description="Train, sample and debug small GPTs built on tensorlite.",
    )
    parser.add_argument("--version", action="version", version=f"tensorlite {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module, func in _COMMANDS:
        getattr(importlib.import_module(module), func)(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args) or 0
    except CLIError as e:
        print(f"tensorlite {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tensorlite {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # `python -m tensorlite.cli` runs this file as __main__, a second copy of the module whose
    # CLIError is not the one the commands raise: go through the imported module instead
    from tensorlite.cli import main as _main  # noqa: PLC0415

    sys.exit(_main())
