"""The handle every ``register_*hook`` returns, as ``torch.utils.hooks.RemovableHandle``."""

from __future__ import annotations

import itertools


class RemovableHandle:
    """``handle.remove()`` unregisters the hook; ``with handle:`` removes it when the block ends.

    ``hooks`` is the registry the hook went into: a dict keyed by ``handle.id`` (module hooks) or a
    list holding the hook itself (tensor hooks, which the backward pass walks as a list).
    """

    _ids = itertools.count()

    def __init__(self, hooks, hook=None) -> None:
        self._hooks = hooks
        self._hook = hook
        self.id = next(RemovableHandle._ids)

    def remove(self) -> None:
        if isinstance(self._hooks, dict):
            self._hooks.pop(self.id, None)
        else:
            # by identity: the same function registered twice is two entries, removed one at a time
            for i, h in enumerate(self._hooks):
                if h is self._hook:
                    del self._hooks[i]
                    break
        self._hook = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False
