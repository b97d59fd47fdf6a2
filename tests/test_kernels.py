"""The hand-written matmul kernels equal ``numpy.matmul`` (float32, 1e-5 relative to the largest
entry), and ``tl.kernels.use`` switches what ``@`` and its gradients use."""

from __future__ import annotations

import numpy as np
import pytest

import tensorlite as tl
from tensorlite.kernels import matmul_blocked, matmul_blocked_parallel, matmul_naive

RTOL = 1e-5


def _close(got, a, b):
    expect = np.matmul(a, b)
    assert got.shape == expect.shape and got.dtype == expect.dtype
    err = np.abs(got - expect).max() / max(np.abs(expect).max(), 1e-30)
    assert err <= RTOL, f"relative error {err:.2e}"


def _mats(sa, sb, seed=0):
    r = np.random.default_rng(seed)
    return r.standard_normal(sa, dtype=np.float32), r.standard_normal(sb, dtype=np.float32)


# (a shape, b shape): odd sizes, 1xN and Nx1, batched and broadcast batches
SHAPES = [
    ((1, 1), (1, 1)),
    ((1, 9), (9, 1)),  # 1xN @ Nx1
    ((9, 1), (1, 9)),  # Nx1 @ 1xN
    ((1, 7), (7, 13)),
    ((13, 7), (7, 1)),
    ((3, 5), (5, 7)),
    ((17, 31), (31, 23)),
    ((2, 3, 5), (2, 5, 4)),  # batched
    ((4, 3, 5), (5, 2)),  # batch against a matrix
    ((2, 1, 3, 4), (5, 4, 3)),  # broadcast batch
]
KERNELS = {
    "blocked": lambda a, b: matmul_blocked(a, b),
    "blocked_small_block": lambda a, b: matmul_blocked(a, b, block=4),
    "blocked_big_block": lambda a, b: matmul_blocked(a, b, block=1000),  # block larger than the matrix
    "parallel": lambda a, b: matmul_blocked_parallel(a, b),
    "parallel_small_block": lambda a, b: matmul_blocked_parallel(a, b, block=3, workers=3),
    "parallel_one_worker": lambda a, b: matmul_blocked_parallel(a, b, block=2, workers=1),
    "parallel_big_block": lambda a, b: matmul_blocked_parallel(a, b, block=4096, workers=2),
}


@pytest.mark.parametrize("sa,sb", SHAPES)
@pytest.mark.parametrize("kernel", list(KERNELS))
def test_kernels_match_numpy(kernel, sa, sb):
    a, b = _mats(sa, sb)
    _close(KERNELS[kernel](a, b), a, b)


@pytest.mark.parametrize("sa,sb", SHAPES[:8])
def test_naive_matches_numpy(sa, sb):
    a, b = _mats(sa, sb)
    _close(matmul_naive(a, b), a, b)


@pytest.mark.parametrize("n", [63, 64, 65, 129, 200, 257])
def test_non_multiples_of_the_block(n):
    a, b = _mats((n, n + 3), (n + 3, n - 1), seed=n)
    _close(matmul_blocked(a, b), a, b)
    _close(matmul_blocked(a, b, block=64), a, b)
    _close(matmul_blocked_parallel(a, b), a, b)
    _close(matmul_blocked_parallel(a, b, block=128, workers=2), a, b)


def test_parallel_large_and_batched():
    a, b = _mats((515, 300), (300, 257))
    _close(matmul_blocked_parallel(a, b, workers=4), a, b)
    a, b = _mats((6, 65, 40), (1, 40, 33))
    _close(matmul_blocked_parallel(a, b), a, b)


def test_kernels_float64_and_noncontiguous():
    a, b = _mats((12, 10), (12, 9))
    a64 = a.astype(np.float64).T  # a transposed (non-contiguous) view
    for fn in (matmul_naive, matmul_blocked, matmul_blocked_parallel):
        np.testing.assert_allclose(fn(a64, b.astype(np.float64)), a64 @ b.astype(np.float64), rtol=1e-12)


@pytest.mark.parametrize("fn", [matmul_naive, matmul_blocked, matmul_blocked_parallel])
def test_kernel_shape_errors(fn):
    a, b = _mats((3, 4), (5, 2))
    with pytest.raises(ValueError, match=r"\(3, 4\) @ \(5, 2\): inner dimensions 4 and 5 differ"):
        fn(a, b)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        fn(a[0], b)


def test_bad_block():
    a, b = _mats((3, 4), (4, 2))
    with pytest.raises(ValueError, match="block must be positive"):
        matmul_blocked(a, b, block=0)
    with pytest.raises(ValueError, match="block must be positive"):
        matmul_blocked_parallel(a, b, block=-1)


# ------------------------------------------------------------------------------------------------
# the switch
# ------------------------------------------------------------------------------------------------
def test_available_and_default():
    assert set(tl.kernels.available()) == {"blas", "blocked", "blocked_parallel", "naive"}
    assert tl.kernels.current() == "blas"


@pytest.fixture
def spy(monkeypatch):
    """Record every call of each kernel, still computing the right answer."""
    import tensorlite.kernels as K

    calls = []
    for name, fn in list(K._KERNELS.items()):
        def wrapped(a, b, _fn=fn, _name=name):
            calls.append((_name, a.shape, b.shape))
            return _fn(a, b)

        monkeypatch.setitem(K._KERNELS, name, wrapped)
    return calls


@pytest.mark.parametrize("name", ["naive", "blocked", "blocked_parallel"])
def test_use_switches_matmul_and_its_gradients(name, spy):
    a = tl.randn(3, 4, requires_grad=True)
    b = tl.randn(4, 2, requires_grad=True)
    tl.kernels.use(name)
    try:
        out = a @ b
        out.sum().backward()
    finally:
        tl.kernels.use("blas")
    assert [c[0] for c in spy] == [name] * 3  # forward + both gradients
    np.testing.assert_allclose(out.numpy(), a.numpy() @ b.numpy(), rtol=1e-5)
    np.testing.assert_allclose(a.grad.numpy(), np.ones((3, 2)) @ b.numpy().T, rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), a.numpy().T @ np.ones((3, 2)), rtol=1e-5)


def test_use_as_context_manager_restores(spy):
    a = tl.randn(2, 2)
    with tl.kernels.use("naive"):
        assert tl.kernels.current() == "naive"
        with tl.kernels.use("blocked"):
            a @ a
            assert tl.kernels.current() == "blocked"
        a @ a
    assert tl.kernels.current() == "blas"
    a @ a
    assert [c[0] for c in spy] == ["blocked", "naive"]  # blas is not routed through the table


def test_use_restores_on_exception():
    with pytest.raises(KeyError), tl.kernels.use("naive"):
        raise KeyError
    assert tl.kernels.current() == "blas"


def test_use_as_decorator():
    @tl.kernels.use("blocked")
    def inside():
        return tl.kernels.current()

    assert tl.kernels.current() == "blas"  # decorating switches nothing by itself
    assert inside() == "blocked" and tl.kernels.current() == "blas"


def test_plain_use_persists():
    tl.kernels.use("blocked_parallel")
    assert tl.kernels.current() == "blocked_parallel"
    tl.kernels.use("blas")
    assert tl.kernels.current() == "blas"


def test_unknown_kernel():
    with pytest.raises(ValueError, match=r"unknown kernel 'cublas'; choose one of \['blas', 'blocked'"):
        tl.kernels.use("cublas")
    assert tl.kernels.current() == "blas"


@pytest.mark.parametrize("name", ["blocked", "blocked_parallel", "naive"])
def test_kernels_inside_attention_and_batched_matmul(name):
    q = tl.randn(2, 3, 5, 4, requires_grad=True)
    ref = tl.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True)
    with tl.kernels.use(name):
        out = tl.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True)
        w = tl.randn(4, 6)
        np.testing.assert_allclose((q @ w).numpy(), q.numpy() @ w.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# GPU: the tiled CuPy RawKernel against cuBLAS
# ------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (16, 16, 16), (17, 33, 5), (128, 64, 257), (1, 300, 1)])
def test_tiled_cuda_kernel_matches_cupy(m, k, n):
    import cupy

    from tensorlite.kernels.cuda import matmul_tiled

    a, b = _mats((m, k), (k, n))
    ga, gb = cupy.asarray(a), cupy.asarray(b)
    got = cupy.asnumpy(matmul_tiled(ga, gb))
    expect = cupy.asnumpy(ga @ gb)
    assert np.abs(got - expect).max() <= RTOL * max(np.abs(expect).max(), 1e-30)


@pytest.mark.gpu
def test_blocked_kernels_on_gpu_use_tiled_kernel():
    import cupy

    a, b = _mats((3, 37, 19), (19, 21))
    ga, gb = cupy.asarray(a), cupy.asarray(b)
    for fn in (matmul_blocked, matmul_blocked_parallel):
        out = fn(ga, gb)
        assert isinstance(out, cupy.ndarray)
        _close(cupy.asnumpy(out), a, b)
