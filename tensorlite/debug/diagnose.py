"""Name a training failure from its metrics log.

``diagnose(metrics)`` reads what a run logged (loss, val loss, learning rate, gradient norms and,
on probe steps, activation RMS and dead heads) and returns a :class:`Diagnosis`: a list of named
findings, each with the numbers that support it, or "healthy" when no rule fires.

Each rule is one small function registered with :func:`rule`, in priority order (the first finding
is the primary diagnosis). A rule reads a :class:`Run` (the series and the quantities every rule
shares, computed once) and the findings of the rules before it, and returns a :class:`Finding`
or None. The thresholds are fields of :class:`Thresholds`; the docs page (debug/diagnose.md)
shows the measurements that set them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from .._docs import docs_url
from .metrics import Metrics, load_metrics

__all__ = ["diagnose", "Diagnosis", "Finding", "Run", "Rule", "RULES", "Thresholds", "FAILURES", "rule"]

DOC_PAGE = "debug/diagnose.md"


@dataclass(frozen=True)
class Thresholds:
    """The numbers the rules compare against (docs/debug/diagnose.md shows the measurements)."""

    # "above ln V": more than max(margin_abs, margin_rel * ln V) nats above a uniform guess
    margin_abs: float = 0.5
    margin_rel: float = 0.05
    # bad init: residual-stream RMS at the first probe step above this is far from a healthy scale ...
    act_rms_bad: float = 20.0
    # ... or a first loss above ln V followed by NaN within `early_nan_steps`
    early_nan_steps: int = 50
    # loss spike: a train loss over `spike_ratio` x the median of the `spike_context` losses before
    # it, and at least `spike_abs` nats above that median (batch noise of the tiny runs in the
    # tests stays under 1.3x)
    spike_ratio: float = 1.5
    spike_abs: float = 0.5
    spike_context: int = 5
    # missing warmup: first LR at least this fraction of the run's max LR, and the loss climbing
    # `loss_rise` (relative) above its running minimum within the first `warmup_window` steps
    warmup_lr_frac: float = 0.5
    warmup_window: int = 20
    loss_rise: float = 0.15
    # ... and the median of the `rise_steps` logged steps after that minimum stays `loss_rise / 2`
    # above it (one batch 1.26 x the minimum among flat neighbours is noise: a constant LR of 3e-3
    # showed one, and trained as well as with warmup)
    rise_steps: int = 5
    # overfitting: the last validation losses (median of `val_tail`, none of them the best) at least
    # max(overfit_abs, overfit_rel * best) above the best one, while the train loss kept falling, with train at
    # least `overfit_gap` below val at the end
    overfit_abs: float = 0.1
    overfit_rel: float = 0.05
    overfit_gap: float = 0.3
    val_tail: int = 3
    # broken mask: final train and val loss both below floor_frac * unigram entropy, and never a
    # floor above `floor_cap` nats: the unigram entropy bounds the loss from *above* (a model that
    # ignores context gets it), so a real model trained long enough goes well below it; a cap that
    # real text (entropy rate > 0.5 nats per character) keeps a healthy long run out ...
    floor_frac: float = 0.3
    floor_cap: float = 0.5
    # ... (the floor when the log holds no entropy figure) ...
    floor_abs: float = 0.3
    # ... and within this of each other (relative to the floor)
    gap_frac: float = 0.5
    # dead heads making the mask diagnosis "high confidence"
    dead_heads_frac: float = 0.25
    # stuck at ln V / at the unigram entropy: the final loss within this fraction of the reference
    # after at least `min_steps` steps ...
    stuck_frac: float = 0.05
    min_steps: int = 50
    # ... (for the unigram entropy: at least `unigram_min_steps`, the loss flat over the second
    # half of the run, and data whose bigram entropy is `context_gain` below its unigram entropy,
    # so that context has something to give)
    unigram_min_steps: int = 200
    flat_improve: float = 0.03
    context_gain: float = 0.1
    # clipping on more than this fraction of steps, judged after the early phase (the first
    # `clip_skip_steps` steps or `clip_skip_frac` of the run, whichever is longer, when gradients
    # at init are large anyway) and only on at least `clip_min_steps` steps
    clip_frac: float = 0.5
    clip_skip_frac: float = 0.1
    clip_skip_steps: int = 50
    clip_min_steps: int = 20
    # ... with the median pre-clip norm on those steps above this multiple of the threshold: a clip
    # that trims norms of 1.3-1.8x is routine (healthy runs at clip 1.0, measured: their norm grows
    # through training); one that cuts 3x or more off every step has stopped telling a spike from
    # an ordinary step
    clip_over: float = 3.0
    # growing gradients: the median pre-clip norm over the second half of the run at least this
    # multiple of the median over its first `grad_first_steps` logged steps (healthy runs measured
    # 0.3-0.8x: the norm at init is the largest; a forgotten zero_grad() without clipping, 16x),
    # over at least `grad_min_steps` logged steps
    grad_growth: float = 10.0
    grad_first_steps: int = 5
    grad_min_steps: int = 50
    # plateau: relative loss improvement below this and median update ratio below `update_low`
    plateau_improve: float = 0.1
    update_low: float = 1e-4


@dataclass
class Finding:
    """One named observation: what, how sure, the evidence (numbers), what to do, where to read."""

    name: str
    title: str
    severity: str  # "error" | "warning"
    evidence: str
    hint: str
    doc_url: str

    def __str__(self) -> str:
        return f"{self.title} [{self.name}]: {self.evidence}\n  hint: {self.hint}\n  docs: {self.doc_url}"


@dataclass
class Diagnosis:
    """What ``diagnose`` found. ``name`` is the primary finding ("healthy" when none)."""

    findings: list = field(default_factory=list)
    facts: dict = field(default_factory=dict)
    summary: str = ""

    @property
    def healthy(self) -> bool:
        return not self.findings

    @property
    def name(self) -> str:
        return self.findings[0].name if self.findings else "healthy"

    @property
    def names(self) -> list:
        return [f.name for f in self.findings]

    def to_dict(self) -> dict:
        return {"name": self.name, "healthy": self.healthy, "summary": self.summary,
                "findings": [asdict(f) for f in self.findings], "facts": self.facts}

    def __str__(self) -> str:
        if self.healthy:
            return f"healthy: {self.summary}"
        lines = [f"diagnosis: {self.name} ({len(self.findings)} finding{'s' * (len(self.findings) > 1)})"]
        lines += [f"- {f}" for f in self.findings]
        lines.append(f"run: {self.summary}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Diagnosis(name={self.name!r}, findings={self.names})"


# ------------------------------------------------------------------------------------------------
# what the rules read
# ------------------------------------------------------------------------------------------------
def _g(x, nd=3):
    """A number for evidence text: 3 significant digits, stable across platforms."""
    if x is None:
        return "n/a"
    if not math.isfinite(x):
        return str(x)
    return f"{x:.{nd}g}"


def _tail_median(vals, frac=0.1, at_least=3):
    v = vals[np.isfinite(vals)]
    if v.size == 0:
        return float("nan")
    n = max(at_least, int(math.ceil(frac * v.size)))
    return float(np.median(v[-n:]))


@dataclass
class Run:
    """A run's metrics as the rules read them: the series, and the quantities several rules share."""

    m: Metrics
    th: Thresholds
    vocab_size: int | None
    unigram: float | None
    bigram: float | None

    def __post_init__(self) -> None:
        m, th = self.m, self.th
        self.steps, self.loss = m.series("loss")
        self.vsteps, self.vloss = m.series("val_loss")
        self.lsteps, self.lr = m.series("lr")
        self.gsteps, self.gnorm = m.series("grad_norm")
        self.ln_v = math.log(self.vocab_size) if self.vocab_size else None
        # "above ln V": by more than a margin (batch noise at init is a few hundredths)
        self.uniform_bar = (None if self.ln_v is None
                            else self.ln_v + max(th.margin_abs, th.margin_rel * self.ln_v))
        self.n = len(self.steps)
        self.nan_step = m.nan_step
        self.first_loss = float(self.loss[0]) if self.n else float("nan")
        self.final = _tail_median(self.loss) if self.n else float("nan")
        ok = np.isfinite(self.vloss)
        self.final_val = float(self.vloss[ok][-1]) if ok.any() else None
        self.span = float(self.steps[-1] - self.steps[0]) if self.n > 1 else 0.0
        self.facts: dict = {
            "steps": self.n, "vocab_size": self.vocab_size,
            "ln_vocab": None if self.ln_v is None else round(self.ln_v, 4),
            "unigram_entropy": self.unigram, "bigram_entropy": self.bigram,
            "first_loss": round(self.first_loss, 4) if self.n else None, "nan_step": self.nan_step,
            "final_loss": None if math.isnan(self.final) else round(self.final, 4),
            "final_val_loss": None if self.final_val is None else round(self.final_val, 4),
        }

    @property
    def finite_run(self) -> bool:
        return self.nan_step is None and math.isfinite(self.final)

    def lr_at(self, step) -> float | None:
        i = np.searchsorted(self.lsteps, step)
        return float(self.lr[i]) if i < self.lr.size and self.lsteps[i] == step else None

    def first_probe_rms(self):
        """(step, max residual-stream RMS over blocks) at the first probe step, or None."""
        for r in self.m.rows:
            a = r.get("act_rms")
            if isinstance(a, dict) and a:
                vals = [v for k, v in a.items() if k.startswith("blocks")] or list(a.values())
                finite = [float(v) for v in vals if v is not None and math.isfinite(float(v))]
                return r["step"], (max(finite) if finite else float("inf"))
        return None

    def dead_heads(self):
        """(dead, total) at the last probe step holding a count, or None."""
        for r in reversed(self.m.rows):
            if r.get("dead_heads") is not None and r.get("n_heads_total"):
                return int(r["dead_heads"]), int(r["n_heads_total"])
        return None

    def update_ratio_median(self):
        ur = self.m.dict_series("update_ratio")
        if not ur:
            return None
        return float(np.nanmedian(np.concatenate([v for _, v in ur.values()])))

    def went_above_uniform_later(self, steps, vals):
        """(step, value) of the largest loss above ln V after the series had been below it."""
        if self.uniform_bar is None:
            return None
        below = False
        best = None
        for s, v in zip(steps, vals):
            if not math.isfinite(v):
                continue
            if v < self.uniform_bar:
                below = True
            elif below and (best is None or v > best[1]):
                best = (int(s), float(v))
        return best


# ------------------------------------------------------------------------------------------------
# the rules, in priority order
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """A named check: ``check(run, found) -> Finding | None`` (``found``: name -> Finding so far)."""

    name: str
    title: str
    severity: str
    hint: str
    anchor: str
    check: Callable

    @property
    def doc_url(self) -> str:
        return docs_url(DOC_PAGE, self.anchor)

    def finding(self, evidence: str, severity: str | None = None) -> Finding:
        return Finding(self.name, self.title, severity or self.severity, evidence, self.hint, self.doc_url)


#: name -> Rule, in priority order (the first finding is the primary diagnosis).
RULES: dict = {}


def rule(name: str, title: str, severity: str, hint: str, anchor: str):
    """Register ``fn(run, found, rule) -> Finding | None`` as the rule ``name`` (after the others)."""

    def register(fn):
        RULES[name] = Rule(name, title, severity, hint, anchor, lambda run, found: fn(run, found, RULES[name]))
        return fn

    return register


@rule("bad_init", "Bad initialisation", "error",
      "weights start far too large: check the init std (e.g. 0.02, projections scaled by 1/sqrt(2*n_layers))",
      "bad-initialisation")
def _bad_init(run: Run, found, r: Rule):
    rms0 = run.first_probe_rms()
    run.facts["act_rms_first"] = None if rms0 is None else round(rms0[1], 4)
    if rms0 is not None and rms0[1] > run.th.act_rms_bad:
        ev = f"residual-stream RMS {_g(rms0[1])} at step {rms0[0]} (healthy < {_g(run.th.act_rms_bad)})"
        if run.nan_step is not None:
            ev += f"; loss NaN at step {run.nan_step}"
        return r.finding(ev)
    early_nan = run.nan_step is not None and run.nan_step - run.steps[0] <= run.th.early_nan_steps
    if early_nan and run.uniform_bar is not None and math.isfinite(run.first_loss) \
            and run.first_loss > run.uniform_bar:
        return r.finding(f"first loss {_g(run.first_loss)} > ln(V) = {_g(run.ln_v)} and NaN at step {run.nan_step}")
    return None


@rule("high_initial_loss", "Loss above ln(V) at initialisation", "error",
      "before any update a model should guess almost uniformly (loss near ln V); far above it is a bug in the "
      "scale of the logits: weights initialised too large (e.g. an N(0, 1) embedding reused as the output layer), "
      "a wrong scale factor, a residual stream that grows without its norms",
      "loss-above-lnv-at-initialisation")
def _high_initial_loss(run: Run, found, r: Rule):
    if run.uniform_bar is None or not math.isfinite(run.first_loss) or run.first_loss <= run.uniform_bar:
        return None
    return r.finding(f"loss {_g(run.first_loss)} at step {int(run.steps[0])} > ln({run.vocab_size}) = "
                     f"{_g(run.ln_v)}")


@rule("gradients_not_zeroed", "Gradients not zeroed between steps", "error",
      "each backward adds to the gradient left by the last step, so every update uses the sum of all gradients "
      "so far: call optimizer.zero_grad() (set_to_none=True) once per optimizer step, after the step or before "
      "the next window's first backward",
      "gradients-not-zeroed-between-steps")
def _gradients_not_zeroed(run: Run, found, r: Rule):
    rows = [x for x in run.m.rows if "loss" in x]
    stale = [x["step"] for x in rows if x.get("stale_grads")]
    run.facts["stale_grad_steps"] = len(stale)
    if len(stale) < 3 or len(stale) < 0.5 * (len(rows) - 1):
        return None
    return r.finding(f"on {len(stale)} of {len(rows) - 1} steps the first backward found the last step's gradient "
                     f"still in .grad (first at step {stale[0]}); recorded by RunRecorder")


@rule("divergence", "Divergence to NaN", "error",
      "the loss went non-finite after training started: lower the LR, clip gradients, look for a NaN source "
      "with detect_anomaly()",
      "divergence-to-nan")
def _divergence(run: Run, found, r: Rule):
    if run.nan_step is None or "bad_init" in found:
        return None
    finite = np.isfinite(run.loss)
    best = float(np.min(run.loss[finite])) if finite.any() else float("nan")
    return r.finding(f"loss non-finite at step {run.nan_step} (best finite loss {_g(best)})")


@rule("loss_spike", "Loss spike: unstable training", "warning",
      "the loss jumped far above its recent level: the LR is too high for this model (the stable LR falls "
      "as models grow), the warmup too short, or a bad batch; lower the LR, warm up, keep clipping on",
      "loss-spike-unstable-training")
def _loss_spike(run: Run, found, r: Rule):
    th, loss, steps = run.th, run.loss, run.steps
    # a model that started far above ln V jumps around up there: its init is the finding, not this
    bad_start = bool(found.keys() & {"bad_init", "high_initial_loss"}) and run.uniform_bar is not None
    best = None
    for i in range(1, run.n):
        prev = loss[max(0, i - th.spike_context):i]
        prev = prev[np.isfinite(prev)]
        if not prev.size or not math.isfinite(loss[i]):
            continue
        base = float(np.median(prev))
        if bad_start and base > run.uniform_bar:
            continue
        if base > 0 and loss[i] > th.spike_ratio * base and loss[i] - base > th.spike_abs \
                and (best is None or loss[i] - base > best[1] - best[2]):
            best = (int(steps[i]), float(loss[i]), base)
    if best is None:
        return None
    step, value, base = best
    lr = run.lr_at(step)
    ev = f"loss {_g(value)} at step {step}, {_g(value / base, 2)} x the median {_g(base)} of the steps before"
    if lr is not None:
        ev += f", at LR {_g(lr)}"
    above = run.uniform_bar is not None and value > run.uniform_bar
    if above:
        ev += f"; above ln({run.vocab_size}) = {_g(run.ln_v)} after training started: worse than guessing, no bug needed"
    return r.finding(ev, "error" if above else None)


@rule("missing_warmup", "Missing warmup", "warning",
      "the LR starts at lr_max and the loss climbs back up in the first steps (a V on the loss panel): Adam's "
      "first update moves every weight by about lr at once; ramp the LR up (warmup over e.g. 5-10% of steps)",
      "missing-warmup")
def _missing_warmup(run: Run, found, r: Rule):
    th = run.th
    if not run.lr.size or not np.nanmax(run.lr) > 0:
        return None
    lr0, lr_max = float(run.lr[0]), float(np.nanmax(run.lr))
    run.facts.update(lr_first=lr0, lr_max=lr_max)
    if lr0 < th.warmup_lr_frac * lr_max:
        return None
    lo, lo_at, rise = float("inf"), 0, None
    for i, (s, v) in enumerate(zip(run.steps, run.loss)):
        if s > run.steps[0] + th.warmup_window:
            break
        if not math.isfinite(v):
            continue
        if v > lo * (1 + th.loss_rise):
            # a V, not one noisy batch: the steps after the minimum stay above it (their median)
            after = [float(a) for a in run.loss[lo_at + 1:lo_at + 1 + th.rise_steps] if math.isfinite(a)]
            if len(after) >= min(th.rise_steps, 2) and np.median(after) >= lo * (1 + th.loss_rise / 2):
                rise = (int(s), float(v), lo)
                break
        if v < lo:
            lo, lo_at = float(v), i
    run.facts["early_loss_rise"] = rise
    if rise is None:
        return None
    return r.finding(f"LR {_g(lr0)} at step {int(run.lsteps[0])} = {_g(lr0 / lr_max, 2)} x lr_max; loss back up "
                     f"to {_g(rise[1])} at step {rise[0]} from {_g(rise[2])}")


@rule("overfitting", "Overfitting: the model memorises", "warning",
      "validation loss rising while training loss falls: the model learns the training text by heart; keep the "
      "checkpoint with the lowest val loss (early stopping), add dropout or weight decay, get more data",
      "overfitting")
def _overfitting(run: Run, found, r: Rule):
    th = run.th
    ok = np.isfinite(run.vloss)
    vs, vl = run.vsteps[ok], run.vloss[ok]
    if vl.size < th.val_tail + 1 or not run.finite_run:
        return None
    i_best = int(np.argmin(vl))
    if i_best >= vl.size - th.val_tail:  # the best is one of the last evaluations: still falling
        return None
    best, end = float(vl[i_best]), float(np.median(vl[-th.val_tail:]))
    train_at_best = float(np.median(run.loss[np.abs(run.steps - vs[i_best]) <= max(1, 0.02 * run.span)]))
    run.facts.update(best_val_loss=round(best, 4), best_val_step=int(vs[i_best]))
    rose = end - best >= max(th.overfit_abs, th.overfit_rel * best)
    if not (rose and run.final < train_at_best and end - run.final >= th.overfit_gap):
        return None
    ev = (f"val {_g(end)} at the end (median of the last {th.val_tail}) against its best {_g(best)} at step "
          f"{int(vs[i_best])}, while train fell from {_g(train_at_best)} to {_g(run.final)}")
    top = run.went_above_uniform_later(vs, vl)
    if top is not None:
        ev += (f"; val {_g(top[1])} at step {top[0]} is above ln({run.vocab_size}) = {_g(run.ln_v)}: "
               "confidently wrong on text it has not memorised, no bug needed")
    return r.finding(ev)


@rule("broken_causal_mask", "Broken causal mask", "error",
      "train and val loss fall far below what the data allows, together: the model sees the tokens it must "
      "predict, through a causal mask that leaks or through labels that are the inputs unshifted (y = x); the "
      "doctor's causal_leak and input_label_alignment checks tell which",
      "broken-causal-mask")
def _broken_causal_mask(run: Run, found, r: Rule):
    th, h1 = run.th, run.unigram
    floor = min(th.floor_frac * h1, th.floor_cap) if h1 else th.floor_abs
    dh = run.dead_heads()
    if dh is not None:
        run.facts.update(dead_heads=dh[0], n_heads_total=dh[1])
    if run.final_val is None or not run.finite_run or not (run.final < floor and run.final_val < floor) \
            or abs(run.final_val - run.final) >= th.gap_frac * floor:
        return None
    src = (f"the lower of {th.floor_frac} x unigram entropy {_g(h1)} and {_g(th.floor_cap)}" if h1
           else "the floor without an entropy figure")
    ev = f"train {_g(run.final)} and val {_g(run.final_val)} both below {_g(floor)} ({src})"
    if dh is not None:
        ev += f"; dead (one-hot or silent) heads {dh[0]}/{dh[1]}"
    return r.finding(ev)


@rule("loss_above_uniform", "Worse than a uniform guess", "error",
      "after training started the loss rose above ln(V): the updates make the model worse; lower the LR 10x and "
      "compare, check the update itself (a sign, weight decay on the moments); for val alone, a val set unlike "
      "the training data",
      "worse-than-a-uniform-guess")
def _loss_above_uniform(run: Run, found, r: Rule):
    if found.keys() & {"loss_spike", "overfitting", "divergence", "bad_init", "high_initial_loss"}:
        return None  # already explained (a model that started far above ln V has its bug named)
    hits = [h for h in (run.went_above_uniform_later(run.steps, run.loss),
                        run.went_above_uniform_later(run.vsteps, run.vloss)) if h is not None]
    if "missing_warmup" in found:  # the early V of a run without warmup explains an early excursion
        hits = [h for h in hits if h[0] > run.steps[0] + run.th.warmup_window]
    if not hits:
        return None
    step, value = max(hits, key=lambda h: h[1])
    return r.finding(f"loss {_g(value)} at step {step} > ln({run.vocab_size}) = {_g(run.ln_v)}, after having been "
                     "below it")


@rule("lr_too_low", "Plateau: LR too low", "warning",
      "the loss barely moves and updates are tiny relative to the weights: raise the LR",
      "plateau-lr-too-low")
def _lr_too_low(run: Run, found, r: Rule):
    med = run.update_ratio_median()
    if med is None or run.span < run.th.min_steps or not run.finite_run:
        return None
    improve = (run.first_loss - run.final) / run.first_loss if run.first_loss > 0 else float("nan")
    run.facts.update(update_ratio_median=med, loss_improvement=round(improve, 4))
    if not (improve < run.th.plateau_improve and med < run.th.update_low):
        return None
    return r.finding(f"loss improved {_g(100 * improve, 2)}% in {int(run.span)} steps; median update/weight "
                     f"ratio {_g(med)} (< {_g(run.th.update_low)})")


@rule("stuck_at_uniform", "Nothing learned", "error",
      "the loss stays at ln(V) (uniform guessing): a bug (no gradient reaches the weights, labels misaligned), "
      "not a small model",
      "nothing-learned")
def _stuck_at_uniform(run: Run, found, r: Rule):
    med = run.update_ratio_median()
    tiny_updates = med is not None and med < run.th.update_low  # then the LR is the suspect
    if run.ln_v is None or run.span < run.th.min_steps or not run.finite_run or tiny_updates \
            or abs(run.final - run.ln_v) > run.th.stuck_frac * run.ln_v:
        return None
    return r.finding(f"loss {_g(run.final)} after {int(run.span)} steps vs ln({run.vocab_size}) = {_g(run.ln_v)}")


@rule("stuck_at_unigram", "Plateau at the unigram entropy: context ignored", "warning",
      "the loss sits at the entropy of the token frequencies: the model predicts how common each token is and "
      "nothing from the context; check that attention and positions reach the output, and the LR",
      "plateau-at-the-unigram-entropy")
def _stuck_at_unigram(run: Run, found, r: Rule):
    th, h1, h2 = run.th, run.unigram, run.bigram
    if not h1 or h2 is None or h1 - h2 < th.context_gain * h1 or run.span < th.unigram_min_steps \
            or not run.finite_run or "stuck_at_uniform" in found:
        return None
    half = run.loss[run.steps >= run.steps[0] + run.span / 2]
    mid = _tail_median(half[: max(1, half.size // 5)], frac=1.0, at_least=1)
    flat = (mid - run.final) / mid < th.flat_improve if mid > 0 else False
    near = abs(run.final - h1) <= th.stuck_frac * h1
    if run.final_val is not None:  # the val text has token frequencies of its own: a looser bound
        near = near and run.final_val >= (1 - 2 * th.stuck_frac) * h1
    if not (near and flat):
        return None
    return r.finding(f"loss {_g(run.final)} (val {_g(run.final_val)}) flat over the second half, at the unigram "
                     f"entropy {_g(h1)}; the data's bigram entropy {_g(h2)} shows the context has more to give")


@rule("clipping_too_often", "Clipping on most steps", "warning",
      "the clip threshold is below the typical gradient norm: with Adam(W) a steady rescaling barely changes "
      "the update (Adam divides by the gradient's own RMS), so the clip no longer tells a spike from an "
      "ordinary step; set max_norm near the typical norm if it is meant to catch spikes (with SGD it is an LR cut)",
      "clipping-on-most-steps")
def _clipping_too_often(run: Run, found, r: Rule):
    th, rows = run.th, run.m.rows
    clip_rows = [(x["step"], bool(x["clipped"])) for x in rows if x.get("clipped") is not None]
    if not clip_rows:
        return None
    run.facts["clipped_frac_all"] = round(sum(c for _, c in clip_rows) / len(clip_rows), 3)
    start = clip_rows[0][0] + max(th.clip_skip_steps, th.clip_skip_frac * (clip_rows[-1][0] - clip_rows[0][0]))
    tail = [c for s, c in clip_rows if s >= start]
    if len(tail) < th.clip_min_steps or "bad_init" in found:
        return None
    frac = sum(tail) / len(tail)
    run.facts["clipped_frac"] = round(frac, 3)
    # the threshold, read off the post-clip norms of clipped steps (no config needed)
    pre = {x["step"]: x.get("grad_norm") for x in rows}
    post = [x.get("grad_norm_clipped") for x in rows if x.get("clipped") and x["step"] >= start]
    post = [float(v) for v in post if v is not None and math.isfinite(float(v)) and float(v) > 0]
    if not post:
        return None
    clip = float(np.median(post))
    over = float(np.median([float(pre[s]) / clip for s, c in clip_rows
                            if s >= start and c and pre.get(s) is not None]))
    run.facts["clip_over"] = round(over, 3)
    if frac <= th.clip_frac or over <= th.clip_over:
        return None
    return r.finding(f"clipped on {100 * frac:.0f}% of steps {int(start)}..{int(clip_rows[-1][0])}, the median "
                     f"pre-clip norm {_g(over, 2)} x the threshold {_g(clip, 2)}")


@rule("growing_gradients", "Gradient norm growing through the run", "warning",
      "a gradient norm that keeps growing far above its first steps is what gradients summed over steps look "
      "like: is optimizer.zero_grad() called once per optimizer step (after each accumulation window)? It can also "
      "be a slowly rising instability; with clipping on, the clip hides both (look for clipping on every step)",
      "gradient-norm-growing-through-the-run")
def _growing_gradients(run: Run, found, r: Rule):
    th = run.th
    g = run.gnorm[np.isfinite(run.gnorm)]
    if g.size < th.grad_min_steps or not run.finite_run:
        return None
    first = float(np.median(g[:th.grad_first_steps]))
    late = float(np.median(g[g.size // 2:]))
    growth = late / first if first > 0 else float("inf")
    run.facts["grad_norm_growth"] = round(growth, 3)
    if not growth >= th.grad_growth:
        return None
    return r.finding(f"median pre-clip gradient norm {_g(late)} over the second half of the run, {_g(growth, 2)} x "
                     f"the {_g(first)} of its first {th.grad_first_steps} logged steps")


#: name -> (title, hint, anchor) of every rule, in priority order.
FAILURES = {name: (x.title, x.hint, x.anchor) for name, x in RULES.items()}


# ------------------------------------------------------------------------------------------------
def diagnose(metrics, *, unigram_entropy: float | None = None, vocab_size: int | None = None,
             thresholds: Thresholds | None = None, data_entropy: float | None = None) -> Diagnosis:
    """Name what a run's metrics show: ``metrics`` is a run dir, a ``metrics.jsonl`` path, or a list
    of dicts (one per logged step, optionally with a header ``{"event": "start", ...}``).

    ``vocab_size`` and ``unigram_entropy`` override the header's (``data_entropy`` is the old name
    of the latter). Returns a :class:`Diagnosis` whose ``name`` is "healthy" or the primary
    failure (one of :data:`RULES`).
    """
    m = load_metrics(metrics)
    h1 = unigram_entropy if unigram_entropy is not None else data_entropy
    run = Run(m, thresholds or Thresholds(), vocab_size or m.vocab_size,
              h1 if h1 is not None else m.unigram_entropy, m.bigram_entropy)
    if run.n == 0:
        return Diagnosis([], run.facts, "no steps logged")
    found: dict = {}
    for name, x in RULES.items():
        f = x.check(run, found)
        if f is not None:
            found[name] = f
    summary = f"loss {_g(run.first_loss)} -> {_g(run.final)} over {int(run.span)} steps"
    if run.final_val is not None:
        summary += f", val {_g(run.final_val)}"
    if "clipped_frac_all" in run.facts:
        summary += f", clipped on {100 * run.facts['clipped_frac_all']:.0f}% of steps"
    if run.nan_step is not None:
        summary += f", NaN at step {run.nan_step}"
    return Diagnosis(list(found.values()), run.facts, summary)
