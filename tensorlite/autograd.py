"""Reverse-mode autograd: the :class:`Function` node, grad mode, and the backward pass.

A forward op is a ``Function`` subclass whose ``forward`` and ``backward`` sit side by side.
Calling ``Op.apply(*tensors)`` runs the forward on raw arrays and, when any input needs a
gradient, links the output tensor to the node. ``backward`` walks the graph in an iterative
topological order, so a chain of any depth works without recursion.
"""

from __future__ import annotations

import functools
import threading

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad_enabled", True)


def set_grad_enabled(mode: bool) -> None:
    _state.grad_enabled = bool(mode)


class _GradMode:
    """Base of ``no_grad`` / ``enable_grad``: a context manager that also decorates functions."""

    mode = True

    def __enter__(self):
        self._prev = is_grad_enabled()
        set_grad_enabled(self.mode)
        return self

    def __exit__(self, *exc):
        set_grad_enabled(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Disable graph building: ``with tl.no_grad(): ...`` or ``@tl.no_grad()``."""

    mode = False


class enable_grad(_GradMode):
    """Re-enable graph building inside a ``no_grad`` region."""

    mode = True


# Observers of every op, used by ``tensorlite.debug.detect_anomaly``. Empty in normal runs, so the
# hot path pays one truthiness test.
_forward_observers: list = []
_backward_observers: list = []


class Function:
    """One node of the graph. Subclasses define ``forward(*arrays, **kw)`` and ``backward(grad)``.

    ``forward`` receives raw arrays (plus keyword options), may stash what backward needs on
    ``self``, and returns one array. ``backward`` receives the output's gradient array and returns
    one gradient (or ``None``) per positional input.
    """

    inputs: tuple = ()
    needs_input_grad: tuple = ()

    @classmethod
    def apply(cls, *inputs, **kwargs):
        from .tensor import Tensor  # noqa: PLC0415  (tensor imports autograd)

        fn = cls()
        out = fn.forward(*[t.data for t in inputs], **kwargs)
        requires_grad = False
        if getattr(_state, "grad_enabled", True):
            for t in inputs:
                if t.requires_grad:
                    requires_grad = True
                    break
        result = Tensor._wrap(out, inputs[0].device, requires_grad)
        if requires_grad:
            fn.inputs = inputs
            fn.needs_input_grad = tuple(t.requires_grad for t in inputs)
            result.grad_fn = fn
        if _forward_observers:
            for obs in _forward_observers:
                obs(fn, inputs, result)
        return result

    def forward(self, *arrays, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.name}Backward>"


def _topological_order(root: Function) -> list:
    """Nodes reachable from ``root``, each after every node that consumes its output."""
    order = []
    visited = {id(root)}
    stack = [(root, iter(root.inputs))]
    while stack:
        node, children = stack[-1]
        for t in children:
            child = t.grad_fn
            if child is not None and id(child) not in visited:
                visited.add(id(child))
                stack.append((child, iter(child.inputs)))
                break
        else:
            stack.pop()
            order.append(node)
    order.reverse()
    return order


def backward(tensor, grad=None, retain_graph: bool = False) -> None:
    """Accumulate d(tensor)/d(leaf) into every leaf's ``.grad``. See :meth:`Tensor.backward`."""
    from .tensor import Tensor  # noqa: PLC0415

    if not tensor.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require grad and has no grad_fn; "
            "create an input with requires_grad=True (and not under no_grad())"
        )
    xp = tensor.device.xp
    if grad is None:
        if tensor.data.size != 1:
            raise RuntimeError(
                f"backward: grad can be implicitly created only for scalar outputs, but this tensor "
                f"has shape {tuple(tensor.shape)}; call .sum() or .mean() first, or pass "
                f"gradient=<tensor of shape {tuple(tensor.shape)}>"
            )
        g = xp.ones(tensor.data.shape, dtype=tensor.data.dtype)
    else:
        g = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=tensor.data.dtype)
        if g.shape != tensor.data.shape:
            raise ValueError(
                f"backward: gradient shape {tuple(g.shape)} does not match tensor shape "
                f"{tuple(tensor.shape)}"
            )
    root = tensor.grad_fn
    if root is None:  # a leaf
        tensor._accumulate(g)
        return
    if getattr(root, "_released", False):
        raise RuntimeError(
            "backward: trying to backward through the graph a second time (its saved arrays were "
            "freed after the first backward); pass retain_graph=True to the first call"
        )
    grads = {id(root): g}
    for fn in _topological_order(root):
        g = grads.pop(id(fn), None)
        if g is None:
            continue
        hooks = getattr(fn, "_hooks", None)
        if hooks:
            g = _run_hooks(hooks, g, tensor.device)
        retained = getattr(fn, "_retained", None)
        if retained is not None:
            retained._accumulate(g)
        input_grads = fn.backward(g)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        if _backward_observers:
            for obs in _backward_observers:
                obs(fn, input_grads)
        for t, ig, need in zip(fn.inputs, input_grads, fn.needs_input_grad):
            if not need or ig is None:
                continue
            child = t.grad_fn
            if child is None:
                t._accumulate(ig)
            else:
                key = id(child)
                prev = grads.get(key)
                grads[key] = ig if prev is None else prev + ig
        if not retain_graph:
            fn.__dict__.clear()
            fn._released = True


def _run_hooks(hooks, g, device):
    """Call each ``register_hook`` function with the gradient; a returned tensor replaces it."""
    from .tensor import Tensor  # noqa: PLC0415

    for hook in hooks:
        out = hook(Tensor._wrap(g, device, False))
        if out is not None:
            g = out.data
    return g


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the gradient of broadcasting ``shape`` up to ``grad.shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad
