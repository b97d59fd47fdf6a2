"""float16 through the ops a GPT uses: each keeps the dtype, forward and backward, and agrees with
the float32 computation on the same (float16-representable) inputs to float16 precision."""

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.nn.functional as F
from tensorlite import kernels, nn

RNG = np.random.default_rng(0)


def _inputs(*shapes):
    """Arrays whose values float16 holds exactly, so both dtypes start from the same numbers."""
    return [RNG.standard_normal(s).astype(np.float16).astype(np.float32) for s in shapes]


def _run(fn, arrays, dtype):
    ts = [tl.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    out = fn(*ts)
    weights = tl.tensor(np.linspace(-1, 1, out.numel()).reshape(out.shape), dtype=dtype)
    (out * weights).sum().backward()
    return out, [t.grad for t in ts]


OPS = {
    "add": (lambda a, b: a + b, [(4, 6), (6,)]),
    "mul": (lambda a, b: a * b, [(4, 6), (4, 6)]),
    "div": (lambda a, b: a / (b * b + 1), [(4, 6), (4, 6)]),
    "scalar ops": (lambda a: (2.0 - a) * np.float64(0.5) + np.float32(1) / (a * a + 1), [(4, 6)]),
    "exp/log": (lambda a: (a.exp() + 1).log(), [(4, 6)]),
    "tanh/sigmoid": (lambda a: a.tanh() * F.sigmoid(a), [(4, 6)]),
    "gelu": (lambda a: F.gelu(a), [(4, 6)]),
    "gelu tanh": (lambda a: F.gelu(a, approximate="tanh"), [(4, 6)]),
    "silu": (lambda a: F.silu(a), [(4, 6)]),
    "mean/var": (lambda a: a.mean(-1) + a.var(-1), [(4, 6)]),
    "matmul": (lambda a, b: a @ b, [(2, 4, 6), (6, 5)]),
    "linear": (lambda x, w, b: F.linear(x, w, b), [(3, 4, 6), (5, 6), (5,)]),
    "softmax": (lambda a: F.softmax(a, -1), [(4, 6)]),
    "log_softmax": (lambda a: F.log_softmax(a, -1), [(4, 6)]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (6,), w, b), [(4, 6), (6,), (6,)]),
    "rms_norm": (lambda x, w: F.rms_norm(x, (6,), w), [(4, 6), (6,)]),
    "cross_entropy": (lambda a: F.cross_entropy(a, tl.tensor([0, 3, 5, 1])), [(4, 6)]),
    "sdpa causal": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                    [(1, 2, 5, 4), (1, 2, 5, 4), (1, 2, 5, 4)]),
    "reference attention": (lambda q, k, v: F.attention_reference(q, k, v, is_causal=True)[0],
                            [(1, 2, 5, 4), (1, 2, 5, 4), (1, 2, 5, 4)]),
    "reshape/transpose/cat": (lambda a, b: tl.cat([a.transpose(0, 1), b.reshape(6, 4)], dim=1),
                              [(4, 6), (4, 6)]),
}


@pytest.mark.parametrize("name", list(OPS))
def test_float16_op_matches_float32(name):
    fn, shapes = OPS[name]
    arrays = _inputs(*shapes)
    out16, grads16 = _run(fn, arrays, tl.float16)
    out32, grads32 = _run(fn, arrays, tl.float32)
    assert out16.dtype == np.float16
    np.testing.assert_allclose(out16.numpy().astype(np.float32), out32.numpy(), rtol=1e-2, atol=1e-2)
    for g16, g32 in zip(grads16, grads32):
        assert g16.dtype == np.float16
        np.testing.assert_allclose(g16.numpy().astype(np.float32), g32.numpy(), rtol=2e-2, atol=2e-2)


def test_numpy_scalars_keep_the_tensor_dtype_as_in_torch():
    x = tl.ones(3, dtype=tl.float16)
    for s in (np.float64(2), np.float32(2), np.int64(2), 2.0):
        results = [x * s, x + s, x - s, x / s, s - x, s / x, x**s, s**x]
        assert {str(r.dtype) for r in results} == {"float16"}, type(s)
    assert (tl.ones(2) * np.float64(3)).dtype == np.float32


def test_float16_matmul_rounds_a_float32_product():
    a, b = (RNG.standard_normal(s).astype(np.float16) for s in ((3, 40, 70), (70, 20)))
    got = kernels.matmul(a, b)
    assert got.dtype == np.float16
    # NumPy's own float16 loop (float32 accumulation) gives the same numbers up to summation order
    np.testing.assert_allclose(got.astype(np.float32), (a @ b).astype(np.float32), rtol=2e-3, atol=2e-3)


def test_float16_overflow_and_underflow_limits():
    big = tl.tensor([60000.0], dtype=tl.float16)
    with np.errstate(over="ignore"):
        assert np.isinf((big * 2).numpy()).all()
    tiny = tl.tensor([1e-4], dtype=tl.float16)
    assert (tiny * tiny).item() == 0.0                       # 1e-8 is below the smallest subnormal
    assert 0 < (tiny * 1e-3).item() < np.finfo(np.float16).tiny  # 1e-7: a subnormal


def test_half_gpt_trains_in_float16():
    tl.manual_seed(0)
    for pos, norm in (("learned", "layernorm"), ("rope", "rmsnorm")):
        cfg = nn.GPTConfig(vocab_size=32, seq_len=8, d_model=16, n_layers=1, n_heads=2, pos=pos, norm=norm,
                           dropout=0.1)
        model = nn.GPT(cfg)
        x = tl.randint(0, 32, (2, 8))
        ref = model.loss(x, x).item()
        model.half()
        assert {p.dtype for p in model.parameters()} == {np.dtype(np.float16)}
        loss = model.loss(x, x)
        loss.backward()
        assert loss.dtype == np.float16 and abs(loss.item() - ref) < 0.05
        assert all(p.grad.dtype == np.float16 and np.isfinite(p.grad.numpy()).all() for p in model.parameters())


def test_tensor_half():
    t = tl.ones(2, requires_grad=True)
    h = t.half()
    assert h.dtype == np.float16
    h.sum().backward()
    assert t.grad.dtype == np.float32


def test_float16_attention_scales_before_the_product():
    # |q|^2 = 64 * 40^2 overflows float16; the scaled scores (|q|^2 / 8) do not
    tl.manual_seed(0)
    q = tl.randn(1, 1, 6, 64) * 40
    out16 = F.scaled_dot_product_attention(q.half(), q.half(), q.half(), is_causal=True)
    out32 = F.scaled_dot_product_attention(q, q, q, is_causal=True)
    assert np.isfinite(out16.numpy()).all()
    np.testing.assert_allclose(out16.numpy().astype(np.float32), out32.numpy(), rtol=1e-2, atol=0.5)
