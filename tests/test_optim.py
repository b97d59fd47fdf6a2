"""Optimizers and clipping against torch (float64), state round trips, the AdamW decay fault,
and gradient accumulation."""

import json

import numpy as np
import pytest
import torch

import tensorlite as tl
from tensorlite import optim

SHAPES = [(4, 5), (5,), (3, 2, 2), ()]


def _make_params(seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in SHAPES]
    ours = [tl.tensor(a, dtype=tl.float64, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    return ours, theirs


def _grads(n_steps, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in SHAPES] for _ in range(n_steps)]


def _set_grads(ours, theirs, grads):
    for p, q, g in zip(ours, theirs, grads):
        p.grad = tl.tensor(g, dtype=tl.float64)
        q.grad = torch.tensor(g, dtype=torch.float64)


def _groups(params, spec):
    """spec: None (plain list) or a list of (indices, overrides)."""
    if spec is None:
        return list(params)
    return [{"params": [params[i] for i in idx], **kw} for idx, kw in spec]


TWO_GROUPS = [([0, 2], {"weight_decay": 0.1}), ([1, 3], {"weight_decay": 0.0, "lr": 0.05})]

CASES = [
    ("SGD", dict(lr=0.1), None),
    ("SGD", dict(lr=0.1, momentum=0.9), None),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01), None),
    ("SGD", dict(lr=0.1, momentum=0.8, dampening=0.3, weight_decay=0.05), None),
    ("SGD", dict(lr=0.1, momentum=0.9), TWO_GROUPS),
    ("Adam", dict(lr=0.01), None),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1), None),
    ("Adam", dict(lr=0.01), TWO_GROUPS),
    ("AdamW", dict(lr=0.01), None),
    ("AdamW", dict(lr=0.02, betas=(0.85, 0.95), eps=1e-7, weight_decay=0.3), None),
    ("AdamW", dict(lr=0.01, weight_decay=0.1), TWO_GROUPS),
]


@pytest.mark.parametrize("name,kw,spec", CASES)
def test_matches_torch_20_steps(name, kw, spec):
    ours, theirs = _make_params()
    opt = getattr(optim, name)(_groups(ours, spec), **kw)
    ref = getattr(torch.optim, name)(_groups(theirs, spec), **kw)
    for grads in _grads(20):
        _set_grads(ours, theirs, grads)
        opt.step()
        ref.step()
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=0, atol=1e-6)
    # Same state names and values as torch.
    for p, q in zip(ours, theirs):
        s, t = opt.state[p], ref.state[q]
        assert set(s) == set(t)
        for k in s:
            if k == "step":
                assert s[k] == int(t[k])
            elif t[k] is not None:
                np.testing.assert_allclose(s[k], t[k].numpy(), rtol=0, atol=1e-6)


def test_matches_torch_float32_loosely():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((8, 8)).astype(np.float32)
    p = tl.tensor(a, requires_grad=True)
    q = torch.tensor(a, requires_grad=True)
    opt, ref = optim.AdamW([p], lr=1e-2, weight_decay=0.1), torch.optim.AdamW([q], lr=1e-2, weight_decay=0.1)
    for _ in range(10):
        g = rng.standard_normal((8, 8)).astype(np.float32)
        p.grad, q.grad = tl.tensor(g), torch.tensor(g)
        opt.step()
        ref.step()
    assert p.dtype == np.float32 and opt.state[p]["exp_avg"].dtype == np.float32
    np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_params_without_grad_are_skipped():
    ours, _ = _make_params()
    before = [p.numpy().copy() for p in ours]
    opt = optim.AdamW(ours, lr=0.1)
    ours[0].grad = tl.ones(*SHAPES[0], dtype=tl.float64)
    opt.step()
    assert not np.allclose(ours[0].numpy(), before[0])
    for p, b in zip(ours[1:], before[1:]):
        np.testing.assert_array_equal(p.numpy(), b)
        assert p not in opt.state or not opt.state[p]


def test_adamw_zero_gradient_decays_weights_exactly():
    lr, wd = 0.1, 0.5
    p = tl.tensor([[1.0, -2.0], [3.0, 0.5]], dtype=tl.float64, requires_grad=True)
    w0 = p.numpy().copy()
    opt = optim.AdamW([p], lr=lr, weight_decay=wd)
    p.grad = tl.zeros(2, 2, dtype=tl.float64)
    opt.step()
    np.testing.assert_array_equal(p.numpy(), w0 * (1 - lr * wd))
    assert not opt.state[p]["exp_avg"].any() and not opt.state[p]["exp_avg_sq"].any()


def test_adam_l2_differs_from_adamw():
    ours1, _ = _make_params()
    ours2, _ = _make_params()
    a, w = optim.Adam(ours1, lr=0.01, weight_decay=0.1), optim.AdamW(ours2, lr=0.01, weight_decay=0.1)
    for grads in _grads(3):
        for p, q, g in zip(ours1, ours2, grads):
            p.grad, q.grad = tl.tensor(g, dtype=tl.float64), tl.tensor(g, dtype=tl.float64)
        a.step()
        w.step()
    assert not np.allclose(ours1[0].numpy(), ours2[0].numpy())


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)), ("AdamW", dict(lr=0.01)),
                                     ("Adam", dict(lr=0.01, weight_decay=0.1))])
def test_state_dict_round_trip_continues_identically(name, kw):
    grads = _grads(20)
    a, _ = _make_params()
    opt_a = getattr(optim, name)(_groups(a, TWO_GROUPS), **kw)
    for g in grads[:10]:
        for p, gg in zip(a, g):
            p.grad = tl.tensor(gg, dtype=tl.float64)
        opt_a.step()
    sd = opt_a.state_dict()
    # Through a JSON-like round trip: string keys, nested lists, NumPy arrays.
    sd = {"state": {str(k): {n: (np.asarray(v) if n != "step" else v) for n, v in s.items()}
                    for k, s in sd["state"].items()},
          "param_groups": json.loads(json.dumps(sd["param_groups"]))}
    b = [tl.tensor(p.numpy(), dtype=tl.float64, requires_grad=True) for p in a]
    opt_b = getattr(optim, name)(_groups(b, TWO_GROUPS), lr=123.0)
    opt_b.load_state_dict(sd)
    assert opt_b.param_groups[1]["lr"] == opt_a.param_groups[1]["lr"]
    for g in grads[10:]:
        for p, q, gg in zip(a, b, g):
            p.grad = tl.tensor(gg, dtype=tl.float64)
            q.grad = tl.tensor(gg, dtype=tl.float64)
        opt_a.step()
        opt_b.step()
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_state_dict_is_a_snapshot_and_loads_into_torch():
    ours, theirs = _make_params()
    opt = optim.AdamW(ours, lr=0.01, weight_decay=0.1)
    grads = _grads(6)
    for g in grads[:3]:
        _set_grads(ours, theirs, g)
        opt.step()
    sd = opt.state_dict()
    saved = sd["state"][0]["exp_avg"].copy()
    _set_grads(ours, theirs, grads[3])
    opt.step()
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], saved)  # later steps don't leak in
    # The format is torch's: torch's AdamW continues from our state exactly as we do.
    sd = opt.state_dict()
    with torch.no_grad():
        for p, q in zip(ours, theirs):
            q.copy_(torch.from_numpy(p.numpy()))
    ref = torch.optim.AdamW(theirs, lr=0.01, weight_decay=0.1)
    ref.load_state_dict({
        "state": {k: {n: (torch.tensor(float(v)) if n == "step" else torch.from_numpy(v.copy()))
                      for n, v in s.items()} for k, s in sd["state"].items()},
        "param_groups": [{**g, "betas": tuple(g["betas"])} for g in sd["param_groups"]],
    })
    for g in grads[4:]:
        _set_grads(ours, theirs, g)
        opt.step()
        ref.step()
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=0, atol=1e-12)


def test_load_state_dict_rejects_mismatched_groups():
    ours, _ = _make_params()
    sd = optim.AdamW(_groups(ours, TWO_GROUPS)).state_dict()
    with pytest.raises(ValueError, match="1 parameter group.*2|2 parameter group"):
        optim.AdamW(ours).load_state_dict(sd)
    with pytest.raises(ValueError, match="group 0 has 1 parameters but the saved group has 2"):
        optim.AdamW([{"params": ours[:1]}, {"params": ours[1:]}]).load_state_dict(sd)


def test_zero_grad():
    ours, _ = _make_params()
    opt = optim.SGD(ours, lr=0.1)
    for p in ours:
        p.grad = tl.ones(*p.shape, dtype=tl.float64)
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in ours)
    opt.zero_grad()
    assert all(p.grad is None for p in ours)


def test_step_closure_runs_with_grad_enabled():
    p = tl.tensor([3.0], dtype=tl.float64, requires_grad=True)
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with tl.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 9.0
    assert p.numpy()[0] == 3.0 - 0.25 * 6.0


def test_constructor_errors():
    p = tl.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match=r"wrap it in a list"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="invalid learning rate -1"):
        optim.AdamW([p], lr=-1)
    with pytest.raises(ValueError, match="beta parameter at index 1"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"unknown hyperparameter\(s\) \['momentum'\]"):
        optim.AdamW([{"params": [p], "momentum": 0.9}])
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        optim.SGD([np.zeros(2)], lr=0.1)


class _TinyModel:
    def __init__(self):
        self.w = tl.randn(4, 3, requires_grad=True)
        self.emb = tl.randn(10, 3, requires_grad=True)
        self.b = tl.zeros(3, requires_grad=True)
        self.gain = tl.ones(3, requires_grad=True)
        self.frozen = tl.ones(3, 3)

    def parameters(self):
        # emb appears twice, as a tied weight would.
        return iter([self.w, self.emb, self.b, self.gain, self.emb, self.frozen])


def test_param_groups_for_decay():
    m = _TinyModel()
    groups = optim.param_groups_for_decay(m, 0.1)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert [id(p) for p in groups[0]["params"]] == [id(m.w), id(m.emb)]
    assert [id(p) for p in groups[1]["params"]] == [id(m.b), id(m.gain)]
    opt = optim.AdamW(groups, lr=0.1, weight_decay=0.5)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    # With zero gradients only the matrices shrink.
    for p in (m.w, m.emb, m.b, m.gain):
        p.grad = tl.zeros_like(p)
    b0, w0 = m.gain.numpy().copy(), m.w.numpy().copy()
    opt.step()
    np.testing.assert_array_equal(m.gain.numpy(), b0)
    np.testing.assert_allclose(m.w.numpy(), w0 * (1 - 0.1 * 0.1), rtol=1e-6)


def test_param_groups_for_decay_with_nn_module():
    nn = pytest.importorskip("tensorlite.nn")
    if not hasattr(nn, "Linear") or not hasattr(nn, "LayerNorm"):
        pytest.skip("tensorlite.nn layers not available yet")
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    decay, no_decay = optim.param_groups_for_decay(model, 0.1)
    assert all(p.ndim == 2 for p in decay["params"]) and len(decay["params"]) == 2
    assert all(p.ndim == 1 for p in no_decay["params"]) and len(no_decay["params"]) == 4


# ---- clipping -------------------------------------------------------------------------------------
def _clip_pair(scale, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) * scale for s in SHAPES]
    ours = [tl.tensor(a, dtype=tl.float64, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    for p, q, a in zip(ours, theirs, arrays):
        p.grad = tl.tensor(a, dtype=tl.float64)
        q.grad = torch.tensor(a, dtype=torch.float64)
    return ours, theirs


@pytest.mark.parametrize("scale,max_norm,norm_type", [
    (1.0, 1.0, 2.0), (1.0, 100.0, 2.0), (0.01, 1.0, 2.0), (3.0, 0.5, float("inf")), (1.0, 2.0, 1.0),
])
def test_clip_grad_norm_matches_torch(scale, max_norm, norm_type):
    ours, theirs = _clip_pair(scale)
    total = optim.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    ref = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    assert total == pytest.approx(ref.item(), rel=1e-12)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=0, atol=1e-12)


def test_clip_grad_norm_just_below_threshold_leaves_grads():
    p = tl.tensor([3.0, 4.0], dtype=tl.float64, requires_grad=True)
    p.grad = tl.tensor([3.0, 4.0], dtype=tl.float64)
    assert optim.clip_grad_norm_([p], 5.1) == 5.0
    np.testing.assert_array_equal(p.grad.numpy(), [3.0, 4.0])
    assert optim.clip_grad_norm_(p, 1.0) == 5.0  # a single tensor works too
    np.testing.assert_allclose(p.grad.numpy(), np.array([3.0, 4.0]) / (5.0 + 1e-6))


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_clip_grad_norm_nonfinite_like_torch(bad):
    ours, theirs = _clip_pair(1.0)
    ours[0].grad.data[0, 0] = bad
    theirs[0].grad[0, 0] = bad
    total = optim.clip_grad_norm_(ours, 1.0)
    ref = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    np.testing.assert_equal(total, ref.item())
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
    ours, _ = _clip_pair(1.0)
    ours[1].grad.data[0] = bad
    before = [p.grad.numpy().copy() for p in ours]
    with pytest.raises(RuntimeError, match="error_if_nonfinite=False"):
        optim.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    for p, b in zip(ours, before):
        np.testing.assert_array_equal(p.grad.numpy(), b)


def test_clip_grad_norm_float32_overflow_is_not_reported_as_inf():
    # Deliberately better than torch: the float32 sum of squares overflows (torch returns inf and
    # zeroes the gradients), but the norm 4e20 is finite, so we return it and clip properly.
    a = np.full((4, 4), 1e20, dtype=np.float32)
    p = tl.tensor(a, requires_grad=True)
    p.grad = tl.tensor(a)
    total = optim.clip_grad_norm_([p], 1.0)
    assert total == pytest.approx(4 * float(np.float32(1e20)), rel=1e-12)
    np.testing.assert_allclose(p.grad.numpy(), 0.25, rtol=1e-6)


def test_clip_grad_norm_infinite_max_norm_only_measures():
    ours, _ = _clip_pair(1.0)
    ours[0].grad.data[0, 0] = float("inf")
    before = [p.grad.numpy().copy() for p in ours]
    assert optim.clip_grad_norm_(ours, float("inf")) == float("inf")
    for p, b in zip(ours, before):
        np.testing.assert_array_equal(p.grad.numpy(), b)


def test_clip_grad_norm_no_grads():
    assert optim.clip_grad_norm_([tl.zeros(2, requires_grad=True)], 1.0) == 0.0


# ---- gradient accumulation ------------------------------------------------------------------------
def _tiny_net():
    tl.manual_seed(0)
    w1 = tl.randn(6, 16, dtype=tl.float64, requires_grad=True)
    w2 = tl.randn(16, 5, dtype=tl.float64, requires_grad=True)
    return [w1, w2], lambda x: tl.tanh(x @ w1) @ w2


@pytest.mark.parametrize("k", [2, 4])
def test_gradient_accumulation_equals_big_batch(k):
    rng = np.random.default_rng(0)
    x = tl.tensor(rng.standard_normal((32, 6)), dtype=tl.float64)
    y = tl.tensor(rng.integers(0, 5, size=32))
    params, net = _tiny_net()
    tl.nn.functional.cross_entropy(net(x), y).backward()
    big = [p.grad.numpy().copy() for p in params]
    for p in params:
        p.grad = None
    micro = 32 // k
    for i in range(k):  # the documented pattern: loss / k per micro-batch, backward each, one step
        xb, yb = x[i * micro:(i + 1) * micro], y[i * micro:(i + 1) * micro]
        (tl.nn.functional.cross_entropy(net(xb), yb) / k).backward()
    for p, g in zip(params, big):
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=0, atol=1e-6)
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-12, atol=1e-14)
    # Forgetting the division gives k times the gradient (what an unscaled accumulation does).
    for p in params:
        p.grad = None
    for i in range(k):
        xb, yb = x[i * micro:(i + 1) * micro], y[i * micro:(i + 1) * micro]
        tl.nn.functional.cross_entropy(net(xb), yb).backward()
    np.testing.assert_allclose(params[0].grad.numpy(), k * big[0], rtol=1e-10)


# ---- GPU ------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not tl.cuda_available(), reason="needs CuPy and a CUDA device")
@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
                                     ("Adam", dict(lr=0.01, weight_decay=0.1)),
                                     ("AdamW", dict(lr=0.01, weight_decay=0.1))])
def test_optimizers_on_gpu_match_cpu(name, kw):
    cpu, _ = _make_params()
    gpu = [tl.tensor(p.numpy(), dtype=tl.float64, requires_grad=True, device="cuda") for p in cpu]
    o_cpu, o_gpu = getattr(optim, name)(cpu, **kw), getattr(optim, name)(gpu, **kw)
    for grads in _grads(5):
        for p, q, g in zip(cpu, gpu, grads):
            p.grad = tl.tensor(g, dtype=tl.float64)
            q.grad = tl.tensor(g, dtype=tl.float64, device="cuda")
        o_cpu.step()
        o_gpu.step()
        n_cpu = optim.clip_grad_norm_(cpu, 1.0)
        n_gpu = optim.clip_grad_norm_(gpu, 1.0)
        assert n_cpu == pytest.approx(n_gpu, rel=1e-12)
    for p, q in zip(cpu, gpu):
        assert q.device.type == "cuda"
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=0, atol=1e-12)
    sd = o_gpu.state_dict()
    o_back = getattr(optim, name)(cpu, **kw)
    o_back.load_state_dict(sd)  # CuPy state arrays land on the CPU parameters' device
    assert all(type(v) is np.ndarray for s in o_back.state.values() for v in s.values() if hasattr(v, "shape"))
