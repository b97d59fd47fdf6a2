"""Benchmarks that print ratios measured in one run, never pass/fail timings.

Each module has ``add_arguments(parser)`` and ``run(args)``. ``tensorlite bench NAME`` and the
scripts in the repository's ``bench/`` folder both run them, so a user can measure on their own
machine what ``docs/performance.md`` quotes from ours.
"""

import argparse

from . import autograd_overhead, matmul

# name on the command line -> module
BENCHMARKS = {"matmul": matmul, "autograd": autograd_overhead}


def main(name: str, argv=None) -> None:
    """Run benchmark ``name`` as a script: parse ``argv``, print its table, report bad input."""
    module = BENCHMARKS[name]
    parser = argparse.ArgumentParser(description=module.__doc__.strip().splitlines()[0])
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        module.run(args)
    except ValueError as e:
        parser.error(str(e))
