"""Random number generation: one seeded generator per device, as ``torch.manual_seed``."""

from __future__ import annotations

import numpy as np

from .backend import CPU, Device

_generators: dict = {}


def manual_seed(seed: int) -> None:
    """Seed every device's generator (weights, dropout, sampling all draw from it)."""
    _generators.clear()
    _generators[CPU.type] = np.random.default_rng(seed)
    _generators["_seed"] = seed


def generator(device: Device = CPU):
    """The generator of ``device`` (NumPy's ``Generator`` or CuPy's), created on first use."""
    gen = _generators.get(device.type)
    if gen is None:
        seed = _generators.get("_seed")
        if device.type == "cpu":
            gen = np.random.default_rng(seed)
        else:
            gen = device.xp.random.default_rng(seed)
        _generators[device.type] = gen
    return gen


def get_rng_state() -> dict:
    """The CPU generator's state, JSON-serialisable (for checkpoints)."""
    return generator(CPU).bit_generator.state


def set_rng_state(state: dict) -> None:
    generator(CPU).bit_generator.state = state


def no_generator(op: str, gen) -> None:
    """torch's ``generator=`` arguments: ``None`` is the default; a generator object is refused."""
    if gen is not None:
        raise TypeError(f"{op}: generator= is not supported; tensorlite draws from one seeded generator per "
                        "device: call tl.manual_seed(seed) before the draws and drop the argument")
