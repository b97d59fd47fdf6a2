"""``--model MODULE:FACTORY``: a model made by the user's own code, for the commands that take one
(``tensorlite attention``, ``tensorlite doctor``).

``MODULE`` is an importable module (``mypkg.model``, found from the current folder too) or a file
(``path/to/model.py``); ``FACTORY`` a callable in it returning a model, ``(model, optimizer)`` or
``(model, optimizer, scheduler)``. User errors are :class:`~tensorlite.cli.errors.CLIError`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from .errors import CLIError, one_line

__all__ = ["load_object", "parts_from_factory"]


def load_object(spec: str, option: str = "--model"):
    """The object named by ``"pkg.module:name"`` or ``"path/to/file.py:name"``. The file's folder
    (or the current one) goes on ``sys.path`` first, so that the module's own imports work."""
    if ":" not in spec or spec.endswith(":") or spec.startswith(":"):
        raise CLIError(f"{option} {spec!r}: expected MODULE:FACTORY, e.g. mypkg.model:make or model.py:make")
    where, name = spec.rsplit(":", 1)
    try:
        if where.endswith(".py") or "/" in where or os.sep in where:
            path = Path(where)
            if not path.is_file():
                raise CLIError(f"{option} {spec}: no such file {where}")
            folder = str(path.resolve().parent)
            if folder not in sys.path:
                sys.path.insert(0, folder)
            mod_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[path.stem] = module  # dataclasses and pickling look their module up there
            mod_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(where)
    except CLIError:
        raise
    except ModuleNotFoundError as e:
        raise CLIError(f"{option} {spec}: cannot import {where}: {one_line(e)}") from None
    except Exception as e:  # the user's module raised while importing
        raise CLIError(f"{option} {spec}: importing {where} raised {type(e).__name__}: {one_line(e)}") from None
    if not hasattr(module, name):
        raise CLIError(f"{option} {spec}: {where} has no attribute {name!r}")
    return getattr(module, name)


def parts_from_factory(spec: str, option: str = "--model") -> tuple:
    """``(model, optimizer or None, scheduler or None)`` from the factory named by ``spec``."""
    factory = load_object(spec, option)
    if not callable(factory):
        raise CLIError(f"{option} {spec}: {type(factory).__name__} is not callable")
    try:
        made = factory()
    except Exception as e:
        raise CLIError(f"{option} {spec}: the factory raised {type(e).__name__}: {one_line(e)}") from None
    parts = tuple(made) if isinstance(made, (tuple, list)) else (made,)
    if not 1 <= len(parts) <= 3 or not hasattr(parts[0], "named_modules"):
        raise CLIError(f"{option} {spec}: expected the factory to return a model, (model, optimizer) or "
                       f"(model, optimizer, scheduler); got {type(made).__name__}")
    return parts + (None,) * (3 - len(parts))
