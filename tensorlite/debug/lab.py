"""The lab: the catalogue's faults measured in real (short) runs and caught by the doctor.

:func:`short_run` trains the break-it lab's small model for a few seconds with faults switched on
(through ``TrainConfig(faults=...)``, the path ``tensorlite train --faults`` takes);
:func:`detection_matrix` runs the doctor on every fault and on the healthy configurations
(docs/bugs/index.md shows its output).
"""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from .. import faults as _faults
from .. import nn
from ..runlog import read_jsonl
from ..train import NonFiniteLossError, TrainConfig, Trainer, build
from .doctor import CHECK_ORDER, doctor_for_config
from .probes import Probes

__all__ = ["DetectionMatrix", "MATRIX_BASE", "SHORT_RUN", "ShortRun", "bitlinear_head", "detection_matrix",
           "short_run", "train_config"]


def train_config(faults=(), base=None, **changes) -> TrainConfig:
    """A :class:`~tensorlite.train.TrainConfig` with ``faults`` switched on and the architecture
    they need (``pos="rope"`` for the RoPE faults, ...): ``base`` (default ``TrainConfig()``)
    updated with ``changes``."""
    faults = _faults.as_names(faults)
    cfg = base if base is not None else TrainConfig()
    return cfg.replace(**{**_faults.requirements(faults), **changes, "faults": tuple(cfg.faults) + faults})


def bitlinear_head(model):
    """Make ``model.lm_head`` a :class:`~tensorlite.nn.BitLinear` like the model's other layers
    (with the latent-scale fault when the other BitLinears carry it); returns the model.

    tensorlite's GPT keeps its LM head dense even with ``linear="bitlinear"`` (as BitNet does); the
    sweep issue's model evidently quantised it too, which is what lets ``bitlinear_latent_scale``
    reach the logits (docs/bugs/sweep-issue.md measures both). The head keeps its weight
    Parameter (GPT-2 init, N(0, 0.02)), so an optimizer built on the model still updates it.
    """
    cfg = model.config
    head = nn.BitLinear(cfg.d_model, cfg.vocab_size, bias=False)
    head.weight = model.lm_head.weight
    if any(isinstance(m, _faults.layers.FaultyBitLinear) for m in model.modules()):
        _faults.inject(head, "bitlinear_latent_scale")
    model.lm_head = head
    return model


# ------------------------------------------------------------------------------------------------
# short runs: the symptoms, measured
# ------------------------------------------------------------------------------------------------
#: The tiny run :func:`short_run` trains: the break-it lab's model (2 layers, width 64, RoPE) on
#: sequences of 32 characters, 8 per batch, so that 100 steps take seconds.
SHORT_RUN = dict(seq_len=32, d_model=64, n_layers=2, n_heads=4, pos="rope", batch_size=8, lr=1e-2, lr_min=1e-3,
                 warmup=10, clip=1.0, eval_interval=0, eval_batches=4, ckpt_interval=0,
                 corpus_max_chars=100_000, seed=0, progress=False)


@dataclass
class ShortRun:
    """What :func:`short_run` measured: per-step ``losses`` and ``grad_norms`` (pre-clip), the last
    ``val_loss``, ``nan_step`` (None when the run finished), the metrics ``rows`` (what
    :func:`~tensorlite.debug.diagnose` reads, header first), the trained ``model`` and ``seconds``."""

    losses: list
    grad_norms: list
    val_loss: float | None
    nan_step: int | None
    rows: list
    model: object
    seconds: float

    @property
    def final_loss(self) -> float:
        """Mean training loss of the last 10 steps (one batch is noisy)."""
        tail = [v for v in self.losses[-10:] if math.isfinite(v)]
        return sum(tail) / len(tail) if tail else float("nan")


def short_run(faults=(), steps: int = 100, *, prepare=None, probe_interval: int = 0, **changes) -> ShortRun:
    """Train :data:`SHORT_RUN` (with ``changes``) for ``steps`` steps with ``faults`` switched on,
    through ``TrainConfig(faults=...)``, in a temporary folder (nothing is kept on disk); BLAS on one
    thread. A run stopped by a non-finite loss returns what it logged, with ``nan_step`` set.

    ``prepare(model)``, when given, edits the model once it is built, before the first step (it must
    keep the model's Parameters, which the optimizer already holds; e.g. :func:`bitlinear_head`).
    ``probe_interval`` > 0 adds :class:`~tensorlite.debug.Probes` at that interval.
    """
    base = TrainConfig().replace(**{**SHORT_RUN, "steps": steps})
    cfg = train_config(faults, base=base, **changes)
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1), \
            warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        cfg = cfg.replace(out_dir=tmp, name="run")
        parts = build(cfg)
        if prepare is not None:
            parts.model = prepare(parts.model)
        trainer = Trainer(cfg, parts=parts, callbacks=[Probes(probe_interval)] if probe_interval else [])
        t0 = time.perf_counter()
        nan_step = None
        try:
            trainer.fit()
        except NonFiniteLossError as e:
            nan_step = e.step
        seconds = time.perf_counter() - t0
        rows = read_jsonl(trainer.metrics_path)
    steps_ = [r for r in rows if "event" not in r]
    return ShortRun(
        losses=[r["loss"] for r in steps_], grad_norms=[r["grad_norm"] for r in steps_],
        val_loss=trainer.val_loss, nan_step=nan_step, rows=rows, model=trainer.model, seconds=seconds,
    )


# ------------------------------------------------------------------------------------------------
# the detection matrix
# ------------------------------------------------------------------------------------------------
#: The small run configuration the matrix builds its models, optimizers and batchers from.
MATRIX_BASE = dict(seq_len=16, d_model=32, n_layers=2, n_heads=4, steps=100, batch_size=8, warmup=10,
                   corpus_max_chars=20_000, eval_interval=0, ckpt_interval=0, progress=False)

_MARK = {"pass": ".", "fail": "X", "warn": "w", "skip": "-", "error": "E"}


@dataclass
class DetectionMatrix:
    """Doctor statuses for each row (a fault, or a healthy configuration) and each check.

    ``status[row][check]`` is "pass", "fail", "warn", "skip" or "error"; ``evidence`` the same for
    the checks' evidence text. A fault is *caught* when at least one check fails or warns on it.
    """

    checks: tuple
    status: dict
    evidence: dict
    healthy_rows: tuple

    def flagged(self, row: str) -> tuple:
        """The checks that fail or warn on ``row``."""
        return tuple(c for c in self.checks if self.status[row][c] in ("fail", "warn", "error"))

    def caught(self, fault: str) -> bool:
        return bool(self.flagged(fault))

    @property
    def faults(self) -> tuple:
        return tuple(r for r in self.status if r not in self.healthy_rows)

    @property
    def uncaught(self) -> tuple:
        return tuple(f for f in self.faults if not self.caught(f))

    @property
    def healthy_trips(self) -> dict:
        """``{healthy row: checks it trips}`` (empty when every healthy row passes)."""
        return {r: self.flagged(r) for r in self.healthy_rows if self.flagged(r)}

    def table(self) -> str:
        """Rows x numbered check columns (``X`` fail, ``w`` warn, ``.`` pass, ``-`` skip), the
        checks that flag each row, and the column legend."""
        rows = list(self.status)
        w = max(len(r) for r in rows) + 2
        nums = "".join(f"{i + 1:>3}" for i in range(len(self.checks)))
        lines = [f"{'':<{w}}{nums}   flagged by"]
        for r in rows:
            marks = "".join(f"{_MARK[self.status[r][c]]:>3}" for c in self.checks)
            lines.append(f"{r:<{w}}{marks}   {', '.join(self.flagged(r)) or '-'}")
        legend = [f"{i + 1} {c}" for i, c in enumerate(self.checks)]
        lines.append("")
        lines.append("checks: " + ", ".join(legend))
        lines.append("X fail, w warn, . pass, - skip (not applicable)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def detection_matrix(faults=None, *, base=None, healthy=None, overfit_steps: int = 30) -> DetectionMatrix:
    """Run the doctor (every check) on a small run configuration with each fault switched on
    alone, and on the healthy configurations, through ``TrainConfig(faults=...)`` and
    :func:`~tensorlite.debug.doctor_for_config` (the same path as ``tensorlite doctor``).

    Args:
        faults: fault names (default: all of :data:`FAULTS`).
        base: a ``TrainConfig`` to start from (default: :data:`MATRIX_BASE`, 2 layers of width 32,
            with ``pos="rope"`` and ``norm="rmsnorm"`` so the RoPE and RMSNorm faults apply).
        healthy: ``{row name: TrainConfig}`` of fault-free configurations (default: the base, and
            the base with ``linear="bitlinear"``, the architecture of ``bitlinear_latent_scale``).
        overfit_steps: steps of the doctor's one-batch overfitting check.
    """

    if base is None:
        base = TrainConfig().replace(**MATRIX_BASE, pos="rope", norm="rmsnorm")
    faults = _faults.names() if faults is None else _faults.as_names(faults)
    if healthy is None:
        healthy = {"healthy": base}
        for f in faults:
            need = _faults.requirements(f)
            changed = {k: v for k, v in need.items() if base.get(k) != v}
            if changed:
                label = "healthy (" + ", ".join(f"{k}={v}" for k, v in changed.items()) + ")"
                healthy[label] = base.replace(**changed)
    configs = dict(healthy)
    for f in faults:
        configs[f] = train_config((f,), base=base)
    status, evidence = {}, {}
    # faulty models divide by zero and overflow on purpose: the checks report it, NumPy need not
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        for row, cfg in configs.items():
            report = doctor_for_config(cfg, overfit_steps=overfit_steps)
            status[row] = {r.name: r.status for r in report.results}
            evidence[row] = {r.name: r.evidence for r in report.results}
    return DetectionMatrix(tuple(CHECK_ORDER), status, evidence, tuple(healthy))

