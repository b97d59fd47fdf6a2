"""Helpers around modules, as ``torch.nn.utils``."""

from __future__ import annotations

from .checkpoint import checkpoint  # noqa: F401  (torch.utils.checkpoint lives here for us)


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach=None):
    """Scale gradients so their global norm is at most ``max_norm``; returns the pre-clip norm as
    a 0-d tensor, as ``torch.nn.utils.clip_grad_norm_`` (``float(norm)`` or ``norm.item()`` reads it).

    The implementation is :func:`tensorlite.optim.clip_grad_norm_`, which returns a Python float.
    """
    from ..creation import tensor  # noqa: PLC0415
    from ..optim import clip_grad_norm_ as impl  # noqa: PLC0415  (optim imports nn)
    from ..tensor import Tensor  # noqa: PLC0415

    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    total = impl(params, max_norm, norm_type=norm_type, error_if_nonfinite=error_if_nonfinite)
    grads = [p.grad for p in params if p.grad is not None]
    device = grads[0].device if grads else "cpu"
    return tensor(total, dtype=grads[0].dtype if grads else None, device=device)


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient element to ``[-clip_value, clip_value]`` in place."""
    from ..tensor import Tensor  # noqa: PLC0415

    params = [parameters] if isinstance(parameters, Tensor) else parameters
    c = float(clip_value)
    for p in params:
        if p.grad is not None:
            p.grad.device.xp.clip(p.grad.data, -c, c, out=p.grad.data)


def parameter_count(module, trainable_only: bool = False) -> int:
    """The number of scalars in ``module``'s unique parameters."""
    return module.num_parameters(trainable_only)
