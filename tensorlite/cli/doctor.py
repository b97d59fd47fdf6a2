"""``tensorlite doctor``: the preflight checks of a run's model, optimizer, schedule and data, or of
any tensorlite or PyTorch model a function of yours builds (``--model MODULE:FACTORY``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import faults as _faults
from ..debug.doctor import doctor, doctor_for_config
from ..train import TrainConfig, config_from_json, read_config
from .errors import CLIError, one_line
from .factory import load_object, parts_from_factory
from .flags import fault_list

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "load_config", "run"]


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


HELP = "preflight checks of a model, its optimizer, schedule and data (seconds)"
DESCRIPTION = (
    "Run the doctor's checks (loss at init, attention normalisation, scale and causality, "
    "position signal, RoPE, norms, residuals, pre-norm, init scale, eval determinism, gradient "
    "flow, overfitting one batch, graph size, the optimizer's decay, groups and step, the "
    "warmup, input/label alignment) and print a report; exit code 1 if any check fails. "
    "Either RUN_DIR_OR_CONFIG: build the model, optimizer, schedule, batcher and loss that "
    "`tensorlite train` would build from RUN_DIR/config.json (or a JSON file of TrainConfig "
    "fields); or --model pkg.module:factory (or path/to/file.py:factory): a function returning a "
    "tensorlite or PyTorch model, (model, optimizer) or (model, optimizer, scheduler). "
    "See docs/debug/doctor.md and docs/debug/pytorch.md."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="RUN_DIR_OR_CONFIG", nargs="?", default=None,
                   help="a run directory or a JSON config file")
    p.add_argument("--model", metavar="MODULE:FACTORY", default=None,
                   help="a factory returning a model, (model, optimizer) or (model, optimizer, scheduler): "
                        "pkg.module:make or path/to/file.py:make")
    p.add_argument("--batch", metavar="MODULE:FUNCTION", default=None,
                   help="with --model: a function returning one (x, y) batch (or a get_batch(split) function)")
    p.add_argument("--blocks", default=None, help="with --model: the path of the blocks (e.g. transformer.h)")
    p.add_argument("--seq-len", type=int, default=None, help="with --model: the context length")
    p.add_argument("--vocab-size", type=int, default=None, help="with --model: the vocabulary size")
    p.add_argument("--list-faults", action="store_true",
                   help="print the fault catalogue (name, seed, component, target, catching check) and exit")
    p.add_argument("--faults", type=fault_list, default=None, metavar="NAME[,NAME...]",
                   help="fault names to add to the config's (to see a check catch one)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _doctor_from_factory(args):
    model, optimizer, scheduler = parts_from_factory(args.model)
    batch = None
    if args.batch is not None:
        fn = load_object(args.batch, "--batch")
        try:
            batch = fn if not callable(fn) else _call_batch(fn)
        except Exception as e:
            raise CLIError(f"--batch {args.batch}: raised {type(e).__name__}: {e}") from None
    overrides = {k: v for k, v in (("blocks", args.blocks), ("seq_len", args.seq_len),
                                   ("vocab_size", args.vocab_size)) if v is not None}
    try:
        report = doctor(model, optimizer, scheduler, batch=batch, **overrides)
    except (TypeError, ValueError) as e:
        raise CLIError(one_line(e)) from None
    report.title = f"tensorlite doctor ({type(model).__name__} from {args.model})"
    return report


def _call_batch(fn):
    try:
        return fn("train")
    except TypeError:
        return fn()


def run(args) -> int:
    if args.list_faults:
        print(_faults.table())
        return 0
    model_only = [f"--{n.replace('_', '-')}" for n in ("batch", "blocks", "seq_len", "vocab_size")
                  if getattr(args, n, None) is not None]
    if args.model is not None:
        if args.path is not None:
            raise CLIError("give either RUN_DIR_OR_CONFIG or --model, not both")
        if args.faults:
            raise CLIError("--faults applies to a run config, not to --model")
        report = _doctor_from_factory(args)
    else:
        if model_only:
            raise CLIError(f"{', '.join(model_only)} need --model")
        if args.path is None:
            raise CLIError("give a run directory, a JSON config file, or --model MODULE:FACTORY (or --list-faults)")
        config = load_config(args.path)
        try:
            if args.faults:
                config = config.replace(faults=tuple(config.faults) + tuple(args.faults))
            report = doctor_for_config(config)
        except (ValueError, FileNotFoundError) as e:
            raise CLIError(one_line(e)) from None
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return 0 if report.ok else 1
