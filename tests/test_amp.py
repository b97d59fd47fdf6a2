"""Mixed precision: GradScaler against torch.amp.GradScaler step by step (same scales, same
skipped steps, same parameters), its errors, and autocast's dtype policy and gradients."""

import math

import numpy as np
import pytest
import torch

import tensorlite as tl
import tensorlite.nn.functional as F
from tensorlite import nn, optim
from tensorlite.amp import GradScaler

INF, NAN = float("inf"), float("nan")


def _twins(**kw):
    """A parameter, an SGD optimizer and a scaler in each framework, from the same values."""
    w0 = np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32)
    w = tl.tensor(w0, requires_grad=True)
    tw = torch.tensor(w0, requires_grad=True)
    return (w, optim.SGD([w], lr=0.1), GradScaler(**kw)), (tw, torch.optim.SGD([tw], lr=0.1),
                                                            torch.amp.GradScaler("cpu", **kw))


def _iteration(w, opt, scaler, c, mod):
    """One iteration of the documented recipe with loss = sum(w * c) (so grad = c * scale)."""
    opt.zero_grad()
    loss = (w * mod.tensor(c, dtype=mod.float32)).sum()
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    grad = w.grad.numpy().copy()
    ret = scaler.step(opt)
    scaler.update()
    return ret, grad


# Finite steps, an inf, a NaN, and a finite gradient that the scale itself overflows in float32.
PATTERN = [[1, 2, 3, 4]] * 4 + [[1, INF, 3, 4]] + [[1, 2, 3, 4]] * 3 + [[NAN, 2, 3, 4]] \
    + [[1e35, 1, 1, 1]] + [[1, 2, 3, 4]] * 7


def test_scale_sequence_and_skipped_steps_match_torch():
    (w, opt, sc), (tw, topt, tsc) = _twins(init_scale=2.0**16, growth_interval=3)
    scales, skipped = [], []
    for c in PATTERN:
        before = w.numpy().copy()
        (r1, g1), (r2, g2) = _iteration(w, opt, sc, c, tl), _iteration(tw, topt, tsc, c, torch)
        assert sc.get_scale() == tsc.get_scale()
        assert (r1 is None) == (r2 is None)
        np.testing.assert_array_equal(g1, g2)  # unscaled gradients, bit for bit (inf and NaN too)
        np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-6)  # SGD rounds differently
        scales.append(sc.get_scale())
        skipped.append(bool(np.array_equal(before, w.numpy())))
        assert sc.state_dict() == tsc.state_dict()
    # the pattern exercised growth, backoff on inf, NaN and float32 overflow of scale * grad
    assert skipped == [not all(map(math.isfinite, c)) or c[0] == 1e35 for c in PATTERN]
    assert max(scales) > 2.0**16 and min(scales) < 2.0**16


def test_growth_never_reaches_inf():
    (w, opt, sc), (tw, topt, tsc) = _twins(init_scale=2.0**127, growth_interval=1)
    for _ in range(3):
        _iteration(w, opt, sc, [1e-30] * 4, tl)
        _iteration(tw, topt, tsc, [1e-30] * 4, torch)
        assert sc.get_scale() == tsc.get_scale() == 2.0**127


def test_state_dict_round_trip_continues_like_torch():
    (w, opt, sc), (tw, topt, tsc) = _twins(init_scale=8.0, growth_interval=4)
    for c in PATTERN[:6]:
        _iteration(w, opt, sc, c, tl)
        _iteration(tw, topt, tsc, c, torch)
    fresh, tfresh = GradScaler(), torch.amp.GradScaler("cpu")
    fresh.load_state_dict(sc.state_dict())
    tfresh.load_state_dict(tsc.state_dict())
    assert fresh.state_dict() == tfresh.state_dict() == tsc.state_dict()
    for c in PATTERN[6:]:
        _iteration(w, opt, fresh, c, tl)
        _iteration(tw, topt, tfresh, c, torch)
        assert fresh.get_scale() == tfresh.get_scale()
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-6)


def test_unscale_divides_by_the_scale_before_clipping():
    (w, opt, sc), (tw, topt, tsc) = _twins(init_scale=1024.0)
    for p, o, s, mod, clip in ((w, opt, sc, tl, optim.clip_grad_norm_),
                               (tw, topt, tsc, torch, torch.nn.utils.clip_grad_norm_)):
        loss = (p * mod.tensor([3.0, 4.0, 0.0, 0.0])).sum()
        s.scale(loss).backward()
        s.unscale_(o)
        assert float(clip([p], 1.0)) == pytest.approx(5.0)  # the true norm, not 5 * 1024
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy())


def test_scale_promotes_like_torch():
    sc, tsc = GradScaler(), torch.amp.GradScaler("cpu")
    loss16 = tl.tensor(0.5, dtype=tl.float16)
    out, tout = sc.scale(loss16), tsc.scale(torch.tensor(0.5, dtype=torch.float16))
    assert out.dtype == np.float32 and tout.dtype == torch.float32 and out.item() == tout.item() == 32768.0
    vec, tvec = sc.scale(tl.ones(2, dtype=tl.float16)), tsc.scale(torch.ones(2, dtype=torch.float16))
    assert vec.dtype == np.float16 and tvec.dtype == torch.float16
    assert np.isinf(vec.numpy()).all() and torch.isinf(tvec).all()  # 65536 is above float16's max
    pair = sc.scale([tl.tensor(1.0), tl.tensor(2.0)])
    assert isinstance(pair, list) and [p.item() for p in pair] == [65536.0, 131072.0]


@pytest.mark.parametrize("misuse, message", [
    ("unscale_twice", "unscale_() has already been called on this optimizer since the last update()."),
    ("unscale_after_step", "unscale_() is being called after step()."),
    ("step_twice", "step() has already been called since the last update()."),
])
def test_call_order_errors_match_torch(misuse, message):
    for mod, make in ((tl, lambda p: (optim.SGD([p], lr=0.1), GradScaler())),
                      (torch, lambda p: (torch.optim.SGD([p], lr=0.1), torch.amp.GradScaler("cpu")))):
        p = mod.ones(3, requires_grad=True)
        opt, sc = make(p)
        sc.scale((p * 2).sum()).backward()
        first, second = {"unscale_twice": (sc.unscale_, sc.unscale_),
                         "unscale_after_step": (sc.step, sc.unscale_),
                         "step_twice": (sc.step, sc.step)}[misuse]
        first(opt)
        with pytest.raises(RuntimeError) as err:
            second(opt)
        assert str(err.value) == message


def test_update_without_step_and_before_scale():
    p = tl.ones(3, requires_grad=True)
    opt, sc = optim.SGD([p], lr=0.1), GradScaler()
    with pytest.raises(RuntimeError, match="call scaler.scale"):
        sc.unscale_(opt)
    sc.scale((p * 2).sum()).backward()
    with pytest.raises(RuntimeError, match="No inf checks were recorded prior to update"):
        sc.update()
    with pytest.raises(RuntimeError, match="Closure use is not currently supported"):
        sc.step(opt, closure=lambda: None)


def test_float16_gradients_are_refused_like_torch():
    p = tl.ones(3, dtype=tl.float16, requires_grad=True)
    opt, sc = optim.SGD([p], lr=0.1), GradScaler()
    sc.scale((p * 2).sum()).backward()
    with pytest.raises(ValueError, match="^Attempting to unscale FP16 gradients.") as err:
        sc.unscale_(opt)
    assert "autocast" in str(err.value)
    tp = torch.ones(3, dtype=torch.float16, requires_grad=True)
    topt, tsc = torch.optim.SGD([tp], lr=0.1), torch.amp.GradScaler("cpu")
    tsc.scale((tp * 2).sum()).backward()
    with pytest.raises(ValueError, match="^Attempting to unscale FP16 gradients."):
        tsc.unscale_(topt)


def test_disabled_scaler_is_a_pass_through():
    p = tl.ones(3, requires_grad=True)
    opt, sc = optim.SGD([p], lr=0.5), GradScaler(enabled=False)
    loss = (p * 2).sum()
    assert sc.scale(loss) is loss
    loss.backward()
    sc.unscale_(opt)
    sc.step(opt)
    sc.update()
    np.testing.assert_allclose(p.numpy(), [0.0, 0.0, 0.0])
    assert sc.get_scale() == 1.0 and sc.state_dict() == {} and not sc.is_enabled()
    with pytest.raises(RuntimeError, match="state dict is empty"):
        GradScaler().load_state_dict({})


def test_constructor_arguments():
    with pytest.raises(TypeError, match="pass the scale as init_scale"):
        GradScaler(1024.0)
    with pytest.raises(ValueError, match="growth_factor must be > 1.0"):
        GradScaler(growth_factor=1.0)
    with pytest.raises(ValueError, match="backoff_factor"):
        GradScaler(backoff_factor=1.5)
    sc = GradScaler(init_scale=4.0)
    assert sc.get_scale() == 4.0 and sc.get_growth_interval() == 2000
    assert sc.state_dict() == torch.amp.GradScaler("cpu", init_scale=4.0).state_dict()


# ------------------------------------------------------------------------------------------------
# autocast
# ------------------------------------------------------------------------------------------------
def test_autocast_dtype_policy():
    tl.manual_seed(0)
    x = tl.randn(4, 8)
    lin, ln, rms = nn.Linear(8, 8), nn.LayerNorm(8), nn.RMSNorm(8)
    with tl.autocast():
        assert tl.amp.is_autocast_enabled()
        y = lin(x)
        q = y.reshape(1, 1, 4, 8)
        got = {
            "linear": y, "matmul": x @ x.T, "sdpa": F.scaled_dot_product_attention(q, q, q),
            "softmax": F.softmax(y, -1), "log_softmax": F.log_softmax(y, -1), "layer_norm": ln(y),
            "rms_norm": rms(y), "cross_entropy": F.cross_entropy(y, tl.zeros(4, dtype=tl.int64)),
            "mse_loss": F.mse_loss(y, x), "add": x + y, "gelu": F.gelu(y),
        }
    assert not tl.amp.is_autocast_enabled()
    half = {"linear", "matmul", "sdpa", "gelu"}
    assert {k: str(v.dtype) for k, v in got.items()} == {k: "float16" if k in half else "float32" for k in got}
    with pytest.raises(TypeError, match="dtype mismatch"):  # outside autocast mixing is refused
        x + y


def test_autocast_linear_matches_torch_cpu_autocast():
    tl.manual_seed(0)
    lin = nn.Linear(16, 8)
    x = tl.randn(5, 16)
    tlin = torch.nn.Linear(16, 8)
    with torch.no_grad():
        tlin.weight.copy_(torch.from_numpy(lin.weight.numpy()))
        tlin.bias.copy_(torch.from_numpy(lin.bias.numpy()))
    with tl.autocast():
        y = lin(x)
    with torch.autocast("cpu", dtype=torch.float16):
        ty = tlin(torch.from_numpy(x.numpy()))
    assert ty.dtype == torch.float16
    np.testing.assert_allclose(y.numpy().astype(np.float32), ty.detach().float().numpy(), rtol=2e-3, atol=2e-3)


def test_autocast_keeps_parameters_and_their_gradients_float32():
    tl.manual_seed(0)
    model = nn.GPT(nn.GPTConfig(vocab_size=32, seq_len=8, d_model=16, n_layers=1, n_heads=2))
    x = tl.randint(0, 32, (2, 8))
    ref = model.loss(x, x)
    ref.backward()
    ref_grads = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
    model.zero_grad()
    with tl.autocast():
        loss = model.loss(x, x)
    assert loss.dtype == np.float32 and abs(loss.item() - ref.item()) < 1e-2
    loss.backward()
    for name, p in model.named_parameters():
        assert p.dtype == np.float32 and p.grad.dtype == np.float32, name
        r = ref_grads[name]
        assert np.abs(p.grad.numpy() - r).max() <= 2e-2 * np.abs(r).max() + 1e-6, name


def test_loss_scaling_recovers_gradients_that_float16_flushes_to_zero():
    tl.manual_seed(0)
    model = nn.GPT(nn.GPTConfig(vocab_size=32, seq_len=8, d_model=16, n_layers=1, n_heads=2))
    x = tl.randint(0, 32, (4, 8))
    tiny = 2.0**-14  # a per-token gradient as small as in a batch of half a million tokens

    def grads(scale, amp):
        model.zero_grad()
        with tl.autocast(enabled=amp):
            loss = model.loss(x, x) * tiny
        (loss * scale).backward()
        return np.concatenate([p.grad.numpy().ravel() / scale for p in model.parameters()])

    ref = grads(1.0, False)
    lost = [((g == 0) & (ref != 0)).mean() for g in (grads(1.0, True), grads(2.0**16, True))]
    assert lost[0] > 0.05 and lost[1] < 0.01


def test_autocast_nesting_decorator_and_arguments():
    @tl.autocast()
    def product(a):
        return a @ a

    x = tl.ones(2, 2)
    assert product(x).dtype == np.float16 and (x @ x).dtype == np.float32
    with tl.autocast():
        with tl.autocast(enabled=False):
            assert (x @ x).dtype == np.float32
        assert (x @ x).dtype == np.float16
    with pytest.raises(TypeError, match="no bfloat16"):
        tl.autocast(dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="must be tl.float16"):
        tl.autocast(dtype=tl.float32)
    with pytest.raises(ValueError, match="device_type"):
        tl.autocast("tpu")


def test_autocast_reference_attention_masks_in_the_scores_dtype():
    # with a fully masked row the reference stays finite under autocast (uniform weights), the
    # fused op agrees with it on every other row, and gives that row torch's answer: zeros
    tl.manual_seed(0)
    q = tl.randn(1, 1, 3, 4)
    mask = tl.tensor([[True, True, False], [False, False, False], [True, True, True]])
    with tl.autocast():
        fused = F.scaled_dot_product_attention(q, q, q, attn_mask=mask)
        ref, _ = F.attention_reference(q, q, q, attn_mask=mask)
    ref, fused = ref.numpy().astype(np.float32), fused.numpy().astype(np.float32)
    assert np.isfinite(ref).all()
    np.testing.assert_allclose(ref[..., [0, 2], :], fused[..., [0, 2], :], atol=2e-3)
    np.testing.assert_array_equal(fused[..., 1, :], 0.0)


def test_checkpointed_blocks_recompute_under_the_forwards_autocast():
    grads = []
    for checkpointing in (False, True):
        tl.manual_seed(0)
        cfg = nn.GPTConfig(vocab_size=32, seq_len=8, d_model=16, n_layers=2, n_heads=2,
                           gradient_checkpointing=checkpointing)
        model = nn.GPT(cfg)
        x = tl.randint(0, 32, (2, 8))
        with tl.autocast():
            loss = model.loss(x, x)
        loss.backward()  # outside the region, as in torch
        grads.append(model.blocks[0].attn.qkv.weight.grad.numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-6, atol=1e-9)
