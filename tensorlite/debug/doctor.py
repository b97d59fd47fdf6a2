"""The doctor: a preflight battery of checks, run in seconds before any real training.

``doctor(model, optimizer, scheduler, batch=..., loss_fn=...)`` works on any tensorlite or torch
language model: it builds the model's :func:`~tensorlite.debug.view.model_view` (what the blocks,
attention, norms, embeddings and head are, and how to get ``(B, T, V)`` logits), runs every check
of :data:`~tensorlite.debug.checks.REGISTRY` its arguments allow, and returns a
:class:`DoctorReport`: what was found, then a table of check, status, evidence, hint and docs link
(``print(report)``); ``report.ok`` is False when any check failed. ``tensorlite doctor
RUN_DIR_OR_CONFIG`` builds the model, optimizer, schedule and batcher a training run would use and
prints the same table; ``tensorlite doctor --model pkg.module:factory`` does it for a torch model.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from ..train import build
from . import checks as C
from .checks import REGISTRY, CheckResult, DoctorContext
from .native import is_torch
from .view import model_view

__all__ = ["CHECK_ORDER", "DoctorReport", "doctor", "doctor_for_config"]

#: The checks in the order the table lists them (the names of :data:`~tensorlite.debug.checks.REGISTRY`).
CHECK_ORDER = tuple(s.name for s in REGISTRY)

_VIEW_OPTIONS = ("blocks", "attention", "mlp", "norms", "final_norm", "token_embedding", "position_embedding",
                 "lm_head", "seq_len", "vocab_size", "logits_fn", "causal")

_MISSING = {"optimizer": "no optimizer given", "scheduler": "no scheduler or config given",
            "data": "no batch or batcher given",
            "loss_fn": "no loss_fn given (the model's own loss is checked by model_loss)"}


@dataclass
class DoctorReport:
    """The doctor's findings: ``results`` (one :class:`CheckResult` per check, in table order) and
    ``found`` (what the model view found, one line per part)."""

    results: list = field(default_factory=list)
    title: str = "tensorlite doctor"
    found: str = ""

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
        return {"ok": self.ok, "found": self.found.splitlines(), "results": [asdict(r) for r in self.results]}

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
        return (self.found + "\n\n" if self.found else "") + self.table()


def _error(name, e) -> CheckResult:
    return CheckResult(name, "error", f"the check raised {type(e).__name__}: {' '.join(str(e).split())}",
                       "the model may not have the shape this check expects; run the check alone to see",
                       C.check_url(name))


def _view_error(name, e) -> CheckResult:
    return CheckResult(name, "error", f"the model could not be run: {type(e).__name__}: {' '.join(str(e).split())}",
                       "the doctor calls model(x) with x a (batch, seq_len) tensor of token ids, as training does; "
                       "if the model needs more, pass logits_fn=lambda x: ... (and seq_len=, vocab_size=)",
                       C.check_url(name))


def _run(spec, ctx) -> CheckResult:
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            return spec.run(ctx)
    except Exception as e:  # a check that cannot run on this model says so in its row
        return _error(spec.name, e)


def doctor(model, optimizer=None, scheduler=None, *, config=None, batcher=None, loss_fn=None, batch=None,
           overfit_steps: int = 60, seed: int = 0, only=None, skip=None, **view_options) -> DoctorReport:
    """Run the preflight checks on ``model`` and return a :class:`DoctorReport`.

    Args:
        model: a tensorlite or torch language model, tokens ``(B, T)`` -> logits; its forward may
            return logits, ``(logits, loss)`` (nanoGPT: ``model(x, targets)``), a dict or an object
            with ``.logits`` (Hugging Face style).
        optimizer: a tensorlite or torch optimizer (deep copies are stepped; the one given is not
            touched), or a factory ``params -> optimizer``.
        scheduler: an LR scheduler (tensorlite or torch: LambdaLR, OneCycleLR, ...; a deep copy is
            stepped), a function ``step -> lr``, or ``config`` (anything with ``lr`` and ``warmup``).
        batcher / batch: the data: a batcher with ``get_batch("train")`` (its state is restored), a
            ``get_batch`` function, a DataLoader or ``(x, y)``; it feeds the model checks and
            :func:`~tensorlite.debug.checks.input_label_alignment` (default: random tokens).
        loss_fn: ``loss_fn(logits (N, V), targets (N,))`` in the model's framework; default: the
            model's own loss if its forward returns one, else the mean cross-entropy.
        overfit_steps: steps of the one-batch overfitting check.
        only / skip: check names to run / to leave out.
        view_options: overrides for the model view (``blocks="transformer.h"``, ``seq_len=256``,
            ``vocab_size=``, ``logits_fn=``, ``lm_head=``, ``causal=False`` ...).
    """
    unknown = set(view_options) - set(_VIEW_OPTIONS)
    if unknown:
        raise TypeError(f"doctor: unexpected keyword argument(s) {', '.join(sorted(unknown))}; "
                        f"model-view options are {', '.join(_VIEW_OPTIONS)}")
    names = [s.name for s in REGISTRY]
    for label, sel in (("only", only), ("skip", skip)):
        bad = [n for n in (sel or ()) if n not in names]
        if bad:
            raise ValueError(f"doctor: {label}: unknown check(s) {', '.join(bad)}; known: {', '.join(names)}")
    view, view_error = None, None
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            view = model_view(model, loss_fn=loss_fn, **view_options)
    except Exception as e:  # the model-free checks still run; the model checks say why they cannot
        view_error = e
    data = batcher if batcher is not None else batch
    model_batch = None
    if data is not None and view is not None:
        x, y = C.make_batch(batch=batch, batcher=batcher)
        model_batch = (x, y)
    ctx = DoctorContext(view=view, optimizer=optimizer, scheduler=scheduler if scheduler is not None else config,
                        batch=model_batch, data=data, loss_fn=loss_fn, overfit_steps=overfit_steps, seed=seed)
    with _few_threads(model):
        results = _run_all(ctx, view, view_error, only, skip)
    return DoctorReport(results, found=view.describe() if view is not None else "")


#: Below this many parameters the doctor's ops are too small to gain from BLAS / OpenMP threads,
#: and spinning threads on a busy machine can make them many times slower: one thread is used.
SMALL_MODEL = 5_000_000


@contextlib.contextmanager
def _few_threads(model):
    try:
        n = sum(int(np.prod(p.shape)) for p in model.parameters())
    except Exception:
        n = SMALL_MODEL
    if n >= SMALL_MODEL:
        yield
        return
    torch = sys.modules.get("torch") if is_torch(model) else None
    prev = torch.get_num_threads() if torch is not None else None
    try:
        if torch is not None:
            torch.set_num_threads(1)
        with threadpool_limits(1):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(prev)


def _run_all(ctx, view, view_error, only, skip):
    results = []
    for spec in REGISTRY:
        if (only is not None and spec.name not in only) or (skip is not None and spec.name in skip):
            continue
        lacking = [n for n in spec.needs if n != "model" and getattr(ctx, n if n != "scheduler" else "scheduler") is None]
        if lacking:
            results.append(CheckResult(spec.name, "skip", _MISSING[lacking[0]], "", C.check_url(spec.name)))
        elif "model" in spec.needs and view is None:
            results.append(_view_error(spec.name, view_error))
        else:
            results.append(_run(spec, ctx))
    return results


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
