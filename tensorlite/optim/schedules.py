"""Learning-rate schedules as plain functions of the step (0-based optimizer step index).

:mod:`tensorlite.optim.lr_scheduler` wraps them in torch-style scheduler objects.
"""

from __future__ import annotations

import math


def constant_lr(step: int, lr: float) -> float:
    """The same ``lr`` at every step."""
    if step < 0:
        raise ValueError(f"constant_lr: step must be >= 0, got {step}")
    return float(lr)


def warmup_cosine_lr(step: int, *, lr_max: float, warmup_steps: int, total_steps: int,
                     lr_min: float = 0.0) -> float:
    """Linear warmup, then a cosine decay from ``lr_max`` to ``lr_min``, then ``lr_min``.

    - ``step < warmup_steps``: ``lr_max * (step + 1) / warmup_steps`` (``lr_max / warmup_steps``
      at step 0, never 0, so no step is wasted);
    - ``warmup_steps <= step <= total_steps``: with ``progress = (step - warmup_steps) /
      (total_steps - warmup_steps)``, ``lr_min + (lr_max - lr_min) * (1 + cos(pi * progress)) / 2``
      (``lr_max`` at ``warmup_steps``, ``lr_min`` at ``total_steps``);
    - ``step > total_steps``: ``lr_min``.

    The decay is spread over the real number of decay steps, so it is non-increasing after the
    warmup and never goes below ``lr_min``. ``warmup_steps=0`` starts at ``lr_max``.
    """
    if step < 0:
        raise ValueError(f"warmup_cosine_lr: step must be >= 0, got {step}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_cosine_lr: warmup_steps must be >= 0, got {warmup_steps}")
    if total_steps < warmup_steps:
        raise ValueError(
            f"warmup_cosine_lr: total_steps ({total_steps}) must be >= warmup_steps ({warmup_steps})"
        )
    if lr_min > lr_max:
        raise ValueError(f"warmup_cosine_lr: lr_min ({lr_min}) must be <= lr_max ({lr_max})")
    if step < warmup_steps:
        return lr_max * ((step + 1) / warmup_steps)  # exactly lr_max at the last warmup step
    decay_steps = total_steps - warmup_steps
    if step >= total_steps:  # also covers decay_steps == 0
        return float(lr_min)
    progress = (step - warmup_steps) / decay_steps
    lr = lr_min + (lr_max - lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return min(max(lr, float(lr_min)), float(lr_max))  # rounding must not leave [lr_min, lr_max]

