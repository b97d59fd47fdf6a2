"""Adam (L2 weight decay folded into the gradient) and AdamW (decoupled weight decay)."""

from __future__ import annotations

from ..kernels import fused
from .optimizer import Optimizer


def _check(name: str, lr, betas, eps, weight_decay) -> None:
    if lr < 0.0:
        raise ValueError(f"{name}: invalid learning rate {lr} (must be >= 0)")
    if eps < 0.0:
        raise ValueError(f"{name}: invalid eps {eps} (must be >= 0)")
    for i, b in enumerate(betas):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"{name}: invalid beta parameter at index {i}: {b} (must be in [0, 1))")
    if weight_decay < 0.0:
        raise ValueError(f"{name}: invalid weight_decay {weight_decay} (must be >= 0)")


def adam_update(p, grad, group, state) -> None:
    """The shared moment update and bias-corrected step (torch's single-tensor formula), in place
    in one fused kernel (``tensorlite.kernels.fused.adam_update_``)."""
    xp = p.device.xp
    if not state:
        state["step"] = 0
        state["exp_avg"] = xp.zeros_like(p.data)
        state["exp_avg_sq"] = xp.zeros_like(p.data)
    state["step"] += 1
    beta1, beta2 = group["betas"]
    # Bias corrections are host floats (the step count lives on the host): no device sync.
    fused.adam_update_(p.data, grad, state["exp_avg"], state["exp_avg_sq"], lr=group["lr"], beta1=beta1,
                       beta2=beta2, eps=group["eps"], step=state["step"])


class Adam(Optimizer):
    """``torch.optim.Adam``. ``weight_decay`` is classic L2: ``grad + weight_decay * p`` enters the
    moments (so Adam's normalisation rescales the decay, unlike :class:`AdamW`).

    State per parameter: ``"step"`` (int), ``"exp_avg"``, ``"exp_avg_sq"``.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        _check("Adam", lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _update(self, p, grad, group, state) -> None:
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * p.data
        adam_update(p, grad, group, state)


class AdamW(Optimizer):
    """``torch.optim.AdamW``: decoupled weight decay (Loshchilov & Hutter). Each step first shrinks
    the parameter, ``p *= 1 - lr * weight_decay``, then applies the Adam update with bias
    correction::

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    State per parameter: ``"step"`` (int), ``"exp_avg"`` (m), ``"exp_avg_sq"`` (v).
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01) -> None:
        _check("AdamW", lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _update(self, p, grad, group, state) -> None:
        decay = group["lr"] * group["weight_decay"]
        if decay != 0:
            p.data *= 1.0 - decay
        adam_update(p, grad, group, state)
