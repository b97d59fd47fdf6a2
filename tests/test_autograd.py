"""Autograd semantics: accumulation, graph reuse, grad modes, detach, retain_graph, deep graphs,
non-scalar outputs, retain_grad and hooks. Values are hand-derived."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import tensorlite as tl


def test_accumulates_across_uses():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    y = x * x + 3 * x + x  # dy/dx = 2x + 4
    y.sum().backward()
    assert x.grad.tolist() == [6.0, 8.0]


def test_accumulates_across_backward_calls_until_reset():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    for expected in ([2.0, 4.0], [4.0, 8.0], [6.0, 12.0]):
        (x * x).sum().backward()
        assert x.grad.tolist() == expected
    x.grad = None
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0]
    x.grad.zero_()
    (x * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_first_gradient_is_not_aliased():
    # Add passes its gradient through; the leaf's .grad must own its memory, or the next
    # accumulation would write into the upstream gradient array
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    g = tl.tensor([1.0, 1.0])
    (x + 0.0).backward(g)
    (x + 0.0).backward(g)
    assert x.grad.tolist() == [2.0, 2.0] and g.tolist() == [1.0, 1.0]


def test_reused_intermediate_node():
    x = tl.tensor(3.0, requires_grad=True)
    y = x * 2  # used three times below
    z = y * y + y + tl.exp(y * 0)
    z.backward()
    # dz/dy = 2y + 1 = 13, dy/dx = 2
    assert x.grad.item() == 26.0


def test_diamond_graph_gets_complete_gradient_before_use():
    x = tl.tensor(2.0, requires_grad=True)
    a = x * 3
    b = a.tanh()
    c = a * b + a  # a reaches c by two paths; a's node must wait for both
    c.backward()
    t = np.tanh(6.0)
    expected = 3 * (t + 6.0 * (1 - t * t) + 1)
    assert abs(x.grad.item() - expected) < 1e-5


def test_no_grad_context_and_decorator():
    x = tl.tensor([1.0], requires_grad=True)
    with tl.no_grad():
        y = x * 2
        assert not tl.is_grad_enabled()
        with tl.enable_grad():
            z = x * 2
    assert tl.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None

    @tl.no_grad()
    def f(t):
        return t * 2

    out = f(x)
    assert not out.requires_grad and tl.is_grad_enabled()


def test_no_grad_restores_on_exception():
    with pytest.raises(ZeroDivisionError), tl.no_grad():
        _ = 1 / 0
    assert tl.is_grad_enabled()


def test_grad_mode_is_per_thread():
    seen = []
    with tl.no_grad():
        t = threading.Thread(target=lambda: seen.append(tl.is_grad_enabled()))
        t.start()
        t.join()
    assert seen == [True]


def test_detach():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    y = (x * d).sum()  # d is a constant for the graph
    y.backward()
    assert x.grad.tolist() == [2.0, 4.0]


def test_retain_graph():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.tolist() == [4.0, 8.0]
    with pytest.raises(RuntimeError, match="backward through the graph a second time.*retain_graph=True"):
        y.backward()


def test_backward_through_freed_subgraph_raises():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    h = x * x
    h.sum().backward()
    with pytest.raises(RuntimeError, match="second time"):
        (h + 1).sum().backward()  # the new root is fresh, but h's node was freed


def test_deep_chain_no_recursion_error():
    x = tl.tensor([1.0], dtype=tl.float64, requires_grad=True)
    h = x
    for _ in range(10_000):
        h = h * 1.0001
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001**10_000], rtol=1e-9)


def test_deep_graph_is_freed_without_backward():
    x = tl.tensor([1.0], requires_grad=True)
    h = x
    for _ in range(50_000):
        h = h.tanh()
    del h  # deallocating the chain must not overflow the C stack either


def test_deep_chain_with_two_inputs():
    x = tl.tensor([0.5], requires_grad=True)
    h = x
    for _ in range(10_000):
        h = h + x * 0.0
    h.sum().backward()
    assert x.grad.item() == 1.0


def test_backward_on_non_scalar_explains_itself():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError) as e:
        y.backward()
    msg = str(e.value)
    assert "only for scalar outputs" in msg and "(2,)" in msg and ".sum()" in msg and "gradient=" in msg
    y.backward(tl.tensor([1.0, 10.0]))
    assert x.grad.tolist() == [2.0, 20.0]


def test_backward_gradient_shape_mismatch():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"gradient shape \(3,\) does not match tensor shape \(2,\)"):
        (x * 2).backward(tl.tensor([1.0, 1.0, 1.0]))


def test_backward_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tl.tensor([1.0]).sum().backward()


def test_backward_on_leaf():
    x = tl.tensor(2.0, requires_grad=True)
    x.backward()
    assert x.grad.item() == 1.0


def test_retain_grad():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    k = h * h  # not retained
    k.sum().backward()
    assert h.grad.tolist() == [6.0, 12.0]
    assert k.grad is None
    assert x.grad.tolist() == [18.0, 36.0]


def test_register_hook_on_leaf_and_nonleaf():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(("x", g.tolist())))
    h = x * 2
    h.register_hook(lambda g: g * 10)  # returning a tensor replaces the gradient
    h.sum().backward()
    assert x.grad.tolist() == [20.0, 20.0]
    assert seen == [("x", [20.0, 20.0])]


def test_register_hook_needs_grad():
    with pytest.raises(RuntimeError, match="doesn't require grad"):
        tl.tensor([1.0]).register_hook(lambda g: g)


def test_non_leaf_grad_not_kept_and_requires_grad_propagates():
    x = tl.tensor([1.0], requires_grad=True)
    c = tl.tensor([2.0])
    y = x * c
    assert y.requires_grad and not y.is_leaf and c.grad is None
    y.sum().backward()
    assert y.grad is None and c.grad is None


def test_int_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        tl.tensor([1, 2], requires_grad=True)


def test_inplace_on_leaf_requiring_grad():
    x = tl.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        x += 1
    with tl.no_grad():
        x -= 0.5
    assert x.tolist() == [0.5] and x.is_leaf


def test_gradient_dtype_follows_input():
    x = tl.randn(3, requires_grad=True)
    (x.double() * 2).sum().backward()
    assert x.grad.dtype == np.float32
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


def test_broadcast_gradients_reduce_to_input_shapes():
    a = tl.randn(3, 1, 4, requires_grad=True)
    b = tl.randn(5, 1, requires_grad=True)
    c = tl.tensor(2.0, requires_grad=True)
    (a * b + c).sum().backward()
    assert a.grad.shape == (3, 1, 4) and b.grad.shape == (5, 1) and c.grad.shape == ()
    assert c.grad.item() == 3 * 5 * 4


def test_gradcheck_on_user_function_and_failure_report():
    x = tl.tensor(np.random.default_rng(0).standard_normal((2, 3)), requires_grad=True)
    assert tl.gradcheck(lambda t: (t.tanh() * t).sum(1), x)

    class Wrong(tl.autograd.Function):
        def forward(self, a):
            return a * a

        def backward(self, g):
            return g * self.__dict__.get("a", 1.0)  # forgot the 2x: gradient is g

    with pytest.raises(tl.GradcheckError, match=r"input 0 \(shape \(2, 3\)\) element"):
        tl.gradcheck(lambda t: Wrong.apply(t), x)
    assert tl.gradcheck(lambda t: Wrong.apply(t), x, raise_exception=False) is False
    with pytest.raises(TypeError, match="float64"):
        tl.gradcheck(lambda t: t * 2, tl.randn(2, requires_grad=True))


def test_function_subclass_custom_op():
    class Cube(tl.autograd.Function):
        def forward(self, a):
            self.a = a
            return a**3

        def backward(self, g):
            return g * 3 * self.a**2

    x = tl.tensor([2.0], requires_grad=True)
    Cube.apply(x).sum().backward()
    assert x.grad.tolist() == [12.0]


def test_set_grad_enabled_as_call_context_and_decorator():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    try:
        tl.set_grad_enabled(False)                  # a plain call sets the mode for good
        assert not tl.is_grad_enabled()
        assert not (x * 2).requires_grad
    finally:
        tl.set_grad_enabled(True)
    assert tl.is_grad_enabled()

    with tl.no_grad():
        with tl.set_grad_enabled(True):
            assert (x * 2).requires_grad
        assert not tl.is_grad_enabled()             # the outer no_grad is back
    with pytest.raises(ZeroDivisionError), tl.set_grad_enabled(False):
        raise ZeroDivisionError
    assert tl.is_grad_enabled()

    @tl.set_grad_enabled(False)
    def double(t):
        return t * 2

    assert not double(x).requires_grad
    assert tl.is_grad_enabled()
