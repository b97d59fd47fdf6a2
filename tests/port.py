"""Load a file written for PyTorch with torch, or with tensorlite in torch's place.

``load_module(path, "tensorlite")`` goes through :func:`tensorlite.utils.port.load_module` (the
file's import lines swapped for tensorlite's); ``"torch"`` executes the file unchanged. The tests
use it for ``nanogpt_style.py``, and for a reader's own nanoGPT ``model.py`` when
``NANOGPT_MODEL`` points at one.
"""

from __future__ import annotations

import pathlib
import sys
import types

from tensorlite.utils import port

HERE = pathlib.Path(__file__).parent


def load_module(path, framework: str, name: str | None = None) -> types.ModuleType:
    """Execute the file at ``path`` as a new module on ``framework`` ("torch" or "tensorlite")."""
    path = pathlib.Path(path)
    name = name or f"{path.stem}_{framework}"
    if framework == "tensorlite":
        return port.load_module(path, name)
    if framework != "torch":
        raise ValueError(f"framework must be 'torch' or 'tensorlite', got {framework!r}")
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # dataclasses look the module up while the class is built
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)
    return module


def nanogpt_style(framework: str) -> types.ModuleType:
    """``tests/nanogpt_style.py`` on ``framework``."""
    return load_module(HERE / "nanogpt_style.py", framework)
