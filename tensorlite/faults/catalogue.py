"""The catalogue: every bug of the seed documents, by name, with where it comes from and what catches it.

Each :class:`Fault` records the seed document it comes from, the component it breaks, the part of
a training run it is injected into (``target``), the symptom the seed describes, and the doctor
checks (or diagnosis findings) that catch it. The transforms themselves live beside this module,
one per component (:mod:`.attention`, :mod:`.block`, ...), each next to the healthy line it replaces.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FAULTS", "SEEDS", "SWEEP_ISSUE", "TARGETS", "Fault", "get", "names", "requirements", "table"]

#: The documents the faults come from (``/work/shared/seeds`` in the project's history).
SEEDS = {
    "000": "answer key of a buggy-transformer exercise (PyTorch): 8 bugs, though its header says 7",
    "002": "course page 'three engineered failures' and its 6-panel dashboard",
    "003": "issue 'impossible loss 22.3 > ln(32768)': six bugs in a BitLinear sweep",
}

#: The parts of a training run a fault can be injected into (the fields of ``train.build``'s result).
TARGETS = ("model", "optimizer", "scheduler", "batcher", "loss")


@dataclass(frozen=True)
class Fault:
    """One catalogued bug.

    Attributes:
        name: the fault's name, as ``faults.inject`` and ``TrainConfig(faults=...)`` take it.
        seed: the seed document (a key of :data:`SEEDS`) and where in it.
        component: the part of the model or loop it breaks.
        target: the part of a run it is injected into, one of :data:`TARGETS`.
        symptom: what the seed says it does.
        caught_by: doctor checks that fail (or warn) on it; ``"diagnose:NAME"`` is a finding of
            :func:`tensorlite.debug.diagnose` on a run's metrics.
        requires: the model config it needs, e.g. ``(("pos", "rope"),)``.
        page: the docs page and anchor with its measurements.
    """

    name: str
    seed: str
    component: str
    target: str
    symptom: str
    caught_by: tuple
    requires: tuple = ()
    page: str = ""

    @property
    def seed_id(self) -> str:
        return self.seed.split()[0]

    @property
    def switch(self) -> str:
        """How to switch it on, as code."""
        return f'faults.inject({self.target}, "{self.name}")'

    @property
    def checks(self) -> tuple:
        """The doctor checks among :attr:`caught_by` (without the ``diagnose:`` findings)."""
        return tuple(c for c in self.caught_by if not c.startswith("diagnose:"))

    @property
    def diagnoses(self) -> tuple:
        """The :func:`~tensorlite.debug.diagnose` findings among :attr:`caught_by`."""
        return tuple(c.split(":", 1)[1] for c in self.caught_by if c.startswith("diagnose:"))


_KEY, _COURSE, _ISSUE = "bugs/answer-key.md", "bugs/course.md", "bugs/sweep-issue.md"
_ROPE, _RMS, _BIT = (("pos", "rope"),), (("norm", "rmsnorm"),), (("linear", "bitlinear"),)

_ENTRIES = [
    # ---- seed 000: the answer key ------------------------------------------------------------
    Fault("attn_scale_multiply", "000 bug 1", "attention", "model",
          "scores multiplied by sqrt(d_k) instead of divided: near one-hot attention, vanishing "
          "gradients through attention, loss flat or NaN",
          ("attention_scale",), (), f"{_KEY}#attn_scale_multiply"),
    Fault("softmax_over_queries", "000 bug 2", "attention", "model",
          "softmax over the query axis (dim=-2): weights sum to 1 over queries, not keys; nonsensical outputs",
          ("attention_sums_to_one",), (), f"{_KEY}#softmax_over_queries"),
    Fault("rope_on_values", "000 bug 3", "rope", "model",
          "RoPE applied to V as well as Q and K: values become position-dependent; trains, but worse",
          ("rope_values",), _ROPE, f"{_KEY}#rope_on_values"),
    Fault("rmsnorm_no_eps", "000 bug 4", "norm", "model",
          "RMSNorm without eps: NaN/Inf 'with certain inputs' (very small or all-zero rows)",
          ("norms_finite_on_zeros",), _RMS, f"{_KEY}#rmsnorm_no_eps"),
    Fault("rope_sign_flip", "000 bug 5", "rope", "model",
          "RoPE rotation signs flipped: R(m)^T R(n) = R(n-m) fails; the model 'fails to learn positions'",
          ("rope_rotation",), _ROPE, f"{_KEY}#rope_sign_flip"),
    Fault("no_ffn_residual", "000 bug 6", "block", "model",
          "FFN output not added to its input: gradients vanish in deep models, loss does not decrease",
          ("residual",), (), f"{_KEY}#no_ffn_residual"),
    Fault("ce_sign_flip", "000 bug 7", "loss", "loss",
          "cross-entropy without its minus sign: the loss is negative and falls toward -inf",
          ("loss_sign", "loss_at_init"), (), f"{_KEY}#ce_sign_flip"),
    Fault("adamw_decay_on_moment", "000 bug 8", "optimizer", "optimizer",
          "weight decay added to the first moment instead of the weights: unstable or slower training, "
          "large weights not penalised",
          ("optimizer_decay",), (), f"{_KEY}#adamw_decay_on_moment"),
    # ---- seed 002: the course page -----------------------------------------------------------
    Fault("init_x100", "002 failure 1", "init", "model",
          "weights initialised 100x too large: activations 50-200x healthy at step 0, pre-clip grad norm "
          "1e4-1e6 within 5 steps, loss NaN within 5-30 steps",
          ("init_scale", "loss_at_init", "diagnose:bad_init"), (), f"{_COURSE}#init_x100"),
    Fault("no_warmup", "002 failure 2", "schedule", "scheduler",
          "LR starts at lr_max: grad-norm spike 10-50x at steps 1-5, V-shaped loss, recovery by ~200 steps",
          ("lr_schedule", "diagnose:missing_warmup"), (), f"{_COURSE}#no_warmup"),
    Fault("causal_mask_open", "002 failure 3", "attention", "model",
          "causal mask all ones: train loss below 0.1 within 100 steps, val tracks train, many dead heads",
          ("causal_leak", "diagnose:broken_causal_mask"), (), f"{_COURSE}#causal_mask_open"),
    # ---- seed 003: the sweep issue -----------------------------------------------------------
    Fault("no_attn_residual", "003 bug 1", "block", "model",
          "attention output not added to its input: signal destroyed per layer",
          ("residual",), (), f"{_ISSUE}#no_attn_residual"),
    Fault("no_prenorm", "003 bug 2", "block", "model",
          "no normalisation before attention and FFN: activation variance explodes",
          ("prenorm",), (), f"{_ISSUE}#no_prenorm"),
    Fault("rope_pairing_mismatch", "003 bug 3", "rope", "model",
          "RoPE frequencies laid out for the other pairing convention: positional encoding broken",
          ("rope_rotation",), _ROPE, f"{_ISSUE}#rope_pairing_mismatch"),
    Fault("bitlinear_latent_scale", "003 bug 4", "bitlinear", "model",
          "BitLinear output scale from the latent instead of the ternary weights: wrong variance estimate",
          ("init_scale",), _BIT, f"{_ISSUE}#bitlinear_latent_scale"),
    Fault("bos_pad_misalignment", "003 bug 5", "data", "batcher",
          "BOS prepended to the inputs and pad appended to the labels: systematic target noise",
          ("input_label_alignment",), (), f"{_ISSUE}#bos_pad_misalignment"),
    Fault("per_token_loop", "003 bug 6", "embedding", "model",
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


def as_names(faults) -> tuple:
    """``faults`` (one name or several) as a tuple of checked names."""
    if isinstance(faults, str):
        faults = (faults,)
    faults = tuple(faults)
    for n in faults:
        get(n)
    return faults


def requirements(faults) -> dict:
    """The model config the faults need, e.g. ``{"pos": "rope", "linear": "bitlinear"}``."""
    out: dict = {}
    for n in as_names(faults):
        out.update(get(n).requires)
    return out


def table() -> str:
    """The catalogue as a fixed-width table: name, seed, component, target, caught by."""
    head = ("fault", "seed", "component", "target", "caught by")
    rows = [(f.name, f.seed, f.component, f.target, ", ".join(f.caught_by)) for f in FAULTS.values()]
    w = [max(len(r[i]) for r in rows + [head]) for i in range(4)]
    lines = [f"{len(FAULTS)} faults from {len(SEEDS)} seeds (see docs/bugs/index.md)"]
    lines.append("  ".join(h.ljust(w[i]) if i < 4 else h for i, h in enumerate(head)))
    for r in rows:
        lines.append("  ".join(c.ljust(w[i]) if i < 4 else c for i, c in enumerate(r)))
    return "\n".join(lines)
