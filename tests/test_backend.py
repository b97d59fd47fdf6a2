"""Devices: tensors on every available device (the ``device`` fixture: cpu always, cuda when
``tl.cuda_available()``), moves between them, and the clear error when CUDA is missing."""

from __future__ import annotations

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.nn.functional as F
from tensorlite import backend

needs_no_gpu = pytest.mark.skipif(tl.cuda_available(), reason="checks the error raised when no GPU is present")


@needs_no_gpu
@pytest.mark.parametrize("move", [lambda t: t.to("cuda"), lambda t: t.cuda(), lambda t: t.to("cuda:0")])
def test_to_cuda_without_gpu_is_a_clear_runtime_error(move):
    with pytest.raises(RuntimeError) as info:
        move(tl.randn(2))
    msg = str(info.value)
    assert msg.startswith("device 'cuda' requested but ")
    assert ("CuPy is not installed" in msg) or ("no CUDA device is visible" in msg)
    assert "device='cpu'" in msg


@needs_no_gpu
def test_factories_on_cuda_without_gpu():
    with pytest.raises(RuntimeError, match="device 'cuda' requested but"):
        tl.zeros(2, device="cuda")
    with pytest.raises(RuntimeError, match="device 'cuda' requested but"):
        tl.tensor([1.0], device="cuda")


def test_get_device():
    assert tl.get_device("cpu") is backend.CPU
    assert tl.get_device(None) is backend.CPU
    assert tl.get_device(backend.CPU) is backend.CPU
    assert backend.CPU == "cpu" and str(backend.CPU) == "cpu" and repr(backend.CPU) == "device(type='cpu')"
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        tl.get_device("gpu")


def test_cuda_available_is_bool():
    assert isinstance(tl.cuda_available(), bool)
    assert tl.cuda_is_available() == tl.cuda_available()


def test_factories_on_device(device):
    for t in (tl.zeros(2, 3, device=device), tl.ones(2, device=device), tl.randn(4, device=device),
              tl.rand(3, device=device), tl.arange(5, device=device), tl.tensor([1.0, 2.0], device=device),
              tl.full((2,), 7.0, device=device), tl.eye(3, device=device), tl.randint(0, 4, (3,), device=device)):
        assert t.device == device
        assert isinstance(t.data, tl.get_device(device).xp.ndarray)


def test_ops_stay_on_device_and_backward(device):
    x = tl.randn(3, 4, device=device, requires_grad=True)
    w = tl.randn(4, 2, device=device, requires_grad=True)
    loss = F.cross_entropy((x @ w).tanh(), tl.tensor([0, 1, 1], device=device))
    loss.backward()
    assert loss.device == device and x.grad.device == device and w.grad.device == device
    assert x.grad.shape == (3, 4) and w.grad.dtype == np.float32


def test_to_same_device_is_identity(device):
    t = tl.randn(2, device=device)
    assert t.to(device) is t


def test_round_trip_through_cpu_keeps_values_and_gradient(device):
    x = tl.randn(3, device=device, requires_grad=True)
    y = x.to("cpu") * 2
    assert y.device == "cpu"
    y.sum().backward()
    assert x.grad.device == device
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_numpy_returns_host_array(device):
    t = tl.arange(4, device=device)
    arr = t.numpy()
    assert isinstance(arr, np.ndarray) and arr.tolist() == [0, 1, 2, 3]
    assert t.tolist() == [0, 1, 2, 3]


def test_dtype_casts():
    t = tl.tensor([1.5, -2.5])
    assert t.dtype == np.float32
    assert t.double().dtype == np.float64 and t.long().dtype == np.int64
    assert t.to(dtype=tl.float16).dtype == np.float16
    assert tl.tensor([1, 2]).dtype == np.int64 and tl.tensor([True]).dtype == np.bool_
    assert tl.tensor(np.zeros(2, np.float64)).dtype == np.float64  # an array keeps its dtype
    assert t.long().requires_grad is False


def test_scatter_add_accumulates_repeats():
    target = np.zeros(3)
    backend.scatter_add(np, target, np.array([0, 0, 2]), np.array([1.0, 2.0, 3.0]))
    assert target.tolist() == [3.0, 0.0, 3.0]


def test_erf_accuracy():
    import math

    x = np.linspace(-6, 6, 241)
    expect = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(backend.erf(np, x), expect, rtol=0, atol=1e-13)
    assert backend.erf(np, x.astype(np.float32)).dtype == np.float32


def test_seeding_is_reproducible():
    tl.manual_seed(42)
    a = tl.randn(5).numpy()
    tl.manual_seed(42)
    np.testing.assert_array_equal(a, tl.randn(5).numpy())
    state = tl.get_rng_state()
    b = tl.rand(3).numpy()
    tl.set_rng_state(state)
    np.testing.assert_array_equal(b, tl.rand(3).numpy())


@pytest.mark.gpu
def test_gpu_tensor_lives_in_cupy():
    import cupy

    t = tl.randn(3, device="cuda")
    assert isinstance(t.data, cupy.ndarray) and t.device == "cuda"
    np.testing.assert_allclose((t * 2).cpu().numpy(), t.numpy() * 2, rtol=1e-6)


@pytest.mark.gpu
def test_gpu_matches_cpu_forward_and_backward():
    a = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    grads = []
    for dev in ("cpu", "cuda"):
        x = tl.tensor(a, device=dev, requires_grad=True)
        y = F.softmax(x @ tl.tensor(a.T, device=dev), -1).sum(0)
        y.backward(tl.ones(4, device=dev))
        grads.append(x.grad.numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-4, atol=1e-5)
