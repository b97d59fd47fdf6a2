"""``torch.utils.checkpoint.checkpoint``: the implementation is :func:`tensorlite.nn.utils.checkpoint`."""

from __future__ import annotations

from ..nn.checkpoint import checkpoint as _checkpoint

__all__ = ["checkpoint"]


def checkpoint(function, *args, use_reentrant=None, preserve_rng_state: bool = True, **kwargs):
    """``function(*args)`` with its graph rebuilt in backward (see :func:`tensorlite.nn.utils.checkpoint`).

    ``use_reentrant`` is accepted for torch's signature: tensorlite has one variant, which gives
    the parameters inside ``function`` their gradients either way (when no input requires grad it
    simply runs ``function``, keeping its graph). The RNG state is always replayed.
    """
    if kwargs:
        raise TypeError(
            f"checkpoint: keyword arguments {sorted(kwargs)} are not supported; torch passes them to "
            "the function, tensorlite does not: bind them first, e.g. functools.partial(function, ...)"
        )
    return _checkpoint(function, *args)
