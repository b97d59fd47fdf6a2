"""The fused kernels against their readable references (``tensorlite.reference``) and torch:
values and gradients in float32 and float64, on one thread and split over the thread pool, plus
the pool itself and (with a GPU) the same kernels through CuPy.

Tolerances: float64 agrees to 1e-10 (the kernels sum in another order than the reference), float32
to a few ulps of the values' scale (2e-6 relative, 1e-6 absolute).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tensorlite as tl
import tensorlite.nn.functional as F
from tensorlite import reference
from tensorlite.kernels import fused, parallel

TOL = {np.float32: dict(rtol=2e-6, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}
DTYPES = [np.float32, np.float64]


@pytest.fixture(params=["serial", "pool"])
def threads(request, monkeypatch):
    """Run once on the caller's thread alone, once split into small blocks over two threads."""
    saved = tl.get_num_threads()
    if request.param == "pool":
        tl.set_num_threads(2)
        monkeypatch.setattr(fused, "GRAIN", 64)  # many blocks even on tiny test arrays
        monkeypatch.setattr(fused, "NORM_GRAIN", 64)
        monkeypatch.setattr(fused, "_SMALL", 0)  # and no small-array shortcut
    else:
        tl.set_num_threads(1)
    yield request.param
    tl.set_num_threads(saved)


def _leaf(a):
    return tl.tensor(a, requires_grad=True)


def _grads(fn, arrays, g):
    """Output and input gradients of ``fn`` on fresh leaves made from ``arrays``, for upstream ``g``."""
    leaves = [_leaf(a) for a in arrays]
    out = fn(*leaves)
    out.backward(tl.tensor(g))
    return out.numpy(), [t.grad.numpy() for t in leaves]


def _close(got, want, dtype):
    np.testing.assert_allclose(got, want, **TOL[dtype])


def _compare(fused_fn, ref_fn, arrays, dtype, seed=1):
    rng = np.random.default_rng(seed)
    out_r = ref_fn(*[tl.tensor(a) for a in arrays]).numpy()
    g = rng.standard_normal(out_r.shape).astype(dtype)
    out_f, grads_f = _grads(fused_fn, arrays, g)
    out_r, grads_r = _grads(ref_fn, arrays, g)
    assert out_f.dtype == dtype
    _close(out_f, out_r, dtype)
    for a, b in zip(grads_f, grads_r):
        assert a.dtype == dtype
        _close(a, b, dtype)


# ---- elementwise and row ops vs the reference -------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (7,), (3, 50), (2, 3, 40)])
def test_gelu_tanh_matches_reference(dtype, shape, threads, rng):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    _compare(lambda t: F.gelu(t, "tanh"), reference.gelu_tanh, [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", ["none", "weight", "both"])
@pytest.mark.parametrize("shape,ns", [((5, 33), (33,)), ((2, 7, 16), (16,)), ((3, 4, 5), (4, 5))])
def test_layer_norm_matches_reference(dtype, affine, shape, ns, threads, rng):
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    w = rng.standard_normal(ns).astype(dtype)
    b = rng.standard_normal(ns).astype(dtype)
    params = {"none": [], "weight": [w], "both": [w, b]}[affine]
    _compare(lambda t, *p: F.layer_norm(t, ns, *p), lambda t, *p: reference.layer_norm(t, ns, *p),
             [x, *params], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize("shape,ns", [((5, 33), (33,)), ((2, 7, 16), (16,)), ((3, 4, 5), (4, 5))])
def test_rms_norm_matches_reference(dtype, with_weight, shape, ns, threads, rng):
    x = rng.standard_normal(shape).astype(dtype)
    params = [rng.standard_normal(ns).astype(dtype)] if with_weight else []
    _compare(lambda t, *p: F.rms_norm(t, ns, *p), lambda t, *p: reference.rms_norm(t, ns, *p),
             [x, *params], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("shape,dim", [((6, 40), -1), ((2, 3, 17), 2), ((4, 9), 0)])
def test_softmax_matches_reference(dtype, log, shape, dim, threads, rng):
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    fused_fn = F.log_softmax if log else F.softmax
    ref_fn = reference.log_softmax if log else reference.softmax
    _compare(lambda t: fused_fn(t, dim), lambda t: ref_fn(t, dim), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_matches_reference(dtype, reduction, smoothing, threads, rng):
    logits = (rng.standard_normal((37, 11)) * 3).astype(dtype)
    target = rng.integers(0, 11, 37)
    target[[3, 20]] = -100  # ignored
    _compare(lambda t: F.cross_entropy(t, target, reduction=reduction, label_smoothing=smoothing),
             lambda t: reference.cross_entropy(t, target, reduction=reduction, label_smoothing=smoothing),
             [logits], dtype)


# ---- against torch ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_ops_match_torch(dtype, threads, rng):
    x = rng.standard_normal((9, 24)).astype(dtype)
    w, b = rng.standard_normal(24).astype(dtype), rng.standard_normal(24).astype(dtype)
    target = rng.integers(0, 24, 9)
    cases = [
        (lambda t: F.gelu(t, "tanh"), lambda t: TF.gelu(t, approximate="tanh")),
        (lambda t: F.layer_norm(t, 24, tl.tensor(w), tl.tensor(b)),
         lambda t: TF.layer_norm(t, (24,), torch.from_numpy(w), torch.from_numpy(b))),
        (lambda t: F.rms_norm(t, 24, tl.tensor(w)), lambda t: TF.rms_norm(t, (24,), torch.from_numpy(w), 1e-6)),
        (lambda t: F.softmax(t, -1), lambda t: TF.softmax(t, -1)),
        (lambda t: F.log_softmax(t, -1), lambda t: TF.log_softmax(t, -1)),
        (lambda t: F.cross_entropy(t, target, label_smoothing=0.2),
         lambda t: TF.cross_entropy(t, torch.from_numpy(target), label_smoothing=0.2)),
    ]
    g = rng.standard_normal((9, 24)).astype(dtype)
    for ours, theirs in cases:
        out, (grad,) = _grads(ours, [x], g if ours(tl.tensor(x)).ndim else np.array(1.0, dtype))
        tx = torch.from_numpy(x.copy()).requires_grad_()
        tout = theirs(tx)
        tout.backward(torch.from_numpy(g) if tout.ndim else torch.tensor(1.0, dtype=tout.dtype))
        _close(out, tout.detach().numpy(), dtype)
        _close(grad, tx.grad.numpy(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_adamw_matches_reference_and_torch(dtype, threads, rng):
    shape = (40, 30)  # 1200 elements: several blocks when GRAIN is small
    p0 = rng.standard_normal(shape).astype(dtype)
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(3)]
    hyper = dict(lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8)
    p, m, v = p0.copy(), np.zeros(shape, dtype), np.zeros(shape, dtype)
    pr, mr, vr = p0.copy(), m.copy(), v.copy()
    tp = torch.from_numpy(p0.copy()).requires_grad_()
    topt = torch.optim.AdamW([tp], lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, foreach=False)
    for step, g in enumerate(grads, 1):
        fused.adam_update_(p, g, m, v, step=step, decoupled_decay=1e-2 * 0.1, **hyper)
        pr, mr, vr = reference.adamw_update(pr, g, mr, vr, step=step, weight_decay=0.1, **hyper)
        tp.grad = torch.from_numpy(g.copy())
        topt.step()
    assert p.dtype == dtype
    _close(p, pr, dtype)
    _close(m, mr, dtype)
    _close(v, vr, dtype)
    _close(p, tp.detach().numpy(), dtype)


# ---- gradcheck (float64, finite differences) ---------------------------------------------------------
def test_fused_ops_pass_gradcheck(threads, rng):
    x = _leaf(rng.standard_normal((4, 12)))
    w, b = _leaf(rng.standard_normal(12)), _leaf(rng.standard_normal(12))
    target = rng.integers(0, 12, 4)
    tl.gradcheck(lambda t: F.gelu(t, "tanh"), x)
    tl.gradcheck(lambda t, w, b: F.layer_norm(t, 12, w, b), x, w, b)
    tl.gradcheck(lambda t, w: F.rms_norm(t, 12, w), x, w)
    tl.gradcheck(lambda t: F.softmax(t, -1), x)
    tl.gradcheck(lambda t: F.log_softmax(t, -1), x)
    tl.gradcheck(lambda t: F.cross_entropy(t, target, label_smoothing=0.1), x)


def test_cross_entropy_keeps_no_probability_matrix(rng):
    """The fused loss saves the logits (by reference) and one logsumexp per row, not (N, C) log-probs."""
    logits = _leaf(rng.standard_normal((64, 50)).astype(np.float32))
    loss = F.cross_entropy(logits, rng.integers(0, 50, 64))
    saved = [v for v in vars(loss.grad_fn).values() if isinstance(v, np.ndarray) and v.size >= 64 * 50]
    assert len(saved) == 1 and saved[0] is logits.data


# ---- the pool ---------------------------------------------------------------------------------------
def test_parallel_for_covers_the_range_once_on_several_threads():
    saved = tl.get_num_threads()
    tl.set_num_threads(2)
    try:
        seen, names = np.zeros(1000, int), set()
        barrier = threading.Barrier(2, timeout=5)

        def body(lo, hi):
            names.add(threading.current_thread().name)
            if lo == 0:
                barrier.wait()  # the first block waits until a second thread runs another
            elif len(names) == 2 and barrier.n_waiting:
                barrier.wait()
            seen[lo:hi] += 1

        parallel.parallel_for(1000, body, grain=100)
        assert (seen == 1).all()
        assert len(names) == 2
    finally:
        tl.set_num_threads(saved)


def test_parallel_nested_region_runs_serially_and_errors_propagate():
    saved = tl.get_num_threads()
    tl.set_num_threads(2)
    try:
        inner = []
        parallel.parallel_for(4, lambda lo, hi: parallel.parallel_for(
            10, lambda a, b: inner.append((a, b)), grain=1), grain=1)
        # each of the outer blocks ran its inner loop (serially, on its own thread): no deadlock
        assert sum(b - a for a, b in inner) == len(parallel.blocks(4, 1)) * 10

        def boom(lo, hi):
            raise ZeroDivisionError(f"block {lo}")

        with pytest.raises(ZeroDivisionError, match="block"):
            parallel.parallel_for(100, boom, grain=10)
        parallel.parallel_for(10, lambda lo, hi: None, grain=1)  # the lock was released
        assert parallel._lock.acquire(blocking=False)
        parallel._lock.release()
    finally:
        tl.set_num_threads(saved)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_rejects_non_positive_integers(bad):
    with pytest.raises(ValueError, match="set_num_threads: expected a positive integer"):
        tl.set_num_threads(bad)


# ---- GPU: the same kernels through CuPy ---------------------------------------------------------------
@pytest.mark.gpu
def test_fused_kernels_on_gpu_match_cpu(rng):
    import cupy

    x = rng.standard_normal((33, 48)).astype(np.float32)
    w, b = rng.standard_normal(48).astype(np.float32), rng.standard_normal(48).astype(np.float32)
    gx, gw, gb = (cupy.asarray(a) for a in (x, w, b))
    pairs = [
        (fused.gelu_tanh(x), fused.gelu_tanh(gx)),
        (fused.gelu_tanh_backward(x, x), fused.gelu_tanh_backward(gx, gx)),
        (fused.layer_norm(x, w, b, 1, 1e-5)[0], fused.layer_norm(gx, gw, gb, 1, 1e-5)[0]),
        (fused.rms_norm(x, w, 1, 1e-6)[0], fused.rms_norm(gx, gw, 1, 1e-6)[0]),
        (fused.softmax_lastdim(x), fused.softmax_lastdim(gx)),
        (fused.logsumexp_rows(x), fused.logsumexp_rows(gx)),
    ]
    for cpu, gpu in pairs:
        assert isinstance(gpu, cupy.ndarray)
        np.testing.assert_allclose(cupy.asnumpy(gpu), cpu, rtol=1e-5, atol=1e-5)
    xg = tl.tensor(x, device="cuda", requires_grad=True)
    F.layer_norm(F.gelu(xg, "tanh"), 48).sum().backward()
    xc = tl.tensor(x, requires_grad=True)
    F.layer_norm(F.gelu(xc, "tanh"), 48).sum().backward()
    np.testing.assert_allclose(cupy.asnumpy(xg.grad.data), xc.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_graph_keeps_only_what_backward_needs(rng):
    """An op's output is not kept alive by the ops that consume it unless one of them saves it:
    a chain of adds holds no intermediate. With op observers on (detect_anomaly), inputs stay, so
    the observers can inspect them."""
    x = tl.tensor(rng.standard_normal((256, 1024)).astype(np.float32), requires_grad=True)  # 1 MiB
    with tl.debug.array_memory() as plain:
        loss = ((x + 1.0) + 1.0).sum()
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 1.0)
    with tl.debug.detect_anomaly(), tl.debug.array_memory() as observed:
        loss = ((x + 1.0) + 1.0).sum()
    assert plain.held_bytes < 2**16 < 2**20 <= observed.held_bytes


def test_the_norms_share_rows_only_when_the_blocks_are_large(monkeypatch):
    # below NORM_GRAIN's threshold a LayerNorm is one call on the caller's thread (two threads
    # were slower there, bench/fused_ops.py); from it on, the pool takes several blocks
    saved = tl.get_num_threads()
    tl.set_num_threads(2)
    seen = []
    monkeypatch.setattr(parallel, "run", lambda task, n, blas=False: (seen.append(n), [task(i) for i in range(n)]))
    try:
        d = 128
        for rows in (2 * fused.NORM_GRAIN // d - 1, 2 * fused.NORM_GRAIN // d):
            x = np.ones((rows, d), np.float32)
            fused.layer_norm(x, None, None, 1, 1e-5)
    finally:
        tl.set_num_threads(saved)
    assert seen == [2]
