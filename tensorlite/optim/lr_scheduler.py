"""Scheduler objects that set ``group["lr"]`` on an optimizer, with torch's semantics.

Building a scheduler sets the LR of step 0; each ``scheduler.step()``, called after
``optimizer.step()``, moves every group to the LR of the next step::

    opt = optim.AdamW(model.parameters(), lr=3e-4)
    sched = optim.lr_scheduler.WarmupCosine(opt, warmup_steps=100, total_steps=1000)
    for step in range(1000):
        ...  # forward, backward
        opt.step()          # uses sched.get_last_lr()
        sched.step()
"""

from __future__ import annotations

import bisect
import math
import types

from .schedules import warmup_cosine_lr

__all__ = ["CosineAnnealingLR", "ExponentialLR", "LRScheduler", "LambdaLR", "LinearLR", "MultiStepLR", "StepLR",
           "WarmupCosine"]


class LRScheduler:
    """Base class: subclasses implement :meth:`get_lr` as a closed form of ``self.last_epoch``
    (the number of ``step()`` calls so far) and ``self.base_lrs`` (each group's initial LR)."""

    def __init__(self, optimizer, last_epoch: int = -1) -> None:
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param 'initial_lr' is not specified in param_groups[{i}] when resuming "
                        f"a scheduler with last_epoch={last_epoch}"
                    )
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self) -> list[float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step and write the new LR into every parameter group."""
        self.last_epoch += 1
        lrs = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The LR of each group as set by the last :meth:`step` (or by construction)."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """Everything but the optimizer (JSON-serialisable for the built-in schedulers)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore :meth:`state_dict`, and put the restored LR back into the optimizer's groups."""
        self.__dict__.update(state_dict)
        last = self.__dict__.get("_last_lr")
        if last is not None:
            if len(last) != len(self.optimizer.param_groups):
                raise ValueError(
                    f"load_state_dict: the saved scheduler drove {len(last)} parameter group(s), "
                    f"this optimizer has {len(self.optimizer.param_groups)}"
                )
            for group, lr in zip(self.optimizer.param_groups, last):
                group["lr"] = lr


class LambdaLR(LRScheduler):
    """``lr = initial_lr * lr_lambda(step)``, one function or a list with one per group (as
    ``torch.optim.lr_scheduler.LambdaLR``)."""

    def __init__(self, optimizer, lr_lambda, last_epoch: int = -1) -> None:
        n = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n:
                raise ValueError(f"LambdaLR: expected {n} lr_lambdas (one per group), got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * fn(self.last_epoch) for fn, base in zip(self.lr_lambdas, self.base_lrs)]

    def state_dict(self) -> dict:
        # Functions are not saved (as torch); a callable object's attributes are.
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [
            None if isinstance(fn, types.FunctionType) else dict(fn.__dict__) for fn in self.lr_lambdas
        ]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        lambdas = state.pop("lr_lambdas", None) or []
        super().load_state_dict(state)
        for fn, saved in zip(self.lr_lambdas, lambdas):
            if saved is not None:
                fn.__dict__.update(saved)


class WarmupCosine(LRScheduler):
    """Linear warmup to each group's initial LR, cosine decay to ``lr_min`` over
    ``total_steps - warmup_steps`` steps, then ``lr_min``: :func:`~tensorlite.optim.schedules.
    warmup_cosine_lr` with ``lr_max`` = the group's LR at construction. ``lr_min`` is a float or
    one per group."""

    def __init__(self, optimizer, warmup_steps: int, total_steps: int, lr_min=0.0,
                 last_epoch: int = -1) -> None:
        n = len(optimizer.param_groups)
        mins = list(lr_min) if isinstance(lr_min, (list, tuple)) else [float(lr_min)] * n
        if len(mins) != n:
            raise ValueError(f"WarmupCosine: expected {n} lr_min values (one per group), got {len(mins)}")
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.lr_mins = mins
        for group, lo in zip(optimizer.param_groups, mins):
            # Validate now rather than at the first step.
            warmup_cosine_lr(0, lr_max=group.get("initial_lr", group["lr"]), warmup_steps=self.warmup_steps,
                             total_steps=self.total_steps, lr_min=lo)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [
            warmup_cosine_lr(self.last_epoch, lr_max=base, warmup_steps=self.warmup_steps,
                             total_steps=self.total_steps, lr_min=lo)
            for base, lo in zip(self.base_lrs, self.lr_mins)
        ]


# torch computes the next four recursively from the previous LR (a "chainable" form); the closed
# forms below give the same values (to rounding) as long as nothing else writes group["lr"].


class StepLR(LRScheduler):
    """``lr = initial_lr * gamma ** (step // step_size)`` (as torch)."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        if int(step_size) < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """``lr = initial_lr * gamma ** (number of milestones <= step)`` (as torch)."""

    def __init__(self, optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.milestones, self.gamma = sorted(int(m) for m in milestones), float(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        k = bisect.bisect_right(self.milestones, self.last_epoch)
        return [base * self.gamma**k for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """``lr = initial_lr * gamma ** step``."""

    def __init__(self, optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = float(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * self.gamma**self.last_epoch for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (initial_lr - eta_min) * (1 + cos(pi * step / T_max)) / 2``: half a cosine
    from the initial LR down to ``eta_min`` over ``T_max`` steps; past ``T_max`` it rises again
    (the cosine continues, as in torch; stop stepping or use :class:`WarmupCosine` to hold it)."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        if int(T_max) < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        c = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * c for base in self.base_lrs]


class LinearLR(LRScheduler):
    """The LR factor moves linearly from ``start_factor`` to ``end_factor`` over ``total_iters``
    steps, then stays (a linear warmup with the defaults ``1/3 -> 1`` over 5 steps, as torch)."""

    def __init__(self, optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5,
                 last_epoch: int = -1) -> None:
        if not 0 < start_factor <= 1 or not 0 <= end_factor <= 1:
            raise ValueError(
                f"LinearLR: start_factor must be in (0, 1] and end_factor in [0, 1], got {start_factor}, {end_factor}"
            )
        if int(total_iters) < 1:
            raise ValueError(f"LinearLR: total_iters must be >= 1, got {total_iters}")
        self.start_factor, self.end_factor = float(start_factor), float(end_factor)
        self.total_iters = int(total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t = min(self.last_epoch, self.total_iters)
        f = self.start_factor + (self.end_factor - self.start_factor) * t / self.total_iters
        return [base * f for base in self.base_lrs]
