"""tensorlite.nn: module mechanics, each layer against torch, RoPE's properties, BitLinear, the GPT's
configuration and initialisation (the faults of the bug catalogue: tests/test_fault_transforms.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from torch_reference import apply_rope, rope_tables, ternary_weight

import tensorlite as tl
import tensorlite.nn as nn
import tensorlite.nn.functional as F
from tensorlite.nn.bitlinear import ternarize
from tensorlite.nn.transformer import swiglu_hidden


def t64(a, grad=True):
    return tl.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def torch64(a, grad=True):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def tiny_config(**kw):
    base = dict(vocab_size=23, seq_len=10, d_model=16, n_layers=2, n_heads=2)
    base.update(kw)
    return nn.GPTConfig(**base)


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 4)
        self.seq = nn.Sequential(nn.Linear(4, 4, bias=False), nn.GELU(), nn.Linear(4, 2))
        self.scale = nn.Parameter(np.ones(2, dtype=np.float32))
        self.register_buffer("steps", tl.zeros(1))
        self.register_buffer("scratch", tl.zeros(3), persistent=False)

    def forward(self, x):
        return self.seq(self.a(x)) * self.scale


# ---- module mechanics ------------------------------------------------------------------------------
def test_registration_and_traversal():
    m = Toy()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "a.weight", "a.bias", "seq.0.weight", "seq.2.weight", "seq.2.bias"]
    assert [n for n, _ in m.named_modules()] == ["", "a", "seq", "seq.0", "seq.1", "seq.2"]
    assert [type(c).__name__ for c in m.children()] == ["Linear", "Sequential"]
    assert len(list(m.modules())) == 6
    assert [n for n, _ in m.named_buffers()] == ["steps", "scratch"]
    assert m.num_parameters() == 2 + 3 * 4 + 4 + 16 + 8 + 2
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in m.parameters())
    assert list(m.state_dict()) == ["scale", "steps", "a.weight", "a.bias", "seq.0.weight", "seq.2.weight", "seq.2.bias"]


def test_assignment_rules():
    m = Toy()
    with pytest.raises(TypeError, match="cannot assign Tensor to parameter 'scale'"):
        m.scale = tl.ones(2)
    m.scale = None
    assert "scale" not in [n for n, _ in m.named_parameters()]
    m.extra = nn.Parameter(np.zeros(3, dtype=np.float32))
    assert "extra" in dict(m.named_parameters())
    del m.extra
    assert "extra" not in dict(m.named_parameters())

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(1))

    with pytest.raises(AttributeError, match=r"call super\(\)\.__init__\(\) first"):
        Early()


def test_parameter_shares_memory_and_requires_grad():
    t = tl.ones(3)
    p = nn.Parameter(t)
    assert p.requires_grad and p.data is t.data
    assert "Parameter containing" in repr(p)
    with pytest.raises(TypeError):
        nn.Parameter(np.arange(3))  # integers cannot require grad


def test_train_eval_and_zero_grad():
    m = Toy()
    assert m.training and m.seq[1].training
    m.eval()
    assert not m.training and not m.seq[1].training
    m.train()
    assert m.seq[2].training
    m(tl.randn(5, 3)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(float(np.abs(p.grad.numpy()).sum()) == 0.0 for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_state_dict_round_trip_keeps_parameter_objects():
    src, dst = Toy(), Toy()
    src.steps.data[...] = 7
    ids = [id(p) for p in dst.parameters()]
    result = dst.load_state_dict({k: v.numpy() for k, v in src.state_dict().items()})  # NumPy accepted
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert [id(p) for p in dst.parameters()] == ids
    x = tl.randn(4, 3)
    np.testing.assert_array_equal(src(x).numpy(), dst(x).numpy())
    assert dst.steps.item() == 7
    # state_dict values share memory with the parameters, as in torch
    sd = dst.state_dict()
    assert sd["a.weight"].data is dst.a.weight.data


def test_load_state_dict_lists_every_problem():
    m = Toy()
    sd = {k: v.numpy() for k, v in m.state_dict().items()}
    del sd["a.bias"], sd["steps"]
    sd["bogus.weight"] = np.zeros(2)
    sd["seq.2.weight"] = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(RuntimeError) as info:
        m.load_state_dict(sd)
    msg = str(info.value)
    assert "missing key(s) (2): 'steps', 'a.bias'" in msg
    assert "unexpected key(s) (1): 'bogus.weight'" in msg
    assert "size mismatch for 'seq.2.weight': checkpoint has shape (3, 4), the model has (2, 4)" in msg
    # non-strict still refuses a wrong shape, but reports the key lists otherwise
    sd["seq.2.weight"] = np.zeros((2, 4), dtype=np.float32)
    result = m.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["steps", "a.bias"] and result.unexpected_keys == ["bogus.weight"]


def test_load_state_dict_casts_dtype():
    m = nn.Linear(2, 2)
    m.load_state_dict({"weight": np.eye(2), "bias": np.zeros(2)})  # float64 in, float32 kept
    assert m.weight.dtype == np.float32
    np.testing.assert_array_equal(m.weight.numpy(), np.eye(2))


def test_forward_hooks_and_removable_handles():
    m = Toy()
    calls = []
    h = m.a.register_forward_hook(lambda mod, inputs, out: calls.append((mod, inputs[0].shape, out.shape)))
    x = tl.randn(5, 3)
    m(x)
    assert calls == [(m.a, (5, 3), (5, 4))]
    h.remove()
    m(x)
    assert len(calls) == 1
    # a hook that returns a value replaces the output
    h2 = m.register_forward_hook(lambda mod, inputs, out: out * 0.0)
    assert float(np.abs(m(x).numpy()).sum()) == 0.0
    h2.remove()
    pre = m.a.register_forward_pre_hook(lambda mod, inputs: (inputs[0] * 0.0,))
    with_pre = m(x).numpy()
    pre.remove()
    np.testing.assert_allclose(with_pre, m(tl.zeros(5, 3)).numpy())


def test_apply_to_and_dtype():
    m = Toy()
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen[-1] == "Toy" and seen.count("Linear") == 3
    m.to("cpu").double()
    assert all(p.dtype == np.float64 for p in m.parameters())
    assert m.steps.dtype == np.float64
    assert m(tl.randn(2, 3, dtype=tl.float64)).dtype == np.float64
    m.float()
    assert m.a.weight.dtype == np.float32


def test_sequential_and_module_list():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(layers) == 3 and isinstance(layers[1], nn.Linear)
    layers.append(nn.GELU())
    assert len(layers) == 4 and [n for n, _ in layers.named_parameters()][:2] == ["0.weight", "0.bias"]
    assert len(layers[1:3]) == 2
    seq = nn.Sequential(nn.Linear(2, 3), nn.GELU())
    assert seq(tl.randn(4, 2)).shape == (4, 3) and len(seq) == 2
    assert "(0): Linear(in_features=2, out_features=3, bias=True)" in repr(seq)


# ---- layers against torch --------------------------------------------------------------------
def test_linear_matches_torch(rng):
    x, w, b = rng.standard_normal((2, 5, 4)), rng.standard_normal((3, 4)), rng.standard_normal(3)
    for bias in (b, None):
        xs, ws = t64(x), t64(w)
        bs = t64(bias) if bias is not None else None
        out = F.linear(xs, ws, bs)
        g = rng.standard_normal(out.shape)
        out.backward(tl.tensor(g))
        xt, wt = torch64(x), torch64(w)
        bt = torch64(bias) if bias is not None else None
        ref = TF.linear(xt, wt, bt)
        ref.backward(torch.tensor(g))
        np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(xs.grad.numpy(), xt.grad.numpy(), atol=1e-12)
        np.testing.assert_allclose(ws.grad.numpy(), wt.grad.numpy(), atol=1e-12)
        if bias is not None:
            np.testing.assert_allclose(bs.grad.numpy(), bt.grad.numpy(), atol=1e-12)


def test_linear_layer_shape_errors():
    lin = nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"linear: input of shape \(2, 5\) does not fit weight of shape \(3, 4\)"):
        lin(tl.randn(2, 5))
    assert lin(tl.randn(7, 4)).shape == (7, 3)
    bound = 1 / math.sqrt(4)
    assert float(np.abs(lin.weight.numpy()).max()) <= bound


def test_embedding_matches_torch_with_repeated_indices(rng):
    w = rng.standard_normal((6, 3))
    idx = np.array([[0, 2, 2], [5, 0, 0]])
    emb = nn.Embedding(6, 3).double()
    emb.load_state_dict({"weight": w})
    out = emb(tl.tensor(idx))
    g = rng.standard_normal(out.shape)
    out.backward(tl.tensor(g))
    wt = torch64(w)
    ref = TF.embedding(torch.tensor(idx), wt)
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy())
    np.testing.assert_allclose(emb.weight.grad.numpy(), wt.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_matches_torch(rng, bias):
    x = rng.standard_normal((3, 4, 8)) * 3 + 1
    ours = nn.LayerNorm(8, eps=1e-5, bias=bias).double()
    ref = torch.nn.LayerNorm(8, eps=1e-5, bias=bias).double()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(rng.standard_normal(8)))
        if bias:
            ref.bias.copy_(torch.tensor(rng.standard_normal(8)))
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    _compare_module(ours, ref, x, rng)


@pytest.mark.parametrize("eps", [1e-6, 1e-2])
def test_rmsnorm_matches_torch_rmsnorm(rng, eps):
    x = rng.standard_normal((2, 5, 8))
    ours = nn.RMSNorm(8, eps=eps).double()
    ref = torch.nn.RMSNorm(8, eps=eps).double()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(rng.standard_normal(8)))
    ours.load_state_dict({"weight": ref.weight.detach().numpy()})
    _compare_module(ours, ref, x, rng)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_rmsnorm_eps_matters_on_a_zero_row():
    x = tl.zeros(1, 4)
    assert np.isfinite(nn.RMSNorm(4)(x).numpy()).all()
    assert np.isnan(nn.RMSNorm(4, eps=0.0)(x).numpy()).all()


def test_swiglu_and_mlp_match_torch(rng):
    x = rng.standard_normal((2, 3, 6))
    sw = nn.SwiGLU(6, 10, bias=True).double()
    sd = {k: rng.standard_normal(v.shape) for k, v in sw.state_dict().items()}
    sw.load_state_dict(sd)
    tsd = {k: torch64(v) for k, v in sd.items()}
    ref = lambda xt: TF.linear(
        TF.silu(TF.linear(xt, tsd["w_gate.weight"], tsd["w_gate.bias"])) * TF.linear(xt, tsd["w_up.weight"], tsd["w_up.bias"]),
        tsd["proj.weight"],
        tsd["proj.bias"],
    )
    _compare_fn(sw, ref, x, rng, sw.named_parameters(), tsd)
    mlp = nn.MLP(6, 12, bias=False).double()
    sd = {k: rng.standard_normal(v.shape) for k, v in mlp.state_dict().items()}
    mlp.load_state_dict(sd)
    tsd = {k: torch64(v) for k, v in sd.items()}
    ref = lambda xt: TF.linear(TF.gelu(TF.linear(xt, tsd["fc.weight"]), approximate="tanh"), tsd["proj.weight"])
    _compare_fn(mlp, ref, x, rng, mlp.named_parameters(), tsd)


def test_gelu_module_and_dropout():
    x = tl.randn(1000, dtype=tl.float64)
    # the default is torch's: exact (erf); the tanh formula is opt-in, as torch.nn.GELU(approximate="tanh")
    np.testing.assert_allclose(nn.GELU()(x).numpy(), TF.gelu(torch.tensor(x.numpy())).numpy(), atol=1e-10)
    np.testing.assert_allclose(
        nn.GELU("tanh")(x).numpy(), TF.gelu(torch.tensor(x.numpy()), approximate="tanh").numpy(), atol=1e-12
    )
    assert nn.GELU().approximate == torch.nn.GELU().approximate == "none"
    drop = nn.Dropout(0.25)
    y = drop(tl.ones(20000)).numpy()
    assert abs((y == 0).mean() - 0.25) < 0.02 and np.allclose(y[y != 0], 1 / 0.75)
    drop.eval()
    assert (drop(tl.ones(10)).numpy() == 1).all()
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout(1.5)


def _compare_module(ours, ref, x, rng):
    _compare_fn(ours, ref, x, rng, ours.named_parameters(), dict(ref.named_parameters()))


def _compare_fn(ours, ref, x, rng, named_params, tsd):
    xo, xt = t64(x), torch64(x)
    out, rout = ours(xo), ref(xt)
    g = rng.standard_normal(out.shape)
    out.backward(tl.tensor(g))
    rout.backward(torch.tensor(g))
    np.testing.assert_allclose(out.numpy(), rout.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), atol=1e-10)
    for name, p in named_params:
        np.testing.assert_allclose(p.grad.numpy(), tsd[name].grad.numpy(), atol=1e-10, err_msg=name)


# ---- RoPE ------------------------------------------------------------------------------------------
def rope64(head_dim=8, max_len=32, **kw):
    return nn.RotaryEmbedding(head_dim, max_len, **kw).double()


def relative_scores(rope, rng, t=12, d=8):
    """``S[m, n] = rope(q)_m . rope(k)_n`` for one q and one k vector repeated at every position."""
    q = np.broadcast_to(rng.standard_normal(d), (t, d))
    k = np.broadcast_to(rng.standard_normal(d), (t, d))
    rq, rk = rope(t64(q, False)).numpy(), rope(t64(k, False)).numpy()
    return rq @ rk.T


def test_rope_convention_is_interleaved_pairs():
    rope = rope64()
    x = np.zeros((2, 8))
    x[:, 0] = 1.0  # unit vector in dim 0, at positions 0 and 1
    out = rope(t64(x, False)).numpy()
    np.testing.assert_allclose(out[0], x[0], atol=1e-15)
    # position 1 rotates pair (0, 1) by theta_0 = 1 rad into dim 1: [cos 1, sin 1, 0, ...]
    np.testing.assert_allclose(out[1], [math.cos(1), math.sin(1), 0, 0, 0, 0, 0, 0], atol=1e-7)
    x = np.zeros((2, 8))
    x[:, 2] = 1.0  # pair (2, 3) turns at theta_1 = 10000^(-2/8) = 0.1 rad per position
    out = rope(t64(x, False)).numpy()
    np.testing.assert_allclose(out[1, 2:4], [math.cos(0.1), math.sin(0.1)], atol=1e-7)


def test_rope_matches_an_independent_torch_implementation(rng):
    x = rng.standard_normal((2, 3, 10, 16)).astype(np.float32)
    rope = nn.RotaryEmbedding(16, 32)
    for offset in (0, 5):
        ours = rope(tl.tensor(x), offset=offset).numpy()
        ref = apply_rope(torch.tensor(x), rope_tables(16, 32), offset).numpy()
        np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_rope_preserves_norms_and_is_invertible(rng):
    rope = rope64()
    x = rng.standard_normal((3, 20, 8))
    xt = t64(x)
    y = rope(xt)
    yn = y.numpy()
    pair_norms = lambda a: np.hypot(a[..., 0::2], a[..., 1::2])
    np.testing.assert_allclose(pair_norms(yn), pair_norms(x), atol=1e-12)
    # the backward applies R^T; for a rotation R^T R = I, so pulling y back gives x again
    y.backward(tl.tensor(yn))
    np.testing.assert_allclose(xt.grad.numpy(), x, atol=1e-12)
    assert tl.gradcheck(lambda a: rope(a, offset=3), t64(rng.standard_normal((2, 4, 8))))


def test_rope_scores_depend_only_on_relative_position(rng):
    s = relative_scores(rope64(), rng)
    for shift in range(1, 5):  # tables are float32, hence 1e-6
        np.testing.assert_allclose(s[shift:, shift:], s[:-shift, :-shift], atol=1e-6)
    assert not np.allclose(s[0, 0], s[0, 3])  # but it does depend on the distance


def test_rope_offset_continues_positions(rng):
    rope = rope64()
    x = rng.standard_normal((2, 10, 8))
    full = rope(t64(x, False)).numpy()
    np.testing.assert_allclose(rope(t64(x[:, 4:7], False), offset=4).numpy(), full[:, 4:7], atol=1e-14)
    with pytest.raises(ValueError, match="exceed max_seq_len 32"):
        rope(t64(x, False), offset=30)
    with pytest.raises(ValueError, match="expected head_dim 8"):
        rope(t64(np.zeros((2, 6)), False))
    with pytest.raises(ValueError, match="positive even"):
        nn.RotaryEmbedding(7, 8)


def test_rope_positions_compose():
    # R(theta) R(theta) = R(2 theta): rotating a position-1 vector again lands on position 2
    rope = rope64()
    x = t64(np.random.default_rng(2).standard_normal((1, 8)), False)
    twice = rope(rope(x, offset=1), offset=1).numpy()
    np.testing.assert_allclose(twice, rope(x, offset=2).numpy(), atol=1e-6)


# ---- attention ------------------------------------------------------------------------------------
def test_fused_attention_matches_the_reference_and_its_weights_are_captured(rng):
    from tensorlite.debug import Capture
    from tensorlite.nn.attention import merge_heads, split_heads

    tl.manual_seed(0)
    attn = nn.MultiHeadAttention(16, 4, max_seq_len=8, rope=True)
    x = tl.tensor(rng.standard_normal((2, 8, 16)).astype(np.float32))
    with Capture(attn) as cap:
        fused = attn(x).numpy()
    q, k, v = split_heads(attn.qkv(x), 4)
    out, weights = F.attention_reference(attn.rope(q), attn.rope(k), v, is_causal=True, scale=attn.scale)
    np.testing.assert_allclose(fused, attn.proj(merge_heads(out)).numpy(), atol=1e-5)
    w = np.asarray(cap.attention[0].weights)
    assert w.shape == (2, 4, 8, 8) and np.abs(np.triu(w, 1)).max() == 0.0  # causal
    np.testing.assert_allclose(w, weights.numpy(), atol=1e-5)


def test_attention_heads_are_split_without_loops_and_match_torch(rng):
    tl.manual_seed(0)
    attn = nn.MultiHeadAttention(12, 3).double()
    x = rng.standard_normal((2, 5, 12))
    xo = t64(x)
    out = attn(xo)
    out.sum().backward()
    qkv = {k: torch64(v.numpy()) for k, v in attn.state_dict().items()}
    xt = torch64(x)
    h = TF.linear(xt, qkv["qkv.weight"], qkv["qkv.bias"])
    q, k, v = (z.view(2, 5, 3, 4).transpose(1, 2) for z in h.split(12, -1))
    y = TF.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(2, 5, 12)
    ref = TF.linear(y, qkv["proj.weight"], qkv["proj.bias"])
    ref.sum().backward()
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(attn.qkv.weight.grad.numpy(), qkv["qkv.weight"].grad.numpy(), atol=1e-12)


# ---- BitLinear -------------------------------------------------------------------------------------
def test_bitlinear_weights_are_ternary_with_absmean_scale(rng):
    w = rng.standard_normal((16, 32)).astype(np.float32) * 0.02
    w_t, beta = ternarize(w)
    assert set(np.unique(w_t).tolist()) <= {-1.0, 0.0, 1.0}
    assert abs(beta - np.abs(w).mean()) < 1e-6
    np.testing.assert_array_equal(w_t, np.round(np.clip(w / beta, -1, 1)))
    layer = nn.BitLinear(32, 16)
    layer.weight.data[...] = w
    eff = layer.effective_weight()
    gamma = 1.0 / math.sqrt(32 * (w_t**2).mean())  # from the ternary weights
    np.testing.assert_allclose(np.unique(np.abs(eff)), [0.0, gamma], rtol=1e-5)


def test_bitlinear_output_scale_comes_from_ternary_weights(rng):
    layer = nn.BitLinear(256, 128, bias=False)
    tl.nn.init.normal_(layer.weight, 0.0, 0.02)
    x = tl.tensor(rng.standard_normal((512, 256)).astype(np.float32))
    y = layer(x).numpy()
    assert 0.85 < y.var() < 1.15  # variance preserving: unit variance in, unit variance out
    layer.weight.data *= 10.0  # ternary weights, hence the output, ignore the latent magnitude
    np.testing.assert_allclose(layer(x).numpy(), y, rtol=1e-5, atol=1e-5)


def test_bitlinear_straight_through_gradient_matches_torch(rng):
    layer = nn.BitLinear(8, 5)
    x = rng.standard_normal((3, 4, 8)).astype(np.float32)
    xo = tl.tensor(x, requires_grad=True)
    out = layer(xo)
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(tl.tensor(g))
    # STE: d loss / d W is what a dense layer with the effective weight would give it
    g2, x2 = g.reshape(-1, 5), x.reshape(-1, 8)
    np.testing.assert_allclose(layer.weight.grad.numpy(), g2.T @ x2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(xo.grad.numpy(), g @ layer.effective_weight(), rtol=1e-5, atol=1e-6)
    wt = torch.tensor(layer.weight.numpy(), requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    ref = TF.linear(xt, ternary_weight(wt), torch.tensor(layer.bias.numpy()))
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(layer.weight.grad.numpy(), wt.grad.numpy(), atol=1e-5)


# ---- GPT config and init ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(n_heads=3, d_model=64), r"n_heads \(3\) must divide d_model \(64\)"),
        (dict(vocab_size=0), "vocab_size must be a positive integer, got 0"),
        (dict(seq_len=8.0), "seq_len must be a positive integer"),
        (dict(norm="batchnorm"), "norm must be one of 'layernorm', 'rmsnorm', got 'batchnorm'"),
        (dict(ffn="relu"), "ffn must be one of"),
        (dict(pos="alibi"), "pos must be one of"),
        (dict(linear="int8"), "linear must be one of"),
        (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
        (dict(d_ff=0), "d_ff must be a positive integer or None"),
        (dict(bias="yes"), "bias must be True or False"),
        (dict(norm_eps=-1.0), "norm_eps must be a number >= 0"),
        (dict(pos="rope", d_model=18, n_heads=6), "pos='rope' needs an even head dimension"),
    ],
)
def test_config_validation_names_the_field(kw, message):
    base = dict(vocab_size=50, seq_len=16, d_model=32, n_layers=2, n_heads=2)
    base.update(kw)
    with pytest.raises(ValueError, match=message):
        nn.GPTConfig(**base)


def test_config_dict_round_trip_and_defaults():
    cfg = tiny_config(pos="rope", norm="rmsnorm")
    d = cfg.to_dict()
    again = nn.GPTConfig.from_dict(json.loads(json.dumps(d)))
    assert again == cfg
    with pytest.raises(ValueError, match="unknown field.*colour"):
        nn.GPTConfig.from_dict({**d, "colour": 1})
    assert tiny_config(d_model=64).ffn_dim == 256
    assert tiny_config(d_model=64, ffn="swiglu").ffn_dim == swiglu_hidden(64) == 176
    assert tiny_config(d_ff=40).ffn_dim == 40
    assert tiny_config().eps == 1e-5 and tiny_config(norm="rmsnorm").eps == 1e-6


def test_gpt_submodule_names_and_tied_weights():
    model = nn.GPT(tiny_config(tie_weights=True, ffn="swiglu"))
    assert isinstance(model.blocks[1].attn.qkv, nn.Linear) and model.blocks[1].attn.qkv.weight.shape == (48, 16)
    assert {"w_gate", "w_up", "proj"} <= set(dict(model.blocks[0].ffn.named_children()))
    assert model.lm_head.weight is model.tok_emb.weight
    names = [n for n, _ in model.named_parameters()]
    assert "lm_head.weight" not in names and "tok_emb.weight" in names
    assert "lm_head.weight" in model.state_dict()
    untied = nn.GPT(tiny_config(ffn="swiglu"))
    assert model.num_parameters() == untied.num_parameters() - 23 * 16


def test_parameter_count_formula():
    cfg = nn.GPTConfig(vocab_size=100, seq_len=64, d_model=64, n_layers=2, n_heads=2)
    d, f, v, t = 64, 256, 100, 64
    per_block = 2 * (2 * d) + (3 * d * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d)
    assert nn.GPT(cfg).num_parameters() == v * d + t * d + 2 * per_block + 2 * d + v * d


@pytest.mark.parametrize(
    "kw", [dict(), dict(pos="rope", norm="rmsnorm", ffn="swiglu", tie_weights=True, bias=False), dict(linear="bitlinear")]
)
def test_loss_at_init_is_close_to_ln_vocab(kw):
    tl.manual_seed(0)
    cfg = nn.GPTConfig(vocab_size=100, seq_len=64, d_model=64, n_layers=2, n_heads=2, **kw)
    model = nn.GPT(cfg)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 100, (8, 64)), rng.integers(0, 100, (8, 64))
    with tl.no_grad():
        loss = model.loss(x, y).item()
    assert abs(loss - math.log(100)) < 0.1


def test_gpt2_initialisation_statistics():
    tl.manual_seed(0)
    model = nn.GPT(nn.GPTConfig(vocab_size=500, seq_len=64, d_model=128, n_layers=4, n_heads=4))
    std = lambda p: float(p.numpy().std())
    assert abs(std(model.blocks[0].attn.qkv.weight) - 0.02) < 0.001
    assert abs(std(model.tok_emb.weight) - 0.02) < 0.001
    assert abs(std(model.blocks[2].ffn.proj.weight) - 0.02 / math.sqrt(8)) < 0.0005
    assert abs(std(model.blocks[3].attn.proj.weight) - 0.02 / math.sqrt(8)) < 0.0005
    assert float(np.abs(model.blocks[0].attn.qkv.bias.numpy()).max()) == 0.0
    assert (model.norm_f.weight.numpy() == 1).all()


def test_gpt_input_errors():
    model = nn.GPT(tiny_config())
    with pytest.raises(ValueError, match=r"shape \(batch, time\)"):
        model(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="11 positions exceed seq_len 10"):
        model(np.zeros((1, 11), dtype=np.int64))
    with pytest.raises(TypeError, match="token ids must be integers"):
        model(np.zeros((1, 3)))
    with pytest.raises(IndexError, match="out of range"):
        model(np.array([[1, 23]]))


def test_dropout_only_in_training():
    tl.manual_seed(0)
    model = nn.GPT(tiny_config(dropout=0.5))
    x = np.random.default_rng(0).integers(0, 23, (2, 10))
    model.eval()
    np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())
    model.train()
    assert not np.allclose(model(x).numpy(), model(x).numpy())


X = np.random.default_rng(0).integers(0, 23, (2, 10))


@pytest.mark.gpu
@pytest.mark.parametrize("kw", [dict(), dict(pos="rope", norm="rmsnorm", ffn="swiglu", linear="bitlinear")])
def test_gpt_on_the_gpu_matches_the_cpu(kw):
    from tensorlite.generate import generate

    tl.manual_seed(0)
    cpu = nn.GPT(tiny_config(**kw))
    tl.manual_seed(0)
    gpu = nn.GPT(tiny_config(**kw)).to("cuda")
    assert all(p.device == "cuda" for p in gpu.parameters())
    assert all(b.device == "cuda" for b in gpu.buffers())
    loss_c, loss_g = cpu.loss(X, X), gpu.loss(X, X)
    loss_c.backward()
    loss_g.backward()
    assert abs(loss_c.item() - loss_g.item()) < 1e-4
    for (name, pc), pg in zip(cpu.named_parameters(), gpu.parameters()):
        assert pg.grad.device == "cuda"
        np.testing.assert_allclose(pg.grad.numpy(), pc.grad.numpy(), atol=1e-4, err_msg=name)
    assert generate(gpu, [1, 2, 3], 12, temperature=0) == generate(cpu, [1, 2, 3], 12, temperature=0)
    assert generate(gpu, [1, 2, 3], 12, temperature=0, use_cache=False) == generate(gpu, [1, 2, 3], 12, temperature=0)
    back = gpu.to("cpu")
    assert back.tok_emb.weight.device == "cpu"


def test_eval_mode_restores_the_mode_even_after_an_error():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    with nn.utils.eval_mode(model) as m:
        assert m is model and not model.training and not model[1].training
    assert model.training and model[1].training
    model.eval()
    with pytest.raises(RuntimeError), nn.utils.eval_mode(model):
        model.train()
        raise RuntimeError
    assert not model.training  # back to what it was when the block began
    tmod = torch.nn.Dropout(0.5)
    with nn.utils.eval_mode(tmod):
        assert not tmod.training
    assert tmod.training
