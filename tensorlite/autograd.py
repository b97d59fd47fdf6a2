"""Reverse-mode autograd: the :class:`Function` node, grad mode, and the backward pass.

A forward op is a ``Function`` subclass whose ``forward`` and ``backward`` sit side by side.
Calling ``Op.apply(*tensors)`` runs the forward on raw arrays and, when any input needs a
gradient, links the output tensor to the node. ``backward`` walks the graph in an iterative
topological order, so a chain of any depth works without recursion.
"""

from __future__ import annotations

import functools
import itertools
import threading


class _State(threading.local):
    grad_enabled = True  # a class default, so each new thread starts with grad enabled


_state = _State()
_Tensor = None  # tensorlite.tensor.Tensor, bound by tensor.py (which imports this module)


def is_grad_enabled() -> bool:
    return _state.grad_enabled


class _GradMode:
    """Base of the grad-mode switches: a context manager that also decorates functions."""

    mode = True

    def __enter__(self):
        self._prev = is_grad_enabled()
        _state.grad_enabled = self.mode
        return self

    def __exit__(self, *exc):
        _state.grad_enabled = self._prev
        return False

    def __call__(self, fn):
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            prev = is_grad_enabled()
            _state.grad_enabled = mode
            try:
                return fn(*args, **kwargs)
            finally:
                _state.grad_enabled = prev

        return wrapper


class set_grad_enabled(_GradMode):
    """Switch graph building on or off, as ``torch.set_grad_enabled`` does.

    Called plainly (``tl.set_grad_enabled(False)``) it sets the mode for good; used as
    ``with tl.set_grad_enabled(flag):`` it restores the previous mode when the block ends.
    """

    def __init__(self, mode: bool) -> None:
        self._prev = is_grad_enabled()
        self.mode = bool(mode)
        _state.grad_enabled = self.mode

    def __enter__(self):
        return self  # the mode was already set by __init__, and _prev taken before it

    def __call__(self, fn):
        _state.grad_enabled = self._prev  # as a decorator it must not change the mode right now
        return super().__call__(fn)


class no_grad(_GradMode):
    """Disable graph building: ``with tl.no_grad(): ...`` or ``@tl.no_grad()``."""

    mode = False


class enable_grad(_GradMode):
    """Re-enable graph building inside a ``no_grad`` region."""

    mode = True


# Observers of every op (see :class:`observe`). Empty in normal runs, so the hot path pays one
# truthiness test.
_forward_observers: list = []
_backward_observers: list = []
_new_tensor = object.__new__


class _Edge:
    """What backward needs of an input made by another op: that op's node. Keeping the input
    Tensor itself would keep its array alive as long as the graph, even where no backward formula
    needs it (a residual stream's sums, a linear layer's output): about a fifth of a GPT's graph.
    Leaves stay Tensors (their ``.grad`` is filled); with op observers on (``detect_anomaly``)
    every input stays a Tensor, so they can inspect it."""

    __slots__ = ("grad_fn",)
    requires_grad = True

    def __init__(self, grad_fn) -> None:
        self.grad_fn = grad_fn


def _edges(inputs) -> tuple:
    if _forward_observers:
        return inputs
    if len(inputs) == 2:  # the common cases without a list
        a, b = inputs
        ga, gb = a.grad_fn, b.grad_fn
        return (a if ga is None else _Edge(ga), b if gb is None else _Edge(gb))
    if len(inputs) == 1:
        g = inputs[0].grad_fn
        return inputs if g is None else (_Edge(g),)
    return tuple([t if t.grad_fn is None else _Edge(t.grad_fn) for t in inputs])


class observe:
    """See every op while the context is active: the public face of the op observers.

    ``forward(fn, inputs, result)`` is called after each op's forward with the graph node ``fn``
    (a :class:`Function`: ``fn.name`` is the op, and the op's own attributes, e.g. a softmax's
    ``dim``, are on it), its input tensors and its output tensor, also under ``no_grad``.
    ``backward(fn, input_grads)`` is called after each node's backward with the gradient arrays it
    returns, one per input. An observer may raise to stop the computation (``detect_anomaly``
    does). Nested contexts stack; each removes exactly its own observers on exit.

    Example: count the ops of one forward::

        n = [0]
        with tl.autograd.observe(forward=lambda fn, inputs, out: n.__setitem__(0, n[0] + 1)):
            model(x)
    """

    def __init__(self, forward=None, backward=None) -> None:
        if forward is None and backward is None:
            raise TypeError("observe: give forward=, backward= or both (callables)")
        for name, f in (("forward", forward), ("backward", backward)):
            if f is not None and not callable(f):
                raise TypeError(f"observe: {name} must be callable, got {type(f).__name__}")
        self.forward, self.backward = forward, backward

    def __enter__(self):
        if self.forward is not None:
            _forward_observers.append(self.forward)
        if self.backward is not None:
            _backward_observers.append(self.backward)
        return self

    def __exit__(self, *exc):
        # remove by identity from the end: the same callable may be registered twice by nesting
        for obs, reg in ((self.forward, _forward_observers), (self.backward, _backward_observers)):
            if obs is not None:
                for i in range(len(reg) - 1, -1, -1):
                    if reg[i] is obs:
                        del reg[i]
                        break
        return False


class Function:
    """One node of the graph. Subclasses define ``forward(*arrays, **kw)`` and ``backward(grad)``.

    ``forward`` receives raw arrays (plus keyword options), may stash what backward needs on
    ``self``, and returns one array. ``backward`` receives the output's gradient array and returns
    one gradient (or ``None``) per positional input.
    """

    inputs: tuple = ()
    needs_input_grad: tuple = ()
    # Class defaults keep the backward loop's attribute reads cheap (no getattr fallbacks).
    _hooks = None
    _retained = None
    _released = False

    @classmethod
    def apply(cls, *inputs, **kwargs):
        # The hot path of every op: kept flat, since at small sizes it costs more than the maths.
        fn = cls()
        if len(inputs) == 1:
            a = inputs[0]
            out = fn.forward(a.data, **kwargs) if kwargs else fn.forward(a.data)
            requires_grad = a.requires_grad and _state.grad_enabled
            if requires_grad:
                fn.needs_input_grad = (True,)
        elif len(inputs) == 2:  # binary ops: no list building
            a, b = inputs
            out = fn.forward(a.data, b.data, **kwargs) if kwargs else fn.forward(a.data, b.data)
            requires_grad = False
            if _state.grad_enabled:
                ra, rb = a.requires_grad, b.requires_grad
                if ra or rb:
                    requires_grad = True
                    fn.needs_input_grad = (ra, rb)
        else:
            arrays = [t.data for t in inputs]
            out = fn.forward(*arrays, **kwargs) if kwargs else fn.forward(*arrays)
            requires_grad = False
            if _state.grad_enabled:
                needs = tuple([t.requires_grad for t in inputs])
                if True in needs:
                    requires_grad = True
                    fn.needs_input_grad = needs
        result = _new_tensor(_Tensor)
        result.data = out
        result.device = inputs[0].device
        result.grad = None
        result._hooks = None
        result.requires_grad = requires_grad
        if requires_grad:
            fn.inputs = _edges(inputs)
            result.grad_fn = fn
        else:
            result.grad_fn = None
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

    @property
    def next_functions(self) -> tuple:
        """``((node, 0), ...)``, one per input, as torch: the input's ``grad_fn``, an
        :class:`AccumulateGrad` for a leaf that requires grad, None otherwise. Empty once backward
        has freed the node."""
        return tuple(
            (t.grad_fn if t.grad_fn is not None else (AccumulateGrad(t) if t.requires_grad else None), 0)
            for t in self.inputs
        )

    def __repr__(self) -> str:
        return f"<{self.name}Backward>"


class AccumulateGrad:
    """Where a leaf's gradient ends up (``.variable`` is the leaf), as torch's node of that name."""

    name = "AccumulateGrad"
    next_functions = ()

    def __init__(self, variable) -> None:
        self.variable = variable

    def __repr__(self) -> str:
        return "<AccumulateGrad>"


def _consumer_counts(root: Function) -> dict:
    """For every node reachable from ``root``: how many edges of the graph feed gradient into it."""
    counts = {root: 0}
    stack = [root]
    while stack:
        for t in stack.pop().inputs:
            child = t.grad_fn
            if child is not None:
                if child in counts:
                    counts[child] += 1
                else:
                    counts[child] = 1
                    stack.append(child)
    return counts


def _released_error() -> RuntimeError:
    return RuntimeError(
        "backward: trying to backward through the graph a second time (its saved arrays were "
        "freed after the first backward); pass retain_graph=True to the first call"
    )


def backward(tensor, grad=None, retain_graph: bool = False) -> None:
    """Accumulate d(tensor)/d(leaf) into every leaf's ``.grad``. See :meth:`Tensor.backward`."""
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
        g = grad.data if isinstance(grad, _Tensor) else xp.asarray(grad, dtype=tensor.data.dtype)
        if g.shape != tensor.data.shape:
            raise ValueError(
                f"backward: gradient shape {tuple(g.shape)} does not match tensor shape "
                f"{tuple(tensor.shape)}"
            )
    root = tensor.grad_fn
    if root is None:  # a leaf
        tensor._accumulate(g)
        return
    if root._released:
        raise _released_error()
    # Kahn's algorithm: a node runs once every consumer has passed its gradient down, so the
    # gradient it receives is complete. Iterative, so a chain of any depth works.
    pending = _consumer_counts(root)
    grads = {root: g}
    ready = [root]
    observers = _backward_observers
    while ready:
        fn = ready.pop()
        g = grads.pop(fn, None)
        inputs = fn.inputs
        if g is not None:
            if fn._released:
                raise _released_error()
            if fn._hooks:
                g = _run_hooks(fn._hooks, g, tensor.device)
            if fn._retained is not None:
                fn._retained._accumulate(g)
            input_grads = fn.backward(g)
            if type(input_grads) is not tuple:
                input_grads = (input_grads,)
            if observers:
                for obs in observers:
                    obs(fn, input_grads)
            for t, ig, need in zip(inputs, input_grads, fn.needs_input_grad):
                child = t.grad_fn
                if need and ig is not None:
                    if child is None:
                        t._accumulate(ig)
                    else:
                        prev = grads.get(child)
                        grads[child] = ig if prev is None else prev + ig
                if child is not None:
                    pending[child] -= 1
                    if not pending[child]:
                        ready.append(child)
        else:  # no gradient reached this node; its inputs still wait for its edges
            for t in inputs:
                child = t.grad_fn
                if child is not None:
                    pending[child] -= 1
                    if not pending[child]:
                        ready.append(child)
        if not retain_graph:
            fn.__dict__.clear()
            fn._released = True


def _run_hooks(hooks, g, device):
    """Call each ``register_hook`` function with the gradient; a returned tensor replaces it."""
    for hook in hooks:
        out = hook(_Tensor._wrap(g, device, False))
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


class RemovableHandle:
    """``handle.remove()`` unregisters the hook; ``with handle:`` removes it when the block ends.

    ``hooks`` is the registry the hook went into: a dict keyed by ``handle.id`` (module hooks) or a
    list holding the hook itself (tensor hooks, which the backward pass walks as a list).
    """

    _ids = itertools.count()

    def __init__(self, hooks, hook=None) -> None:
        self._hooks = hooks
        self._hook = hook
        self.id = next(RemovableHandle._ids)

    def remove(self) -> None:
        if isinstance(self._hooks, dict):
            self._hooks.pop(self.id, None)
        else:
            # by identity: the same function registered twice is two entries, removed one at a time
            for i, h in enumerate(self._hooks):
                if h is self._hook:
                    del self._hooks[i]
                    break
        self._hook = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False
