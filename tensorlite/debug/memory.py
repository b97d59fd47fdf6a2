"""How many bytes of array data a block of code leaves alive: the memory an autograd graph holds.

``tracemalloc``'s plain total also counts Python objects (frames, dicts, interned strings), whose
size drifts by a few KiB from run to run with garbage-collector timing. NumPy reports its data
buffers in a tracemalloc domain of their own, so filtering on that domain gives a figure that is
the same on every run. On a GPU, CuPy's memory pool keeps the count instead.
"""

from __future__ import annotations

import tracemalloc

import numpy as np

from .. import backend

_NUMPY_DOMAIN = np.lib.tracemalloc_domain


class ArrayMemory:
    """Context manager: array bytes allocated inside the ``with`` block and still alive at its end.

    ``held_bytes`` (and ``held_mib``) is set on exit. Anything kept alive at that point counts,
    which is what an autograd graph is: measure a forward pass while the loss is still referenced::

        with tl.debug.array_memory() as mem:
            loss = model.loss(x, y)
        print(f"{mem.held_mib:.1f} MiB kept for backward")
    """

    def __init__(self, device="cpu") -> None:
        self.device = backend.get_device(device)
        self.held_bytes: int | None = None
        self._started_tracing = False
        self._before = 0

    def _cupy_pool(self):
        return self.device.xp.get_default_memory_pool()

    def _current(self) -> int:
        if self.device.type == "cuda":
            return int(self._cupy_pool().used_bytes())
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.DomainFilter(inclusive=True, domain=_NUMPY_DOMAIN)])
        return sum(trace.size for trace in snapshot.traces)

    def __enter__(self) -> ArrayMemory:
        if self.device.type != "cuda" and not tracemalloc.is_tracing():
            tracemalloc.start()
            self._started_tracing = True
        self._before = self._current()
        return self

    def __exit__(self, *exc) -> None:
        self.held_bytes = self._current() - self._before
        if self._started_tracing:
            tracemalloc.stop()
            self._started_tracing = False

    @property
    def held_mib(self) -> float:
        if self.held_bytes is None:
            raise RuntimeError("array_memory: held_mib is known only after the with block ends")
        return self.held_bytes / 2**20


def array_memory(device="cpu") -> ArrayMemory:
    """Measure the array bytes a ``with`` block leaves alive; see :class:`ArrayMemory`."""
    return ArrayMemory(device)
