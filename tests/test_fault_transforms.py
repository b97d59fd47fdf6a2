"""Each fault of the catalogue as a transform of a healthy object: the exact change it makes (the
symptoms in real runs and the detection matrix are in tests/test_faults.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.nn as nn
from tensorlite import data, faults, optim
from tensorlite.debug import capture_attention


def t64(a, grad=True):
    return tl.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def tiny_config(**kw):
    base = dict(vocab_size=23, seq_len=10, d_model=16, n_layers=2, n_heads=2)
    base.update(kw)
    return nn.GPTConfig(**base)


def rope64(head_dim=8, max_len=32):
    return nn.RotaryEmbedding(head_dim, max_len).double()


def relative_scores(rope, rng, t=12, d=8):
    """``S[m, n] = rope(q)_m . rope(k)_n`` for one q and one k vector repeated at every position."""
    q = np.broadcast_to(rng.standard_normal(d), (t, d))
    k = np.broadcast_to(rng.standard_normal(d), (t, d))
    rq, rk = rope(t64(q, False)).numpy(), rope(t64(k, False)).numpy()
    return rq @ rk.T


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ---- RoPE ------------------------------------------------------------------------------------------
def test_rope_sign_flip_fault_is_a_reflection(rng):
    bad, good = faults.inject(rope64(), "rope_sign_flip"), rope64()
    x = rng.standard_normal((6, 8))
    y = bad(t64(x, False)).numpy()
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), atol=1e-12)
    # [[cos, sin], [sin, -cos]] is a reflection: not the identity at position 0, and applying the
    # position-1 map twice gives the input back instead of position 2
    assert not np.allclose(y[0], x[0])
    x1 = t64(x[:1], False)
    np.testing.assert_allclose(bad(bad(x1, offset=1), offset=1).numpy(), x[:1], atol=1e-6)
    assert not np.allclose(bad(x1, offset=2).numpy(), x[:1], atol=1e-3)
    # q.k still depends on n - m only, but with the offset's sign reversed (M(m)^T M(n) = R(m - n)):
    # the score table is the healthy one transposed, so weights trained with the healthy rotation
    # (or a reference implementation) disagree with it
    s_bad = relative_scores(bad, np.random.default_rng(1))
    s_good = relative_scores(good, np.random.default_rng(1))
    np.testing.assert_allclose(s_bad, s_good.T, atol=1e-6)
    assert not np.allclose(s_bad, s_good, atol=1e-3)
    assert tl.gradcheck(lambda a: bad(a), t64(rng.standard_normal((4, 8))))


def test_rope_pairing_mismatch_fault_breaks_rotation(rng):
    bad = faults.inject(rope64(), "rope_pairing_mismatch")
    x = rng.standard_normal((10, 8))
    y = bad(t64(x, False)).numpy()
    np.testing.assert_allclose(y[0], x[0])  # position 0: every angle is 0
    assert not np.allclose(np.linalg.norm(y, axis=-1)[1:], np.linalg.norm(x, axis=-1)[1:], atol=1e-3)
    s = relative_scores(bad, np.random.default_rng(1))
    assert not np.allclose(s[1:, 1:], s[:-1, :-1], atol=1e-3)
    assert tl.gradcheck(lambda a: bad(a), t64(rng.standard_normal((4, 8))))


# ---- faults ----------------------------------------------------------------------------------------
def faulty_pair(fault, **kw):
    """A healthy and a faulty model with identical weights (but for init_x100's)."""
    kw = {**faults.requirements(fault), **kw}
    tl.manual_seed(0)
    healthy = nn.GPT(tiny_config(**kw))
    tl.manual_seed(0)
    return healthy, faults.inject(nn.GPT(tiny_config(**kw)), fault)


X = np.random.default_rng(0).integers(0, 23, (2, 10))


MODEL_FAULTS = [f for f in faults.names() if faults.get(f).target == "model"]


@pytest.mark.parametrize("fault", [f for f in MODEL_FAULTS if f not in ("per_token_loop", "rmsnorm_no_eps")])
def test_every_fault_changes_the_logits(fault):
    healthy, faulty = faulty_pair(fault)
    with tl.no_grad():
        assert not np.allclose(healthy(X).numpy(), faulty(X).numpy(), atol=1e-4)


def test_per_token_loop_gives_the_same_logits_with_one_lookup_per_token():
    healthy, faulty = faulty_pair("per_token_loop")
    counts = {}
    for name, m in (("healthy", healthy), ("faulty", faulty)):
        lookups = []
        tl.autograd._forward_observers.append(lambda fn, inputs, out, seen=lookups: seen.append(fn.name == "Embedding"))
        try:
            logits = m(X).numpy()
        finally:
            tl.autograd._forward_observers.pop()
        counts[name] = sum(lookups)
        if name == "healthy":
            expected = logits
    np.testing.assert_allclose(expected, logits, atol=1e-6)
    assert counts == {"healthy": 1, "faulty": X.size}
    healthy.loss(X, X).backward()
    faulty.loss(X, X).backward()
    np.testing.assert_allclose(healthy.tok_emb.weight.grad.numpy(), faulty.tok_emb.weight.grad.numpy(), atol=1e-6)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_rmsnorm_no_eps_sets_eps_to_zero():
    healthy, faulty = faulty_pair("rmsnorm_no_eps")
    assert healthy.blocks[0].norm1.eps == 1e-6
    assert all(m.eps == 0.0 for m in faulty.modules() if isinstance(m, nn.RMSNorm))
    # a zero input row (e.g. a zeroed embedding) turns into NaN only without eps
    for m in (healthy, faulty):
        m.tok_emb.weight.data[0] = 0.0
        m.pos_emb.weight.data[...] = 0.0
    x = np.zeros((1, 4), dtype=np.int64)
    with tl.no_grad():
        assert np.isfinite(healthy(x).numpy()).all()
        assert np.isnan(faulty(x).numpy()).all()


def _record(model, x):
    """Each layer's attention weights ``(B, H, T, T)`` in one forward on ``x``, as the capture sees them."""
    return [np.asarray(c.weights) for c in capture_attention(model, x)]


def _entropy(w):
    return float(-(w * np.log(w + 1e-30)).sum(-1).mean())


def test_attn_scale_multiply_sharpens_attention():
    healthy, faulty = faulty_pair("attn_scale_multiply", d_model=64, n_heads=2)
    for m in (healthy, faulty):  # larger weights, so the scores are not all near zero
        for b in m.blocks:
            b.attn.qkv.weight.data *= 10
    assert _entropy(_record(faulty, X)[0]) < _entropy(_record(healthy, X)[0]) - 0.3


def test_softmax_over_queries_normalises_the_wrong_axis():
    healthy, faulty = faulty_pair("softmax_over_queries")
    hw, fw = _record(healthy, X)[0], _record(faulty, X)[0]
    np.testing.assert_allclose(hw.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(fw.sum(-2), 1.0, atol=1e-5)
    assert not np.allclose(fw.sum(-1), 1.0, atol=1e-2)


def test_causal_mask_open_leaks_the_future():
    healthy, faulty = faulty_pair("causal_mask_open")
    x2 = X.copy()
    x2[:, -1] = (x2[:, -1] + 1) % 23  # change only the last token
    with tl.no_grad():
        for model, leaks in ((healthy, False), (faulty, True)):
            a, b = model(X).numpy()[:, :-1], model(x2).numpy()[:, :-1]
            assert (not np.allclose(a, b, atol=1e-6)) == leaks
    w = _record(faulty, X)[0]
    assert np.triu(w, 1).max() > 0.01


def test_rope_on_values_rotates_values():
    healthy, faulty = faulty_pair("rope_on_values")
    # at position 0 every rotation is the identity, so the first position still agrees
    with tl.no_grad():
        h, f = healthy(X).numpy(), faulty(X).numpy()
    np.testing.assert_allclose(h[:, 0], f[:, 0], atol=1e-5)
    assert not np.allclose(h[:, 1:], f[:, 1:], atol=1e-4)


@pytest.mark.parametrize("fault", ["rope_sign_flip", "rope_pairing_mismatch"])
def test_rope_faults_reach_the_model(fault):
    healthy, faulty = faulty_pair(fault)
    rope = faulty.blocks[0].attn.rope
    assert rope.sign_flip == (fault == "rope_sign_flip") and rope.pairing_mismatch == (fault == "rope_pairing_mismatch")
    assert type(healthy.blocks[0].attn.rope) is nn.RotaryEmbedding


def _block_io(model):
    """Capture block inputs/outputs and each sublayer's input/output of block 0."""
    seen = {}
    blk = model.blocks[0]
    blk.register_forward_hook(lambda m, i, o: seen.update(block_in=i[0].numpy(), block_out=o.numpy()))
    blk.attn.register_forward_hook(lambda m, i, o: seen.update(attn_in=i[0].numpy(), attn_out=o.numpy()))
    blk.ffn.register_forward_hook(lambda m, i, o: seen.update(ffn_in=i[0].numpy(), ffn_out=o.numpy()))
    calls = []
    blk.norm1.register_forward_hook(lambda *a: calls.append("norm1"))
    blk.norm2.register_forward_hook(lambda *a: calls.append("norm2"))
    with tl.no_grad():
        model(X)
    return seen, calls


def test_healthy_block_is_prenorm_with_residuals():
    healthy, _ = faulty_pair("no_prenorm")
    seen, calls = _block_io(healthy)
    assert calls == ["norm1", "norm2"]
    mid = seen["block_in"] + seen["attn_out"]
    np.testing.assert_allclose(seen["block_out"], mid + seen["ffn_out"], atol=1e-5)


def test_no_prenorm_feeds_raw_activations():
    _, faulty = faulty_pair("no_prenorm")
    seen, calls = _block_io(faulty)
    assert calls == []
    np.testing.assert_allclose(seen["attn_in"], seen["block_in"])


def test_no_attn_residual_drops_the_skip():
    _, faulty = faulty_pair("no_attn_residual")
    seen, _ = _block_io(faulty)
    np.testing.assert_allclose(seen["block_out"], seen["attn_out"] + seen["ffn_out"], atol=1e-5)


def test_no_ffn_residual_drops_the_skip():
    _, faulty = faulty_pair("no_ffn_residual")
    seen, _ = _block_io(faulty)
    np.testing.assert_allclose(seen["block_out"], seen["ffn_out"], atol=1e-6)


def test_init_x100_scales_every_weight_once():
    healthy, faulty = faulty_pair("init_x100", tie_weights=True)
    np.testing.assert_allclose(faulty.tok_emb.weight.numpy(), 100 * healthy.tok_emb.weight.numpy(), rtol=1e-6)
    np.testing.assert_allclose(faulty.blocks[1].ffn.fc.weight.numpy(), 100 * healthy.blocks[1].ffn.fc.weight.numpy(), rtol=1e-6)
    x, y = X, np.roll(X, -1, axis=1)
    with tl.no_grad():
        assert faulty.loss(x, y).item() > 3 * math.log(23)


def test_bitlinear_latent_scale_explodes_activations():
    healthy, faulty = faulty_pair("bitlinear_latent_scale")
    assert type(faulty.blocks[0].attn.qkv) is faults.layers.FaultyBitLinear
    h, _ = _block_io(healthy)
    f, _ = _block_io(faulty)
    assert np.abs(f["attn_out"]).mean() > 100 * np.abs(h["attn_out"]).mean()


def test_the_healthy_model_is_untouched_by_a_faulty_one():
    healthy, faulty = faulty_pair("no_ffn_residual")
    assert type(healthy.blocks[0]) is nn.Block and type(faulty.blocks[0]) is faults.block.FaultyBlock
    assert "forward" not in healthy.blocks[0].__dict__ and "forward" not in faulty.blocks[0].__dict__


# ---- the loop's parts ------------------------------------------------------------------------------
def test_adamw_decay_on_moment_reproduces_bug_8():
    lr, wd = 0.1, 0.5
    p = tl.tensor([[1.0, -2.0], [3.0, 0.5]], dtype=tl.float64, requires_grad=True)
    w0 = p.numpy().copy()
    opt = faults.inject(optim.AdamW([p], lr=lr, weight_decay=wd), "adamw_decay_on_moment")
    p.grad = tl.zeros(2, 2, dtype=tl.float64)
    opt.step()
    np.testing.assert_array_equal(p.numpy(), w0)  # the weights are not decayed ...
    np.testing.assert_allclose(opt.state[p]["exp_avg"], -lr * wd * w0)  # ... the moment is
    # Next step: m = -lr*wd*w enters the update p -= step * m / denom with the sign of a
    # gradient, so the "decay" pushes every weight AWAY from zero (here, with v = 0, by m / eps).
    p.grad = tl.zeros(2, 2, dtype=tl.float64)
    opt.step()
    assert np.all(np.abs(p.numpy()) > np.abs(w0))
    assert np.all(np.sign(p.numpy()) == np.sign(w0))
    state = opt.state_dict()
    again = faults.inject(optim.AdamW([t64(w0)], lr=lr, weight_decay=wd), "adamw_decay_on_moment")
    again.load_state_dict(state)  # the faulty optimizer's state is an AdamW's
    assert again.state_dict()["state"].keys() == state["state"].keys()


def test_bos_pad_misalignment_shifts_inputs_but_not_labels():
    tokens = np.arange(1, 200)
    good = data.TokenBatcher(tokens, 8, 4, seed=5)
    bad = faults.inject(data.TokenBatcher(tokens, 8, 4, seed=5), "bos_pad_misalignment")
    bad.bos_id, bad.pad_id = 0, 1
    (gx, gy), (bx, by) = (tuple(t.numpy() for t in b.get_batch()) for b in (good, bad))
    np.testing.assert_array_equal(bx[:, 0], 0)
    np.testing.assert_array_equal(bx[:, 1:], gx[:, :-1])
    np.testing.assert_array_equal(by[:, :-1], gy[:, :-1])
    np.testing.assert_array_equal(by[:, -1], 1)
    np.testing.assert_array_equal(by[:, :-2], bx[:, 2:])  # each position asked for the token two ahead
