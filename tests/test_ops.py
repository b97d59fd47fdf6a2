"""Every op against PyTorch: forward values and gradients on the same float64 inputs, over random
shapes with broadcasting (hypothesis), plus ``tl.gradcheck`` against finite differences.

Tolerances: float64 forward and backward agree with torch to ``rtol=1e-7, atol=1e-9`` (the two
libraries order their sums differently; the exact GELU goes through our own erf, good to 1e-13).
gradcheck uses its defaults (central differences with eps=1e-6, atol=1e-5, rtol=1e-3).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import tensorlite as tl
import tensorlite.nn.functional as F

RTOL, ATOL = 1e-7, 1e-9
# derandomize: the same examples on every run, so CI cannot fail on a draw nobody saw locally
HYP = settings(max_examples=20, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def _arr(seed, shape, domain="any"):
    """float64 test data; the domains keep inputs away from kinks and outside the op's domain."""
    r = np.random.default_rng(seed)
    x = r.standard_normal(shape)
    if domain == "pos":
        x = r.uniform(0.5, 2.0, shape)
    elif domain == "nonzero":  # away from 0, where abs / relu / 1/x have their kinks and poles
        x = np.where(x >= 0, 1, -1) * r.uniform(0.2, 2.0, shape)
    elif domain == "clamp":  # away from the clamp bounds +-0.5
        x = np.where(np.abs(np.abs(x) - 0.5) < 0.05, x + 0.2, x)
    return x


def check(tl_fn, torch_fn, arrays, device="cpu", rtol=RTOL, atol=ATOL, seed=1, grads=True):
    """Forward and gradients of ``tl_fn`` and ``torch_fn`` on the same float64 ``arrays``.

    The backward pass starts from the same random upstream gradient in both libraries, so every
    output element's gradient path is exercised (not only those of a sum).
    """
    ours = [tl.tensor(a, requires_grad=grads, device=device) for a in arrays]
    ref = [torch.tensor(a, requires_grad=grads) for a in arrays]
    out, expect = tl_fn(*ours), torch_fn(*ref)
    assert tuple(out.shape) == tuple(expect.shape), (out.shape, expect.shape)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), expect.detach().numpy(), rtol=rtol, atol=atol)
    if not grads:
        return out
    g = np.random.default_rng(seed).standard_normal(tuple(expect.shape))
    out.backward(tl.tensor(g, device=device))
    expect.backward(torch.tensor(g))
    for i, (a, b) in enumerate(zip(ours, ref)):
        ga = a.grad.numpy() if a.grad is not None else np.zeros(a.shape)
        gb = b.grad.numpy() if b.grad is not None else np.zeros(tuple(b.shape))
        assert ga.shape == tuple(a.shape), f"input {i}: gradient shape {ga.shape} != {a.shape}"
        np.testing.assert_allclose(ga, gb, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}")
    return out


def gradcheck_small(fn, *shapes_domains):
    inputs = [tl.tensor(_arr(10 + i, s, d), requires_grad=True) for i, (s, d) in enumerate(shapes_domains)]
    assert tl.gradcheck(fn, *inputs)


two_shapes = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=4)
seeds = st.integers(0, 2**16)


# ------------------------------------------------------------------------------------------------
# binary arithmetic with broadcasting
# ------------------------------------------------------------------------------------------------
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, "any", "any"),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, "any", "any"),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, "any", "any"),
    "div": (lambda a, b: a / b, lambda a, b: a / b, "any", "nonzero"),
    "pow": (lambda a, b: a**b, lambda a, b: a**b, "pos", "any"),
    "maximum": (tl.maximum, torch.maximum, "any", "any"),
    "minimum": (tl.minimum, torch.minimum, "any", "any"),
}


@pytest.mark.parametrize("name", list(BINARY))
@HYP
@given(shapes=two_shapes, seed=seeds)
def test_binary_broadcasting(name, shapes, seed, device):
    ours, theirs, da, db = BINARY[name]
    sa, sb = shapes.input_shapes
    check(ours, theirs, [_arr(seed, sa, da), _arr(seed + 1, sb, db)], device)


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_gradcheck(name):
    ours, _, da, db = BINARY[name]
    gradcheck_small(ours, ((2, 3), da), ((3,), db))


@pytest.mark.parametrize(
    "op",
    [
        lambda x: x + 2.5, lambda x: 2.5 + x, lambda x: x - 1.5, lambda x: 1.5 - x,
        lambda x: x * 3.0, lambda x: 3.0 * x, lambda x: x / 4.0, lambda x: 2.0 / x,
        lambda x: x**2, lambda x: x**3, lambda x: 2.0**x, lambda x: x * np.float64(0.5),
    ],
)
def test_scalar_operands(op, device):
    check(op, op, [_arr(3, (3, 4), "nonzero")], device)


def test_array_operand_on_either_side():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0], dtype=np.float32) * x  # ndarray * Tensor defers to Tensor
    assert isinstance(y, tl.Tensor) and y.tolist() == [3.0, 8.0]
    y.sum().backward()
    assert x.grad.tolist() == [3.0, 4.0]


@pytest.mark.parametrize(
    "sa,sb",
    [((3, 4), (4, 5)), ((1, 7), (7, 1)), ((5, 1), (1, 6)), ((2, 3, 4), (4, 2)), ((4,), (4, 3)),
     ((3, 4), (4,)), ((4,), (4,)), ((2, 1, 3, 4), (5, 4, 2)), ((1, 3, 4), (2, 4, 5))],
)
def test_matmul(sa, sb, device):
    check(lambda a, b: a @ b, lambda a, b: a @ b, [_arr(0, sa), _arr(1, sb)], device)


@HYP
@given(batch=mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3),
       mkn=st.tuples(*[st.integers(1, 5)] * 3), seed=seeds)
def test_matmul_batched_broadcast(batch, mkn, seed, device):
    (ba, bb), (m, k, n) = batch.input_shapes, mkn
    check(lambda a, b: a @ b, torch.matmul, [_arr(seed, ba + (m, k)), _arr(seed + 1, bb + (k, n))], device)


def test_matmul_gradcheck():
    gradcheck_small(lambda a, b: a @ b, ((2, 3, 4), "any"), ((4, 2), "any"))


def test_rmatmul_with_array():
    w = tl.tensor(_arr(0, (3, 2)), requires_grad=True)
    a = _arr(1, (4, 3))
    out = a @ w
    assert isinstance(out, tl.Tensor)
    np.testing.assert_allclose(out.numpy(), a @ w.numpy())


# ------------------------------------------------------------------------------------------------
# unary ops
# ------------------------------------------------------------------------------------------------
UNARY = {
    "neg": (lambda x: -x, lambda x: -x, "any"),
    "exp": (tl.exp, torch.exp, "any"),
    "log": (tl.log, torch.log, "pos"),
    "sqrt": (tl.sqrt, torch.sqrt, "pos"),
    "rsqrt": (tl.rsqrt, torch.rsqrt, "pos"),
    "abs": (tl.abs, torch.abs, "nonzero"),
    "tanh": (tl.tanh, torch.tanh, "any"),
    "sigmoid": (tl.sigmoid, torch.sigmoid, "any"),
    "relu": (tl.relu, torch.relu, "nonzero"),
    "gelu": (lambda x: F.gelu(x), lambda x: TF.gelu(x), "any"),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh"), "any"),
    "silu": (F.silu, TF.silu, "any"),
    "pow_scalar": (lambda x: tl.pow(x, 3), lambda x: torch.pow(x, 3), "any"),
    "pow_frac": (lambda x: x.pow(1.5), lambda x: x.pow(1.5), "pos"),
    "clamp": (lambda x: x.clamp(-0.5, 0.5), lambda x: x.clamp(-0.5, 0.5), "clamp"),
    "clamp_min": (lambda x: tl.clamp(x, min=0.5), lambda x: torch.clamp(x, min=0.5), "clamp"),
    "clamp_max": (lambda x: tl.clamp(x, max=-0.5), lambda x: torch.clamp(x, max=-0.5), "clamp"),
}


@pytest.mark.parametrize("name", list(UNARY))
@HYP
@given(shape=array_shapes(min_dims=0, max_dims=3, max_side=5), seed=seeds)
def test_unary(name, shape, seed, device):
    ours, theirs, dom = UNARY[name]
    check(ours, theirs, [_arr(seed, shape, dom)], device)


@pytest.mark.parametrize("name", list(UNARY))
def test_unary_gradcheck(name):
    ours, _, dom = UNARY[name]
    gradcheck_small(ours, ((2, 3), dom))


def test_sigmoid_silu_gelu_extremes():
    x = tl.tensor([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=tl.float64)
    t = torch.tensor(x.numpy())
    np.testing.assert_allclose(tl.sigmoid(x).numpy(), torch.sigmoid(t).numpy(), atol=1e-300)
    np.testing.assert_allclose(F.silu(x).numpy(), TF.silu(t).numpy(), atol=1e-300)
    np.testing.assert_allclose(F.gelu(x).numpy(), TF.gelu(t).numpy(), atol=1e-12)
    assert np.isfinite(tl.sigmoid(x).numpy()).all()


def test_unary_keeps_float32():
    x = tl.randn(3, 4)
    for fn in (tl.exp, tl.tanh, tl.sigmoid, F.gelu, F.silu, lambda t: t.clamp(0, 1), lambda t: t * 2.0):
        assert fn(x).dtype == np.float32


# ------------------------------------------------------------------------------------------------
# comparisons: no gradient, boolean result
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"])
@HYP
@given(shapes=two_shapes, seed=seeds)
def test_comparisons(op, shapes, seed, device):
    sa, sb = shapes.input_shapes
    a = np.round(_arr(seed, sa))  # rounded, so that some elements are equal
    b = np.round(_arr(seed + 1, sb))
    x = tl.tensor(a, requires_grad=True, device=device)
    out = getattr(x, op)(tl.tensor(b, device=device))
    expect = getattr(torch.tensor(a), op)(torch.tensor(b))
    assert out.dtype == np.bool_ and not out.requires_grad and out.grad_fn is None
    np.testing.assert_array_equal(out.numpy(), expect.numpy())
    scalar = getattr(x, op)(0.0)
    np.testing.assert_array_equal(scalar.numpy(), getattr(torch.tensor(a), op)(0.0).numpy())


def test_logical_ops():
    a = tl.tensor([1.0, -1.0, 2.0])
    m = (a > 0) & (a < 1.5)
    assert m.tolist() == [True, False, False]
    assert ((a > 0) | (a < 0)).tolist() == [True, True, True]
    assert (~(a > 0)).tolist() == [False, True, False]


# ------------------------------------------------------------------------------------------------
# reductions over dim (int or tuple), keepdim
# ------------------------------------------------------------------------------------------------
@st.composite
def shape_and_dim(draw, min_dims=1):
    shape = draw(array_shapes(min_dims=min_dims, max_dims=4, min_side=1, max_side=4))
    kind = draw(st.sampled_from(["none", "int", "neg", "tuple"]))
    if kind == "none":
        dim = None
    elif kind == "int":
        dim = draw(st.integers(0, len(shape) - 1))
    elif kind == "neg":
        dim = draw(st.integers(-len(shape), -1))
    else:
        dim = tuple(draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True)))
    return shape, dim, draw(st.booleans())


def _torch_dim(dim, ndim):
    return tuple(range(ndim)) if dim is None else dim


REDUCTIONS = {
    "sum": (tl.sum, torch.sum),
    "mean": (tl.mean, torch.mean),
    "amax": (tl.amax, torch.amax),
    "amin": (tl.amin, torch.amin),
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
@HYP
@given(sdk=shape_and_dim(), seed=seeds)
def test_reductions(name, sdk, seed, device):
    (shape, dim, keepdim), (ours, theirs) = sdk, REDUCTIONS[name]
    check(lambda x: ours(x, dim, keepdim), lambda x: theirs(x, _torch_dim(dim, len(shape)), keepdim),
          [_arr(seed, shape)], device)


@HYP
@given(sdk=shape_and_dim(), seed=seeds, correction=st.sampled_from([0, 1]))
def test_var_std(sdk, seed, correction, device):
    shape, dim, keepdim = sdk
    td = _torch_dim(dim, len(shape))
    count = int(np.prod([shape[d] for d in (td if isinstance(td, tuple) else (td,))]))
    if count - correction <= 0:
        correction = 0  # a single element with Bessel's correction divides by zero in both
    check(lambda x: x.var(dim, keepdim, correction), lambda x: x.var(td, correction=correction, keepdim=keepdim),
          [_arr(seed, shape)], device)
    check(lambda x: x.std(dim, keepdim, correction), lambda x: x.std(td, correction=correction, keepdim=keepdim),
          [_arr(seed, shape, "pos") + np.arange(int(np.prod(shape))).reshape(shape)], device)


@pytest.mark.parametrize("use_min", [False, True])
@HYP
@given(sdk=shape_and_dim(), seed=seeds)
def test_max_min_with_dim(use_min, sdk, seed, device):
    shape, _, keepdim = sdk
    dim = seed % len(shape) - len(shape) * (seed % 2)  # positive or negative
    x = _arr(seed, shape)
    ours = (lambda t: t.min(dim, keepdim).values) if use_min else (lambda t: t.max(dim, keepdim).values)
    theirs = (lambda t: t.min(dim, keepdim).values) if use_min else (lambda t: t.max(dim, keepdim).values)
    check(ours, theirs, [x], device)
    res = tl.tensor(x, device=device).min(dim, keepdim) if use_min else tl.tensor(x, device=device).max(dim, keepdim)
    tres = torch.tensor(x).min(dim, keepdim) if use_min else torch.tensor(x).max(dim, keepdim)
    np.testing.assert_array_equal(res.indices.numpy(), tres.indices.numpy())
    assert res.indices.dtype == np.int64


@HYP
@given(sdk=shape_and_dim(), seed=seeds)
def test_argmax_argmin(sdk, seed, device):
    shape, _, keepdim = sdk
    x = _arr(seed, shape)
    dim = seed % len(shape)
    t, tt = tl.tensor(x, device=device), torch.tensor(x)
    np.testing.assert_array_equal(t.argmax(dim, keepdim).numpy(), tt.argmax(dim, keepdim).numpy())
    np.testing.assert_array_equal(t.argmin(dim, keepdim).numpy(), tt.argmin(dim, keepdim).numpy())
    assert t.argmax().item() == tt.argmax().item()
    assert not t.argmax(dim).requires_grad


def test_max_without_dim_and_ties():
    # ties share the gradient equally in amax (as torch.amax); max(dim) sends it to the index
    x = tl.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]], dtype=tl.float64, requires_grad=True)
    tx = torch.tensor(x.numpy(), requires_grad=True)
    tl.amax(x, 1).sum().backward()
    torch.amax(tx, 1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
    assert x.max().item() == 3.0 and x.min().item() == 0.0


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "var", "max_dim"])
def test_reduction_gradcheck(name):
    fns = {
        "sum": lambda x: x.sum((0, 2), keepdim=True),
        "mean": lambda x: x.mean(-1),
        "amax": lambda x: tl.amax(x, (1, 2)),
        "var": lambda x: x.var(1),
        "max_dim": lambda x: x.max(1).values,
    }
    gradcheck_small(fns[name], ((2, 3, 2), "any"))


# ------------------------------------------------------------------------------------------------
# shape ops
# ------------------------------------------------------------------------------------------------
SHAPE_OPS = [
    ("reshape", (2, 3, 4), lambda x: x.reshape(4, -1), None),
    ("reshape_tuple", (2, 3, 4), lambda x: x.reshape((6, 4)), None),
    ("view", (2, 3, 4), lambda x: x.view(-1), None),
    ("transpose", (2, 3, 4), lambda x: x.transpose(0, 2), None),
    ("transpose_neg", (2, 3, 4), lambda x: x.transpose(-1, -2), None),
    ("T", (3, 4), lambda x: x.T, lambda x: x.t()),
    ("mT", (2, 3, 4), lambda x: x.mT, None),
    ("permute", (2, 3, 4), lambda x: x.permute(2, 0, 1), None),
    ("permute_tuple", (2, 3, 4), lambda x: x.permute((1, 2, 0)), None),
    ("unsqueeze", (2, 3), lambda x: x.unsqueeze(1), None),
    ("unsqueeze_neg", (2, 3), lambda x: x.unsqueeze(-1), None),
    ("squeeze_all", (1, 3, 1, 2), lambda x: x.squeeze(), None),
    ("squeeze_dim", (1, 3, 1, 2), lambda x: x.squeeze(2), None),
    ("squeeze_noop", (2, 3), lambda x: x.squeeze(0), None),
    ("expand", (3, 1), lambda x: x.expand(2, 3, 4), None),
    ("expand_neg", (1, 4), lambda x: x.expand(3, -1), None),
    ("expand_as", (1, 4), lambda x: x.expand_as(x.expand(3, 4)), None),
    ("flatten", (2, 3, 4), lambda x: x.flatten(), None),
    ("flatten_range", (2, 3, 4, 5), lambda x: x.flatten(1, 2), None),
    ("flatten_neg", (2, 3, 4), lambda x: x.flatten(-2), None),
    ("contiguous_clone", (2, 3), lambda x: x.transpose(0, 1).contiguous().clone(), None),
]


@pytest.mark.parametrize("name,shape,op,top", SHAPE_OPS, ids=[s[0] for s in SHAPE_OPS])
def test_shape_ops(name, shape, op, top, device):
    check(op, top or op, [_arr(0, shape)], device)


@pytest.mark.parametrize("name,shape,op,top", SHAPE_OPS[:12], ids=[s[0] for s in SHAPE_OPS[:12]])
def test_shape_ops_gradcheck(name, shape, op, top):
    gradcheck_small(op, (shape, "any"))


@HYP
@given(shape=array_shapes(min_dims=1, max_dims=4, max_side=4), seed=seeds, data=st.data())
def test_permute_random(shape, seed, data, device):
    perm = data.draw(st.permutations(range(len(shape))))
    check(lambda x: x.permute(*perm), lambda x: x.permute(*perm), [_arr(seed, shape)], device)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat(dim, device):
    shapes = [(2, 3, 4), (2, 3, 4), (2, 3, 4)]
    shapes = [tuple(s if i != dim % 3 else s + k for i, s in enumerate(sh)) for k, sh in enumerate(shapes)]
    arrays = [_arr(k, s) for k, s in enumerate(shapes)]
    check(lambda *xs: tl.cat(xs, dim), lambda *xs: torch.cat(xs, dim), arrays, device)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_stack(dim, device):
    arrays = [_arr(k, (2, 3)) for k in range(3)]
    check(lambda *xs: tl.stack(list(xs), dim), lambda *xs: torch.stack(xs, dim), arrays, device)


@pytest.mark.parametrize("how", [2, [1, 3, 1], 5])
@pytest.mark.parametrize("dim", [0, -1])
def test_split(how, dim, device):
    # a weighted sum of the pieces, so every piece's gradient matters
    def ours(x):
        return tl.cat([p * (i + 1) for i, p in enumerate(x.split(how, dim))], dim)

    def theirs(x):
        return torch.cat([p * (i + 1) for i, p in enumerate(x.split(how, dim))], dim)

    check(ours, theirs, [_arr(0, (5, 5))], device)
    assert [tuple(p.shape) for p in tl.randn(5, 5).split(how, dim)] == \
        [tuple(p.shape) for p in torch.randn(5, 5).split(how, dim)]


@pytest.mark.parametrize("chunks", [1, 2, 3, 4])
def test_chunk(chunks, device):
    def ours(x):
        return tl.cat([p * (i + 1) for i, p in enumerate(x.chunk(chunks, 1))], 1)

    def theirs(x):
        return torch.cat([p * (i + 1) for i, p in enumerate(x.chunk(chunks, 1))], 1)

    check(ours, theirs, [_arr(0, (2, 7))], device)


def test_cat_stack_split_gradcheck():
    gradcheck_small(lambda a, b: tl.cat([a, b * 2], 1), ((2, 2), "any"), ((2, 3), "any"))
    gradcheck_small(lambda a, b: tl.stack([a, b * 2], 1), ((2, 3), "any"), ((2, 3), "any"))
    gradcheck_small(lambda a: a.split([1, 2], 1)[1] * 3, ((2, 3), "any"))


# ------------------------------------------------------------------------------------------------
# indexing
# ------------------------------------------------------------------------------------------------
IDX = np.array([0, 2, 2, 1, 2])  # repeated indices: their gradients must add up
ROWS, COLS = np.array([0, 1, 1, 2, 0]), np.array([3, 0, 0, 2, 3])
INDEXING = {
    "last_column": lambda x: x[:, -1],
    "row": lambda x: x[1],
    "slice_step": lambda x: x[::2, 1:3],
    "negative_slice": lambda x: x[-2:, :-1],
    "ellipsis_none": lambda x: x[None, ..., 0],
    "int_array": lambda x: x[IDX],
    "int_array_col": lambda x: x[:, IDX[:3]],
    "gather_style": lambda x: x[ROWS, COLS],
    "negative_int_array": lambda x: x[np.array([-1, -1, 0])],
    "list_index": lambda x: x[[0, 0, 2]],
}


@pytest.mark.parametrize("name", list(INDEXING))
def test_indexing(name, device):
    fn = INDEXING[name]

    def ours(x):
        if name == "int_array":
            return x[tl.tensor(IDX, device=device)]
        if name == "gather_style":
            return x[tl.tensor(ROWS, device=device), tl.tensor(COLS, device=device)]
        return fn(x)

    check(ours, fn, [_arr(0, (3, 4))], device)


def test_indexing_repeated_scatter_add():
    x = tl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[tl.tensor([0, 0, 0, 2])].sum().backward()
    assert x.grad.tolist() == [3.0, 0.0, 1.0]


def test_boolean_mask_indexing(device):
    a = _arr(0, (3, 4))
    check(lambda x: x[x > 0], lambda x: x[x > 0], [a], device)


@pytest.mark.parametrize("name", ["last_column", "int_array", "gather_style", "slice_step"])
def test_indexing_gradcheck(name):
    gradcheck_small(INDEXING[name], ((3, 4), "any"))


def test_gather(device):
    idx = np.array([[0, 0, 2], [1, 3, 3], [2, 2, 2]])
    check(lambda x: x.gather(1, tl.tensor(idx, device=device)), lambda x: x.gather(1, torch.tensor(idx)),
          [_arr(0, (3, 4))], device)


# ------------------------------------------------------------------------------------------------
# where, masked_fill, tril/triu, one_hot, embedding
# ------------------------------------------------------------------------------------------------
@HYP
@given(shapes=mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=4), seed=seeds)
def test_where(shapes, seed, device):
    sc, sa, sb = shapes.input_shapes
    cond = _arr(seed + 2, sc) > 0
    check(lambda a, b: tl.where(tl.tensor(cond, device=device), a, b),
          lambda a, b: torch.where(torch.tensor(cond), a, b), [_arr(seed, sa), _arr(seed + 1, sb)], device)


def test_where_with_scalar():
    x = tl.tensor([-1.0, 2.0], requires_grad=True)
    y = tl.where(x > 0, x, 0.0)
    y.sum().backward()
    assert y.tolist() == [0.0, 2.0] and x.grad.tolist() == [0.0, 1.0]


@HYP
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=4), seed=seeds)
def test_masked_fill(shapes, seed, device):
    sx, sm = shapes.input_shapes
    if np.broadcast_shapes(sx, sm) != tuple(sx):
        sm = sx  # masked_fill keeps the input's shape: the mask broadcasts to it, not beyond
    mask = _arr(seed + 1, sm) > 0
    check(lambda x: x.masked_fill(tl.tensor(mask, device=device), -7.0),
          lambda x: x.masked_fill(torch.tensor(mask), -7.0), [_arr(seed, sx)], device)


@pytest.mark.parametrize("diagonal", [-1, 0, 2])
@pytest.mark.parametrize("upper", [False, True])
def test_tril_triu(diagonal, upper, device):
    name = "triu" if upper else "tril"
    check(lambda x: getattr(x, name)(diagonal), lambda x: getattr(x, name)(diagonal), [_arr(0, (2, 4, 5))], device)
    check(lambda x: getattr(tl, name)(x, diagonal), lambda x: getattr(torch, name)(x, diagonal),
          [_arr(1, (4, 3))], device)


def test_tril_masked_fill_gradcheck():
    gradcheck_small(lambda x: x.tril(), ((3, 3), "any"))
    mask = tl.tensor(np.triu(np.ones((3, 3), bool), 1))
    gradcheck_small(lambda x: x.masked_fill(mask, 0.0), ((2, 3, 3), "any"))
    cond = tl.tensor(np.array([True, False, True]))
    gradcheck_small(lambda a, b: tl.where(cond, a, b), ((2, 3), "any"), ((3,), "any"))


@pytest.mark.parametrize("num_classes", [-1, 6])
def test_one_hot(num_classes, device):
    idx = np.array([[0, 3], [2, 3]])
    out = F.one_hot(tl.tensor(idx, device=device), num_classes)
    expect = TF.one_hot(torch.tensor(idx), num_classes)
    assert out.dtype == np.int64 and not out.requires_grad
    np.testing.assert_array_equal(out.numpy(), expect.numpy())


def test_embedding(device):
    idx = np.array([[0, 2, 2], [4, 0, 2]])  # repeated rows: gradients scatter-add
    check(lambda w: F.embedding(tl.tensor(idx, device=device), w), lambda w: TF.embedding(torch.tensor(idx), w),
          [_arr(0, (5, 3))], device)
    gradcheck_small(lambda w: F.embedding(tl.tensor(idx), w), ((5, 3), "any"))


# ------------------------------------------------------------------------------------------------
# nn.functional
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_family(dim, fn, device):
    x = _arr(0, (3, 4, 5)) * 3
    check(lambda t: getattr(F, fn)(t, dim), lambda t: getattr(TF, fn)(t, dim), [x], device)
    check(lambda t: getattr(t, fn)(dim), lambda t: getattr(t, fn)(dim), [x], device)


def test_softmax_is_stable_for_large_logits():
    x = tl.tensor([[1000.0, 0.0, -1000.0]])
    assert np.isfinite(F.softmax(x, -1).numpy()).all()
    assert np.isfinite(F.log_softmax(x, -1).numpy()).all()


def test_softmax_gradcheck():
    gradcheck_small(lambda x: F.softmax(x, 1), ((2, 4), "any"))
    gradcheck_small(lambda x: F.log_softmax(x, 0), ((3, 2), "any"))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ignore", [False, True])
def test_cross_entropy(reduction, ignore, device):
    target = np.array([0, 2, 1, 4, 2, 3])
    if ignore:
        target[[1, 4]] = -100
    check(lambda x: F.cross_entropy(x, tl.tensor(target, device=device), reduction=reduction),
          lambda x: TF.cross_entropy(x, torch.tensor(target), reduction=reduction),
          [_arr(0, (6, 5)) * 2], device)


def test_cross_entropy_custom_ignore_index_and_smoothing():
    target = np.array([0, 2, 1, 1])
    x = _arr(0, (4, 3))
    check(lambda t: F.cross_entropy(t, tl.tensor(target), ignore_index=1),
          lambda t: TF.cross_entropy(t, torch.tensor(target), ignore_index=1), [x])
    check(lambda t: F.cross_entropy(t, tl.tensor(target), label_smoothing=0.1),
          lambda t: TF.cross_entropy(t, torch.tensor(target), label_smoothing=0.1), [x])


def test_cross_entropy_higher_dims():
    target = np.array([[0, 2, 1], [1, 1, 0]])  # (N, d1) targets for (N, C, d1) logits
    check(lambda t: F.cross_entropy(t, tl.tensor(target)), lambda t: TF.cross_entropy(t, torch.tensor(target)),
          [_arr(0, (2, 3, 3))])


def test_cross_entropy_all_ignored_is_finite():
    # torch gives nan (0/0) here; we define the mean over zero targets as 0 so a fully padded
    # batch does not poison training
    x = tl.tensor(_arr(0, (2, 3)), requires_grad=True)
    loss = F.cross_entropy(x, tl.tensor([-100, -100]))
    loss.backward()
    assert loss.item() == 0.0 and np.all(x.grad.numpy() == 0)


def test_cross_entropy_gradcheck():
    t = tl.tensor([0, 2, -100, 1])
    gradcheck_small(lambda x: F.cross_entropy(x, t), ((4, 3), "any"))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction, device):
    check(lambda a, b: F.mse_loss(a, b, reduction=reduction), lambda a, b: TF.mse_loss(a, b, reduction=reduction),
          [_arr(0, (3, 4)), _arr(1, (3, 4))], device)


@pytest.mark.parametrize("affine", ["none", "weight", "both"])
@pytest.mark.parametrize("norm_shape", [(5,), (4, 5)])
def test_layer_norm(affine, norm_shape, device):
    arrays = [_arr(0, (2, 4, 5)) * 3 + 1]
    if affine in ("weight", "both"):
        arrays.append(_arr(1, norm_shape))
    if affine == "both":
        arrays.append(_arr(2, norm_shape))
    check(lambda x, *wb: F.layer_norm(x, norm_shape, *wb), lambda x, *wb: TF.layer_norm(x, norm_shape, *wb),
          arrays, device)


@pytest.mark.parametrize("weight", [False, True])
def test_rms_norm(weight, device):
    arrays = [_arr(0, (2, 3, 6))] + ([_arr(1, (6,))] if weight else [])
    check(lambda x, *w: F.rms_norm(x, (6,), *w, eps=1e-6), lambda x, *w: TF.rms_norm(x, (6,), *w, eps=1e-6),
          arrays, device)


def test_norm_gradcheck():
    gradcheck_small(lambda x, w, b: F.layer_norm(x, (4,), w, b), ((3, 4), "any"), ((4,), "any"), ((4,), "any"))
    gradcheck_small(lambda x, w: F.rms_norm(x, (4,), w), ((3, 4), "any"), ((4,), "any"))


class TestDropout:
    def test_statistics(self):
        x = tl.ones(200, 500)
        y = F.dropout(x, p=0.3)
        kept = y.numpy() != 0
        assert abs(kept.mean() - 0.7) < 0.01  # 100k Bernoulli draws: sd 0.0014
        np.testing.assert_allclose(y.numpy()[kept], 1 / 0.7, rtol=1e-6)
        assert abs(y.numpy().mean() - 1.0) < 0.02  # unbiased in expectation

    def test_mask_consistency(self):
        # the gradient flows exactly where the forward kept the element, scaled the same way
        x = tl.tensor(_arr(0, (50, 40)) + 5.0, requires_grad=True)
        y = F.dropout(x, p=0.5)
        y.backward(tl.ones(50, 40, dtype=tl.float64))
        kept = y.numpy() != 0
        np.testing.assert_array_equal(x.grad.numpy() != 0, kept)
        np.testing.assert_allclose(x.grad.numpy()[kept], 2.0)
        np.testing.assert_allclose(y.numpy()[kept], x.numpy()[kept] * 2.0)

    def test_eval_and_edge_probabilities(self):
        x = tl.randn(4, 4)
        assert F.dropout(x, 0.5, training=False) is x
        assert F.dropout(x, 0.0) is x
        assert np.all(F.dropout(x, 1.0).numpy() == 0)

    def test_seeded(self):
        tl.manual_seed(3)
        a = F.dropout(tl.ones(8, 8), 0.5).numpy()
        tl.manual_seed(3)
        np.testing.assert_array_equal(a, F.dropout(tl.ones(8, 8), 0.5).numpy())


# ------------------------------------------------------------------------------------------------
# attention
# ------------------------------------------------------------------------------------------------
def _qkv(b=2, h=3, tq=5, tk=5, d=4):
    return [_arr(0, (b, h, tq, d)), _arr(1, (b, h, tk, d)), _arr(2, (b, h, tk, d))]


@pytest.mark.parametrize("case", ["plain", "causal", "bool_mask", "float_mask", "scale"])
def test_sdpa_vs_torch(case, device):
    arrays = _qkv()
    bool_mask = _arr(3, (5, 5)) > -0.5
    bool_mask[:, 0] = True  # every query sees at least one key
    float_mask = _arr(4, (1, 3, 5, 5))
    kw_tl, kw_torch = {}, {}
    if case == "causal":
        kw_tl = kw_torch = {"is_causal": True}
    elif case == "bool_mask":
        kw_tl, kw_torch = {"attn_mask": tl.tensor(bool_mask, device=device)}, {"attn_mask": torch.tensor(bool_mask)}
    elif case == "float_mask":
        kw_tl = {"attn_mask": tl.tensor(float_mask, device=device)}
        kw_torch = {"attn_mask": torch.tensor(float_mask)}
    elif case == "scale":
        kw_tl = kw_torch = {"scale": 0.3}
    check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kw_tl),
          lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, **kw_torch), arrays, device)
    # the fused op equals the readable reference built from primitive ops
    ref_out, _ = F.attention_reference(*[tl.tensor(a, device=device) for a in arrays], **kw_tl)
    fused = F.scaled_dot_product_attention(*[tl.tensor(a, device=device) for a in arrays], **kw_tl)
    np.testing.assert_allclose(fused.numpy(), ref_out.numpy(), rtol=RTOL, atol=ATOL)


def test_sdpa_fused_gradients_equal_reference():
    arrays = _qkv(tq=4, tk=6)
    fused = [tl.tensor(a, requires_grad=True) for a in arrays]
    ref = [tl.tensor(a, requires_grad=True) for a in arrays]
    g = tl.tensor(_arr(9, (2, 3, 4, 4)))
    F.scaled_dot_product_attention(*fused, is_causal=True).backward(g)
    F.attention_reference(*ref, is_causal=True)[0].backward(g)
    for a, b in zip(fused, ref):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_sdpa_causal_fewer_queries_is_bottom_right():
    # with fewer queries than keys (KV-cache decoding) the queries are the last positions;
    # torch's is_causal aligns top-left, so compare against an explicit bottom-right mask
    arrays = _qkv(tq=2, tk=5)
    mask = np.tril(np.ones((2, 5), bool), k=3)
    check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
          lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, attn_mask=torch.tensor(mask)), arrays)


def test_sdpa_broadcast_batch():
    q, k, v = _arr(0, (2, 3, 4, 4)), _arr(1, (1, 3, 4, 4)), _arr(2, (2, 1, 4, 4))
    check(lambda *t: F.scaled_dot_product_attention(*t, is_causal=True),
          lambda *t: TF.scaled_dot_product_attention(*t, is_causal=True), [q, k, v])


def test_sdpa_gradcheck():
    gradcheck_small(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                    ((1, 3, 2), "any"), ((1, 3, 2), "any"), ((1, 3, 2), "any"))


def test_sdpa_float32_stays_float32():
    q = tl.randn(1, 2, 3, 4)
    assert F.scaled_dot_product_attention(q, q, q, is_causal=True).dtype == np.float32
