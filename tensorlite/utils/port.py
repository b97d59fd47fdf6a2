"""Run a file written for PyTorch on tensorlite: its torch import lines become tensorlite's.

``load_module("model.py")`` reads the file, swaps the import lines tensorlite mirrors (``import
torch``, ``import torch.nn as nn``, ``from torch.nn import functional as F`` and their usual
variants) and executes the result as a fresh module. Any other torch import (``torch.utils.data``,
``torch.distributed``, ...) is refused with its line number, since it would bring the real torch
back in beside tensorlite.
"""

from __future__ import annotations

import pathlib
import re
import sys
import types

#: torch import (stripped line) -> the tensorlite import that replaces it
IMPORTS = {
    "import torch": "import tensorlite as torch",
    "import torch.nn as nn": "import tensorlite.nn as nn",
    "from torch import nn": "from tensorlite import nn",
    "from torch.nn import functional as F": "from tensorlite.nn import functional as F",
    "import torch.nn.functional as F": "import tensorlite.nn.functional as F",
    "from torch import optim": "from tensorlite import optim",
    "import torch.optim as optim": "import tensorlite.optim as optim",
}

_TORCH_IMPORT = re.compile(r"^\s*(import\s+torch\b|from\s+torch(\.|\s))")


def port_source(source: str, filename: str = "<source>") -> str:
    """``source`` with its torch import lines replaced (indentation kept). Raises ValueError for a
    torch import tensorlite has no twin for."""
    out = []
    for n, line in enumerate(source.splitlines(keepends=True), 1):
        body = line.strip()
        code = body.split("#", 1)[0].strip()
        if code in IMPORTS:
            indent = line[: len(line) - len(line.lstrip())]
            ending = "\n" if line.endswith("\n") else ""
            out.append(indent + IMPORTS[code] + ending)
        elif _TORCH_IMPORT.match(line):
            raise ValueError(
                f"{filename}:{n}: {body!r} imports a part of torch that tensorlite does not mirror; "
                f"tensorlite replaces only: {', '.join(repr(k) for k in IMPORTS)}"
            )
        else:
            out.append(line)
    return "".join(out)


def load_module(path, name: str | None = None) -> types.ModuleType:
    """Execute the PyTorch file at ``path`` with tensorlite in torch's place; returns the module.

    ``name`` (default: the file's stem plus ``_tensorlite``) is registered in ``sys.modules``, so
    dataclasses and pickling inside the file work as in an ordinary import.
    """
    path = pathlib.Path(path)
    source = port_source(path.read_text(), str(path))
    name = name or f"{path.stem}_tensorlite"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
