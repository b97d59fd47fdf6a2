"""Errors speak the user's language: the type, and a message naming the op and the shapes.

Each case checks the exception type and the exact message (or its key part), and that no raw
NumPy error is chained behind it (``raise ... from None``), so the traceback the user sees ends
at our message.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.nn.functional as F
from tensorlite.backend import Device


def _raises(exc, message, fn, exact=False):
    with pytest.raises(exc) as info:
        fn()
    got = str(info.value)
    if exact:
        assert got == message
    else:
        assert re.search(message, got), f"{got!r} does not match {message!r}"
    err = info.value
    assert err.__cause__ is None
    assert err.__context__ is None or err.__suppress_context__, "a raw error is chained behind ours"
    return got


def test_matmul_inner_dimensions_exact():
    _raises(ValueError, "matmul: (128, 512) @ (256, 512): inner dimensions 512 and 256 differ",
            lambda: tl.randn(128, 512) @ tl.randn(256, 512), exact=True)


@pytest.mark.parametrize(
    "sa,sb,message",
    [
        ((3,), (4,), "matmul: (3,) @ (4,): inner dimensions 3 and 4 differ"),
        ((2, 3), (4,), "matmul: (2, 3) @ (4,): inner dimensions 3 and 4 differ"),
        ((5,), (4, 2), "matmul: (5,) @ (4, 2): inner dimensions 5 and 4 differ"),
        ((2, 3, 4), (3, 4, 5), "matmul: (2, 3, 4) @ (3, 4, 5): batch dimensions (2,) and (3,) cannot be broadcast"),
        ((), (2,), "matmul: both operands need at least 1 dimension, got () @ (2,)"),
    ],
)
def test_matmul_shape_errors(sa, sb, message):
    _raises(ValueError, message, lambda: tl.randn(*sa) @ tl.randn(*sb), exact=True)


@pytest.mark.parametrize(
    "op,fn",
    [
        ("add", lambda a, b: a + b),
        ("sub", lambda a, b: a - b),
        ("mul", lambda a, b: a * b),
        ("div", lambda a, b: a / b),
        ("pow", lambda a, b: a**b),
        ("maximum", tl.maximum),
        ("minimum", tl.minimum),
        ("lt", lambda a, b: a < b),
        ("eq", lambda a, b: a == b),
        ("mse_loss", F.mse_loss),
    ],
)
def test_broadcast_errors_name_op_and_shapes(op, fn):
    _raises(ValueError,
            f"{op}: shapes (2, 3) and (4, 3) cannot be broadcast: dimension -2 is 2 in one and 4 in the other",
            lambda: fn(tl.randn(2, 3), tl.randn(4, 3)), exact=True)


def test_broadcast_error_with_array_operand():
    _raises(ValueError, r"mul: shapes \(2, 3\) and \(5,\) cannot be broadcast: dimension -1 is 3 in one and 5",
            lambda: tl.randn(2, 3) * np.ones(5, dtype=np.float32))


def test_inplace_broadcast_error():
    t = tl.randn(2, 3)
    _raises(ValueError, r"in-place add: shapes \(2, 3\) and \(4, 3\) cannot be broadcast", lambda: t.__iadd__(tl.randn(4, 3)))


@pytest.mark.parametrize(
    "fn,exc,message",
    [
        (lambda: tl.where(tl.randn(2) > 0, tl.randn(3), tl.randn(3)), ValueError,
         r"where: condition \(2,\), input \(3,\) and other \(3,\) cannot be broadcast together"),
        (lambda: tl.randn(2, 3).masked_fill(tl.tensor([True, False]), 0.0), ValueError,
         r"masked_fill: shapes \(2, 3\) and \(2,\) cannot be broadcast"),
        (lambda: tl.randn(2, 3).masked_fill(tl.tensor([1, 0, 1]), 0.0), TypeError,
         "masked_fill: mask must be a bool tensor, got dtype int64"),
        (lambda: tl.randn(2, 3).reshape(4, 2), ValueError,
         r"reshape: cannot reshape tensor of shape \(2, 3\) \(6 elements\) into shape \(4, 2\)"),
        (lambda: tl.randn(2, 3).view(-1, 4), ValueError, r"reshape: cannot reshape tensor of shape \(2, 3\)"),
        (lambda: tl.randn(2, 3).expand(4, 3), ValueError, r"expand: cannot expand shape \(2, 3\) to \(4, 3\)"),
        (lambda: tl.randn(2, 3).expand(3), ValueError, "expand: cannot expand shape .* to fewer dimensions"),
        (lambda: tl.randn(2, 3).permute(0, 0), ValueError,
         r"permute: \(0, 0\) is not a permutation of the 2 dims of \(2, 3\)"),
        (lambda: tl.randn(2, 3).transpose(0, 2), IndexError,
         "transpose: dimension 2 out of range for a tensor with 2 dimensions"),
        (lambda: tl.randn(2, 3).sum(3), IndexError, "sum: dimension 3 out of range for a tensor with 2 dimensions"),
        (lambda: tl.randn(2, 3).mean((0, -3)), IndexError, "mean: dimension -3 out of range"),
        (lambda: tl.randn(2, 3).max(2), IndexError, "max: dimension 2 out of range"),
        (lambda: tl.randn(2, 3).argmax(5), IndexError, "argmax: dimension 5 out of range"),
        (lambda: tl.randn(2).squeeze(3), IndexError, "squeeze: dimension 3 out of range"),
        (lambda: F.softmax(tl.randn(2, 3), 2), IndexError, "softmax: dimension 2 out of range"),
        (lambda: tl.cat([tl.randn(2, 3), tl.randn(2, 4)]), ValueError,
         r"cat: shapes \(2, 3\) and \(2, 4\) differ outside dimension 0"),
        (lambda: tl.cat([]), ValueError, "cat: expected a non-empty sequence of tensors"),
        (lambda: tl.stack([tl.randn(2, 3), tl.randn(2, 4)]), ValueError, r"stack: shapes \(2, 3\) and \(2, 4\) differ"),
        (lambda: tl.randn(4).split([1, 2]), ValueError, r"split: sections \[1, 2\] do not add up to dimension 0 of size 4"),
        (lambda: tl.randn(4).split(0), ValueError, "split: split_size must be positive, got 0"),
        (lambda: tl.randn(2, 3)[5], IndexError, r"index: .*5.* \(tensor shape \(2, 3\)\)"),
        (lambda: tl.randn(2, 3).gather(1, tl.tensor([[5]])), IndexError,
         "gather: index 5 is out of range for dimension 1 of size 3"),
        (lambda: tl.randn(2, 3).__setitem__(0, tl.randn(4)), ValueError,
         r"setitem: value of shape \(4,\) cannot be broadcast into .* shape \(2, 3\)"),
        (lambda: tl.randn(2).item(), ValueError, r"item: only one-element tensors .* got shape \(2,\)"),
        (lambda: tl.randn(2).clamp(), ValueError, "clamp: at least one of min and max must be given"),
        (lambda: tl.tensor([1, 2]).mean(), TypeError, "mean: needs a floating-point tensor, got int64"),
        (lambda: bool(tl.randn(2)), RuntimeError, "the truth value of a tensor with 2 elements is ambiguous"),
        (lambda: len(tl.tensor(1.0)), TypeError, "len\\(\\) of a 0-d tensor"),
    ],
)
def test_shape_and_argument_errors(fn, exc, message):
    _raises(exc, message, fn)


@pytest.mark.parametrize(
    "fn,exc,message",
    [
        (lambda: F.cross_entropy(tl.randn(4, 3), tl.tensor([0, 1])), ValueError,
         r"cross_entropy: input \(4, 3\) needs target of shape \(4,\), got \(2,\)"),
        (lambda: F.cross_entropy(tl.randn(2, 3), tl.tensor([0, 3])), IndexError,
         "cross_entropy: target 3 is out of range for 3 classes"),
        (lambda: F.cross_entropy(tl.randn(2, 3), tl.tensor([0.0, 1.0])), TypeError,
         "cross_entropy: target must hold integer class indices, got dtype float32"),
        (lambda: F.cross_entropy(tl.randn(2, 3), tl.tensor([0, 1]), reduction="avg"), ValueError,
         "cross_entropy: reduction must be 'mean', 'sum' or 'none', got 'avg'"),
        (lambda: F.embedding(tl.tensor([0, 5]), tl.randn(3, 2)), IndexError,
         "embedding: index 5 is out of range for 3 embeddings"),
        (lambda: F.embedding(tl.tensor([0.0]), tl.randn(3, 2)), TypeError,
         "embedding: indices must be an integer tensor, got dtype float32"),
        (lambda: F.embedding(tl.tensor([0]), tl.randn(3)), ValueError, r"embedding: weight must be 2-D"),
        (lambda: F.one_hot(tl.tensor([0, 4]), 3), ValueError, r"one_hot: indices must lie in \[0, 3\), got 0..4"),
        (lambda: F.layer_norm(tl.randn(2, 3), (4,)), ValueError,
         r"layer_norm: input of shape \(2, 3\) does not end with normalized_shape \(4,\)"),
        (lambda: F.layer_norm(tl.randn(2, 4), (4,), tl.randn(3)), ValueError,
         r"layer_norm: weight of shape \(3,\) does not match normalized_shape \(4,\)"),
        (lambda: F.rms_norm(tl.randn(2, 4), (4,), tl.randn(3)), ValueError,
         r"rms_norm: weight of shape \(3,\) does not match normalized_shape \(4,\)"),
        (lambda: F.gelu(tl.randn(2), approximate="fast"), ValueError,
         "gelu: approximate must be 'none' or 'tanh', got 'fast'"),
        (lambda: F.dropout(tl.randn(2), 1.5), ValueError, r"dropout: probability must be in \[0, 1\], got 1.5"),
        (lambda: F.scaled_dot_product_attention(tl.randn(1, 2, 3), tl.randn(1, 2, 4), tl.randn(1, 2, 4)),
         ValueError, r"scaled_dot_product_attention: q \(1, 2, 3\) and k \(1, 2, 4\): head dims 3 and 4 differ"),
        (lambda: F.scaled_dot_product_attention(tl.randn(1, 5, 4), tl.randn(1, 5, 4), tl.randn(1, 6, 4)),
         ValueError, "key counts 5 and 6 differ"),
        (lambda: F.scaled_dot_product_attention(tl.randn(2, 5, 4), tl.randn(3, 5, 4), tl.randn(3, 5, 4)),
         ValueError, "batch dims of q .* cannot be broadcast together"),
        (lambda: F.scaled_dot_product_attention(tl.randn(1, 5, 4), tl.randn(1, 5, 4), tl.randn(1, 5, 4),
                                                attn_mask=tl.ones(3, 3, dtype=tl.bool_)),
         ValueError, r"attn_mask \(3, 3\) does not broadcast to the scores \(1, 5, 5\)"),
    ],
)
def test_nn_functional_errors(fn, exc, message):
    _raises(exc, message, fn)


# ------------------------------------------------------------------------------------------------
# dtype and device mixing: TypeError
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "op,fn",
    [
        ("add", lambda a, b: a + b),
        ("mul", lambda a, b: a * b),
        ("matmul", lambda a, b: a @ b),
        ("cat", lambda a, b: tl.cat([a, b])),
        ("where", lambda a, b: tl.where(a > 0, a, b)),
    ],
)
def test_dtype_mixing(op, fn):
    a, b = tl.randn(2, 2), tl.randn(2, 2, dtype=tl.float64)
    _raises(TypeError,
            f"{op}: dtype mismatch (float32 and float64); cast one with .to(dtype=...) or .float()/.double()",
            lambda: fn(a, b), exact=True)


def test_int_and_float_mix_promotes_like_torch():
    out = tl.tensor([1, 2]) * tl.tensor([0.5, 0.5])
    assert out.dtype == np.float32 and out.tolist() == [0.5, 1.0]


def _fake_cuda_tensor():
    # a tensor that claims to live on another device: enough to test the check without a GPU
    return tl.Tensor._wrap(np.ones(2, np.float32), Device("cuda", np), False)


@pytest.mark.parametrize("fn", [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: tl.stack([a, b])])
def test_device_mixing(fn):
    got = _raises(TypeError, r"tensors are on different devices \(cpu and cuda\); move one with .to\(device\)",
                  lambda: fn(tl.randn(2), _fake_cuda_tensor()))
    assert got.split(":")[0] in ("add", "mul", "stack")


def test_requires_grad_on_integers():
    _raises(TypeError, "only floating-point tensors can require gradients, got dtype int64",
            lambda: tl.tensor([1, 2], requires_grad=True))
    _raises(TypeError, "only floating-point tensors can require gradients",
            lambda: tl.tensor([1, 2]).requires_grad_())


def test_unknown_device_and_kernel():
    _raises(ValueError, "unknown device 'tpu': expected 'cpu' or 'cuda'", lambda: tl.randn(2).to("tpu"))
    _raises(ValueError, r"kernels.use: unknown kernel 'fast'; choose one of \['blas'", lambda: tl.kernels.use("fast"))


def test_autograd_errors():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    _raises(RuntimeError, r"backward: grad can be implicitly created only for scalar outputs, but this tensor "
            r"has shape \(2,\)", lambda: (x * 2).backward())
    y = (x * x).sum()
    y.backward()
    _raises(RuntimeError, "retain_graph=True", lambda: y.backward())
    _raises(RuntimeError, r"in-place add: a tensor that requires grad is being modified in place; wrap the update "
            r"in `with tl.no_grad\(\):`", lambda: x.__iadd__(1.0))
