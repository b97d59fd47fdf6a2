"""The ``tensorlite`` command: train | generate | doctor | dashboard | bench."""

from __future__ import annotations

import argparse
import sys

from ._version import __version__


class CLIError(Exception):
    """A user error: printed as one line on stderr, exit code 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tensorlite",
        description="Train, sample and debug small GPTs built on tensorlite.",
    )
    parser.add_argument("--version", action="version", version=f"tensorlite {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
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


if __name__ == "__main__":
    sys.exit(main())
