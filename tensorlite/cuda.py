"""``torch.cuda``'s everyday calls: ``tl.cuda.is_available()``, ``manual_seed``, ``device_count``."""

from __future__ import annotations

from . import random as _random
from .backend import cuda_available, get_device

__all__ = ["device_count", "is_available", "manual_seed", "manual_seed_all", "synchronize"]


def is_available() -> bool:
    """True when CuPy imports and sees a CUDA device (``device='cuda'`` then works)."""
    return cuda_available()


def device_count() -> int:
    if not cuda_available():
        return 0
    return int(get_device("cuda").xp.cuda.runtime.getDeviceCount())


def manual_seed(seed: int) -> None:
    """Seed the GPU generator only; without a GPU this does nothing (as torch).
    :func:`tensorlite.manual_seed` seeds every device at once."""
    if cuda_available():
        _random._generators["cuda"] = get_device("cuda").xp.random.default_rng(seed)


manual_seed_all = manual_seed  # one GPU generator serves every CUDA device


def synchronize() -> None:
    """Wait for the GPU to finish its queued work (a no-op without a GPU)."""
    if cuda_available():
        get_device("cuda").xp.cuda.Device().synchronize()
