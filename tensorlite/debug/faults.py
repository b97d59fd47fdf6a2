"""The fault catalogue: every bug of the seed documents, switchable by name, with the check that catches it.

Each :class:`Fault` records where the bug comes from (``seed``), the component it breaks, how to
switch it on, the symptom the seed describes, and the doctor checks (or the diagnosis) that
catch it. Faults are switched on through the same configuration a user sets, never by patching
code, and each is resolved when the object is built, so the healthy path never tests for one:

* model faults: ``GPTConfig(faults=("softmax_over_queries",))``;
* loop faults: ``ce_sign_flip`` (the loss), ``adamw_decay_on_moment`` (``AdamW(decay_on_moment=True)``),
  ``no_warmup`` (warmup 0), ``bos_pad_misalignment`` (``TokenBatcher(bos_pad_misalignment=True)``);
* any of them: ``TrainConfig(faults=(...))``, which routes each name to its component, or
  :func:`inject` on the object itself.

``tensorlite doctor --list-faults`` prints :func:`table`; :func:`detection_matrix` runs the
doctor on every fault and on the healthy model (docs/bugs/index.md shows its output).
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
import warnings
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from .. import functional as F
from .. import nn, optim
from ..data import TokenBatcher
from ..train import NonFiniteLossError, TrainConfig, Trainer, read_metrics
from .doctor import CHECK_ORDER, doctor_for_config

__all__ = [
    "FAULTS",
    "SEEDS",
    "SWEEP_ISSUE",
    "DetectionMatrix",
    "Fault",
    "ShortRun",
    "bitlinear_head",
    "detection_matrix",
    "get",
    "inject",
    "loss_fn",
    "names",
    "requirements",
    "short_run",
    "split",
    "table",
    "train_config",
]

#: The documents the faults come from (``/work/shared/seeds`` in the project's history).
SEEDS = {
    "000": "answer key of a buggy-transformer exercise (PyTorch): 8 bugs, though its header says 7",
    "002": "course page 'three engineered failures' and its 6-panel dashboard",
    "003": "issue 'impossible loss 22.3 > ln(32768)': six bugs in a BitLinear sweep",
}


@dataclass(frozen=True)
class Fault:
    """One catalogued bug.

    Attributes:
        name: the switch's name.
        seed: the seed document (a key of :data:`SEEDS`) and where in it.
        component: the part of the system it breaks.
        target: what takes the switch: ``"GPTConfig"``, ``"loss"``, ``"AdamW"``, ``"schedule"``
            or ``"TokenBatcher"`` (``TrainConfig(faults=...)`` takes all of them).
        switch: how to switch it on, as code.
        symptom: what the seed says it does.
        caught_by: doctor checks that fail (or warn) on it; ``"diagnose:NAME"`` is a finding of
            :func:`tensorlite.debug.diagnose` on a run's metrics.
        requires: config fields the fault needs, e.g. ``(("pos", "rope"),)``.
        page: the docs page and anchor with its measurements.
    """

    name: str
    seed: str
    component: str
    target: str
    switch: str
    symptom: str
    caught_by: tuple
    requires: tuple = ()
    page: str = ""

    @property
    def seed_id(self) -> str:
        return self.seed.split()[0]

    @property
    def checks(self) -> tuple:
        """The doctor checks among :attr:`caught_by` (without the ``diagnose:`` findings)."""
        return tuple(c for c in self.caught_by if not c.startswith("diagnose:"))

    @property
    def diagnoses(self) -> tuple:
        """The :func:`~tensorlite.debug.diagnose` findings among :attr:`caught_by`."""
        return tuple(c.split(":", 1)[1] for c in self.caught_by if c.startswith("diagnose:"))


def _gpt(name, **req):
    extra = "".join(f", {k}={v!r}" for k, v in req.items())
    return f'GPTConfig(..., faults=("{name}",){extra})'


_KEY, _COURSE, _ISSUE = "bugs/answer-key.md", "bugs/course.md", "bugs/sweep-issue.md"

_ENTRIES = [
    # ---- seed 000: the answer key ------------------------------------------------------------
    Fault("attn_scale_multiply", "000 bug 1", "attention", "GPTConfig", _gpt("attn_scale_multiply"),
          "scores multiplied by sqrt(d_k) instead of divided: near one-hot attention, vanishing "
          "gradients through attention, loss flat or NaN",
          ("attention_scale",), (), f"{_KEY}#attn_scale_multiply"),
    Fault("softmax_over_queries", "000 bug 2", "attention", "GPTConfig", _gpt("softmax_over_queries"),
          "softmax over the query axis (dim=-2): weights sum to 1 over queries, not keys; nonsensical outputs",
          ("attention_sums_to_one",), (), f"{_KEY}#softmax_over_queries"),
    Fault("rope_on_values", "000 bug 3", "rope", "GPTConfig", _gpt("rope_on_values", pos="rope"),
          "RoPE applied to V as well as Q and K: values become position-dependent; trains, but worse",
          ("rope_values",), (("pos", "rope"),), f"{_KEY}#rope_on_values"),
    Fault("rmsnorm_no_eps", "000 bug 4", "norm", "GPTConfig", _gpt("rmsnorm_no_eps", norm="rmsnorm"),
          "RMSNorm without eps: NaN/Inf 'with certain inputs' (very small or all-zero rows)",
          ("norms_finite_on_zeros",), (("norm", "rmsnorm"),), f"{_KEY}#rmsnorm_no_eps"),
    Fault("rope_sign_flip", "000 bug 5", "rope", "GPTConfig", _gpt("rope_sign_flip", pos="rope"),
          "RoPE rotation signs flipped: R(m)^T R(n) = R(n-m) fails; the model 'fails to learn positions'",
          ("rope_rotation",), (("pos", "rope"),), f"{_KEY}#rope_sign_flip"),
    Fault("no_ffn_residual", "000 bug 6", "block", "GPTConfig", _gpt("no_ffn_residual"),
          "FFN output not added to its input: gradients vanish in deep models, loss does not decrease",
          ("residual",), (), f"{_KEY}#no_ffn_residual"),
    Fault("ce_sign_flip", "000 bug 7", "loss", "loss",
          'TrainConfig(faults=("ce_sign_flip",)) or faults.inject(F.cross_entropy, "ce_sign_flip")',
          "cross-entropy without its minus sign: the loss is negative and falls toward -inf",
          ("loss_sign", "loss_at_init"), (), f"{_KEY}#ce_sign_flip"),
    Fault("adamw_decay_on_moment", "000 bug 8", "optimizer", "AdamW",
          "AdamW(..., decay_on_moment=True)",
          "weight decay added to the first moment instead of the weights: unstable or slower training, "
          "large weights not penalised",
          ("optimizer_decay",), (), f"{_KEY}#adamw_decay_on_moment"),
    # ---- seed 002: the course page -----------------------------------------------------------
    Fault("init_x100", "002 failure 1", "init", "GPTConfig", _gpt("init_x100"),
          "weights initialised 100x too large: activations 50-200x healthy at step 0, pre-clip grad norm "
          "1e4-1e6 within 5 steps, loss NaN within 5-30 steps",
          ("init_scale", "loss_at_init", "diagnose:bad_init"), (), f"{_COURSE}#init_x100"),
    Fault("no_warmup", "002 failure 2", "schedule", "schedule",
          'TrainConfig(faults=("no_warmup",)) (or warmup=0)',
          "LR starts at lr_max: grad-norm spike 10-50x at steps 1-5, V-shaped loss, recovery by ~200 steps",
          ("lr_schedule", "diagnose:missing_warmup"), (), f"{_COURSE}#no_warmup"),
    Fault("causal_mask_open", "002 failure 3", "attention", "GPTConfig", _gpt("causal_mask_open"),
          "causal mask all ones: train loss below 0.1 within 100 steps, val tracks train, many dead heads",
          ("causal_leak", "diagnose:broken_causal_mask"), (), f"{_COURSE}#causal_mask_open"),
    # ---- seed 003: the sweep issue -----------------------------------------------------------
    Fault("no_attn_residual", "003 bug 1", "block", "GPTConfig", _gpt("no_attn_residual"),
          "attention output not added to its input: signal destroyed per layer",
          ("residual",), (), f"{_ISSUE}#no_attn_residual"),
    Fault("no_prenorm", "003 bug 2", "block", "GPTConfig", _gpt("no_prenorm"),
          "no normalisation before attention and FFN: activation variance explodes",
          ("prenorm",), (), f"{_ISSUE}#no_prenorm"),
    Fault("rope_pairing_mismatch", "003 bug 3", "rope", "GPTConfig", _gpt("rope_pairing_mismatch", pos="rope"),
          "RoPE frequencies laid out for the other pairing convention: positional encoding broken",
          ("rope_rotation",), (("pos", "rope"),), f"{_ISSUE}#rope_pairing_mismatch"),
    Fault("bitlinear_latent_scale", "003 bug 4", "bitlinear", "GPTConfig",
          _gpt("bitlinear_latent_scale", linear="bitlinear"),
          "BitLinear output scale from the latent instead of the ternary weights: wrong variance estimate",
          ("init_scale",), (("linear", "bitlinear"),), f"{_ISSUE}#bitlinear_latent_scale"),
    Fault("bos_pad_misalignment", "003 bug 5", "data", "TokenBatcher",
          "TokenBatcher(..., bos_pad_misalignment=True, bos_id=..., pad_id=...)",
          "BOS prepended to the inputs and pad appended to the labels: systematic target noise",
          ("input_label_alignment",), (), f"{_ISSUE}#bos_pad_misalignment"),
    Fault("per_token_loop", "003 bug 6", "embedding", "GPTConfig", _gpt("per_token_loop"),
          "one call per token in a Python loop where one batched call serves: severe slowdown",
          ("graph_size",), (), f"{_ISSUE}#per_token_loop"),
]

#: name -> :class:`Fault`, in catalogue order (seed 000, 002, 003).
FAULTS: dict = {f.name: f for f in _ENTRIES}

#: The six bugs of the sweep issue (seed 003), switched on together they are its model.
SWEEP_ISSUE = ("no_attn_residual", "no_prenorm", "rope_pairing_mismatch", "bitlinear_latent_scale",
               "bos_pad_misalignment", "per_token_loop")


def names() -> tuple:
    """Every fault name, in catalogue order."""
    return tuple(FAULTS)


def get(name: str) -> Fault:
    """The :class:`Fault` called ``name``; ValueError listing the known names otherwise."""
    try:
        return FAULTS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown fault {name!r}; known faults: {', '.join(FAULTS)}") from None


def requirements(faults) -> dict:
    """The config fields the faults need, e.g. ``{"pos": "rope", "linear": "bitlinear"}``."""
    out: dict = {}
    for n in _names(faults):
        for field_, value in get(n).requires:
            out[field_] = value
    return out


def split(faults) -> dict:
    """``{target: (names...)}``: which component each fault goes to (see :attr:`Fault.target`)."""
    out: dict = {}
    for n in _names(faults):
        out.setdefault(get(n).target, ())
        out[get(n).target] += (n,)
    return out


def _names(faults) -> tuple:
    if isinstance(faults, str):
        faults = (faults,)
    faults = tuple(faults)
    for n in faults:
        get(n)
    return faults


def table() -> str:
    """The catalogue as a fixed-width table: name, seed, component, switch target, caught by."""
    head = ("fault", "seed", "component", "switch", "caught by")
    rows = [(f.name, f.seed, f.component, f.target, ", ".join(f.caught_by)) for f in FAULTS.values()]
    w = [max(len(r[i]) for r in rows + [head]) for i in range(4)]
    lines = [f"{len(FAULTS)} faults from {len(SEEDS)} seeds (see docs/bugs/index.md)"]
    lines.append("  ".join(h.ljust(w[i]) if i < 4 else h for i, h in enumerate(head)))
    for r in rows:
        lines.append("  ".join(c.ljust(w[i]) if i < 4 else c for i, c in enumerate(r)))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# switching faults on
# ------------------------------------------------------------------------------------------------
def loss_fn(faults=()):
    """The training loss ``fn(logits (N, V), targets (N,))``: ``F.cross_entropy``, or its negative
    under ``ce_sign_flip`` (what ``TrainConfig(faults=("ce_sign_flip",))`` trains with)."""
    return _flipped(F.cross_entropy) if "ce_sign_flip" in _names(faults) else F.cross_entropy


def _flipped(fn):
    def ce_sign_flipped(logits, targets):
        return -fn(logits, targets)  # the answer key's bug 7: mean log-probability, no minus

    ce_sign_flipped.fault = "ce_sign_flip"
    ce_sign_flipped.__wrapped__ = fn
    return ce_sign_flipped


def train_config(faults=(), base=None, **changes):
    """A :class:`~tensorlite.train.TrainConfig` with ``faults`` switched on and the architecture
    they need (``pos="rope"`` for the RoPE faults, ...): ``base`` (default ``TrainConfig()``)
    updated with ``changes``."""
    faults = _names(faults)
    cfg = base if base is not None else TrainConfig()
    return cfg.replace(**{**requirements(faults), **changes, "faults": tuple(cfg.faults) + faults})


def inject(obj, *fault_names):
    """Switch faults on in ``obj`` and return it (or its faulty copy).

    ``obj`` may be:

    * a ``GPTConfig`` or ``TrainConfig``: a new config with the names added to ``faults``
      (``TrainConfig`` takes every fault and routes it; ``GPTConfig`` only the model's);
    * a ``GPT``: a new model with the faults built in and the same weights (``init_x100``
      multiplies the copied weights by 100, as at initialisation);
    * an ``AdamW`` (``adamw_decay_on_moment``) or a ``TokenBatcher`` (``bos_pad_misalignment``;
      token 0 stands in for BOS and pad unless ids are set): switched in place;
    * a scheduler with ``warmup_steps`` (``no_warmup``): warmup set to 0 in place, the LR of the
      current step rewritten;
    * a loss function ``fn(logits, targets)`` (``ce_sign_flip``): a new function returning ``-fn``.

    A fault that ``obj`` cannot take raises ValueError naming the object that can.
    """
    fault_names = _names(fault_names)
    for n in fault_names:
        obj = _inject_one(obj, n)
    return obj


def _wrong_target(obj, fault: Fault):
    where = {
        "GPTConfig": "a GPTConfig, a GPT or a TrainConfig",
        "loss": "a loss function or a TrainConfig",
        "AdamW": "an AdamW or a TrainConfig",
        "schedule": "a scheduler with warmup_steps or a TrainConfig",
        "TokenBatcher": "a TokenBatcher or a TrainConfig",
    }[fault.target]
    return ValueError(f"inject: {fault.name!r} cannot be injected into {type(obj).__name__}; it goes into {where}")


def _inject_one(obj, name: str):
    fault = get(name)
    if isinstance(obj, TrainConfig):
        return obj if name in obj.faults else obj.replace(faults=tuple(obj.faults) + (name,))
    if isinstance(obj, nn.GPTConfig):
        if fault.target != "GPTConfig":
            raise _wrong_target(obj, fault)
        return obj if name in obj.faults else dataclasses.replace(obj, faults=tuple(obj.faults) + (name,))
    if isinstance(obj, nn.GPT):
        if fault.target != "GPTConfig":
            raise _wrong_target(obj, fault)
        if name in obj.config.faults:
            return obj
        model = nn.GPT(_inject_one(obj.config, name))
        model.load_state_dict(obj.state_dict())
        if name == "init_x100":
            _scale_weights(model, 100.0)
        model.to(obj.device)
        model.train(obj.training)
        return model
    if fault.target == "AdamW" and isinstance(obj, optim.AdamW):
        obj.decay_on_moment = True
        return obj
    if fault.target == "TokenBatcher" and isinstance(obj, TokenBatcher):
        obj.bos_pad_misalignment = True
        obj.bos_id = 0 if obj.bos_id is None else obj.bos_id
        obj.pad_id = 0 if obj.pad_id is None else obj.pad_id
        return obj
    if fault.target == "schedule" and hasattr(obj, "warmup_steps") and hasattr(obj, "get_lr"):
        obj.warmup_steps = 0
        for group, lr in zip(obj.optimizer.param_groups, obj.get_lr()):
            group["lr"] = lr
        obj._last_lr = [g["lr"] for g in obj.optimizer.param_groups]
        return obj
    if fault.target == "loss" and callable(obj) and not isinstance(obj, type):
        return _flipped(obj)
    raise _wrong_target(obj, fault)


def _scale_weights(model, factor: float) -> None:
    """Multiply every Linear / BitLinear / Embedding weight once (tied weights once), as
    ``GPT.reset_parameters`` does for ``init_x100``."""
    seen = set()
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.BitLinear, nn.Embedding)) and id(m.weight) not in seen:
            seen.add(id(m.weight))
            m.weight.data *= factor


def bitlinear_head(model):
    """Make ``model.lm_head`` a :class:`~tensorlite.nn.BitLinear` like the model's other layers (with
    the same ``bitlinear_latent_scale`` setting); returns the model.

    tensorlite's GPT keeps its LM head dense even with ``linear="bitlinear"`` (as BitNet does); the
    sweep issue's model evidently quantised it too, which is what lets ``bitlinear_latent_scale``
    reach the logits (docs/bugs/sweep-issue.md measures both). The head keeps its weight
    Parameter (GPT-2 init, N(0, 0.02)), so an optimizer built on the model still updates it.
    """
    cfg = model.config
    head = nn.BitLinear(cfg.d_model, cfg.vocab_size, bias=False,
                        latent_scale="bitlinear_latent_scale" in cfg.faults)
    head.weight = model.lm_head.weight
    model.lm_head = head
    return model


# ------------------------------------------------------------------------------------------------
# short runs: the symptoms, measured
# ------------------------------------------------------------------------------------------------
#: The tiny run :func:`short_run` trains: the break-it lab's model (2 layers, width 64, RoPE) on
#: sequences of 32 characters, 8 per batch, so that 100 steps take seconds.
SHORT_RUN = dict(seq_len=32, d_model=64, n_layers=2, n_heads=4, pos="rope", batch_size=8, lr=1e-2, lr_min=1e-3,
                 warmup=10, clip=1.0, eval_interval=0, eval_batches=4, ckpt_interval=0, probe_interval=0,
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


def short_run(faults=(), steps: int = 100, *, prepare=None, **changes) -> ShortRun:
    """Train :data:`SHORT_RUN` (with ``changes``) for ``steps`` steps with ``faults`` switched on,
    through ``TrainConfig(faults=...)``, in a temporary folder (nothing is kept on disk); BLAS on one
    thread. A run stopped by a non-finite loss returns what it logged, with ``nan_step`` set.

    ``prepare(model)``, when given, edits the model once it is built, before the first step (it must
    keep the model's Parameters, which the optimizer already holds; e.g. :func:`bitlinear_head`).
    """
    base = TrainConfig(**{**SHORT_RUN, "steps": steps})
    cfg = train_config(faults, base=base, **changes)
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1), \
            warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        trainer = Trainer(cfg.replace(out_dir=tmp, name="run"))
        if prepare is not None:
            trainer.model = prepare(trainer.model)
        t0 = time.perf_counter()
        nan_step = None
        try:
            trainer.fit()
        except NonFiniteLossError as e:
            nan_step = e.step
        seconds = time.perf_counter() - t0
        rows = read_metrics(trainer.metrics_path)
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
        base = TrainConfig(**MATRIX_BASE, pos="rope", norm="rmsnorm")
    faults = names() if faults is None else _names(faults)
    if healthy is None:
        healthy = {"healthy": base}
        for f in faults:
            need = requirements(f)
            changed = {k: v for k, v in need.items() if getattr(base, k) != v}
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

