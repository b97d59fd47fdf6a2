"""Optimizers, learning-rate schedules and gradient clipping, shaped like ``torch.optim``."""

from . import lr_scheduler, schedules
from .adam import Adam, AdamW
from .clip import clip_grad_norm_
from .optimizer import Optimizer, param_groups_for_decay
from .schedules import constant_lr, warmup_cosine_lr
from .sgd import SGD

__all__ = [
    "Adam",
    "AdamW",
    "Optimizer",
    "SGD",
    "clip_grad_norm_",
    "constant_lr",
    "lr_scheduler",
    "param_groups_for_decay",
    "schedules",
    "warmup_cosine_lr",
]
