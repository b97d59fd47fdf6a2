"""The ``tensorlite`` command: train | generate | doctor | dashboard | bench."""

from __future__ import annotations

import argparse
import importlib
import sys

from ._version import __version__


class CLIError(Exception):
    """A user error: printed as one line on stderr, exit code 2, no traceback."""


# (module, function): each adds one subcommand. The optional ones are skipped while their module
# does not exist yet, so the CLI works whatever parts of the package are installed.
_COMMANDS = [
    ("tensorlite.commands.train", "add_train_parser", False),
    ("tensorlite.commands.generate", "add_generate_parser", False),
    ("tensorlite.debug.cli", "add_doctor_parser", True),
    ("tensorlite.debug.cli", "add_dashboard_parser", True),
    ("tensorlite.commands.bench", "add_bench_parser", True),
]


def _adder(module: str, func: str, optional: bool):
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        # only a missing optional module itself is skipped; an import error inside it is a bug
        if optional and e.name is not None and module.startswith(e.name):
            return None
        raise
    fn = getattr(mod, func, None)
    if fn is None and not optional:
        raise ImportError(f"{module} has no {func}")
    return fn


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tensorlite",
        description="Train, sample and debug small GPTs built on tensorlite.",
    )
    parser.add_argument("--version", action="version", version=f"tensorlite {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module, func, optional in _COMMANDS:
        add = _adder(module, func, optional)
        if add is not None:
            add(subparsers)
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
    sys.exit(main())
