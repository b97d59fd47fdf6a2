"""Gradient checkpointing: keep a block's input, not its graph, and recompute it in backward.

Memory for activations drops from one graph per block to one input per block, at the price of a
second forward pass through each checkpointed block during backward.
"""

from __future__ import annotations

import copy

from .. import amp, random
from ..autograd import Function, enable_grad, is_grad_enabled, no_grad
from ..tensor import Tensor


def _rng_state(device):
    gen = random.generator(device)
    bit_generator = getattr(gen, "bit_generator", None)
    return copy.deepcopy(bit_generator.state) if bit_generator is not None else None


def _set_rng_state(device, state) -> None:
    if state is not None:
        random.generator(device).bit_generator.state = state


class _Checkpoint(Function):
    def forward(self, *arrays, fn=None, device=None):
        self.arrays, self.fn, self.device = arrays, fn, device
        # Dropout inside fn must draw the same mask when it is recomputed in backward.
        self.rng = _rng_state(device)
        self.autocast = amp.state.dtype  # the recompute runs in the same precision
        with no_grad():
            out = fn(*[Tensor._wrap(a, device, False) for a in arrays])
        return out.data

    def backward(self, g):
        inputs = [Tensor._wrap(a, self.device, need) for a, need in zip(self.arrays, self.needs_input_grad)]
        after_forward, outer_autocast = _rng_state(self.device), amp.state.dtype
        _set_rng_state(self.device, self.rng)
        amp.state.dtype = self.autocast
        try:
            with enable_grad():
                out = self.fn(*inputs)
        finally:
            _set_rng_state(self.device, after_forward)
            amp.state.dtype = outer_autocast
        if out.requires_grad:
            # Parameters used inside fn are leaves of this inner graph: their .grad accumulates here.
            out.backward(Tensor._wrap(g, self.device, False))
        return tuple(t.grad.data if t.requires_grad and t.grad is not None else None for t in inputs)


def checkpoint(fn, *inputs):
    """``fn(*inputs)`` without storing its graph; the graph is rebuilt in backward.

    As ``torch.utils.checkpoint.checkpoint`` (the re-entrant variant): gradients reach the
    parameters used inside ``fn`` only when at least one of ``inputs`` requires grad, which holds
    for every block of a model whose embeddings are trained. The RNG state is replayed, so dropout
    draws the same mask twice, and so is the autocast state, so the recompute runs in the
    forward's precision. Forward hooks inside ``fn`` run twice (forward and recompute).
    """
    if not inputs:
        raise ValueError("checkpoint: needs at least one tensor input")
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"checkpoint: input {i} must be a Tensor, got {type(t).__name__}")
    if not is_grad_enabled() or not any(t.requires_grad for t in inputs):
        return fn(*inputs)
    return _Checkpoint.apply(*inputs, fn=fn, device=inputs[0].device)
