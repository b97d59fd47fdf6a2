"""Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay."""

from __future__ import annotations

from .optimizer import Optimizer


class SGD(Optimizer):
    """``torch.optim.SGD``'s update, vectorised per parameter::

        g = grad + weight_decay * p
        buf = g                                       (first step)
        buf = momentum * buf + (1 - dampening) * g    (later steps)
        g = g + momentum * buf if nesterov else buf
        p -= lr * g

    State per parameter: ``"momentum_buffer"`` (only when ``momentum > 0``).
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False, dampening: float = 0.0) -> None:
        if lr < 0.0:
            raise ValueError(f"SGD: invalid learning rate {lr} (must be >= 0)")
        if momentum < 0.0:
            raise ValueError(f"SGD: invalid momentum {momentum} (must be >= 0)")
        if weight_decay < 0.0:
            raise ValueError(f"SGD: invalid weight_decay {weight_decay} (must be >= 0)")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum > 0 and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov,
                        dampening=dampening)
        super().__init__(params, defaults)

    def _update(self, p, grad, group, state) -> None:
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        if wd != 0:
            grad = grad + wd * p.data  # a new array: the stored gradient stays untouched
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                # xp.array, not .copy(): for a 0-d parameter NumPy arithmetic returns a scalar,
                # which in-place updates could not modify.
                buf = state["momentum_buffer"] = p.device.xp.array(grad, dtype=p.dtype, copy=True)
            else:
                buf *= momentum
                buf += (1.0 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        p.data -= lr * grad
