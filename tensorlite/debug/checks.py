"""The doctor's preflight checks: small functions, each usable alone, each returning a
:class:`CheckResult` (name, status, evidence, hint, doc_url).

Most take a model: a tensorlite ``nn.Module`` (a GPT or anything shaped like one). The ones that
only need behaviour take a callable instead: :func:`causal_leak` works on any ``tokens -> logits``
function (a PyTorch model too), :func:`loss_sign` on any loss function, :func:`rope_rotation` on
any rotary-embedding function. Nothing here changes the model it is given: weights are restored,
gradients cleared, hooks removed, batchers rewound.
"""

from __future__ import annotations

import inspect
import math
import sys
from dataclasses import dataclass

import numpy as np

from .. import autograd, optim
from .. import functional as F
from ..autograd import no_grad
from ..backend import to_numpy
from ..nn import RotaryEmbedding
from ..tensor import Tensor
from .probes import forward_stats

__all__ = [
    "CheckResult",
    "DOC",
    "attention_scale",
    "attention_sums_to_one",
    "causal_leak",
    "gradient_flow",
    "graph_size",
    "init_scale",
    "input_label_alignment",
    "loss_at_init",
    "loss_sign",
    "lr_schedule",
    "norms_finite_on_zeros",
    "optimizer_decay",
    "overfit_one_batch",
    "prenorm",
    "residual",
    "rope_rotation",
    "rope_values",
]

DOC = "docs/debug/doctor.md"


@dataclass
class CheckResult:
    """One check's verdict. ``status`` is "pass", "fail", "warn" or "skip"; ``evidence`` holds the
    numbers measured; ``hint`` says what to look at; ``doc_url`` points at the check's section."""

    name: str
    status: str
    evidence: str
    hint: str = ""
    doc_url: str = ""

    @property
    def ok(self) -> bool:
        """True unless the check failed (a warning or a skip is not a failure)."""
        return self.status != "fail"

    def __str__(self) -> str:
        return f"{self.name}: {self.status.upper()}: {self.evidence}"


def _result(name, passed, evidence, hint, status=None) -> CheckResult:
    st = status or ("pass" if passed else "fail")
    return CheckResult(name, st, evidence, hint if st != "pass" else "", f"{DOC}#{name}")


def _g(x, nd=3) -> str:
    """A number for evidence text: ``nd`` significant digits (deterministic tables in the docs)."""
    if x is None:
        return "n/a"
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    s = f"{x:.{nd}g}"
    return s.replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")


# ------------------------------------------------------------------------------------------------
# adapters: models, callables, batches
# ------------------------------------------------------------------------------------------------
def _is_torch(obj) -> bool:
    return type(obj).__module__.split(".")[0] == "torch" or any(
        c.__module__.split(".")[0] == "torch" for c in type(obj).__mro__[1:-1])


def _as_numpy(out) -> np.ndarray:
    if isinstance(out, Tensor):
        return to_numpy(out.data).astype(np.float64)
    if hasattr(out, "detach"):  # a torch tensor
        return out.detach().cpu().numpy().astype(np.float64)
    return np.asarray(to_numpy(out), dtype=np.float64)


def logits_fn(model):
    """``model`` as ``fn(tokens: np.ndarray (B, T) int64) -> np.ndarray (B, T, V)``.

    A tensorlite Module runs under ``no_grad`` in eval mode; a ``torch.nn.Module`` gets a torch
    tensor and runs under ``torch.no_grad()``; any other callable receives the NumPy array.
    """
    if _is_torch(model):
        torch = sys.modules["torch"]

        def run_torch(x):
            was = model.training
            model.eval()
            try:
                with torch.no_grad():
                    return _as_numpy(model(torch.from_numpy(np.ascontiguousarray(x))))
            finally:
                model.train(was)

        return run_torch
    if hasattr(model, "named_parameters") and hasattr(model, "train"):

        def run_tl(x):
            was = model.training
            model.eval()
            try:
                with no_grad():
                    return _as_numpy(model(Tensor(np.asarray(x, dtype=np.int64), device=_device(model))))
            finally:
                model.train(was)

        return run_tl
    return lambda x: _as_numpy(model(x))


def _device(model):
    for p in model.parameters():
        return p.device
    return None


def _module_device(m):
    """The device of a module's parameters or buffers (None for a plain callable: the CPU)."""
    for get in ("parameters", "buffers"):
        for t in getattr(m, get, lambda: ())():
            return t.device
    return None


def _cfg(model, name, default=None):
    cfg = getattr(model, "config", None)
    return getattr(cfg, name, default) if cfg is not None else default


def _tokens(x) -> np.ndarray:
    return np.asarray(to_numpy(x.data) if isinstance(x, Tensor) else x, dtype=np.int64)


def make_batch(model=None, batch=None, batcher=None, vocab_size=None, seq_len=None, batch_size=4, seed=0):
    """``(x, y)`` int64 NumPy arrays: ``batch`` as given, else one batch of ``batcher`` (its state
    restored afterwards), else random tokens with ``y`` = ``x`` shifted by one."""
    if batch is not None:
        x, y = batch
        return _tokens(x), _tokens(y)
    if batcher is not None:
        state = batcher.state_dict() if hasattr(batcher, "state_dict") else None
        try:
            x, y = batcher.get_batch("train")
        finally:
            if state is not None and hasattr(batcher, "load_state_dict"):
                batcher.load_state_dict(state)
        return _tokens(x)[:batch_size], _tokens(y)[:batch_size]
    V = vocab_size or _cfg(model, "vocab_size")
    T = min(seq_len or _cfg(model, "seq_len", 32), 32)
    if V is None:
        raise ValueError("make_batch: give vocab_size (the model has no config.vocab_size)")
    s = np.random.default_rng(seed).integers(0, V, size=(batch_size, T + 1))
    return s[:, :-1].copy(), s[:, 1:].copy()


def _ce_numpy(logits, targets) -> float:
    """Mean cross-entropy of float64 logits (N, V) and int targets (N,)."""
    m = logits.max(axis=-1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(axis=-1, keepdims=True)))[:, 0]
    return float(np.mean(lse - logits[np.arange(len(targets)), targets]))


def _loss_value(model, loss_fn, x, y) -> float:
    if loss_fn is None:
        logits = logits_fn(model)(x)
        return _ce_numpy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    was = model.training
    model.eval()
    try:
        with no_grad():
            logits = model(Tensor(x, device=_device(model)))
            V = logits.shape[-1]
            out = loss_fn(F.reshape(logits, -1, V), Tensor(y.reshape(-1), device=logits.device))
    finally:
        model.train(was)
    return float(_as_numpy(out))


# ------------------------------------------------------------------------------------------------
# loss
# ------------------------------------------------------------------------------------------------
def loss_at_init(model, batch=None, *, vocab_size=None, loss_fn=None, tol: float = 0.5, seed: int = 0) -> CheckResult:
    """The loss of a freshly initialised model is close to ``ln(vocab)`` (a uniform guess) and
    never above it by more than ``tol`` nats: a cross-entropy above ``ln(V)`` is worse than
    guessing uniformly, which a correct model at init cannot be ("impossible loss")."""
    V = vocab_size or _cfg(model, "vocab_size")
    x, y = make_batch(model, batch, vocab_size=V, seed=seed)
    loss = _loss_value(model, loss_fn, x, y)
    ln_v = math.log(V)
    diff = loss - ln_v
    ev = f"loss {_g(loss)} vs ln({V}) = {_g(ln_v)} (diff {_g(diff, 2)}, tol {_g(tol)})"
    if not math.isfinite(loss):
        return _result("loss_at_init", False, ev, "the loss at init is not finite: run the forward under "
                       "tl.debug.detect_anomaly() to find the first NaN")
    if diff > tol:
        return _result("loss_at_init", False, ev + ": above ln(V), impossible",
                       "logits at init are far too large (init scale, missing norm, missing residual) or the "
                       "loss is not a cross-entropy over these logits")
    if diff < -tol:
        return _result("loss_at_init", False, ev + ": below ln(V) before any training",
                       "a model that beats uniform guessing at init sees its targets: check input/label "
                       "alignment and the causal mask, and that the loss is a mean cross-entropy")
    return _result("loss_at_init", True, ev, "")


def loss_sign(loss_fn=None, vocab_size: int = 16, n: int = 64, seed: int = 0) -> CheckResult:
    """``loss_fn(logits (N, V), targets (N,))`` is a cross-entropy: non-negative, ``ln(V)`` for
    uniform logits, and lower when the correct logit is raised. Catches a flipped sign, a
    forgotten log, a mean over the wrong axis. ``loss_fn=None`` checks ``F.cross_entropy``."""
    fn = loss_fn or F.cross_entropy
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, vocab_size)).astype(np.float32)
    tgt = rng.integers(0, vocab_size, size=n)

    def value(lg):
        return float(_as_numpy(fn(Tensor(lg), Tensor(tgt))))

    uniform = value(np.zeros_like(logits))
    base = value(logits)
    raised = logits.copy()
    raised[np.arange(n), tgt] += 1.0
    up = value(raised)
    ln_v = math.log(vocab_size)
    ev = (f"uniform logits: {_g(uniform)} (ln {vocab_size} = {_g(ln_v)}); random: {_g(base)}; "
          f"correct logit +1: {_g(up)}")
    problems = []
    if base < 0 or uniform < 0:
        problems.append("negative")
    if abs(uniform - ln_v) > 1e-3 * max(1.0, ln_v):
        problems.append("not ln(V) at uniform logits")
    if not up < base:
        problems.append("does not fall when the correct logit rises")
    if problems:
        return _result("loss_sign", False, ev + ": " + ", ".join(problems),
                       "the loss must be -mean(log_softmax(logits)[target]): check its sign and the log")
    return _result("loss_sign", True, ev, "")


# ------------------------------------------------------------------------------------------------
# attention
# ------------------------------------------------------------------------------------------------
def _attention_modules(model):
    return [(n, m) for n, m in model.named_modules() if hasattr(m, "record_attention")]


def attention_sums_to_one(model_or_weights, batch=None, *, tol: float = 1e-4, seed: int = 0) -> CheckResult:
    """For every layer, head and query, the attention weights sum to 1 over the keys.

    Takes a model (its ``MultiHeadAttention`` modules record their weights for one forward) or the
    weights themselves, an array ``(..., T_q, T_k)``. Softmax over the query axis sums to 1 over
    *queries* instead, which this check reports."""
    if hasattr(model_or_weights, "named_modules"):
        model = model_or_weights
        attn = _attention_modules(model)
        if not attn:
            return _result("attention_sums_to_one", True, "no attention module with record_attention",
                           "", status="skip")
        x, _ = make_batch(model, batch, seed=seed)
        prev = [m.record_attention for _, m in attn]
        try:
            for _, m in attn:
                m.record_attention = True
            logits_fn(model)(x)
            weights = [(n, to_numpy(m.last_attention).astype(np.float64)) for n, m in attn]
        finally:
            for (_, m), p in zip(attn, prev):
                m.record_attention = p
    else:
        weights = [("weights", to_numpy(_as_numpy(model_or_weights)))]
    worst, where, qsum = 0.0, "", 0.0
    for name, w in weights:
        err = np.abs(w.sum(axis=-1) - 1.0)
        if err.max() > worst:
            worst, where = float(err.max()), name
            qsum = float(np.abs(w.sum(axis=-2) - 1.0).max())
    n_rows = sum(int(np.prod(w.shape[:-1])) for _, w in weights)
    ev = f"max |sum over keys - 1| = {_g(worst, 2)} over {n_rows} query rows in {len(weights)} layer(s)"
    if worst > tol:
        ev += f" (worst: {where}"
        if qsum < tol:
            ev += "; the sums over queries are 1"
        ev += ")"
        return _result("attention_sums_to_one", False, ev,
                       "softmax runs over the wrong axis: it must normalise over keys (dim=-1)")
    return _result("attention_sums_to_one", True, ev, "")


def causal_leak(fn, vocab_size: int | None = None, seq_len: int | None = None, *, batch_size: int = 2,
                n_cuts: int = 4, seed: int = 0, rtol: float = 1e-5) -> CheckResult:
    """Changing the tokens after position ``t`` changes no logit at or before ``t``.

    ``fn`` is any ``tokens -> logits`` function (NumPy int64 ``(B, T)`` in, ``(B, T, V)`` out), a
    tensorlite model or a ``torch.nn.Module``. Cut points are spread over the sequence; every row
    of the batch is rerun with its tail replaced by different random tokens, in one forward."""
    V = vocab_size or _cfg(fn, "vocab_size")
    T = seq_len or _cfg(fn, "seq_len")
    if V is None or T is None:
        raise ValueError("causal_leak: give vocab_size and seq_len")
    T = min(T, 64)
    run = logits_fn(fn)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, V, size=(batch_size, T))
    cuts = sorted({int(c) for c in np.linspace(0, T - 2, n_cuts)})
    rows = [x]
    for t in cuts:
        x2 = x.copy()
        x2[:, t + 1:] = (x[:, t + 1:] + rng.integers(1, V, size=x[:, t + 1:].shape)) % V  # every later token differs
        rows.append(x2)
    out = run(np.concatenate(rows))
    base = out[:batch_size]
    scale = float(np.abs(base).max()) + 1e-12
    diffs = []
    for i, t in enumerate(cuts):
        other = out[(i + 1) * batch_size:(i + 2) * batch_size]
        diffs.append(float(np.abs(other[:, : t + 1] - base[:, : t + 1]).max()))
    worst = max(diffs)
    leaks = [t for t, d in zip(cuts, diffs) if d > rtol * scale]
    ev = f"max |change| of logits at positions <= t after changing tokens > t: {_g(worst, 2)} (cuts t = {cuts})"
    if leaks:
        ev += f"; first leak at t = {leaks[0]} (logit scale {_g(scale, 2)})"
        return _result("causal_leak", False, ev,
                       "queries see later keys: the causal mask must be lower-triangular (tril), applied "
                       "before the softmax, in every attention call")
    return _result("causal_leak", True, ev, "")


def _rope_module(obj):
    if hasattr(obj, "named_modules"):
        for _, m in obj.named_modules():
            if isinstance(m, RotaryEmbedding):
                return m
        return None
    return obj


def _split_qk(qkv_out, n_heads):
    """q and k ``(B, H, T, hd)`` from a packed ``Linear(d, 3d)`` output laid out as [q | k | v]."""
    b, t, d3 = qkv_out.shape
    d = d3 // 3
    q = qkv_out[..., :d].reshape(b, t, n_heads, d // n_heads).transpose(0, 2, 1, 3)
    k = qkv_out[..., d:2 * d].reshape(b, t, n_heads, d // n_heads).transpose(0, 2, 1, 3)
    return q, k


def _append_output(store):
    def hook(module, inputs, output):
        store.append(to_numpy(output.data).astype(np.float64))
    return hook


def attention_scale(model, batch=None, *, tol: float = 1.5, seed: int = 0) -> CheckResult:
    """The attention logits are ``q . k / sqrt(d_head)``: the slope of ``log p`` against ``q . k``
    within each query's row (the softmax's inverse temperature) equals ``1 / sqrt(d_head)``, within
    a factor ``tol``. Multiplying by ``sqrt(d_head)`` instead makes it ``d_head`` times too steep:
    near one-hot attention once the weights grow.

    ``q`` and ``k`` are read where the model makes them: the rotary embedding's outputs when there
    is one, else the packed ``qkv`` projection ([q | k | v])."""
    attn = [(n, m) for n, m in _attention_modules(model) if hasattr(m, "qkv")]
    if not attn:
        return _result("attention_scale", True, "no attention module", "", status="skip")
    x, _ = make_batch(model, batch, seed=seed)
    qkv_out = {n: [] for n, _ in attn}
    rope_out = {n: [] for n, _ in attn}
    handles, prev = [], []
    for n, m in attn:
        handles.append(m.qkv.register_forward_hook(_append_output(qkv_out[n])))
        if getattr(m, "rope", None) is not None:
            handles.append(m.rope.register_forward_hook(_append_output(rope_out[n])))
        prev.append(m.record_attention)
        m.record_attention = True
    try:
        logits_fn(model)(x)
        weights = {n: to_numpy(m.last_attention).astype(np.float64) for n, m in attn}
    finally:
        for h in handles:
            h.remove()
        for (_, m), p in zip(attn, prev):
            m.record_attention = p
    rowsum_err = max(float(np.abs(w.sum(-1) - 1).max()) for w in weights.values())
    if rowsum_err > 1e-3:
        return _result("attention_scale", True, f"not measured: the weights do not sum to 1 over keys "
                       f"(max error {_g(rowsum_err, 2)}; see attention_sums_to_one)", "", status="skip")
    saturated = max(float(np.mean(w.max(-1) > 0.999)) for w in weights.values())
    if saturated > 0.5:
        return _result("attention_scale", True, f"not measured: {100 * saturated:.0f}% of the query rows are "
                       "one-hot (a saturated softmax; see init_scale and prenorm)", "", status="skip")
    worst, where, fitted = 1.0, "", []
    for n, m in attn:
        if len(rope_out[n]) >= 2:
            q, k = rope_out[n][0], rope_out[n][1]
        else:
            q, k = _split_qk(qkv_out[n][0], m.n_heads)
        hd = q.shape[-1]
        s = q @ np.swapaxes(k, -1, -2)
        p = weights[n]
        w = (p > 1e-30).astype(np.float64)
        cnt = w.sum(-1, keepdims=True)
        lp = np.log(np.where(w > 0, p, 1.0))
        cs = (s - (s * w).sum(-1, keepdims=True) / np.maximum(cnt, 1)) * w
        clp = (lp - (lp * w).sum(-1, keepdims=True) / np.maximum(cnt, 1)) * w
        slope = float((cs * clp).sum() / max((cs * cs).sum(), 1e-300))
        ratio = slope * math.sqrt(hd)
        fitted.append(ratio)
        if abs(math.log(max(ratio, 1e-12))) > abs(math.log(max(worst, 1e-12))):
            worst, where = ratio, n
    ev = "fitted softmax scale x sqrt(d_head), per layer: " + ", ".join(_g(r, 3) for r in fitted) + " (expected 1)"
    if not (1 / tol <= worst <= tol):
        return _result("attention_scale", False, ev + f" ({where})",
                       "scores must be divided by sqrt(d_head), not multiplied: softmax(q k^T / sqrt(d))")
    return _result("attention_scale", True, ev, "")


def rope_rotation(rope, head_dim: int | None = None, n_positions: int = 16, *, tol: float = 1e-4,
                  seed: int = 0) -> CheckResult:
    """A rotary embedding is a rotation that composes: norms are preserved, position 0 is the
    identity, rotating by ``a`` then ``b`` equals rotating by ``a + b`` (so rotating back by ``-a``
    inverts it), and ``(R_m q) . (R_n k)`` depends only on ``n - m``.

    ``rope``: a ``RotaryEmbedding`` (or a model holding one) or a callable ``x (..., T, D) ->
    rotated x`` applying position ``t`` to row ``t``. The position maps ``R_t`` are read off by
    rotating the basis vectors."""
    r = _rope_module(rope)
    if r is None:
        return _result("rope_rotation", True, "no rotary embedding in this model", "", status="skip")
    D = head_dim or getattr(r, "head_dim", None)
    if D is None:
        raise ValueError("rope_rotation: give head_dim")
    P = min(n_positions, getattr(r, "max_seq_len", n_positions))
    basis = np.zeros((D, P, D), dtype=np.float32)
    basis[np.arange(D), :, np.arange(D)] = 1.0
    with no_grad():
        out = _as_numpy(r(Tensor(basis, device=_module_device(r))))  # out[j, t] = R_t e_j
    R = np.transpose(out, (1, 2, 0))  # R[t] = (D, D), column j = R_t e_j
    eye = np.eye(D)
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((D, 8))
    norm_err = max(float(np.abs(np.linalg.norm(R[t] @ v, axis=0) / np.linalg.norm(v, axis=0) - 1).max())
                   for t in range(P))
    id_err = float(np.abs(R[0] - eye).max())
    comp_err = max(float(np.abs(R[a] @ R[b] - R[a + b]).max()) for a in range(P) for b in range(P - a))
    q, k = rng.standard_normal(D), rng.standard_normal(D)
    rel = []
    for m in range(0, P // 2):
        for n in range(0, P // 2):
            s = P // 2
            rel.append(abs((R[m] @ q) @ (R[n] @ k) - (R[m + s] @ q) @ (R[n + s] @ k)))
    rel_err = float(max(rel)) / (np.linalg.norm(q) * np.linalg.norm(k))
    bad = []
    if norm_err > tol:
        bad.append("norm not preserved")
    if id_err > tol or comp_err > tol:
        bad.append("not a rotation that composes (R_a R_b != R_(a+b), so R_-a does not undo R_a)")
    if rel_err > tol:
        bad.append("q.k depends on absolute position")
    ev = (f"|norm ratio - 1| {_g(norm_err, 2)}, |R_0 - I| {_g(id_err, 2)}, |R_a R_b - R_(a+b)| {_g(comp_err, 2)}, "
          f"relative-position error {_g(rel_err, 2)} ({P} positions, head_dim {D})")
    if bad:
        return _result("rope_rotation", False, ev + ": " + "; ".join(bad),
                       "each pair (2i, 2i+1) must turn by +t*theta_i with one frequency per pair: "
                       "[[cos, -sin], [sin, cos]]")
    return _result("rope_rotation", True, ev, "")


def rope_values(model, *, tol: float = 1e-4, seed: int = 0) -> CheckResult:
    """Values are not rotated. Each attention layer gets a sequence whose rows are all one vector,
    so every value vector is the same; what the heads hand to the output projection at query
    ``t`` is then ``(sum_k p_tk) * v``, and divided by that sum of weights it must be the same at
    every position. Rotating values by position breaks that; the weights themselves may do
    anything (so a broken softmax is left to :func:`attention_sums_to_one`)."""
    attn = [(n, m) for n, m in _attention_modules(model) if hasattr(m, "proj")]
    if not attn:
        return _result("rope_values", True, "no attention module", "", status="skip")
    D = _cfg(model, "d_model") or attn[0][1].proj.weight.shape[1]
    T = min(_cfg(model, "seq_len", 16), 16)
    row = np.random.default_rng(seed).standard_normal(D).astype(np.float32)
    x = Tensor(np.broadcast_to(row, (1, T, D)).copy(), device=_device(model))
    worst, where = 0.0, ""
    was = model.training
    model.eval()
    try:
        for name, m in attn:
            seen = {}
            handle = m.proj.register_forward_pre_hook(_keeper(seen, "in"))
            prev = m.record_attention
            m.record_attention = True
            try:
                with no_grad():
                    m(x)
                p = to_numpy(m.last_attention).astype(np.float64)[0]  # (H, T, T)
            finally:
                m.record_attention = prev
                handle.remove()
            H = p.shape[0]
            merged = to_numpy(seen["in"]).astype(np.float64)[0].reshape(T, H, -1)
            readout = merged / np.maximum(p.sum(axis=-1).T[:, :, None], 1e-12)
            spread = float(np.abs(readout - readout[:1]).max() / (np.abs(readout).max() + 1e-12))
            if spread > worst:
                worst, where = spread, name
    finally:
        model.train(was)
    ev = f"spread over positions of the per-head value read-out for a constant input: {_g(worst, 2)}"
    if worst > tol:
        return _result("rope_values", False, ev + f" ({where})",
                       "values must carry content only: apply the rotary embedding to q and k, never to v")
    return _result("rope_values", True, ev, "")


# ------------------------------------------------------------------------------------------------
# normalisation and residual structure
# ------------------------------------------------------------------------------------------------
def _norm_modules(model):
    return [(n, m) for n, m in model.named_modules() if type(m).__name__ in ("LayerNorm", "RMSNorm")
            or (type(m).__name__.endswith("Norm") and hasattr(m, "normalized_shape"))]


def norms_finite_on_zeros(model) -> CheckResult:
    """Every normalisation layer maps an all-zeros input to finite values (an ``eps`` inside the
    square root keeps ``0 / sqrt(0)`` away)."""
    norms = _norm_modules(model)
    if not norms:
        return _result("norms_finite_on_zeros", True, "no normalisation layers", "", status="skip")
    bad = []
    for name, m in norms:
        d = int(m.normalized_shape if isinstance(m.normalized_shape, int) else m.normalized_shape[-1])
        with no_grad():
            out = _as_numpy(m(Tensor(np.zeros((1, 4, d), dtype=np.float32), device=_device(model))))
        nf = int((~np.isfinite(out)).sum())
        if nf:
            bad.append(f"{name}: {nf}/{out.size} non-finite")
    if bad:
        return _result("norms_finite_on_zeros", False, "; ".join(bad[:3]) + (" ..." if len(bad) > 3 else ""),
                       "a norm divides by sqrt(mean(x^2) + eps): eps must be > 0 (e.g. 1e-6)")
    return _result("norms_finite_on_zeros", True, f"{len(norms)} norm layers finite on all-zeros input", "")


def _keeper(store, key):
    def hook(module, inputs):
        store.setdefault(key, inputs[0].data)
    return hook


def _token_rms_keeper(store, key):
    def hook(module, inputs):
        a = to_numpy(inputs[0].data).astype(np.float64)
        store.setdefault(key, []).append(np.sqrt((a * a).mean(axis=-1)))
    return hook


def _block_inputs(model, x):
    """The input of each block (``model.blocks``) during one forward on tokens ``x``."""
    blocks = list(getattr(model, "blocks", []))
    found = {}
    handles = []
    for i, b in enumerate(blocks):
        handles.append(b.register_forward_pre_hook(_keeper(found, i)))
    try:
        logits_fn(model)(x)
    finally:
        for h in handles:
            h.remove()
    return blocks, found


def residual(model, batch=None, *, scales=(1e3, 1e6), tol: float = 0.1, seed: int = 0) -> CheckResult:
    """Each block keeps an identity path: ``block(c x) / c -> x`` as ``c`` grows. The sublayers of a
    pre-norm block see ``norm(c x) = norm(x)``, so only the residual grows with ``c`` and the error
    ``e(c) = |block(c x) / c - x| / |x|`` falls like ``1/c``; without the residual it stays near 1.
    Measured on the input each block gets in a real forward, at the two ``scales``."""
    x, _ = make_batch(model, batch, seed=seed)
    blocks, inputs = _block_inputs(model, x)
    if not blocks:
        return _result("residual", True, "no model.blocks", "", status="skip")
    errs = []
    was = model.training
    model.eval()
    try:
        for i, b in enumerate(blocks):
            xi = to_numpy(inputs[i]).astype(np.float64)
            e = []
            for c in scales:
                with no_grad():
                    out = _as_numpy(b(Tensor((xi * c).astype(np.float32), device=_device(model)))) / c
                e.append(float(np.linalg.norm(out - xi) / (np.linalg.norm(xi) + 1e-30)))
            errs.append(e)
    finally:
        model.train(was)
    # an identity path: small error at the largest scale, or an error that falls ~1/c between scales
    shrink = scales[0] / scales[-1]
    bad = [i for i, (e0, e1) in enumerate(errs) if not (e1 < tol or e1 < 10 * shrink * e0)]
    ev = f"|block(c x)/c - x| / |x| at c = {_g(scales[-1])}: " + ", ".join(_g(e[-1], 2) for e in errs)
    if bad:
        return _result("residual", False, ev + f" (block {bad[0]} has no identity path: the error does not fall with c)",
                       "each sublayer's output must be added to its input: x = x + attn(norm1(x)); "
                       "x = x + ffn(norm2(x))")
    return _result("residual", True, ev, "")


def prenorm(model, batch=None, *, scale: float = 100.0, tol: float = 0.5, seed: int = 0) -> CheckResult:
    """Each block's sublayers (``attn``, ``ffn``) see a normalised input. Every other token of the
    block's input is multiplied by ``scale``; a per-token norm in front of a sublayer cancels that,
    so the RMS of each token the sublayer receives stays put. Measured as the largest
    ``|log10(rms_scaled / rms)|`` over tokens: 0 with pre-norm, ``log10(scale)`` without."""
    x, _ = make_batch(model, batch, seed=seed)
    blocks, inputs = _block_inputs(model, x)
    if not blocks:
        return _result("prenorm", True, "no model.blocks", "", status="skip")
    worst, where = 0.0, ""
    was = model.training
    model.eval()
    try:
        for i, b in enumerate(blocks):
            subs = [(n, getattr(b, n)) for n in ("attn", "ffn") if hasattr(b, n)]
            seen = {}
            handles = [m.register_forward_pre_hook(_token_rms_keeper(seen, n)) for n, m in subs]
            xi = to_numpy(inputs[i]).astype(np.float32)
            c = np.where(np.arange(xi.shape[1]) % 2 == 1, scale, 1.0).astype(np.float32)[None, :, None]
            try:
                with no_grad():
                    b(Tensor(xi, device=_device(model)))
                    b(Tensor(xi * c, device=_device(model)))
            finally:
                for h in handles:
                    h.remove()
            for n, v in seen.items():
                if len(v) == 2:
                    e = float(np.abs(np.log10((v[1] + 1e-30) / (v[0] + 1e-30))).max())
                    if e > worst:
                        worst, where = e, f"blocks.{i}.{n}"
    finally:
        model.train(was)
    ev = (f"max |log10 change| of a sublayer's per-token input RMS when every other block-input token is "
          f"scaled x{_g(scale)}: {_g(worst, 2)}")
    if worst > tol:
        return _result("prenorm", False, ev + f" ({where} sees an unnormalised input)",
                       "normalise before each sublayer: attn(norm1(x)), ffn(norm2(x)) (pre-norm)")
    return _result("prenorm", True, ev, "")


def init_scale(model, batch=None, *, act_max: float = 10.0, logit_std_max: float = 2.0, seed: int = 0) -> CheckResult:
    """At init the residual stream and the logits are on a healthy scale: every block's output RMS
    below ``act_max`` and the logits' standard deviation below ``logit_std_max`` (then the loss starts
    near ``ln(V)``). The course page's ``init x100`` puts both in the hundreds at step 0."""
    x, _ = make_batch(model, batch, seed=seed)
    st = forward_stats(model, Tensor(x, device=_device(model)))
    acts = {k: v for k, v in st["act_rms"].items() if k.startswith("blocks")}
    amax = max(acts.values()) if acts else float("nan")
    lstd = st["logit_std"]
    key = max(acts, key=acts.get) if acts else "-"
    ev = f"max residual RMS {_g(amax)} ({key}), logit std {_g(lstd)} (healthy: < {_g(act_max)}, < {_g(logit_std_max)})"
    ok = math.isfinite(amax) and math.isfinite(lstd) and amax < act_max and lstd < logit_std_max
    if not ok:
        return _result("init_scale", False, ev,
                       "initial weights are too large: use std 0.02 (residual projections 0.02/sqrt(2*n_layers))")
    return _result("init_scale", True, ev, "")


# ------------------------------------------------------------------------------------------------
# optimisation
# ------------------------------------------------------------------------------------------------
def _fresh_optimizer(optimizer, params):
    """A new optimizer of ``optimizer``'s class and hyperparameters, on ``params``."""
    if not hasattr(optimizer, "param_groups"):  # a factory: params -> optimizer
        return optimizer(params)
    cls = type(optimizer)
    group = next((g for g in optimizer.param_groups if g.get("weight_decay")), optimizer.param_groups[0])
    sig = inspect.signature(cls.__init__).parameters
    kw = {k: v for k, v in group.items() if k in sig and k != "params"}
    if "initial_lr" in group and "lr" in sig:
        kw["lr"] = group["initial_lr"]  # the peak LR, not the value a scheduler's warmup has set
    for k in sig:  # switches kept as attributes (e.g. AdamW(decay_on_moment=...))
        if k not in kw and k not in ("self", "params") and hasattr(optimizer, k):
            kw[k] = getattr(optimizer, k)
    return cls(params, **kw)


def optimizer_decay(optimizer, *, seed: int = 0) -> CheckResult:
    """One step with a zero gradient: an AdamW shrinks every weight by exactly ``lr * weight_decay``
    (decoupled decay) and leaves its moments at zero.

    ``optimizer``: an optimizer (a fresh one of the same class and hyperparameters is built on a
    probe parameter, so the real one is untouched) or a factory ``params -> optimizer``."""
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal((4, 4)).astype(np.float32) + 2.0
    p = Tensor(w0.copy(), requires_grad=True)
    opt = _fresh_optimizer(optimizer, [p])
    group = opt.param_groups[0]
    lr, wd = float(group["lr"]), float(group.get("weight_decay", 0.0))
    if wd == 0:
        group["weight_decay"] = wd = 0.1  # verify the decay code path even when the run sets none
    p.grad = Tensor(np.zeros_like(w0))
    opt.step()
    ratio = to_numpy(p.data).astype(np.float64) / w0
    expect = 1.0 - lr * wd
    shrink_err = float(np.abs(ratio - expect).max())
    moments = {k: float(np.abs(to_numpy(v)).max()) for k, v in opt.state.get(p, {}).items()
               if k != "step" and hasattr(v, "shape")}
    moved = {k: v for k, v in moments.items() if v > 0}
    ev = (f"zero-grad step: w_new / w = {_g(float(ratio.mean()), 6)} (expected 1 - lr*wd = {_g(expect, 6)}); "
          f"max |moment| " + (", ".join(f"{k} {_g(v, 2)}" for k, v in moments.items()) or "none"))
    if shrink_err > 1e-6 * max(1.0, lr * wd * 10) + 1e-7 or moved:
        return _result("optimizer_decay", False, ev,
                       "decoupled weight decay scales the weights (p *= 1 - lr*wd) and never enters the "
                       "moments (exp_avg, exp_avg_sq)")
    return _result("optimizer_decay", True, ev, "")


def lr_schedule(schedule, *, lr_max: float | None = None, warmup: int | None = None,
                small: float = 0.25) -> CheckResult:
    """The learning rate at step 0 is small (``<= small * lr_max``) when warmup is configured; no
    warmup at all is a warning (Adam's first steps at ``lr_max`` are the course page's failure 2).

    ``schedule``: a scheduler (``get_last_lr()`` right after it is built is step 0's LR), a run
    config with ``lr`` and ``warmup`` fields, or a function ``step -> lr`` (give ``lr_max``)."""
    schedule = getattr(schedule, "optim", schedule)  # a TrainConfig: its optimisation section
    if hasattr(schedule, "get_last_lr"):
        lr0 = float(schedule.get_last_lr()[0]) if getattr(schedule, "last_epoch", 0) == 0 else None
        if lr0 is None:  # already stepped: recompute step 0 from the closed form when possible
            saved = schedule.last_epoch
            schedule.last_epoch = 0
            lr0 = float(schedule.get_lr()[0])
            schedule.last_epoch = saved
        lr_max = lr_max or float(max(getattr(schedule, "base_lrs", [lr0])))
        warmup = warmup if warmup is not None else getattr(schedule, "warmup_steps", None)
    elif hasattr(schedule, "lr") and hasattr(schedule, "warmup"):
        from_cfg = schedule
        lr_max = lr_max or float(from_cfg.lr)
        warmup = int(from_cfg.warmup) if warmup is None else warmup
        total = int(getattr(from_cfg, "steps", max(warmup, 1)))
        lr0 = _warmup_cosine(0, lr_max, warmup, max(total, warmup), float(getattr(from_cfg, "lr_min", 0.0)))
    elif callable(schedule):
        lr0 = float(schedule(0))
        if lr_max is None:
            lr_max = max(float(schedule(s)) for s in range(0, 10_000, 7))
    else:
        raise TypeError(f"lr_schedule: expected a scheduler, a config or a function, got {type(schedule).__name__}")
    frac = lr0 / lr_max if lr_max else float("nan")
    ev = f"LR at step 0: {_g(lr0)} = {_g(frac, 2)} x lr_max {_g(lr_max)}" + (
        f", warmup {warmup} steps" if warmup is not None else "")
    if warmup == 0 or (warmup is None and frac >= 0.99):
        return _result("lr_schedule", False, ev + ": no warmup",
                       "no warmup: Adam's first updates run at lr_max; use a linear warmup (a few % of the steps)",
                       status="warn")
    if frac > small:
        return _result("lr_schedule", False, ev + f": warmup configured but step 0 is above {small} x lr_max",
                       "the warmup does not reach step 0: is the scheduler built before the optimizer's LR "
                       "is set, or is the warmup too short?")
    return _result("lr_schedule", True, ev, "")


def _warmup_cosine(step, lr_max, warmup, total, lr_min):
    if step < warmup:
        return lr_max * (step + 1) / warmup
    if total <= warmup:
        return lr_min if step >= total else lr_max
    prog = (step - warmup) / (total - warmup)
    return lr_min + (lr_max - lr_min) * 0.5 * (1 + math.cos(math.pi * min(prog, 1.0)))


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------
def input_label_alignment(batcher_or_batch, *, bos_id: int | None = None, pad_id: int | None = None) -> CheckResult:
    """Targets are the inputs shifted by one: ``y[:, t] == x[:, t+1]`` everywhere, no constant
    first input column (a BOS prepended to the inputs) and no constant last label column (a pad
    appended to the labels). Takes a batcher (one batch drawn, its state restored) or ``(x, y)``."""
    if hasattr(batcher_or_batch, "get_batch"):
        x, y = make_batch(batcher=batcher_or_batch, batch_size=10**9)
    else:
        x, y = make_batch(batch=batcher_or_batch)
    if x.shape != y.shape:
        return _result("input_label_alignment", False, f"inputs {x.shape} and targets {y.shape} differ in shape",
                       "x and y must both be (batch, seq_len)")
    match = float(np.mean(y[:, :-1] == x[:, 1:])) if x.shape[1] > 1 else 1.0
    notes = []
    if x.shape[0] > 1:
        if np.all(x[:, 0] == x[0, 0]) and (bos_id is None or x[0, 0] == bos_id):
            notes.append(f"x[:, 0] is {int(x[0, 0])} in every row (a BOS?)")
        if np.all(y[:, -1] == y[0, -1]) and (pad_id is None or y[0, -1] == pad_id):
            notes.append(f"y[:, -1] is {int(y[0, -1])} in every row (a pad?)")
    ev = f"y[:, t] == x[:, t+1] at {_g(100 * match, 4)}% of {y[:, :-1].size} positions"
    if notes:
        ev += "; " + "; ".join(notes)
    if match < 0.999 or (notes and match < 1.0):
        return _result("input_label_alignment", False, ev,
                       "take x = tokens[i : i+T] and y = tokens[i+1 : i+T+1] from one window; never prepend "
                       "a BOS to x or append a pad to y separately")
    return _result("input_label_alignment", True, ev, "")


# ------------------------------------------------------------------------------------------------
# training dynamics
# ------------------------------------------------------------------------------------------------
def _loss_tensor(model, loss_fn, x, y):
    logits = model(Tensor(x, device=_device(model)))
    V = logits.shape[-1]
    tgt = Tensor(y.reshape(-1), device=logits.device)
    fn = loss_fn or F.cross_entropy
    return fn(F.reshape(logits, -1, V), tgt)


def gradient_flow(model, batch=None, *, loss_fn=None, seed: int = 0) -> CheckResult:
    """One backward pass gives every parameter a finite, non-zero gradient. (Gradients are cleared
    afterwards.)"""
    x, y = make_batch(model, batch, seed=seed)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    saved = [p.grad for _, p in params]
    for _, p in params:
        p.grad = None
    try:
        _loss_tensor(model, loss_fn, x, y).backward()
        norms = {}
        for n, p in params:
            norms[n] = None if p.grad is None else float(np.sqrt((to_numpy(p.grad.data).astype(np.float64) ** 2).sum()))
    finally:
        for (_, p), g in zip(params, saved):
            p.grad = g
    none = [n for n, v in norms.items() if v is None]
    nonfinite = [n for n, v in norms.items() if v is not None and not math.isfinite(v)]
    zero = [n for n, v in norms.items() if v == 0.0]
    finite = {n: v for n, v in norms.items() if v is not None and math.isfinite(v) and v > 0}
    lo = min(finite, key=finite.get) if finite else None
    ev = f"{len(finite)}/{len(norms)} parameters got a finite non-zero gradient"
    if lo is not None:
        ev += f" (smallest: {lo} {_g(finite[lo], 2)})"
    problems = [(k, v) for k, v in (("no grad", none), ("non-finite", nonfinite), ("zero", zero)) if v]
    if problems:
        ev += "; " + "; ".join(f"{k}: {', '.join(v[:3])}{' ...' if len(v) > 3 else ''}" for k, v in problems)
        return _result("gradient_flow", False, ev,
                       "a parameter outside the graph (unused, detached, or computed under no_grad) or a "
                       "NaN in the forward: see detect_anomaly()")
    return _result("gradient_flow", True, ev, "")


def overfit_one_batch(model, batch=None, *, steps: int = 60, lr: float = 1e-2, threshold: float = 0.5,
                      loss_fn=None, seed: int = 0) -> CheckResult:
    """A model that can learn memorises one small batch: ``steps`` AdamW steps on it bring the loss
    below ``threshold`` x its starting value. The weights are restored afterwards."""
    x, y = make_batch(model, batch, seed=seed)
    x, y = x[:4], y[:4]
    params = [p for p in model.parameters() if p.requires_grad]
    saved = [p.data.copy() for p in params]
    saved_grads = [p.grad for p in params]
    losses = []
    was = model.training
    model.eval()  # no dropout: the question is capacity and gradient, not regularisation
    try:
        opt = optim.AdamW(params, lr=lr, weight_decay=0.0)
        for _ in range(steps):
            opt.zero_grad()
            loss = _loss_tensor(model, loss_fn, x, y)
            losses.append(float(_as_numpy(loss)))
            if not math.isfinite(losses[-1]):
                break
            loss.backward()
            optim.clip_grad_norm_(params, 1.0)
            opt.step()
    finally:
        for p, d, g in zip(params, saved, saved_grads):
            p.data = d
            p.grad = g
        model.train(was)
    first, best = losses[0], min(losses)
    if not first > 0:
        return _result("overfit_one_batch", True, f"not measured: the loss at the start is {_g(first)}, not "
                       "positive (see loss_sign)", "", status="skip")
    ev = (f"loss {_g(first)} -> {_g(losses[-1], 2)} in {len(losses)} steps on {x.shape[0]}x{x.shape[1]} tokens "
          f"(needed < {_g(threshold)} x start)")
    if not (math.isfinite(best) and best < threshold * first):
        return _result("overfit_one_batch", False, ev,
                       "a model that cannot memorise one batch has a bug in the forward, the loss or the update")
    return _result("overfit_one_batch", True, ev, "")


def graph_size(model, seq_lens=(8, 16), *, batch_size: int = 2) -> CheckResult:
    """The number of ops (autograd nodes) in one forward does not grow with sequence length: a
    per-token Python loop makes it grow linearly (and makes the model slow)."""
    V = _cfg(model, "vocab_size")
    T_max = _cfg(model, "seq_len", max(seq_lens))
    lens = [min(t, T_max) for t in seq_lens]
    if lens[0] == lens[-1]:
        lens = [max(1, T_max // 2), T_max]
    counts = []
    was = model.training
    model.eval()
    counter = [0]

    def count(fn, inputs, result):
        counter[0] += 1

    try:
        for T in lens:
            x = np.random.default_rng(0).integers(0, V, size=(batch_size, T))
            counter[0] = 0
            autograd._forward_observers.append(count)
            try:
                model(Tensor(x, device=_device(model)))
            finally:
                autograd._forward_observers.remove(count)
            counts.append(counter[0])
    finally:
        model.train(was)
    ev = ", ".join(f"{c} ops at T={t}" for c, t in zip(counts, lens))
    if counts[-1] > counts[0]:
        per = (counts[-1] - counts[0]) / (batch_size * (lens[-1] - lens[0]))
        return _result("graph_size", False, ev + f" (+{_g(per, 3)} per extra token)",
                       "the graph grows with the sequence: a Python loop over tokens where one batched op serves")
    return _result("graph_size", True, ev, "")
