"""A run's metrics log, ``metrics.jsonl``: one JSON object per line, written as it happens.

Step lines hold ``step`` and the step's metrics; lines with an ``event`` key are not steps (the
``start`` header with the config and the vocabulary size, ``resume``, ``interrupt``, ``nan``).
The training loop and the probes of a hand-written (PyTorch) loop write it with
:class:`MetricsLog`; the dashboard and the diagnosis read it with :func:`read_jsonl`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .checkpoint import atomic_write_text

__all__ = ["MetricsLog", "jsonable", "read_jsonl", "truncate"]


class MetricsLog:
    """Appends records to a ``metrics.jsonl``, one flushed line each."""

    def __init__(self, path) -> None:
        self.path = Path(path)
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(jsonable(record)) + "\n")
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def jsonable(x):
    """``x`` with NumPy/CuPy scalars and arrays (and Tensors) turned into Python numbers and lists."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if hasattr(x, "tolist"):  # NumPy and CuPy arrays, tensors of either framework
        return x.tolist()
    return x


def read_jsonl(path) -> list[dict]:
    """The records of a ``metrics.jsonl``. A torn last line (a run killed mid-write) is skipped;
    a bad line anywhere else raises ValueError naming it."""
    path = Path(path)
    out = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == last and i > 0:
                break
            raise ValueError(f"{path}:{i + 1}: not a JSON line ({e.msg})") from None
    return out


def truncate(path, step: int) -> None:
    """Drop the step records of steps >= ``step`` and the events after them (a resume from the
    checkpoint of ``step`` rewrites them); the ``start`` header stays."""
    kept = []
    for rec in read_jsonl(path):
        s = rec.get("step")
        if s is not None and s >= step and rec.get("event") != "start":
            continue
        kept.append(json.dumps(rec))
    atomic_write_text(path, "".join(line + "\n" for line in kept))
