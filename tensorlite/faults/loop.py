"""Faults of the training loop's parts: the loss, the optimizer, the schedule and the batches.

* ``ce_sign_flip`` (answer key, bug 7): :func:`flip_loss` wraps a loss and returns its negative,
  the mean log-probability with its minus sign lost; training then *maximises* the cross-entropy.
* ``adamw_decay_on_moment`` (bug 8): :class:`AdamWDecayOnMoment` adds the decay term to the first
  moment, ``m -= lr * wd * p`` after the update, instead of shrinking ``p``. The weights are never
  decayed directly, and the polluted moment, opposite in sign to the weights, pushes them *away*
  from zero on the next steps.
* ``no_warmup`` (course, failure 2): the warmup-cosine schedule with ``warmup_steps = 0``.
* ``bos_pad_misalignment`` (sweep issue, bug 5): :class:`MisalignedBatcher` prepends a BOS to the
  inputs (dropping the last input) and appends a pad to the labels (dropping the last label):
  ``x' = [bos, x0, ..., x(T-2)]``, ``y' = [y0, ..., y(T-2), pad]``, so position ``t`` sees token
  ``t - 1`` and is asked for token ``t + 1``: two steps ahead of its input.
"""

from __future__ import annotations

import math

from .. import functional as F
from ..creation import full_like
from ..optim import AdamW
from ..optim.adam import adam_update
from ..optim.lr_scheduler import WarmupCosine
from ._swap import become


def flip_loss(loss_fn):
    """``loss_fn`` with its sign flipped (``ce_sign_flip``)."""

    def ce_sign_flipped(logits, targets):
        return -loss_fn(logits, targets)  # ce_sign_flip; healthy: loss_fn(logits, targets)

    ce_sign_flipped.fault = "ce_sign_flip"
    ce_sign_flipped.__wrapped__ = loss_fn
    return ce_sign_flipped


class AdamWDecayOnMoment(AdamW):
    """:class:`~tensorlite.optim.AdamW` with the decay applied to the first moment."""

    def _update(self, p, grad, group, state) -> None:
        decay = group["lr"] * group["weight_decay"]
        adam_update(p, grad, group, state)  # healthy: p.data *= 1 - decay first, then the update
        if decay != 0:
            state["exp_avg"] -= decay * p.data  # adamw_decay_on_moment


def adamw_decay_on_moment(optimizer: AdamW) -> None:
    become(optimizer, AdamWDecayOnMoment)


def no_warmup(scheduler: WarmupCosine) -> None:
    """Warmup 0 from now on, and the current step's LR rewritten to match."""
    if not isinstance(scheduler, WarmupCosine):
        raise TypeError(f"inject: 'no_warmup' rewrites a WarmupCosine scheduler, got {type(scheduler).__name__}")
    scheduler.warmup_steps = 0  # healthy: TrainConfig's warmup (50 steps by default)
    for group, lr in zip(scheduler.optimizer.param_groups, scheduler.get_lr()):
        group["lr"] = lr
    scheduler._last_lr = [g["lr"] for g in scheduler.optimizer.param_groups]


class MisalignedBatcher:
    """A batcher whose batches are shifted as in ``bos_pad_misalignment``; everything else (state,
    splits, attributes) is the wrapped batcher's. A character vocabulary has no special tokens:
    token 0 stands in for BOS and pad unless ids are given."""

    def __init__(self, batcher, bos_id: int = 0, pad_id: int = 0) -> None:
        self.batcher, self.bos_id, self.pad_id = batcher, int(bos_id), int(pad_id)

    def get_batch(self, split: str = "train", batch_size: int | None = None):
        x, y = self.batcher.get_batch(split, batch_size)
        bos = full_like(x[:, :1], self.bos_id)
        pad = full_like(y[:, :1], self.pad_id)
        # bos_pad_misalignment; healthy: x, y as the batcher made them (y is x shifted by one)
        return F.cat([bos, x[:, :-1]], dim=1), F.cat([y[:, :-1], pad], dim=1)

    def state_dict(self) -> dict:
        return self.batcher.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.batcher.load_state_dict(state)

    def __getattr__(self, name):
        return getattr(self.__dict__["batcher"], name)

    def __repr__(self) -> str:
        return f"MisalignedBatcher({self.batcher!r}, bos_id={self.bos_id}, pad_id={self.pad_id})"


def go_guide_lr(call: int, *, base_lr: float, warmup_steps: int) -> float:
    """The Go troubleshooting guide's ``WarmupScheduler.GetLR``, ported verbatim *with its bug*,
    for comparison only: its cosine progress is ``(step - warmup) / 1000.0`` whatever the run's
    length, so past 1000 decay steps the cosine turns around and the LR climbs back to
    ``base_lr`` every 2000 steps. ``call`` counts ``GetLR`` calls from 0 (``GetLR`` increments its
    step before computing, so call 0 uses step 1). The healthy schedule is
    :func:`tensorlite.optim.schedules.warmup_cosine_lr`."""
    step = call + 1
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    progress = (step - warmup_steps) / 1000.0  # healthy: / (total_steps - warmup_steps)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))

