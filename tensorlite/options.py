"""Config fields that describe themselves: one declaration gives the default, the help text and the
allowed values, which validation, ``to_dict`` and the generated command line all read.

    @dataclass
    class GPTConfig:
        norm: Literal["layernorm", "rmsnorm"] = option("layernorm", "normalisation layer")
"""

from __future__ import annotations

import dataclasses
import typing


def option(default=dataclasses.MISSING, help: str = "", *, flag: str | None = None, metavar=None,
           default_factory=dataclasses.MISSING):
    """A dataclass field with a ``help`` text (and, optionally, its command-line ``flag`` and ``metavar``)."""
    metadata = {"help": help}
    if flag is not None:
        metadata["flag"] = flag
    if metavar is not None:
        metadata["metavar"] = metavar
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def field_types(cls) -> dict:
    """``{field name: resolved type}`` of a dataclass (its annotations may be strings)."""
    return typing.get_type_hints(cls)


def choices(tp) -> tuple | None:
    """The allowed values of a ``Literal[...]`` type (or of ``Literal[...] | None``), else None."""
    if typing.get_origin(tp) is typing.Literal:
        return typing.get_args(tp)
    for arg in typing.get_args(tp):
        if typing.get_origin(arg) is typing.Literal:
            return typing.get_args(arg)
    return None


def check_choices(obj) -> None:
    """ValueError naming the first field of dataclass ``obj`` whose value its ``Literal`` type forbids."""
    for name, tp in field_types(type(obj)).items():
        allowed = choices(tp)
        value = getattr(obj, name)
        if allowed is not None and value not in allowed and not (value is None and _optional(tp)):
            raise ValueError(
                f"{type(obj).__name__}: {name} must be one of {', '.join(repr(c) for c in allowed)}, got {value!r}"
            )


def _optional(tp) -> bool:
    return type(None) in typing.get_args(tp)
