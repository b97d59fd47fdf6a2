"""Probes: the measurements the dashboard plots, attached through hooks and callbacks.

:class:`Probes` is a training callback. Every ``interval`` steps it measures, on one fixed probe
batch (the first batch the model sees, cropped to ``batch_size`` rows):

* ``act_rms``: RMS of the residual stream after each block, and of the final norm's output;
* ``attn_entropy``: mean attention entropy (nats, over keys) per head per layer;
* ``head_share``: each head's share of its attention layer's output (RMS of the head's term in
  the output projection, over the sum of those RMS for the layer's heads);
* ``dead_heads`` / ``n_heads_total``: heads that are collapsed or silent (see :func:`is_dead_head`);
* ``dead_units``: fraction of FFN hidden units whose pre-activation is <= 0 for every token;
* ``grad_norm_layer``: per-parameter gradient norm (before clipping);
* ``update_ratio``: per-weight ``||W_after - W_before|| / ||W_before||`` of this step's update;
* ``spectral_norm``: largest singular value of each weight matrix (power iteration with
  persistent vectors, ``spectral_iters`` steps per probe);
* ``clipped_frac``: the fraction of the steps so far on which the loop clipped the gradient;
* ``nonfinite``: True when a weight, a gradient or a probed activation holds NaN or Inf.

Nothing in the model changes: forward hooks read activations, ``record_attention`` is switched on
only for the probe's own forward, and the model's code is never edited. On a GPU the reductions
stay on the device and one small array is fetched per probe step.
"""

from __future__ import annotations

import math

import numpy as np

from ..autograd import no_grad
from ..backend import device_of, to_numpy
from ..tensor import Tensor
from .native import eval_mode

__all__ = ["Probes", "measure_activations", "spectral_norm", "forward_stats", "is_dead_head",
           "DEAD_HEAD_ENTROPY", "DEAD_HEAD_SHARE", "DEAD_UNIT_RULE"]

#: A head is dead when its mean attention entropy is below this many nats: it puts (nearly) all
#: its weight on one key for every query (exp(0.3) = 1.35 keys' worth), a fixed copy or a
#: saturated softmax. See docs/debug/probes.md for the measurements behind the number.
DEAD_HEAD_ENTROPY = 0.3
#: ... or when its share of the layer's attention output is below ``DEAD_HEAD_SHARE / n_heads``
#: (a tenth of an even split): it contributes (almost) nothing.
DEAD_HEAD_SHARE = 0.1
#: A hidden FFN unit is dead when its pre-activation (``fc`` for GELU, ``w_gate`` for SwiGLU) is
#: <= 0 for every token of the probe batch: GELU / SiLU then pass (almost) nothing.
DEAD_UNIT_RULE = "pre-activation <= 0 on every token of the probe batch"


def _xp(a):
    return device_of(a).xp


class _Stack:
    """Device scalars and small vectors gathered under names, fetched to the host in one go."""

    def __init__(self):
        self.items = []

    def add(self, name, arr):
        self.items.append((name, arr))

    def fetch(self) -> dict:
        if not self.items:
            return {}
        xp = _xp(self.items[0][1])
        flat = [xp.asarray(a, dtype=xp.float64).reshape(-1) for _, a in self.items]
        host = to_numpy(xp.concatenate(flat))  # the one device -> host copy
        out, i = {}, 0
        for (name, a), f in zip(self.items, flat):
            n = f.shape[0]
            out[name] = host[i:i + n].reshape(np.shape(a)) if np.ndim(a) else float(host[i])
            i += n
        return out


def _rms(xp, a):
    return xp.sqrt(xp.mean(xp.square(a.astype(xp.float32, copy=False))))


def _attention_modules(model):
    return [(n, m) for n, m in model.named_modules() if hasattr(m, "record_attention") and hasattr(m, "proj")]


def _ffn_gate(model):
    """(name, module whose output is the FFN pre-activation) for every block."""
    out = []
    for n, m in model.named_modules():
        if n.endswith(".ffn"):
            gate = getattr(m, "w_gate", None) or getattr(m, "fc", None)
            if gate is not None:
                out.append((n, gate))
    return out


def _residual_points(model):
    """(key, module whose output is a residual-stream point): each block, then the final norm."""
    pts = []
    blocks = getattr(model, "blocks", None)
    if blocks is not None:
        for i, b in enumerate(blocks):
            pts.append((f"blocks.{i}", b))
    norm_f = getattr(model, "norm_f", None)
    if norm_f is not None:
        pts.append(("norm_f", norm_f))
    return pts


def _head_rms(xp, merged, weight, n_heads):
    """RMS of each head's contribution to ``proj``'s output: ``x_h @ W[:, h].T``."""
    b_t = merged.reshape(-1, merged.shape[-1]).astype(xp.float32, copy=False)
    d = b_t.shape[-1]
    hd = d // n_heads
    w = weight.astype(xp.float32, copy=False)
    out = []
    for h in range(n_heads):
        y = b_t[:, h * hd:(h + 1) * hd] @ w[:, h * hd:(h + 1) * hd].T
        out.append(xp.sqrt(xp.mean(y * y)))
    return xp.stack(out)


def _attention_entropy(xp, p):
    """Mean over batch and queries of ``-sum_k p log p``, per head: (H,)."""
    p = p.astype(xp.float32, copy=False)
    ent = -(p * xp.log(xp.maximum(p, 1e-30))).sum(axis=-1)  # (B, H, Tq)
    return ent.mean(axis=(0, 2))


@no_grad()
def measure_activations(model, x, stack: _Stack | None = None):
    """One forward of ``model`` on token ids ``x`` with hooks attached; returns a ``_Stack`` of device
    arrays: ``act_rms/<key>``, ``attn_entropy/<layer>``, ``head_rms/<layer>``, ``dead_units/<layer>``,
    ``act_finite``. Used by :class:`Probes` and the doctor's init-scale check."""
    stack = stack if stack is not None else _Stack()
    handles, found = [], {}
    attn = _attention_modules(model)

    def keep(key):
        def hook(module, inputs, output):
            found[key] = output.data
        return hook

    def keep_input(key):
        def hook(module, inputs, output):
            found[key] = inputs[0].data
        return hook

    for key, m in _residual_points(model):
        handles.append(m.register_forward_hook(keep(f"act/{key}")))
    for name, gate in _ffn_gate(model):
        handles.append(gate.register_forward_hook(keep(f"gate/{name}")))
    for name, m in attn:
        handles.append(m.proj.register_forward_hook(keep_input(f"merged/{name}")))
    prev = [m.record_attention for _, m in attn]
    try:
        for _, m in attn:
            m.record_attention = True
        with eval_mode(model):
            logits = model(x)
    finally:
        for h in handles:
            h.remove()
        weights = {name: m.last_attention for name, m in attn}
        for (_, m), p in zip(attn, prev):
            m.record_attention = p
    xp = _xp(logits.data)
    finite = [xp.isfinite(logits.data).all()]
    for key, _ in _residual_points(model):
        a = found.get(f"act/{key}")
        if a is not None:
            stack.add(f"act_rms/{key}", _rms(xp, a))
            finite.append(xp.isfinite(a).all())
    for name, _gate in _ffn_gate(model):
        a = found.get(f"gate/{name}")
        if a is not None:
            active = (a > 0).reshape(-1, a.shape[-1]).any(axis=0)
            stack.add(f"dead_units/{name}", 1.0 - active.mean())
    for name, m in attn:
        p = weights.get(name)
        if p is not None:
            stack.add(f"attn_entropy/{name}", _attention_entropy(xp, p))
        merged = found.get(f"merged/{name}")
        if merged is not None:
            stack.add(f"head_rms/{name}", _head_rms(xp, merged, m.proj.weight.data, m.n_heads))
    stack.add("act_finite", xp.stack(finite).all())
    stack.add("logit_std", xp.std(logits.data.astype(xp.float32, copy=False)))
    return stack


def _power_iteration(xp, w, u, iters):
    w = w.astype(xp.float32, copy=False)
    for _ in range(iters):
        v = w.T @ u
        v /= xp.linalg.norm(v) + 1e-12
        u = w @ v
        u /= xp.linalg.norm(u) + 1e-12
    sigma = u @ (w @ v)
    return sigma, u


def spectral_norm(weight, iters: int = 20, seed: int = 0) -> float:
    """Largest singular value of a 2-D array or Tensor by power iteration (``iters`` steps)."""
    w = weight.data if isinstance(weight, Tensor) else weight
    xp = _xp(w)
    rng = np.random.default_rng(seed)
    u = xp.asarray(rng.standard_normal(w.shape[0]).astype(np.float32))
    u /= xp.linalg.norm(u)
    sigma, _ = _power_iteration(xp, w, u, iters)
    return float(to_numpy(sigma))


def is_dead_head(entropy: float, share: float, n_heads: int, *, entropy_min: float = DEAD_HEAD_ENTROPY,
                 share_min: float = DEAD_HEAD_SHARE) -> bool:
    """The dead-head rule: mean attention entropy below ``entropy_min`` nats (collapsed onto one
    key) or output share below ``share_min / n_heads`` (silent). NaN (a dead run) counts as dead."""
    return not (entropy >= entropy_min) or not (share >= share_min / n_heads)


def _summarise_heads(host, attn_names, entropy_min=DEAD_HEAD_ENTROPY, share_min=DEAD_HEAD_SHARE):
    ent, share, dead, total = [], [], 0, 0
    for name in attn_names:
        e = host.get(f"attn_entropy/{name}")
        r = host.get(f"head_rms/{name}")
        if e is None or r is None:
            continue
        e, r = np.atleast_1d(e), np.atleast_1d(r)
        s = r / r.sum() if np.isfinite(r).all() and r.sum() > 0 else np.full_like(r, np.nan)
        ent.append([round(float(v), 4) for v in e])
        share.append([round(float(v), 4) for v in s])
        h = r.size
        total += h
        dead += sum(is_dead_head(float(ei), float(si), h, entropy_min=entropy_min, share_min=share_min)
                    for ei, si in zip(e, s))
    return ent, share, dead, total


class Probes:
    """Training callback that adds the probe metrics to ``metrics.jsonl`` every ``interval`` steps.

    ``Probes(interval=10)`` then ``train(config, callbacks=[probes])`` (``tensorlite train`` adds
    ``Probes(interval=25)``; ``--probe-interval`` changes it). Probe steps are 0, ``interval``, ``2*interval`` ...
    and the last step. ``batch``: token ids ``(B, T)`` to probe on (default: the first batch the
    model sees, cropped to ``batch_size`` rows). Works with any loop that calls
    ``on_train_start(trainer)`` and ``on_step_end(trainer, metrics)`` where ``trainer.model`` is
    the model and ``trainer.step`` the step; ``on_before_optimizer_step(trainer)``, when the loop
    calls it, lets gradients and the pre-update weights be read at the right moment.
    """

    def __init__(self, interval: int = 10, batch=None, batch_size: int = 8, spectral_iters: int = 2,
                 dead_head_entropy: float = DEAD_HEAD_ENTROPY, dead_head_share: float = DEAD_HEAD_SHARE,
                 last_step: int | None = None) -> None:
        if interval < 1:
            raise ValueError(f"Probes: interval must be >= 1, got {interval}")
        self.interval, self.batch_size = int(interval), int(batch_size)
        self.spectral_iters = int(spectral_iters)
        self.dead_head_entropy, self.dead_head_share = float(dead_head_entropy), float(dead_head_share)
        self.batch = batch
        self.last_step = last_step
        self.model = None
        self._handle = None
        self._u = {}
        self._pending = None  # (step, stack, snapshot) from on_before_optimizer_step
        self._n_steps = self._n_clipped = 0

    # ---- attaching ----------------------------------------------------------------------------
    def attach(self, model) -> None:
        """Start watching ``model`` (called by ``on_train_start``)."""
        self.model = model
        self._weights = [(n, p) for n, p in model.named_parameters() if p.ndim == 2]
        if self.batch is None:
            self._handle = model.register_forward_pre_hook(self._capture)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _capture(self, module, inputs):
        x = inputs[0]
        data = x.data if isinstance(x, Tensor) else np.asarray(x)
        self.batch = Tensor(data[: self.batch_size].copy(), device=getattr(x, "device", None))
        self.detach()

    def is_probe_step(self, step: int) -> bool:
        return step % self.interval == 0 or (self.last_step is not None and step == self.last_step)

    # ---- callback hooks -----------------------------------------------------------------------
    def on_train_start(self, trainer) -> None:
        cfg = getattr(trainer, "config", None)
        steps = getattr(getattr(cfg, "optim", cfg), "steps", None)  # a TrainConfig, or a flat config
        if self.last_step is None and steps:
            self.last_step = int(steps) - 1
        self.attach(trainer.model)

    def on_before_optimizer_step(self, trainer) -> None:
        step = int(trainer.step)
        if self.is_probe_step(step) and self.batch is not None:
            self._pending = (step, self._pre_update(), self._snapshot())

    def on_step_end(self, trainer, metrics: dict) -> None:
        step = int(metrics.get("step", trainer.step))
        if metrics.get("clipped") is not None:  # every step: the running fraction of clipped steps
            self._n_steps += 1
            self._n_clipped += bool(metrics["clipped"])
        if not self.is_probe_step(step) or self.batch is None:
            return
        if self._pending is not None and self._pending[0] == step:
            _, stack, snap = self._pending
        else:  # a loop without on_before_optimizer_step: measure after the update
            stack, snap = self._pre_update(), None
        self._pending = None
        metrics.update(self._finish(stack, snap, metrics))

    def on_train_end(self, trainer) -> None:
        self.detach()

    # ---- measuring ----------------------------------------------------------------------------
    def _snapshot(self):
        return {n: p.data.copy() for n, p in self._weights}

    def _pre_update(self) -> _Stack:
        model = self.model
        stack = measure_activations(model, self.batch)
        xp = _xp(self._weights[0][1].data) if self._weights else np
        for n, p in model.named_parameters():
            if p.grad is not None:
                g = p.grad.data if isinstance(p.grad, Tensor) else p.grad
                stack.add(f"grad/{n}", xp.sqrt(xp.sum(xp.square(g.astype(xp.float32, copy=False)))))
                stack.add(f"gfinite/{n}", xp.isfinite(g).all())
        for n, p in self._weights:
            u = self._u.get(n)
            iters = self.spectral_iters
            if u is None:  # the first estimate starts from a random vector: converge it once
                u = xp.asarray(np.random.default_rng(0).standard_normal(p.shape[0]).astype(np.float32))
                u /= xp.linalg.norm(u)
                iters = max(iters, 20)
            sigma, self._u[n] = _power_iteration(xp, p.data, u, iters)
            stack.add(f"spec/{n}", sigma)
        return stack

    def _finish(self, stack: _Stack, snap, metrics: dict) -> dict:
        xp = _xp(self._weights[0][1].data) if self._weights else np
        for n, p in self._weights:
            stack.add(f"wfinite/{n}", xp.isfinite(p.data).all())
            if snap is not None:
                w0 = snap[n].astype(xp.float32, copy=False)
                du = p.data.astype(xp.float32, copy=False) - w0
                stack.add(f"upd/{n}", xp.sqrt(xp.sum(du * du)) / (xp.sqrt(xp.sum(w0 * w0)) + 1e-12))
        host = stack.fetch()
        out: dict = {}
        out["act_rms"] = {k[len("act_rms/"):]: _r(v) for k, v in host.items() if k.startswith("act_rms/")}
        # per-parameter norms after clipping scaled back to before clipping, like "grad_norm"
        pre, post = metrics.get("grad_norm"), metrics.get("grad_norm_clipped")
        scale = pre / post if pre and post and math.isfinite(pre) and math.isfinite(post) and post > 0 else 1.0
        out["grad_norm_layer"] = {k[5:]: _r(v * scale) for k, v in host.items() if k.startswith("grad/")}
        if snap is not None:
            out["update_ratio"] = {k[4:]: _r(v) for k, v in host.items() if k.startswith("upd/")}
        out["spectral_norm"] = {k[5:]: _r(v) for k, v in host.items() if k.startswith("spec/")}
        attn_names = [n for n, _ in _attention_modules(self.model)]
        ent, share, dead, total = _summarise_heads(host, attn_names, self.dead_head_entropy, self.dead_head_share)
        if ent:
            out["attn_entropy"] = ent
        if share:
            out["head_share"] = share
            out["dead_heads"] = dead
            out["n_heads_total"] = total
        du = [v for k, v in host.items() if k.startswith("dead_units/")]
        if du:
            out["dead_units"] = _r(float(np.mean(du)))
        out["logit_std"] = _r(host.get("logit_std", float("nan")))
        if self._n_steps:
            out["clipped_frac"] = _r(self._n_clipped / self._n_steps)
        flags = [v for k, v in host.items() if k.startswith(("gfinite/", "wfinite/"))] + [host.get("act_finite", 1.0)]
        bad = [k.split("/", 1)[1] for k, v in host.items() if k.startswith(("gfinite/", "wfinite/")) and not v]
        out["nonfinite"] = bool(not all(bool(f) for f in flags))
        if bad:
            out["nonfinite_params"] = bad[:10]
        return out


def _r(v, nd=6):
    v = float(v)
    if not math.isfinite(v):
        return v
    return float(f"{v:.{nd}g}")


# Used by the doctor: a quick forward of a model with the same probes.
def forward_stats(model, x) -> dict:
    """Activation RMS per residual point, logit std, dead units, attention entropy and head shares
    for one forward of ``model`` on ``x`` (host floats)."""
    host = measure_activations(model, x).fetch()
    attn_names = [n for n, _ in _attention_modules(model)]
    ent, share, dead, total = _summarise_heads(host, attn_names)
    du = [v for k, v in host.items() if k.startswith("dead_units/")]
    return {
        "act_rms": {k[len("act_rms/"):]: float(v) for k, v in host.items() if k.startswith("act_rms/")},
        "logit_std": float(host.get("logit_std", float("nan"))),
        "dead_units": float(np.mean(du)) if du else None,
        "attn_entropy": ent, "head_share": share, "dead_heads": dead, "n_heads_total": total,
        "finite": bool(host.get("act_finite", 1.0)),
    }

