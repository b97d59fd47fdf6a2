"""``Module.register_full_backward_hook``: the gradients of a module's inputs and outputs.

As torch does, the module's tensor inputs and outputs pass through identity nodes of the graph.
The output nodes record ``grad_output``; the input nodes collect ``grad_input``, and once every
input that requires grad has its gradient the hooks run as ``hook(module, grad_input,
grad_output)`` (tuples of tensors, None where there is none). Returning a tuple replaces
``grad_input``; that works for modules with one tensor input that requires grad (with several,
the gradients of the others have already moved on, and a replacement raises).
"""

from __future__ import annotations

from ..autograd import Function, is_grad_enabled
from ..tensor import Tensor


class _Call:
    """The bookkeeping of one forward call."""

    def __init__(self, module, hooks, n_inputs: int, pending: int, n_outputs: int) -> None:
        self.module, self.hooks = module, hooks
        self.grad_input = [None] * n_inputs
        self.grad_output = [None] * n_outputs
        self.pending, self.fired = pending, False

    def wrap(self, g, device):
        return Tensor._wrap(g, device, False)

    def fire(self, index=None, g=None, device=None):
        """Run the hooks; returns the (possibly replaced) gradient of input ``index``."""
        self.fired = True
        for hook in list(self.hooks.values()):
            new = hook(self.module, tuple(self.grad_input), tuple(self.grad_output))
            if new is None:
                continue
            new = tuple(new) if isinstance(new, (tuple, list)) else (new,)
            if len(new) != len(self.grad_input):
                raise RuntimeError(
                    f"backward hook of {type(self.module).__name__}: returned {len(new)} gradients for "
                    f"{len(self.grad_input)} inputs"
                )
            others = [i for i, t in enumerate(self.grad_input) if t is not None and i != index]
            if others:
                raise RuntimeError(
                    f"backward hook of {type(self.module).__name__}: replacing grad_input is supported for "
                    "modules with one tensor input that requires grad"
                )
            self.grad_input = list(new)
            if index is not None and new[index] is not None:
                g = new[index].data
        return g


class _HookedOutput(Function):
    def forward(self, a, call=None, index=0):
        self.call, self.index = call, index
        return a

    def backward(self, g):
        call = self.call
        call.grad_output[self.index] = call.wrap(g, call.device)
        if call.pending == 0 and not call.fired:  # no input needs grad: nothing else will fire
            call.fire()
        return g


class _HookedInput(Function):
    def forward(self, a, call=None, index=0):
        self.call, self.index = call, index
        return a

    def backward(self, g):
        call = self.call
        call.grad_input[self.index] = call.wrap(g, call.device)
        call.pending -= 1
        if call.pending == 0 and not call.fired:
            g = call.fire(self.index, g)
        return g


def call_with_backward_hooks(module, hooks, args, kwargs):
    """``module.forward(*args, **kwargs)`` with its tensor inputs and outputs wired to ``hooks``."""
    if not is_grad_enabled():
        return module.forward(*args, **kwargs)
    needs = [isinstance(a, Tensor) and a.requires_grad for a in args]
    call = _Call(module, hooks, len(args), sum(needs), 0)
    args = tuple(_HookedInput.apply(a, call=call, index=i) if need else a
                 for i, (a, need) in enumerate(zip(args, needs)))
    out = module.forward(*args, **kwargs)
    outputs = out if isinstance(out, tuple) else (out,)
    call.grad_output = [None] * len(outputs)
    wired = []
    for i, o in enumerate(outputs):
        if isinstance(o, Tensor) and o.requires_grad:
            call.device = o.device
            o = _HookedOutput.apply(o, call=call, index=i)
        wired.append(o)
    return tuple(wired) if isinstance(out, tuple) else wired[0]
