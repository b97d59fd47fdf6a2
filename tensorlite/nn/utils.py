"""Helpers around modules, as ``torch.nn.utils``."""

from __future__ import annotations

import contextlib

from ..optim.clip import clip_grad_norm_ as _clip_grad_norm
from .checkpoint import checkpoint  # noqa: F401  (torch.utils.checkpoint lives here for us)


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0) -> float:
    """Scale gradients so their global norm is at most ``max_norm``; returns the pre-clip norm.

    The implementation lives in :func:`tensorlite.optim.clip_grad_norm_`.
    """
    if norm_type != 2.0:
        raise ValueError(f"clip_grad_norm_: only norm_type=2 is supported, got {norm_type}")
    return _clip_grad_norm(parameters, max_norm)


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
