"""The ``tensorlite`` command: train | generate | embeddings | doctor | dashboard | attention | bench (one module each)."""

from __future__ import annotations

import argparse
import sys

from .._version import __version__
from . import attention, bench, dashboard, doctor, embeddings, generate, train
from .errors import CLIError, one_line

__all__ = ["COMMANDS", "CLIError", "build_parser", "main", "one_line"]

#: Every command: a module with ``HELP``, ``DESCRIPTION``, ``add_arguments(parser)`` and ``run(args)``.
COMMANDS = {"train": train, "generate": generate, "embeddings": embeddings, "doctor": doctor,
            "dashboard": dashboard, "attention": attention, "bench": bench}


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error reported as one line (``tensorlite train: error: ...``), exit 2."""

    def error(self, message):  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tensorlite", description="Train, sample and debug small GPTs built on tensorlite.")
    parser.add_argument("--version", action="version", version=f"tensorlite {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        p = subparsers.add_parser(name, help=command.HELP, description=command.DESCRIPTION)
        command.add_arguments(p)
        p.set_defaults(func=command.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already printed as one line
        return int(e.code or 0)
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
