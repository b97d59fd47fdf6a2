"""The doctor: a preflight battery of checks, run in seconds before any real training.

``doctor(model, optimizer=..., scheduler=..., batcher=..., loss_fn=...)`` runs every check of
:mod:`tensorlite.debug.checks` that its arguments allow and returns a :class:`DoctorReport`: a
table of check, status, evidence, hint and docs link (``print(report)``), ``report.ok`` False
when any check failed. ``tensorlite doctor RUN_DIR_OR_CONFIG`` builds the model, optimizer,
schedule and batcher a training run would use and prints the same table (exit code 1 on a failure).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..train import build
from . import checks as C
from .checks import CheckResult

__all__ = ["DoctorReport", "doctor", "doctor_for_config", "CHECK_ORDER"]

#: The checks in the order the table lists them.
CHECK_ORDER = (
    "loss_at_init", "loss_sign", "attention_sums_to_one", "attention_scale", "causal_leak",
    "rope_rotation", "rope_values", "norms_finite_on_zeros", "residual", "prenorm", "init_scale",
    "gradient_flow", "overfit_one_batch", "graph_size", "optimizer_decay", "lr_schedule",
    "input_label_alignment",
)


@dataclass
class DoctorReport:
    """The doctor's findings: ``results`` (one :class:`CheckResult` per check, in table order)."""

    results: list = field(default_factory=list)
    title: str = "tensorlite doctor"

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings and skips do not count)."""
        return all(r.status not in ("fail", "error") for r in self.results)

    @property
    def failed(self) -> list:
        return [r for r in self.results if r.status in ("fail", "error")]

    def __getitem__(self, name: str) -> CheckResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def counts(self) -> dict:
        out: dict = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def to_dict(self) -> dict:
        return {"ok": self.ok, "results": [asdict(r) for r in self.results]}

    def table(self, width: int = 100) -> str:
        """The report as a fixed-width table; non-passing rows carry their hint and docs link."""
        c = self.counts()
        parts = [f"{c[k]} {label}" for k, label in (("pass", "passed"), ("fail", "failed"), ("error", "errored"),
                                                     ("warn", "warning" + ("s" if c.get("warn", 0) > 1 else "")),
                                                     ("skip", "skipped")) if c.get(k)]
        name_w = max([len(r.name) for r in self.results] + [5]) + 2
        lines = [f"{self.title}: {', '.join(parts)}", f"{'check':<{name_w}}{'status':<8}evidence"]
        pad = " " * (name_w + 8)
        for r in self.results:
            status = r.status if r.status in ("pass", "skip") else r.status.upper()
            lines.append(f"{r.name:<{name_w}}{status:<8}{r.evidence}")
            if r.status not in ("pass", "skip"):
                if r.hint:
                    lines.append(f"{pad}hint: {r.hint}")
                lines.append(f"{pad}docs: {r.doc_url}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _run(name, fn, *args, **kwargs) -> CheckResult:
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # a check that cannot run on this model says so in its row
        return CheckResult(name, "error", f"the check raised {type(e).__name__}: {e}",
                           "the model may not have the shape this check expects; run the check alone to see",
                           f"{C.DOC}#{name}")


def _skip(name, why) -> CheckResult:
    return CheckResult(name, "skip", why, "", f"{C.DOC}#{name}")


def doctor(model, optimizer=None, scheduler=None, *, config=None, batcher=None, loss_fn=None, batch=None,
           overfit_steps: int = 60, seed: int = 0, only=None) -> DoctorReport:
    """Run the preflight checks on ``model`` and return a :class:`DoctorReport`.

    Args:
        model: a tensorlite model mapping token ids ``(B, T)`` to logits ``(B, T, V)`` (a GPT).
        optimizer: checked with :func:`~tensorlite.debug.checks.optimizer_decay` (a fresh copy is
            stepped; the one given is not touched).
        scheduler: an LR scheduler, a function ``step -> lr``, or ``config`` (anything with ``lr``
            and ``warmup``, e.g. a ``TrainConfig``) for :func:`~tensorlite.debug.checks.lr_schedule`.
        batcher: a batcher with ``get_batch("train")`` (its state is restored): its batch feeds the
            model checks and :func:`~tensorlite.debug.checks.input_label_alignment`.
        loss_fn: ``loss_fn(logits (N, V), targets (N,))``; default ``F.cross_entropy``.
        batch: ``(x, y)`` to use instead of a batcher's (default: random tokens).
        overfit_steps: steps of the one-batch overfitting check.
        only: a list of check names to run (default: all).
    """
    b = C.make_batch(model, batch, batcher, seed=seed)
    rows = {
        "loss_at_init": lambda: C.loss_at_init(model, b, loss_fn=loss_fn),
        "loss_sign": lambda: C.loss_sign(loss_fn),
        "attention_sums_to_one": lambda: C.attention_sums_to_one(model, b),
        "attention_scale": lambda: C.attention_scale(model, b),
        "causal_leak": lambda: C.causal_leak(model),
        "rope_rotation": lambda: C.rope_rotation(model),
        "rope_values": lambda: C.rope_values(model),
        "norms_finite_on_zeros": lambda: C.norms_finite_on_zeros(model),
        "residual": lambda: C.residual(model, b),
        "prenorm": lambda: C.prenorm(model, b),
        "init_scale": lambda: C.init_scale(model, b),
        "gradient_flow": lambda: C.gradient_flow(model, b, loss_fn=loss_fn),
        "overfit_one_batch": lambda: C.overfit_one_batch(model, b, loss_fn=loss_fn, steps=overfit_steps),
        "graph_size": lambda: C.graph_size(model),
        "optimizer_decay": (lambda: C.optimizer_decay(optimizer)) if optimizer is not None else None,
        "lr_schedule": (lambda: C.lr_schedule(scheduler if scheduler is not None else config))
        if (scheduler is not None or config is not None) else None,
        "input_label_alignment": (lambda: C.input_label_alignment(batcher if batcher is not None else batch))
        if (batcher is not None or batch is not None) else None,
    }
    missing = {"optimizer_decay": "no optimizer given", "lr_schedule": "no scheduler or config given",
               "input_label_alignment": "no batcher or batch given"}
    results = []
    for name in CHECK_ORDER:
        if only is not None and name not in only:
            continue
        fn = rows[name]
        results.append(_skip(name, missing[name]) if fn is None else _run(name, fn))
    return DoctorReport(results)


def doctor_for_config(config, **kwargs) -> DoctorReport:
    """Build what ``train(config)`` would build (model, optimizer, schedule, batcher, loss, with
    the config's faults) without training or writing anything, and run :func:`doctor` on it."""
    parts = build(config)
    report = doctor(parts.model, parts.optimizer, parts.scheduler, batcher=parts.batcher,
                    loss_fn=parts.loss_fn, **kwargs)
    faults = ", ".join(config.faults) if config.faults else "none"
    report.title = (f"tensorlite doctor ({config.model.n_layers} layers, d_model {config.model.d_model}, "
                    f"faults: {faults})")
    return report
