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
