"""Name a training failure from its metrics log.

``diagnose(metrics)`` reads what a run logged (loss, val loss, learning rate, gradient norms and,
on probe steps, activation RMS and dead heads) and returns a :class:`Diagnosis`: a list of named
findings, each with the numbers that support it, or "healthy" when no rule fires. The rules and
their thresholds are in :class:`Thresholds`; docs/debug/diagnose.md lists the measurements that
set them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .metrics import Metrics, load_metrics

__all__ = ["diagnose", "Diagnosis", "Finding", "Thresholds", "FAILURES"]

DOC = "docs/debug/diagnose.md"

# name -> (title, hint, anchor); in priority order: the first finding is the primary diagnosis.
FAILURES = {
    "bad_init": (
        "Bad initialisation",
        "weights start far too large: check the init std (e.g. 0.02, projections scaled by 1/sqrt(2*n_layers))",
        "bad-initialisation",
    ),
    "impossible_loss": (
        "Loss above ln(vocab)",
        "a cross-entropy above ln(V) means worse than uniform guessing: a bug (labels, loss, residual, norm), not bad luck",
        "loss-above-lnvocab",
    ),
    "broken_causal_mask": (
        "Broken causal mask",
        "train and val loss fall below the data's entropy together: the model sees the future; run the doctor's causal_leak check",
        "broken-causal-mask",
    ),
    "missing_warmup": (
        "Missing warmup",
        "the LR starts at lr_max and the gradient norm spikes in the first steps: configure warmup (e.g. 5-10% of steps)",
        "missing-warmup",
    ),
    "divergence": (
        "Divergence to NaN",
        "the loss went non-finite after training started: lower the LR, clip gradients, look for a NaN source with detect_anomaly()",
        "divergence-to-nan",
    ),
    "stuck_at_uniform": (
        "Nothing learned",
        "the loss stays at ln(V) (uniform guessing): a bug (no gradient reaches the weights, labels misaligned), not a small model",
        "nothing-learned",
    ),
    "clipping_too_often": (
        "Clipping on most steps",
        "the gradient is clipped on more than half of the steps: the LR is too high (or the clip threshold too low)",
        "clipping-on-most-steps",
    ),
    "lr_too_low": (
        "Plateau: LR too low",
        "the loss barely moves and updates are tiny relative to the weights: raise the LR",
        "plateau-lr-too-low",
    ),
}


@dataclass(frozen=True)
class Thresholds:
    """The numbers the rules compare against (docs/debug/diagnose.md shows the measurements)."""

    # bad init: residual-stream RMS at the first probe step above this is far from a healthy scale
    act_rms_bad: float = 20.0
    # ... or a first loss this far above ln(V) followed by NaN within `early_nan_steps`
    early_nan_steps: int = 50
    # impossible loss: finite loss above ln(V) + max(abs, rel * ln V)
    ceiling_abs: float = 0.5
    ceiling_rel: float = 0.05
    # missing warmup: first LR at least this fraction of the run's max LR ...
    warmup_lr_frac: float = 0.5
    # ... and early trouble within `spike_window` steps: a grad-norm spike (a step's norm over
    # `spike_ratio` x the median of the `spike_context` steps before it) or the loss rising
    # `loss_rise` (relative) above its running minimum
    spike_ratio: float = 2.5
    spike_context: int = 5
    spike_window: int = 20
    loss_rise: float = 0.15
    # broken mask: final train and val loss both below floor_frac * data entropy, and never a
    # floor above `floor_cap` nats: the unigram entropy bounds the loss from *above* (a model that
    # ignores context gets it), so a real model trained long enough goes well below it; a cap that
    # real text (entropy rate > 0.5 nats per character) keeps a healthy long run out ...
    floor_frac: float = 0.3
    floor_cap: float = 0.5
    # ... (the floor when the log holds no entropy figure) ...
    floor_abs: float = 0.3
    # ... and within this of each other (relative to the entropy floor)
    gap_frac: float = 0.5
    # dead heads making the mask diagnosis "high confidence"
    dead_heads_frac: float = 0.25
    # stuck: final loss within this fraction of ln(V) after at least `min_steps` steps
    stuck_frac: float = 0.05
    min_steps: int = 50
    # clipping on more than this fraction of steps, judged after the early phase (the first
    # `clip_skip_steps` steps or `clip_skip_frac` of the run, whichever is longer, when gradients
    # at init are large anyway) and only on at least `clip_min_steps` steps
    clip_frac: float = 0.5
    clip_skip_frac: float = 0.1
    clip_skip_steps: int = 50
    clip_min_steps: int = 20
    # ... with the median pre-clip norm on those steps above this multiple of the threshold: a clip
    # that trims norms of 1.4x (AdamW barely notices: it rescales per parameter anyway) is not an
    # LR problem; one that cuts 2x or more off every step is
    clip_over: float = 2.0
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
        return f"{self.title} [{self.name}]: {self.evidence}\n  hint: {self.hint}"


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


def _finding(name, severity, evidence) -> Finding:
    title, hint, anchor = FAILURES[name]
    return Finding(name, title, severity, evidence, hint, f"{DOC}#{anchor}")


def _early_spike(steps, g, th):
    """(step, norm, ratio) of the largest grad-norm spike in the first ``spike_window`` steps."""
    best = None
    for i in range(1, len(g)):
        if steps[i] > steps[0] + th.spike_window:
            break
        prev = g[max(0, i - th.spike_context):i]
        prev = prev[np.isfinite(prev)]
        if prev.size and np.isfinite(g[i]):
            r = float(g[i] / np.median(prev)) if np.median(prev) > 0 else float("inf")
            if r > th.spike_ratio and (best is None or r > best[2]):
                best = (int(steps[i]), float(g[i]), r)
    return best


def _early_rise(steps, loss, th):
    """(step, loss, running min) where the loss first climbs ``loss_rise`` above its running min."""
    lo = float("inf")
    for s, v in zip(steps, loss):
        if s > steps[0] + th.spike_window:
            break
        if not math.isfinite(v):
            continue
        if v > lo * (1 + th.loss_rise):
            return int(s), float(v), lo
        lo = min(lo, float(v))
    return None


def _block_rms(m: Metrics):
    """(step, max residual-stream RMS over blocks) at the first probe step, or None."""
    for r in m.rows:
        a = r.get("act_rms")
        if isinstance(a, dict) and a:
            vals = [float(v) for k, v in a.items() if k.startswith("blocks")] or [float(v) for v in a.values()]
            vals = [v if v is not None else float("nan") for v in vals]
            finite = [v for v in vals if math.isfinite(v)]
            return r["step"], (max(finite) if finite else float("inf"))
    return None


def _dead_heads(m: Metrics):
    """(dead, total) at the last probe step holding a finite count, or None."""
    for r in reversed(m.rows):
        if r.get("dead_heads") is not None and r.get("n_heads_total"):
            return int(r["dead_heads"]), int(r["n_heads_total"])
    return None


def diagnose(metrics, *, data_entropy: float | None = None, vocab_size: int | None = None,
             thresholds: Thresholds | None = None) -> Diagnosis:
    """Name what a run's metrics show: ``metrics`` is a run dir, a ``metrics.jsonl`` path, or a list
    of dicts (one per logged step, optionally with a header ``{"event": "start", ...}``).

    ``vocab_size`` and ``data_entropy`` override the header's. Returns a :class:`Diagnosis`
    whose ``name`` is "healthy" or the primary failure (one of :data:`FAILURES`).
    """
    th = thresholds or Thresholds()
    m = load_metrics(metrics)
    V = vocab_size or m.vocab_size
    H = data_entropy if data_entropy is not None else m.data_entropy
    ln_v = math.log(V) if V else None
    steps, loss = m.series("loss")
    vsteps, vloss = m.series("val_loss")
    lsteps, lr = m.series("lr")
    gsteps, gnorm = m.series("grad_norm")
    n = len(steps)
    facts: dict = {"steps": n, "vocab_size": V, "ln_vocab": None if ln_v is None else round(ln_v, 4),
                   "data_entropy": H}
    findings: list = []
    if n == 0:
        return Diagnosis([], facts, "no steps logged")

    finite = np.isfinite(loss)
    nan_step = m.nan_step
    first_loss = float(loss[0])
    facts.update(first_loss=round(first_loss, 4), nan_step=nan_step)
    final = _tail_median(loss)
    final_val = float(vloss[np.isfinite(vloss)][-1]) if np.isfinite(vloss).any() else None
    facts.update(final_loss=None if math.isnan(final) else round(final, 4),
                 final_val_loss=None if final_val is None else round(final_val, 4))
    span = float(steps[-1] - steps[0]) if n > 1 else 0.0

    # ---- bad init: huge activations at the first probe step, or an impossible start then NaN
    rms0 = _block_rms(m)
    facts["act_rms_first"] = None if rms0 is None else round(rms0[1], 4)
    early_nan = nan_step is not None and nan_step - steps[0] <= th.early_nan_steps
    ceiling = None if ln_v is None else ln_v + max(th.ceiling_abs, th.ceiling_rel * ln_v)
    if rms0 is not None and rms0[1] > th.act_rms_bad:
        ev = f"residual-stream RMS {_g(rms0[1])} at step {rms0[0]} (healthy < {_g(th.act_rms_bad)})"
        if nan_step is not None:
            ev += f"; loss NaN at step {nan_step}"
        findings.append(_finding("bad_init", "error", ev))
    elif early_nan and ceiling is not None and math.isfinite(first_loss) and first_loss > ceiling:
        findings.append(_finding("bad_init", "error",
                                 f"first loss {_g(first_loss)} > ln(V) = {_g(ln_v)} and NaN at step {nan_step}"))

    # ---- loss above ln(V): impossible for a correct cross-entropy
    if ceiling is not None:
        allv = np.concatenate([loss, vloss])
        alls = np.concatenate([steps, vsteps])
        ok = np.isfinite(allv)
        if ok.any() and allv[ok].max() > ceiling:
            i = int(np.argmax(np.where(ok, allv, -np.inf)))
            findings.append(_finding("impossible_loss", "error",
                                     f"loss {_g(float(allv[i]))} at step {int(alls[i])} > ln({V}) = {_g(ln_v)}"))

    # ---- divergence: the loss went non-finite after a finite start (not already bad init)
    if nan_step is not None and "bad_init" not in [f.name for f in findings]:
        best = float(np.nanmin(np.where(finite, loss, np.nan))) if finite.any() else float("nan")
        findings.append(_finding("divergence", "error",
                                 f"loss non-finite at step {nan_step} (best finite loss {_g(best)})"))

    # ---- missing warmup: LR at its max at step 0, then early trouble (a grad-norm spike or the
    # loss climbing back up) in the first steps
    if lr.size and np.nanmax(lr) > 0 and gnorm.size >= 3:
        lr0, lr_max = float(lr[0]), float(np.nanmax(lr))
        facts.update(lr_first=lr0, lr_max=lr_max)
        if lr0 >= th.warmup_lr_frac * lr_max:
            spike = _early_spike(gsteps, gnorm, th)
            rise = _early_rise(steps, loss, th)
            facts.update(early_spike=spike, early_loss_rise=rise)
            if spike is not None or rise is not None:
                ev = f"LR {_g(lr0)} at step {int(lsteps[0])} = {_g(lr0 / lr_max, 2)} x lr_max"
                if spike is not None:
                    ev += f"; grad norm {_g(spike[1])} at step {spike[0]} = {_g(spike[2], 2)} x the steps before"
                if rise is not None:
                    ev += f"; loss back up to {_g(rise[1])} at step {rise[0]} from {_g(rise[2])}"
                findings.append(_finding("missing_warmup", "error", ev))

    # ---- broken causal mask: train and val both below what the data allows, and close together
    floor = min(th.floor_frac * H, th.floor_cap) if H else th.floor_abs
    dh = _dead_heads(m)
    if dh is not None:
        facts.update(dead_heads=dh[0], n_heads_total=dh[1])
    if final_val is not None and nan_step is None and final < floor and final_val < floor \
            and abs(final_val - final) < th.gap_frac * floor:
        src = (f"the lower of {th.floor_frac} x data entropy {_g(H)} and {_g(th.floor_cap)}" if H
               else "the floor without an entropy figure")
        ev = f"train {_g(final)} and val {_g(final_val)} both below {_g(floor)} ({src})"
        if dh is not None:
            ev += f"; dead heads {dh[0]}/{dh[1]}"
        findings.append(_finding("broken_causal_mask", "error", ev))

    # ---- plateau from an LR too low: little improvement, tiny updates (checked before "nothing
    # learned": with updates this small, a flat loss says the LR, not a bug)
    ur = m.dict_series("update_ratio")
    tiny_updates = False
    if ur and span >= th.min_steps and math.isfinite(final) and nan_step is None:
        med = float(np.nanmedian(np.concatenate([v for _, v in ur.values()])))
        improve = (first_loss - final) / first_loss if first_loss > 0 else float("nan")
        tiny_updates = med < th.update_low
        facts.update(update_ratio_median=med, loss_improvement=round(improve, 4))
        if improve < th.plateau_improve and tiny_updates:
            findings.append(_finding("lr_too_low", "warning",
                                     f"loss improved {_g(100 * improve, 2)}% in {int(span)} steps; median "
                                     f"update/weight ratio {_g(med)} (< {_g(th.update_low)})"))

    # ---- nothing learned: loss still at ln(V)
    if ln_v is not None and span >= th.min_steps and math.isfinite(final) and nan_step is None \
            and abs(final - ln_v) <= th.stuck_frac * ln_v and not tiny_updates:
        findings.append(_finding("stuck_at_uniform", "error",
                                 f"loss {_g(final)} after {int(span)} steps vs ln({V}) = {_g(ln_v)}"))

    # ---- clipping on most steps
    clip_rows = [(r["step"], bool(r["clipped"])) for r in m.rows if r.get("clipped") is not None]
    if clip_rows:
        facts["clipped_frac_all"] = round(sum(c for _, c in clip_rows) / len(clip_rows), 3)
        start = clip_rows[0][0] + max(th.clip_skip_steps, th.clip_skip_frac * (clip_rows[-1][0] - clip_rows[0][0]))
        tail = [c for s_, c in clip_rows if s_ >= start]
        if len(tail) >= th.clip_min_steps:
            frac = sum(tail) / len(tail)
            facts["clipped_frac"] = round(frac, 3)
            # the threshold, read off the post-clip norms of clipped steps (no config needed)
            pre = {r["step"]: r.get("grad_norm") for r in m.rows}
            post = [r.get("grad_norm_clipped") for r in m.rows if r.get("clipped") and r["step"] >= start]
            post = [float(v) for v in post if v is not None and math.isfinite(float(v)) and float(v) > 0]
            over = None
            if post:
                clip = float(np.median(post))
                over = float(np.median([float(pre[s_]) / clip for s_, c in clip_rows
                                        if s_ >= start and c and pre.get(s_) is not None]))
                facts["clip_over"] = round(over, 3)
            if frac > th.clip_frac and over is not None and over > th.clip_over \
                    and "bad_init" not in [f.name for f in findings]:
                findings.append(_finding(
                    "clipping_too_often", "warning",
                    f"clipped on {100 * frac:.0f}% of steps {int(start)}..{int(clip_rows[-1][0])}, the median "
                    f"pre-clip norm {_g(over, 2)} x the threshold {_g(clip, 2)}"))

    order = list(FAILURES)
    findings.sort(key=lambda f: order.index(f.name))
    summary = f"loss {_g(first_loss)} -> {_g(final)} over {int(span)} steps"
    if final_val is not None:
        summary += f", val {_g(final_val)}"
    if "clipped_frac_all" in facts:
        summary += f", clipped on {100 * facts['clipped_frac_all']:.0f}% of steps"
    if nan_step is not None:
        summary += f", NaN at step {nan_step}"
    return Diagnosis(findings, facts, summary)
