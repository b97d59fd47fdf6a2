"""Command-line flags generated from config fields: one flag per field, its help and default from
the field's declaration (:func:`tensorlite.options.option`), ``choices=`` from its ``Literal`` type.

Every flag defaults to None, so that a command can tell what was given (``--resume`` keeps the
saved value of every field not given); the help shows the field's real default once.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

from .. import faults as _faults
from ..options import choices, field_types
from ..train.config import SECTIONS, TrainConfig

__all__ = ["add_config_flags", "given_fields", "fault_list"]

_TITLES = {"model": "model (GPTConfig)", "data": "data", "optim": "optimisation", "run": "run"}


def fault_list(text: str) -> tuple:
    """``"a,b"`` -> ``("a", "b")``, every name checked against the catalogue."""
    names = tuple(f.strip() for f in text.split(",") if f.strip())
    try:
        return _faults.as_names(names)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _base_type(tp):
    """``int | None`` -> ``int``."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _fmt(value) -> str:
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def add_config_flags(parser: argparse.ArgumentParser, defaults: TrainConfig | None = None) -> None:
    """One flag per field of every :data:`~tensorlite.train.config.SECTIONS` class, in a group per
    section, and ``--faults``."""
    defaults = defaults or TrainConfig()
    for section, cls in SECTIONS.items():
        group = parser.add_argument_group(_TITLES[section])
        hints = field_types(cls)
        for f in dataclasses.fields(cls):
            default = getattr(getattr(defaults, section), f.name)
            help_ = f.metadata.get("help", "")
            if default is not None:
                help_ += f" (default: {_fmt(default)})"
            flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
            kind = _kind(hints[f.name])
            if "metavar" in f.metadata:
                kind["metavar"] = f.metadata["metavar"]
            group.add_argument(flag, dest=f.name, default=None, help=help_, **kind)
    group = parser.add_argument_group("faults")
    group.add_argument("--faults", dest="faults", type=fault_list, default=None, metavar="NAME[,NAME...]",
                       help="bugs from the catalogue to switch on (list them: tensorlite doctor --list-faults): "
                            + ", ".join(_faults.names()))


def _kind(tp) -> dict:
    """argparse keywords for a field of type ``tp``."""
    allowed = choices(tp)
    if allowed is not None:
        return {"choices": allowed, "type": type(allowed[0])}
    base = _base_type(tp)
    if base is bool:
        return {"action": argparse.BooleanOptionalAction}
    if typing.get_origin(base) is tuple:
        args = typing.get_args(base)
        return {"nargs": len(args), "type": args[0]}
    return {"type": base}


def given_fields(args) -> dict:
    """``{field name: value}`` for the config flags given on the command line."""
    names = {f.name for cls in SECTIONS.values() for f in dataclasses.fields(cls)} | {"faults"}
    out = {}
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            out[name] = tuple(value) if isinstance(value, list) else value
    return out
