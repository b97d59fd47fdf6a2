"""Shared fixtures: the devices to run on, seeding, and the GPU marker's skip."""

from __future__ import annotations

import numpy as np
import pytest

import tensorlite as tl

DEVICES = ["cpu"] + (["cuda"] if tl.cuda_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """Every available device: ``"cpu"`` always, ``"cuda"`` when CuPy sees a GPU."""
    return request.param


@pytest.fixture(autouse=True)
def _seed_and_restore():
    """Each test starts from seed 0, with BLAS behind ``@`` and grad mode on, whatever the last
    test did."""
    tl.manual_seed(0)
    yield
    tl.set_grad_enabled(True)
    tl.kernels.use("blas")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def pytest_collection_modifyitems(config, items):
    if tl.cuda_available():
        return
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA device (tl.cuda_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
