"""Helpers around modules, as ``torch.nn.utils``."""

from __future__ import annotations

import contextlib

import numpy as np

from ..optim.clip import clip_grad_norm_ as _clip_grad_norm
from ..tensor import Tensor
from .checkpoint import checkpoint  # noqa: F401  (torch.utils.checkpoint lives here for us)


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach=None):
    """Scale gradients so their global norm is at most ``max_norm``; returns the pre-clip norm as
    a 0-d tensor, as ``torch.nn.utils.clip_grad_norm_`` (``float(norm)`` or ``norm.item()`` reads it).

    The implementation is :func:`tensorlite.optim.clip_grad_norm_`, which returns a Python float.
    """
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    total = _clip_grad_norm(params, max_norm, norm_type=norm_type, error_if_nonfinite=error_if_nonfinite)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return Tensor(np.asarray(total, dtype=np.float32))
    xp = grads[0].device.xp
    return Tensor(xp.asarray(total, dtype=grads[0].dtype), device=grads[0].device)


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient element to ``[-clip_value, clip_value]`` in place."""
    params = [parameters] if isinstance(parameters, Tensor) else parameters
    c = float(clip_value)
    for p in params:
        if p.grad is not None:
            p.grad.device.xp.clip(p.grad.data, -c, c, out=p.grad.data)


def parameter_count(module, trainable_only: bool = False) -> int:
    """The number of scalars in ``module``'s unique parameters."""
    return module.num_parameters(trainable_only)


@contextlib.contextmanager
def eval_mode(module):
    """``with eval_mode(model):`` runs the block in eval mode and restores the module's mode after
    (also after an exception). Works on anything with ``training`` and ``train(mode)``, a torch
    module included."""
    was = module.training
    module.train(False)
    try:
        yield module
    finally:
        module.train(was)
