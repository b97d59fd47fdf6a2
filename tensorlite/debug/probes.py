"""Probes: the measurements the dashboard plots, on any tensorlite or PyTorch model.

Every ``interval`` steps the probes measure, on one fixed probe batch (the first batch the model
sees, cropped to ``batch_size`` rows):

* ``act_rms``: RMS of the residual stream after each block, and of the final norm's output;
* ``attn_entropy``: mean attention entropy (nats, over keys) per head per layer;
* ``head_share``: each head's share of its attention layer's output (RMS of the head's term in
  the output projection, over the sum of those RMS for the layer's heads);
* ``dead_heads`` / ``n_heads_total``: heads that are collapsed or silent (see :func:`is_dead_head`);
* ``dead_units``: fraction of MLP hidden units whose pre-activation is <= 0 for every token;
* ``grad_norm_layer``: per-parameter gradient norm (before clipping);
* ``update_ratio``: per-weight ``||W_after - W_before|| / ||W_before||`` of this step's update;
* ``spectral_norm``: largest singular value of each weight matrix (power iteration with
  persistent vectors, ``spectral_iters`` steps per probe);
* ``clipped_frac``: the fraction of the steps so far on which the loop clipped the gradient;
* ``nonfinite``: True when a weight, a gradient or a probed activation holds NaN or Inf.

The probes find what they measure by looking, never by our names: the model view
(:func:`~tensorlite.debug.view.model_view`) names the blocks, each block's attention and MLP and
the final norm; one forward under :class:`~tensorlite.debug.capture.Capture` yields each block's
output, the weights of every softmax or ``scaled_dot_product_attention`` call, the input of each
attention's output projection and of each MLP's first projection. Nothing in the model changes.

Each framework computes natively: tensorlite arrays with NumPy or CuPy, torch tensors with torch
under ``torch.no_grad()``; every reduction stays on the model's device and the results are
fetched with one host copy per probe step.

:class:`Probes` is the training callback ``tensorlite train`` adds;
:class:`~tensorlite.debug.recorder.RunRecorder` puts the same probes into a hand-written loop.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..backend import device_of
from ..tensor import Tensor
from .capture import Capture
from .native import eval_mode, is_torch, native_for, to_numpy
from .view import ModelView, model_view

__all__ = ["Probes", "measure_activations", "spectral_norm", "forward_stats", "is_dead_head",
           "DEAD_HEAD_ENTROPY", "DEAD_HEAD_SHARE", "DEAD_UNIT_RULE"]

#: A head is dead when its mean attention entropy is below this many nats: it puts (nearly) all
#: its weight on one key for every query (exp(0.3) = 1.35 keys' worth), a fixed copy or a
#: saturated softmax. See docs/debug/probes.md for the measurements behind the number.
DEAD_HEAD_ENTROPY = 0.3
#: ... or when its share of the layer's attention output is below ``DEAD_HEAD_SHARE / n_heads``
#: (a tenth of an even split): it contributes (almost) nothing.
DEAD_HEAD_SHARE = 0.1
#: A hidden MLP unit is dead when its pre-activation (the output of the MLP's first projection to
#: the hidden width: ``fc`` for GELU, the gate for SwiGLU) is <= 0 for every token of the probe
#: batch: GELU / SiLU then pass (almost) nothing.
DEAD_UNIT_RULE = "pre-activation <= 0 on every token of the probe batch"


# ------------------------------------------------------------------------------------------------
# the reductions, in each framework
# ------------------------------------------------------------------------------------------------
class _ArrayOps:
    """The probes' arithmetic on tensorlite's arrays (NumPy or CuPy), on their device."""

    def __init__(self, xp):
        self.xp = xp

    @staticmethod
    def raw(t):
        """A Tensor's (or Parameter's) array; an array as it is."""
        return t.data if hasattr(t, "grad_fn") else t

    def f32(self, t):
        return self.raw(t).astype(self.xp.float32, copy=False)

    def copy(self, t):
        return self.raw(t).copy()

    def sqrt(self, a):
        return self.xp.sqrt(a)

    def rownorm(self, v):
        return self.xp.linalg.norm(v, axis=-1, keepdims=True)


    def log(self, a):
        return self.xp.log(self.xp.maximum(a, 1e-30))

    def stack(self, items):
        return self.xp.stack(items)

    def finite(self, t):
        return self.xp.isfinite(self.raw(t)).all()

    def std(self, t):
        return self.xp.std(self.f32(t))

    def all(self, flags):
        return self.xp.stack(flags).all()

    def unit(self, vec: np.ndarray, like):
        return self.xp.asarray(vec)

    def flat(self, a):
        return self.xp.asarray(a, dtype=self.xp.float32).reshape(-1)

    def cat(self, flat):
        return self.xp.concatenate(flat)

    def norms(self, ts, linf: bool = True):
        """``(L2 norms, max |x| or None)`` of each tensor, device vectors."""
        arrs = [self.f32(t) for t in ts]
        l2 = self.xp.stack([self.xp.sqrt((a * a).sum()) for a in arrs])
        if not linf:
            return l2, None
        return l2, self.xp.stack([self.xp.abs(a).max() if a.size else self.xp.zeros((), a.dtype) for a in arrs])

    def sub_each(self, new, old):
        return [self.f32(a) - self.f32(b) for a, b in zip(new, old)]


class _TorchOps(_ArrayOps):
    """The same arithmetic on torch tensors (the callers run it under ``torch.no_grad()``)."""

    def __init__(self, torch):
        self.torch = torch

    @staticmethod
    def raw(t):
        return t.detach()

    def f32(self, t):
        return t.detach().float()

    def copy(self, t):
        return t.detach().clone()

    def sqrt(self, a):
        return self.torch.sqrt(a)

    def rownorm(self, v):
        return self.torch.linalg.vector_norm(v, dim=-1, keepdim=True)


    def log(self, a):
        return self.torch.log(a.clamp_min(1e-30))

    def stack(self, items):
        return self.torch.stack(items)

    def finite(self, t):
        return self.torch.isfinite(t.detach()).all()

    def std(self, t):
        return self.torch.std(self.f32(t), correction=0)

    def all(self, flags):
        return self.torch.stack(flags).all()

    def unit(self, vec: np.ndarray, like):
        return self.torch.from_numpy(vec).to(like.device)

    def flat(self, a):
        a = (a if isinstance(a, self.torch.Tensor) else self.torch.as_tensor(a)).detach().reshape(-1)
        return a if a.dtype == self.torch.float32 else a.float()

    def cat(self, flat):
        return self.torch.cat(flat)

    def norms(self, ts, linf: bool = True):
        # one fused call per kind of norm (what clip_grad_norm_ uses), not a few ops per tensor
        torch = self.torch
        ts = [t.detach() if t.dtype == torch.float32 else t.detach().float() for t in ts]
        l2 = torch.stack(torch._foreach_norm(ts))
        return l2, (torch.stack(torch._foreach_norm(ts, ord=float("inf"))) if linf else None)

    def sub_each(self, new, old):
        torch = self.torch
        new = [t.detach() if t.dtype == torch.float32 else t.detach().float() for t in new]
        return list(torch._foreach_sub(new, [t if t.dtype == torch.float32 else t.float() for t in old]))


def _ops_for(obj) -> _ArrayOps:
    """The :class:`_ArrayOps` of a model, tensor or array's framework (and, for arrays, device)."""
    if is_torch(obj):
        return _TorchOps(native_for(obj).torch)
    if hasattr(obj, "parameters"):
        for p in obj.parameters():
            return _ArrayOps(p.device.xp)
    return _ArrayOps(device_of(getattr(obj, "data", obj)).xp)


# the measurements: each a function of one framework's ops, leaving device scalars or vectors
def _rms(ops, t):
    a = ops.f32(t)
    return ops.sqrt((a * a).mean())


def _attention_entropy(ops, w):
    """Mean over batch and queries of ``-sum_k p log p``, per head: ``(H,)`` from ``(B, H, T, T)``
    weights (a ``(B, T, T)`` call counts as one head)."""
    p = ops.f32(w)
    ent = -(p * ops.log(p)).sum(-1)  # (..., Tq)
    if ent.ndim >= 3:  # (B, H, Tq): one number per head
        return ent.reshape(-1, ent.shape[-2], ent.shape[-1]).mean(-1).mean(0)
    return ent.reshape(1, -1).mean(-1)


def _head_rms(ops, merged, weight, n_heads):
    """RMS of each head's term in the output projection's output, ``x_h @ W[:, h].T``: ``(H,)``."""
    x = ops.f32(merged)
    hd = x.shape[-1] // n_heads
    x = x.reshape(-1, n_heads, hd).swapaxes(0, 1)  # (H, N, hd)
    w = ops.f32(weight).reshape(-1, n_heads, hd).swapaxes(0, 1).swapaxes(-1, -2)  # (H, hd, D)
    y = x @ w  # every head's term, in one batched product: (H, N, D)
    return ops.sqrt((y * y).reshape(n_heads, -1).mean(-1))


def _dead_fraction(ops, pre):
    """The fraction of hidden units (last axis) that are <= 0 for every token."""
    alive = (ops.raw(pre) > 0).reshape(-1, pre.shape[-1]).any(0)
    return 1.0 - ops.f32(alive).mean()


def _power_iteration(ops, w, u, iters):
    """``(sigma, u)`` after ``iters`` steps from ``u``: one matrix ``(m, n)`` with ``u`` ``(m,)``, or
    a stack ``(G, m, n)`` of same-shaped matrices with ``u`` ``(G, m)``, iterated together."""
    w = ops.f32(w)
    wt = w.swapaxes(-1, -2)
    for _ in range(max(int(iters), 1)):
        v = (wt @ u[..., None])[..., 0]
        v = v / (ops.rownorm(v) + 1e-12)
        u = (w @ v[..., None])[..., 0]
        u = u / (ops.rownorm(u) + 1e-12)
    return (u[..., None, :] @ (w @ v[..., None]))[..., 0, 0], u


def _start_vector(ops, w):
    """The fixed random start of a power iteration for ``w`` (the same in both frameworks)."""
    u = np.random.default_rng(0).standard_normal(w.shape[0]).astype(np.float32)
    return ops.unit(u / np.linalg.norm(u), w)


class _Stack:
    """Device scalars and small vectors gathered under names, fetched to the host in one go."""

    def __init__(self, ops: _ArrayOps):
        self.ops = ops
        self.items = []

    def add(self, name, arr):
        self.items.append((name, arr))

    def fetch(self) -> dict:
        if not self.items:
            return {}
        flat = [self.ops.flat(a) for _, a in self.items]
        host = np.asarray(to_numpy(self.ops.cat(flat)), dtype=np.float64)  # the one device -> host copy
        out, i = {}, 0
        for (name, a), f in zip(self.items, flat):
            n = int(f.shape[0])
            out[name] = host[i:i + n].reshape(tuple(a.shape)) if getattr(a, "ndim", 0) else float(host[i])
            i += n
        return out


# ------------------------------------------------------------------------------------------------
# one probed forward
# ------------------------------------------------------------------------------------------------
def _weight2d(module):
    w = getattr(module, "weight", None)
    return w if w is not None and hasattr(w, "shape") and len(w.shape) == 2 else None


def _first_call(cap, name):
    for c in cap.calls:
        if c.name == name:
            return c
    return None


def _out_projection(cap, attn_call, n_heads, width):
    """The call inside the attention sublayer that maps the heads side by side back to the stream:
    the last one with a 2-D weight ``(width, H * d_head)`` fed a ``(..., H * d_head)`` input."""
    best = None
    for c in cap.descendants(attn_call):
        w, x = _weight2d(c.module), c.input
        if w is None or x is None or len(x.shape) < 2:
            continue
        n_in = int(x.shape[-1])
        if tuple(w.shape) == (width, n_in) and n_in % n_heads == 0:
            best = c
    return best


def _hidden_projection(view, cap, block_call, attn_name, width):
    """The MLP's first projection out of the stream width (``fc``, ``c_fc``, ``w_gate``, ``up``):
    its output holds the hidden units' pre-activations."""
    bname = block_call.name
    mlp = view.mlp.get(bname)
    scope = _first_call(cap, mlp) if mlp and " -> " not in mlp else None
    calls = cap.descendants(scope if scope is not None else block_call)
    for c in calls:
        if attn_name and attn_name != bname and (c.name == attn_name or c.name.startswith(attn_name + ".")):
            continue
        w, x, o = _weight2d(c.module), c.input, c.out
        if w is None or x is None or o is None or len(x.shape) < 2:
            continue
        if int(x.shape[-1]) == width and int(o.shape[-1]) != width:
            return c
    return None


def _measure_forward(view: ModelView, x, stack: _Stack) -> _Stack:
    """One eval-mode, no-grad forward of ``view.model`` on native tokens ``x`` under a native
    :class:`Capture`; adds ``act_rms/<key>``, ``attn_entropy/<block>``, ``head_rms/<block>``,
    ``dead_units/<block>``, ``act_finite`` and ``logit_std`` to ``stack``."""
    model, ops = view.model, stack.ops
    with eval_mode(model), view.native.no_grad(), Capture(model, seq_len=int(x.shape[1]), native=True) as cap:
        logits = view.logits_native(x)
    finite = [ops.finite(logits)]
    points = [(b, _first_call(cap, b)) for b, _ in view.blocks]
    if view.final_norm:
        points.append((view.final_norm, _first_call(cap, view.final_norm)))
    for key, call in points:
        a = call.out if call is not None else None
        if a is not None:
            stack.add(f"act_rms/{key}", _rms(ops, a))
            finite.append(ops.finite(a))
    for bname, call in points[:len(view.blocks)]:
        if call is None:
            continue
        width = int(call.input.shape[-1])
        own = [a for a in cap.attention if bname in a.stack]
        aname = view.attention.get(bname)
        if own:
            stack.add(f"attn_entropy/{bname}", ops.cat([_attention_entropy(ops, a.weights) for a in own]))
            n_heads = sum(a.n_heads for a in own)
            acall = _first_call(cap, aname) if aname and aname != bname else None
            proj = _out_projection(cap, acall, n_heads, width) if acall is not None and len(own) == 1 else None
            if proj is not None:
                stack.add(f"head_rms/{bname}", _head_rms(ops, proj.input, _weight2d(proj.module), n_heads))
        hidden = _hidden_projection(view, cap, call, aname, width)
        if hidden is not None:
            stack.add(f"dead_units/{bname}", _dead_fraction(ops, hidden.out))
    stack.add("act_finite", ops.all(finite))
    stack.add("logit_std", ops.std(logits))
    return stack


def is_dead_head(entropy: float, share: float | None, n_heads: int, *, entropy_min: float = DEAD_HEAD_ENTROPY,
                 share_min: float = DEAD_HEAD_SHARE) -> bool:
    """The dead-head rule: mean attention entropy below ``entropy_min`` nats (collapsed onto one
    key) or output share below ``share_min / n_heads`` (silent). NaN (a dead run) counts as dead;
    ``share=None`` (no output projection found) judges by the entropy alone."""
    if not (entropy >= entropy_min):
        return True
    return share is not None and not (share >= share_min / n_heads)


def _summarise_heads(host, block_names, entropy_min=DEAD_HEAD_ENTROPY, share_min=DEAD_HEAD_SHARE):
    """``(entropies, shares or None, dead, total)`` over the layers with attention."""
    ent, share, dead, total = [], [], 0, 0
    all_shares = True
    for name in block_names:
        e = host.get(f"attn_entropy/{name}")
        if e is None:
            continue
        e = np.atleast_1d(e)
        r = host.get(f"head_rms/{name}")
        s = None
        if r is not None:
            r = np.atleast_1d(r)
            s = r / r.sum() if np.isfinite(r).all() and r.sum() > 0 else np.full_like(r, np.nan)
            share.append([round(float(v), 4) for v in s])
        else:
            all_shares = False
        ent.append([round(float(v), 4) for v in e])
        h = e.size
        total += h
        dead += sum(is_dead_head(float(ei), None if s is None else float(s[i]), h,
                                 entropy_min=entropy_min, share_min=share_min) for i, ei in enumerate(e))
    return ent, (share if all_shares and share else None), dead, total


def _view_of(model, view_options=None) -> ModelView:
    return model if isinstance(model, ModelView) else model_view(model, **(view_options or {}))


def measure_activations(model, x, stack: _Stack | None = None) -> _Stack:
    """One probed forward of ``model`` (a module or its :class:`ModelView`) on token ids ``x``;
    returns a ``_Stack`` of device arrays (``act_rms/<key>``, ``attn_entropy/<block>``,
    ``head_rms/<block>``, ``dead_units/<block>``, ``act_finite``, ``logit_std``)."""
    view = _view_of(model)
    stack = stack if stack is not None else _Stack(_ops_for(view.model))
    return _measure_forward(view, view.tokens(x), stack)


def spectral_norm(weight, iters: int = 20, seed: int = 0) -> float:
    """Largest singular value of a 2-D array, tensorlite Tensor or torch tensor by power iteration
    (``iters`` steps), computed in the weight's own framework."""
    ops = _ops_for(weight)
    u = np.random.default_rng(seed).standard_normal(weight.shape[0]).astype(np.float32)
    sigma, _ = _power_iteration(ops, weight, ops.unit(u / np.linalg.norm(u), weight), iters)
    return float(to_numpy(sigma))


# ------------------------------------------------------------------------------------------------
# the callback
# ------------------------------------------------------------------------------------------------
class Probes:
    """Training callback that adds the probe metrics to ``metrics.jsonl`` every ``interval`` steps.

    ``Probes(interval=10)`` then ``train(config, callbacks=[probes])`` (``tensorlite train`` adds
    ``Probes(interval=25)``; ``--probe-interval`` changes it). Probe steps are 0, ``interval``,
    ``2*interval`` ... and the last step. ``batch``: token ids ``(B, T)`` to probe on (default: the
    first batch the model sees, cropped to ``batch_size`` rows). ``view``: a
    :class:`~tensorlite.debug.view.ModelView` of the model, or a dict of its overrides
    (``{"blocks": "transformer.h"}``) when the guesses need help.

    Works with any loop that calls ``on_train_start(trainer)`` and ``on_step_end(trainer, metrics)``
    where ``trainer.model`` is the model (tensorlite or torch) and ``trainer.step`` the step;
    ``on_before_optimizer_step(trainer)``, when the loop calls it, lets gradients and the
    pre-update weights be read at the right moment. A hand-written loop uses
    :class:`~tensorlite.debug.recorder.RunRecorder`, which drives these hooks.
    """

    def __init__(self, interval: int = 10, batch=None, batch_size: int = 8, spectral_iters: int = 2,
                 dead_head_entropy: float = DEAD_HEAD_ENTROPY, dead_head_share: float = DEAD_HEAD_SHARE,
                 last_step: int | None = None, view=None) -> None:
        if interval < 1:
            raise ValueError(f"Probes: interval must be >= 1, got {interval}")
        self.interval, self.batch_size = int(interval), int(batch_size)
        self.spectral_iters = int(spectral_iters)
        self.dead_head_entropy, self.dead_head_share = float(dead_head_entropy), float(dead_head_share)
        self.batch = batch
        self.last_step = last_step
        self.model = None
        self.view = view if isinstance(view, ModelView) else None
        self._view_options = view if isinstance(view, dict) else {}
        self.ops: _ArrayOps | None = None
        self._handle = None
        self._u = {}
        self._weights = []
        self._params = {}
        self._spec_groups = []
        self._grad_names = []
        self._pending = None  # (step, stack, snapshot) from on_before_optimizer_step
        self._n_steps = self._n_clipped = 0

    # ---- attaching ----------------------------------------------------------------------------
    def attach(self, model) -> None:
        """Start watching ``model`` (called by ``on_train_start``): its view is found once, here."""
        self.model = model
        self.ops = _ops_for(model)
        self._weights = [(n, p) for n, p in model.named_parameters() if len(p.shape) == 2]
        self._params = dict(self._weights)
        groups: dict = {}
        for n, p in self._weights:
            groups.setdefault((tuple(p.shape), str(p.dtype), str(getattr(p, "device", ""))), []).append(n)
        self._spec_groups = [tuple(names) for names in groups.values()]
        if self.view is None or self.view.model is not model:
            try:
                self.view = model_view(model, **self._view_options)
            except (TypeError, ValueError) as e:  # the parameter probes still run
                self.view = None
                warnings.warn(f"Probes: no forward probes for {type(model).__name__} ({e}); "
                              "pass Probes(view={...}) with the model view's overrides", stacklevel=3)
        if self.batch is None:
            self._handle = model.register_forward_pre_hook(self._capture)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _capture(self, module, inputs):
        if not inputs or not hasattr(inputs[0], "shape") or len(inputs[0].shape) != 2:
            return  # not a (B, T) batch of token ids: wait for one
        x = inputs[0][: self.batch_size]
        if is_torch(x):
            self.batch = x.detach().clone()
        else:
            data = x.data if hasattr(x, "grad_fn") else np.asarray(x)
            self.batch = Tensor(data.copy(), device=getattr(x, "device", None))
        self.detach()

    def is_probe_step(self, step: int) -> bool:
        return step % self.interval == 0 or (self.last_step is not None and step == self.last_step)

    # ---- callback hooks -----------------------------------------------------------------------
    def on_train_start(self, trainer) -> None:
        cfg = getattr(trainer, "config", None)
        steps = getattr(getattr(cfg, "optim", cfg), "steps", None)  # a TrainConfig, or a flat config
        if self.last_step is None and isinstance(steps, int) and steps:
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
        return {n: self.ops.copy(p) for n, p in self._weights}

    def _pre_update(self) -> _Stack:
        ops = self.ops
        stack = _Stack(ops)
        with native_for(self.model).no_grad():
            if self.view is not None:
                _measure_forward(self.view, self.batch, stack)
            named = [(n, p.grad) for n, p in self.model.named_parameters() if p.grad is not None]
            if named:
                l2, linf = ops.norms([g for _, g in named])
                stack.add("grad_l2", l2)
                stack.add("grad_linf", linf)
            self._grad_names = [n for n, _ in named]
            # matrices of one shape (each layer's c_attn, ...) are iterated together, as a stack
            for i, names in enumerate(self._spec_groups):
                ws = [self._params[n] for n in names]
                w = ops.stack([ops.f32(p) for p in ws]) if len(ws) > 1 else ops.f32(ws[0])[None]
                u = self._u.get(names)
                iters = self.spectral_iters
                if u is None:  # the first estimate starts from a random vector: converge it once
                    u, iters = ops.stack([_start_vector(ops, p) for p in ws]), max(iters, 20)
                sigma, self._u[names] = _power_iteration(ops, w, u, iters)
                stack.add(f"spec/{i}", sigma)
        return stack

    def _finish(self, stack: _Stack, snap, metrics: dict) -> dict:
        ops = self.ops
        names = [n for n, _ in self._weights]
        if names:
            with native_for(self.model).no_grad():
                now = [p for _, p in self._weights]
                l2, linf = ops.norms(now)
                stack.add("w_l2", l2)
                stack.add("w_linf", linf)
                if snap is not None:
                    before = [snap[n] for n in names]
                    moved = ops.norms(ops.sub_each(now, before), linf=False)[0]
                    stack.add("upd", moved / (ops.norms(before, linf=False)[0] + 1e-12))
        host = stack.fetch()
        grads = dict(zip(self._grad_names, np.atleast_1d(host.get("grad_l2", []))))
        # a tensor is finite when its max |x| is (an L2 norm alone can overflow) and its norm is not NaN
        gfin = [bool(np.isfinite(a) and not np.isnan(b)) for a, b in
                zip(np.atleast_1d(host.get("grad_linf", [])), grads.values())]
        wfin = [bool(np.isfinite(a) and not np.isnan(b)) for a, b in
                zip(np.atleast_1d(host.get("w_linf", [])), np.atleast_1d(host.get("w_l2", [])))]
        out: dict = {}
        out["act_rms"] = {k[len("act_rms/"):]: _r(v) for k, v in host.items() if k.startswith("act_rms/")}
        # per-parameter norms after clipping scaled back to before clipping, like "grad_norm"
        pre, post = metrics.get("grad_norm"), metrics.get("grad_norm_clipped")
        scale = pre / post if pre and post and math.isfinite(pre) and math.isfinite(post) and post > 0 else 1.0
        out["grad_norm_layer"] = {n: _r(v * scale) for n, v in grads.items()}
        if snap is not None and names:
            out["update_ratio"] = {n: _r(v) for n, v in zip(names, np.atleast_1d(host["upd"]))}
        sigma = {n: v for i, names in enumerate(self._spec_groups)
                 for n, v in zip(names, np.atleast_1d(host.get(f"spec/{i}", [])))}
        out["spectral_norm"] = {n: _r(sigma[n]) for n, _ in self._weights if n in sigma}
        blocks = [b for b, _ in self.view.blocks] if self.view is not None else []
        ent, share, dead, total = _summarise_heads(host, blocks, self.dead_head_entropy, self.dead_head_share)
        if ent:
            out["attn_entropy"] = ent
            out["dead_heads"] = dead
            out["n_heads_total"] = total
        if share:
            out["head_share"] = share
        du = [v for k, v in host.items() if k.startswith("dead_units/")]
        if du:
            out["dead_units"] = _r(float(np.mean(du)))
        if "logit_std" in host:
            out["logit_std"] = _r(host["logit_std"])
        if self._n_steps:
            out["clipped_frac"] = _r(self._n_clipped / self._n_steps)
        bad = [n for n, ok in zip(self._grad_names, gfin) if not ok] + [n for n, ok in zip(names, wfin) if not ok]
        out["nonfinite"] = bool(bad) or not bool(host.get("act_finite", 1.0))
        if bad:
            out["nonfinite_params"] = bad[:10]
        return out


def _r(v, nd=6):
    v = float(v)
    if not math.isfinite(v):
        return v
    return float(f"{v:.{nd}g}")


# Used by the doctor: a quick forward of a model with the same probes.
def forward_stats(model, x, **view_options) -> dict:
    """Activation RMS per residual point, logit std, dead units, attention entropy and head shares
    for one forward of ``model`` (tensorlite or torch, or its :class:`ModelView`) on token ids
    ``x`` (an int array or the framework's tensor), as host floats."""
    view = _view_of(model, view_options)
    host = measure_activations(view, x).fetch()
    ent, share, dead, total = _summarise_heads(host, [b for b, _ in view.blocks])
    du = [v for k, v in host.items() if k.startswith("dead_units/")]
    return {
        "act_rms": {k[len("act_rms/"):]: float(v) for k, v in host.items() if k.startswith("act_rms/")},
        "logit_std": float(host.get("logit_std", float("nan"))),
        "dead_units": float(np.mean(du)) if du else None,
        "attn_entropy": ent, "head_share": share, "dead_heads": dead, "n_heads_total": total,
        "finite": bool(host.get("act_finite", 1.0)),
    }
