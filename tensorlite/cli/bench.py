"""``tensorlite bench NAME``: run one of the benchmarks in :mod:`tensorlite.benchmarks`."""

from __future__ import annotations

import argparse

from ..benchmarks import BENCHMARKS
from .errors import CLIError

HELP = "measure kernels and autograd overhead on this machine"
DESCRIPTION = ("Print ratios measured in one run: tensorlite's kernels against BLAS, and "
               "its autograd against PyTorch's. Nothing passes or fails.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    names = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, module in BENCHMARKS.items():
        summary = module.__doc__.strip().splitlines()[0]
        sub = names.add_parser(name, help=summary, description=summary,
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(func=run, bench_module=module)


def run(args) -> int:
    try:
        args.bench_module.run(args)
    except (ValueError, RuntimeError) as e:  # bad arguments, no GPU for --device cuda, a wrong kernel
        raise CLIError(str(e)) from None
    return 0
