"""Attention seen without the model's help: the op observer API and :class:`Capture` on
hand-written attention, sdpa, tensorlite's fused op and nn.MultiheadAttention, in both frameworks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from user_models import tl_lm, torch_lm

import tensorlite as tl
from tensorlite import autograd, nn
from tensorlite.debug import Capture, capture_attention


# ------------------------------------------------------------------------------------------------
# tensorlite's public op observer
# ------------------------------------------------------------------------------------------------
def test_observe_sees_every_op_and_removes_itself():
    seen = []
    x = tl.randn(3, 4, requires_grad=True)
    with autograd.observe(forward=lambda fn, inputs, out: seen.append(fn.name)):
        (x * 2).sum()
    assert seen == ["ScalarMul", "Sum"]
    assert not autograd._forward_observers
    (x * 2).sum()
    assert seen == ["ScalarMul", "Sum"]


def test_observe_backward_and_nesting():
    grads, outer, inner = [], [], []
    x = (tl.rand(3) + 0.5).requires_grad_()
    with autograd.observe(backward=lambda fn, g: grads.append(fn.name)):
        (x.exp()).sum().backward()
    assert grads == ["Sum", "Exp"]
    f = lambda fn, i, o: outer.append(fn.name)  # noqa: E731
    with autograd.observe(forward=f):
        with autograd.observe(forward=lambda fn, i, o: inner.append(fn.name)):
            x.exp()
        x.log()
    assert outer == ["Exp", "Log"] and inner == ["Exp"]
    assert not autograd._forward_observers and not autograd._backward_observers


def test_observe_rejects_bad_arguments():
    with pytest.raises(TypeError, match="give forward=, backward= or both"):
        autograd.observe()
    with pytest.raises(TypeError, match="forward must be callable"):
        autograd.observe(forward=3)


# ------------------------------------------------------------------------------------------------
# tensorlite models
# ------------------------------------------------------------------------------------------------
def _reference_weights(q, k, scale, causal=True):
    s = q @ np.swapaxes(k, -1, -2) * scale
    if causal:
        t = s.shape[-1]
        s = np.where(np.tril(np.ones((t, t), dtype=bool)), s, -np.inf)
    s = s - s.max(-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(-1, keepdims=True)


def test_hand_written_tensorlite_attention_is_captured_with_q_k_and_scale():
    model = tl_lm.build()["model"]
    x = tl.tensor(np.random.default_rng(0).integers(0, tl_lm.V, size=(2, tl_lm.T)))
    with tl.no_grad(), Capture(model, seq_len=tl_lm.T) as cap:
        model(x)
    assert [a.module for a in cap.attention] == ["layers.0.attn", "layers.1.attn"]
    for a in cap.attention:
        assert a.kind == "softmax" and a.dim == -1 and a.weights.shape == (2, tl_lm.H, tl_lm.T, tl_lm.T)
        hd = tl_lm.D // tl_lm.H
        assert a.q.shape == (2, tl_lm.H, tl_lm.T, hd) and a.scale == pytest.approx(1 / math.sqrt(hd), rel=1e-5)
        np.testing.assert_allclose(a.weights, _reference_weights(a.q, a.k, a.scale), atol=1e-6)
        assert a.stack[:2] == ("", a.module.rsplit(".", 1)[0])  # the model, then the layer
    assert "forward" not in model.__dict__ and all("forward" not in m.__dict__ for m in model.modules())


def test_softmax_axis_and_scale_bugs_are_visible_in_the_capture():
    for bug, check in (("softmax_over_queries", lambda a: a.dim == -2),
                       ("attn_scale_multiply", lambda a: a.scale == pytest.approx(math.sqrt(8), rel=1e-5)),
                       ("scale_d_model", lambda a: a.scale == pytest.approx(1 / math.sqrt(32), rel=1e-5))):
        a = capture_attention(tl_lm.build(bug)["model"])[0]
        assert check(a), (bug, a.dim, a.scale)


def test_tensorlite_fused_attention_of_nn_gpt():
    tl.manual_seed(0)
    model = nn.GPT(nn.GPTConfig(vocab_size=40, seq_len=16, d_model=32, n_layers=2, n_heads=4, pos="rope"))
    calls = capture_attention(model)
    assert [a.kind for a in calls] == ["fused", "fused"] and calls[0].module == "blocks.0.attn"
    a = calls[0]
    np.testing.assert_allclose(a.weights, _reference_weights(a.q, a.k, a.scale), atol=1e-6)
    assert a.scale == pytest.approx(1 / math.sqrt(8))


def test_the_model_is_unchanged_by_a_capture():
    model = tl_lm.build()["model"]
    x = tl.tensor(np.arange(32).reshape(2, 16) % tl_lm.V)
    with tl.no_grad():
        before = model(x).numpy()
        with Capture(model):
            model(x)
        np.testing.assert_array_equal(model(x).numpy(), before)


def test_module_calls_form_a_tree():
    model = tl_lm.build()["model"]
    x = tl.tensor(np.zeros((1, 8), dtype=np.int64))
    with tl.no_grad(), Capture(model) as cap:
        model(x)
    root = cap.calls[0]
    assert root.name == "" and root.parent is None
    layer0 = cap.calls_of("layers.0")[0]
    kids = [cap.calls[i].name for i in layer0.children]
    assert kids == ["layers.0.attn_norm", "layers.0.attn", "layers.0.mlp_norm", "layers.0.mlp"]
    assert {c.name for c in cap.descendants(layer0)} >= {"layers.0.attn.wq", "layers.0.mlp.down"}
    assert tuple(layer0.input.shape) == tuple(layer0.out.shape) == (1, 8, tl_lm.D)


# ------------------------------------------------------------------------------------------------
# torch models
# ------------------------------------------------------------------------------------------------
def _torch_reference(q, k, scale, causal=True):
    s = torch.from_numpy(q) @ torch.from_numpy(k).transpose(-1, -2) * scale
    if causal:
        t = s.shape[-1]
        s = s.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), float("-inf"))
    return torch.softmax(s, -1).numpy()


@pytest.mark.parametrize("attn", ["sdpa", "manual"])
def test_torch_attention_is_captured(attn):
    model = torch_lm.build(attn=attn)["model"]
    calls = capture_attention(model)
    assert [a.module for a in calls] == ["transformer.h.0.attn", "transformer.h.1.attn"]
    a = calls[0]
    assert a.kind == ("sdpa" if attn == "sdpa" else "softmax")
    assert a.scale == pytest.approx(1 / math.sqrt(8), rel=1e-5)
    np.testing.assert_allclose(a.weights, _torch_reference(a.q, a.k, a.scale), atol=1e-6)
    if attn == "sdpa":
        assert a.is_causal is True and a.v is not None


def test_sdpa_flags_are_recorded():
    a = capture_attention(torch_lm.build("causal_mask_open")["model"])[0]
    assert a.is_causal is False
    np.testing.assert_allclose(a.weights, _torch_reference(a.q, a.k, a.scale, causal=False), atol=1e-6)
    a = capture_attention(torch_lm.build("no_scale")["model"])[0]
    assert a.scale == 1.0


class Einsum(torch.nn.Module):
    def __init__(self, d=16, h=2):
        super().__init__()
        self.qkv, self.h = torch.nn.Linear(d, 3 * d), h

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.h, d // self.h).unbind(2)
        s = torch.einsum("bqhd,bkhd->bhqk", q, k) * (d // self.h) ** -0.5
        return torch.einsum("bhqk,bkhd->bqhd", s.softmax(-1), v).reshape(b, t, d)


def test_einsum_scores_are_traced_to_q_and_k():
    torch.manual_seed(0)
    m = Einsum()
    x = torch.randn(2, 5, 16)
    with torch.no_grad(), Capture(m, seq_len=5) as cap:
        m(x)
    (a,) = cap.attention
    assert a.q.shape == (2, 2, 5, 8) and a.scale == pytest.approx(8 ** -0.5, rel=1e-5)
    np.testing.assert_allclose(a.weights, _torch_reference(a.q, a.k, a.scale, causal=False), atol=1e-6)


def test_torch_multihead_attention_gives_per_head_weights_and_unchanged_outputs():
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    x = torch.randn(2, 6, 16)
    mask = torch.ones(6, 6, dtype=torch.bool).triu(1)
    with torch.no_grad():
        ref_out, ref_w = mha(x, x, x, attn_mask=mask, need_weights=True, average_attn_weights=False)
        with Capture(mha, seq_len=6) as cap:
            out, w = mha(x, x, x, attn_mask=mask, need_weights=False)
    assert w is None
    torch.testing.assert_close(out, ref_out)
    (a,) = cap.attention
    assert a.kind == "mha" and a.q is None
    np.testing.assert_allclose(a.weights, ref_w.numpy(), atol=1e-6)


def test_torch_model_forward_is_put_back():
    model = torch_lm.build()["model"]
    capture_attention(model)
    assert all("forward" not in m.__dict__ for m in model.modules())


@pytest.mark.parametrize("attention", ["fused", "tiled"])
def test_capture_sees_the_gpts_packed_and_tiled_attention(attention):
    # nn.GPT attends through one packed node (and the tiled kernel never forms the weights):
    # the capture still sees every layer's causal weights, equal to the reference's
    tl.manual_seed(0)
    model = tl.nn.GPT(tl.nn.GPTConfig(vocab_size=20, seq_len=8, d_model=16, n_layers=2, n_heads=2,
                                      attention=attention))
    x = np.random.default_rng(0).integers(0, 20, (2, 8))
    with Capture(model) as cap:
        model(x)
    assert [c.module for c in cap.attention] == ["blocks.0.attn", "blocks.1.attn"]
    for c in cap.attention:
        w = np.asarray(c.weights)
        assert w.shape == (2, 2, 8, 8)
        np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
        assert np.triu(w, 1).max() == 0.0
    attn = model.blocks[0].attn
    h = attn.qkv(tl.tensor(np.zeros((1, 8, 16), dtype=np.float32)))  # shapes only: reference on zeros
    q, k, v = tl.nn.attention.split_heads(h, 2)
    _, ref = tl.functional.attention_reference(q, k, v, is_causal=True, scale=attn.scale)
    with Capture(attn) as cap:
        attn(tl.tensor(np.zeros((1, 8, 16), dtype=np.float32)))
    np.testing.assert_allclose(np.asarray(cap.attention[0].weights), ref.numpy(), atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: tl_lm.build()["model"],
    lambda: torch_lm.build()["model"],
    lambda: torch_lm.build(attn="manual")["model"],
    lambda: nn.GPT(nn.GPTConfig(vocab_size=48, seq_len=16, d_model=32, n_layers=2, n_heads=4)),
], ids=["tl-softmax", "torch-sdpa", "torch-softmax", "tl-fused"])
def test_native_capture_keeps_the_framework_tensors_with_the_same_weights(make):
    from tensorlite.debug.view import model_view

    model = make()
    view = model_view(model)
    x = view.tokens(np.random.default_rng(0).integers(0, 48, size=(2, 16)))
    with Capture(model, seq_len=16) as host:
        view.logits_native(x)
    with Capture(model, seq_len=16, native=True) as native:
        view.logits_native(x)
    assert [a.kind for a in native.attention] == [a.kind for a in host.attention] and native.attention
    for h, n in zip(host.attention, native.attention):
        assert not isinstance(n.weights, np.ndarray) or not isinstance(model, torch.nn.Module)
        assert n.q is None and n.scores is None and n.module == h.module  # no operand tracing
        w = n.weights.numpy() if isinstance(n.weights, torch.Tensor) else np.asarray(n.weights)
        np.testing.assert_allclose(w, h.weights, atol=1e-6)
