"""Shared fixtures: the devices to run on, seeding, and the GPU marker's skip."""

from __future__ import annotations

import sys

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


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """torch on one thread in every test, whatever an earlier test set: the tests' models are
    tiny, and with two xdist workers on two cores more threads only contend."""
    torch = sys.modules.get("torch")  # only once a test module has imported it
    if torch is None:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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
