"""The doctor's preflight checks: small functions, each usable alone, each returning a
:class:`CheckResult` (name, status, evidence, hint, doc_url).

Every check judges **behaviour**, on any tensorlite or torch model: it finds what it needs through
the :mod:`model view <tensorlite.debug.view>` (blocks, attention, norms, embeddings, logits) and
:mod:`~tensorlite.debug.capture` (the attention the forward computed), runs the model in its own
framework, and says ``skip`` with the reason when the model lacks what it tests. A NaN or Inf in
what a check measured fails that check, and it says so. Nothing here changes the model, the
optimizer or the scheduler it is given: weights and gradients are put back, optimizers and
schedulers are stepped as deep copies, hooks removed, batchers rewound.

:data:`REGISTRY` lists every check once, in table order, with what it needs.
"""

from __future__ import annotations

import contextlib
import copy
import math
import re
import warnings
from dataclasses import dataclass

import numpy as np

from .. import functional as F
from .._docs import docs_url
from ..nn import Parameter
from ..optim import warmup_cosine_lr
from .capture import Capture, first_tensor
from .native import eval_mode, native_for, to_numpy
from .probes import DEAD_HEAD_ENTROPY
from .view import ModelView, _is_float, model_view

__all__ = [
    "CheckResult",
    "CheckSpec",
    "REGISTRY",
    "attention_entropy",
    "attention_scale",
    "attention_sums_to_one",
    "batch_independence",
    "causal_leak",
    "check_url",
    "eval_determinism",
    "final_norm",
    "gradient_flow",
    "graph_size",
    "init_scale",
    "input_label_alignment",
    "loss_at_init",
    "loss_sign",
    "lr_schedule",
    "make_batch",
    "model_loss",
    "norms_finite_on_zeros",
    "optimizer_decay",
    "optimizer_groups",
    "optimizer_step",
    "overfit_one_batch",
    "position_signal",
    "prenorm",
    "residual",
    "rope_rotation",
    "rope_values",
]

#: The doctor's page; hints link to its sections on the documentation site
#: (:data:`tensorlite._docs.DOCS_URL`, ``TENSORLITE_DOCS_URL`` to override).
DOCTOR_PAGE = "debug/doctor.md"


def check_url(name: str) -> str:
    """The site URL of a check's section on the doctor's page."""
    return docs_url(DOCTOR_PAGE, name)


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
        return self.status not in ("fail", "error")

    def __str__(self) -> str:
        return f"{self.name}: {self.status.upper()}: {self.evidence}"


def _result(name, passed, evidence, hint="", status=None) -> CheckResult:
    st = status or ("pass" if passed else "fail")
    return CheckResult(name, st, evidence, hint if st != "pass" else "", check_url(name))


def _skip(name, why) -> CheckResult:
    return CheckResult(name, "skip", why, "", check_url(name))


def _nonfinite(name, what, hint="run the forward under tl.debug.detect_anomaly() (or torch.autograd."
               "detect_anomaly()) to find the first op that makes it") -> CheckResult:
    return _result(name, False, f"{what} holds NaN or Inf: not measurable", hint)


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


def _finite(*arrays) -> bool:
    return all(a is None or bool(np.isfinite(np.asarray(a)).all()) for a in arrays)


# ------------------------------------------------------------------------------------------------
# models, batches, captures
# ------------------------------------------------------------------------------------------------
def _view(model, **kw) -> ModelView:
    if isinstance(model, ModelView):
        for k in ("loss_fn",):
            if kw.get(k) is not None:
                setattr(model, k, kw[k])
        return model
    kw = {k: v for k, v in kw.items() if v is not None}
    return model_view(model, **kw)


def _tokens(x) -> np.ndarray:
    if x is None:
        return None
    return np.asarray(to_numpy(x, dtype=None), dtype=np.int64)


def _draw(source):
    """``(x, y)`` from a batch, a batcher (``get_batch("train")``, state restored), a function
    ``get_batch(split)`` / ``get_batch()``, or an iterable such as a DataLoader (first item)."""
    if isinstance(source, (tuple, list)) and len(source) == 2:
        return source
    if hasattr(source, "get_batch"):
        state = source.state_dict() if hasattr(source, "state_dict") else None
        try:
            return source.get_batch("train")
        finally:
            if state is not None and hasattr(source, "load_state_dict"):
                source.load_state_dict(state)
    if callable(source):
        try:
            return source("train")
        except TypeError:
            return source()
    if hasattr(source, "__iter__"):
        return next(iter(source))
    raise TypeError(f"expected (x, y), a batcher, a get_batch function or a DataLoader, got {type(source).__name__}")


def make_batch(model=None, batch=None, batcher=None, vocab_size=None, seq_len=None, batch_size=4, seed=0):
    """``(x, y)`` int64 NumPy arrays: ``batch`` as given (or drawn from it, see above), else one
    batch of ``batcher`` (its state restored), else random tokens with ``y`` = ``x`` shifted by one."""
    if batch is not None or batcher is not None:
        x, y = _draw(batch if batch is not None else batcher)
        x, y = _tokens(x), _tokens(y)
        return (x[:batch_size], y[:batch_size]) if batcher is not None and batch is None else (x, y)
    if model is not None and not isinstance(model, ModelView) and hasattr(model, "named_modules"):
        model = _view(model, vocab_size=vocab_size, seq_len=seq_len)
    if isinstance(model, ModelView):
        return model.random_batch(batch_size, seq_len=min(seq_len, model.probe_len) if seq_len else None, seed=seed)
    V, T = vocab_size, min(seq_len or 32, 32)
    if V is None:
        raise ValueError("make_batch: give vocab_size (no model to read it from)")
    s = np.random.default_rng(seed).integers(0, V, size=(batch_size, T + 1))
    return s[:, :-1].copy(), s[:, 1:].copy()


def _model_batch(view, batch, seed):
    """The batch the model checks use: the user's (cropped to the view's probe length), else random."""
    if batch is None:
        return view.random_batch(4, seed=seed)
    x, y = make_batch(batch=batch)
    T = min(x.shape[1], view.probe_len)
    return x[:4, :T], y[:4, :T]


def _capture(view, x) -> Capture:
    cache = view.__dict__.setdefault("_capture_cache", {})
    key = (x.shape, x.tobytes())
    if key not in cache:
        cache.clear()
        cache[key] = view.capture(x)
    return cache[key]


def _eval_is_random(view) -> bool:
    """True when two eval-mode forwards on the same tokens differ (dropout left on in eval): checks
    that compare two forwards cannot measure anything then, and say so."""
    cache = view.__dict__.setdefault("_random_cache", [])
    if not cache:
        x = view.random_tokens(2, seed=123)
        a, b = view.logits(x), view.logits(x)
        cache.append(bool(_finite(a, b)) and float(np.abs(a - b).max()) > 1e-6 * (float(np.abs(a).max()) + 1e-12))
    return cache[0]


def _random_skip(name):
    return _skip(name, "not measured: the same input gives different outputs in eval mode (see eval_determinism)")


def _replay(view, call, x_new, hooks=()):
    """Rerun the module of ``call`` on ``x_new`` (a NumPy array replacing its first tensor
    argument), with its other arguments as recorded, in eval mode without gradients. ``hooks``:
    ``(module, hook)`` forward hooks active during the call. Returns the first output tensor."""
    native = view.native
    inp = call.input
    new = native.floats(np.asarray(x_new), inp)
    args = list(call.args)
    kwargs = dict(call.kwargs)
    for i, a in enumerate(args):
        if a is inp:
            args[i] = new
            break
    else:
        for k, v in kwargs.items():
            if v is inp:
                kwargs[k] = new
                break
    handles = [m.register_forward_hook(h) for m, h in hooks]
    try:
        with eval_mode(view.model), native.no_grad():
            out = call.module(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return first_tensor(out)


def _replace_first(output, new):
    if hasattr(output, "shape"):
        return new
    if isinstance(output, tuple):
        return (new,) + tuple(output[1:])
    if isinstance(output, list):
        return [new] + list(output[1:])
    return new


def _rel_name(name, block):
    return name[len(block) + 1:] if name.startswith(block + ".") else name


def _stream_calls(view, cap, call, *, by="out"):
    """The innermost parameterised, non-norm calls inside block ``call`` whose output (``by="out"``)
    or input (``by="in"``) has the residual stream's shape: the sublayers' writers and readers."""
    shape = tuple(call.input.shape)
    desc = cap.descendants(call)

    def ok(c):
        t = c.out if by == "out" else c.input
        return (t is not None and tuple(t.shape) == shape and c.name not in view.norms
                and any(True for _ in c.module.parameters()))

    cands = [c for c in desc if ok(c)]
    ids = {c.index for c in cands}
    inner = []
    for c in cands:
        if not any(d.index in ids for d in cap.descendants(c)):
            inner.append(c)
    seen, out = set(), []
    for c in inner:  # one entry per module (a module called twice, e.g. shared weights, counts once)
        if c.name not in seen:
            seen.add(c.name)
            out.append(c)
    return out


# ------------------------------------------------------------------------------------------------
# loss
# ------------------------------------------------------------------------------------------------
def loss_at_init(model, batch=None, *, vocab_size=None, loss_fn=None, tol: float = 0.5, seed: int = 0) -> CheckResult:
    """The loss of a freshly initialised model is close to ``ln(vocab)``: a model that knows
    nothing guesses uniformly. A loss far above ``ln V`` at initialisation is a strong sign of a
    bug (logits far too large: the init scale, a missing norm or residual, or a loss that is not a
    cross-entropy of these logits). Cross-entropy has no upper bound, so later in training a loss
    above ``ln V`` can also be overfitting or instability; at step 0 it cannot. A loss far *below*
    ``ln V`` before training means the model sees its targets."""
    view = _view(model, vocab_size=vocab_size, loss_fn=loss_fn)
    V = view.vocab_size
    x, y = _model_batch(view, batch, seed)
    loss = view.loss(x, y)
    ln_v = math.log(V)
    diff = loss - ln_v
    ev = f"loss {_g(loss)} vs ln({V}) = {_g(ln_v)} (diff {_g(diff, 2)}, tol {_g(tol)})"
    if not math.isfinite(loss):
        return _result("loss_at_init", False, ev + ": not finite",
                       "the loss at init is not finite: run the forward under tl.debug.detect_anomaly() (torch: "
                       "torch.autograd.detect_anomaly()) to find the first NaN")
    if diff > tol:
        return _result("loss_at_init", False, ev + ": far above ln(V) at initialisation",
                       "at init a correct model guesses near-uniformly; logits this large point to the init scale, "
                       "a missing norm or residual, or a loss that is not a cross-entropy over these logits")
    if diff < -tol:
        return _result("loss_at_init", False, ev + ": below ln(V) before any training",
                       "a model that beats uniform guessing at init sees its targets: check input/label "
                       "alignment and the causal mask, and that the loss is a mean cross-entropy")
    return _result("loss_at_init", True, ev)


def _loss_value(fn, logits, targets, framework):
    native = native_for_framework(framework)
    with native.no_grad():
        return float(to_numpy(fn(native.floats(logits, _proto(native)), native.tokens(targets))).reshape(-1)[0])


def native_for_framework(framework):
    """The :class:`~tensorlite.debug.native.Native` of ``"torch"`` or ``"tensorlite"`` (default)."""
    if framework == "torch":
        import torch  # noqa: PLC0415  (asked for by name)

        return native_for(torch.zeros(1))
    return native_for(np.zeros(1))


def _proto(native):
    """A float32 tensor of ``native``'s framework on the CPU (the dtype/device template)."""
    if native.name == "torch":
        return native.torch.zeros(1)
    return native.Tensor(np.zeros(1, dtype=np.float32))


def loss_sign(loss_fn=None, vocab_size: int = 16, n: int = 64, seed: int = 0, *, framework=None) -> CheckResult:
    """``loss_fn(logits (N, V), targets (N,))`` is a cross-entropy: non-negative, ``ln(V)`` for
    uniform logits, and lower when the correct logit is raised. Catches a flipped sign, a
    forgotten log, a mean over the wrong axis. ``loss_fn=None`` checks ``F.cross_entropy``.
    ``framework``: ``"torch"`` or ``"tensorlite"`` (the tensors the function takes); by default
    tensorlite, then torch if that raises."""
    if loss_fn is None:
        loss_fn, framework = F.cross_entropy, "tensorlite"
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, vocab_size)).astype(np.float32)
    tgt = rng.integers(0, vocab_size, size=n)
    frameworks = [framework] if framework else ["tensorlite", "torch"]
    err = None
    for fw in frameworks:
        try:
            value = lambda lg, fw=fw: _loss_value(loss_fn, lg, tgt, fw)  # noqa: E731
            uniform = value(np.zeros_like(logits))
            break
        except ImportError:  # no torch installed: the tensorlite error is the one to report
            break
        except Exception as e:  # the function wants the other framework's tensors
            err = e
    else:
        raise err
    if "uniform" not in locals():
        raise err
    base = value(logits)
    raised = logits.copy()
    raised[np.arange(n), tgt] += 1.0
    up = value(raised)
    ln_v = math.log(vocab_size)
    ev = (f"uniform logits: {_g(uniform)} (ln {vocab_size} = {_g(ln_v)}); random: {_g(base)}; "
          f"correct logit +1: {_g(up)}")
    if not _finite(uniform, base, up):
        return _nonfinite("loss_sign", "the loss of finite logits")
    problems = []
    if base < 0 or uniform < 0:
        problems.append("negative")
    if abs(uniform - ln_v) > 1e-3 * max(1.0, ln_v):
        problems.append("not ln(V) at uniform logits")
    if not up < base:
        problems.append("does not fall when the correct logit rises")
    if problems:
        return _result("loss_sign", False, ev + ": " + ", ".join(problems),
                       "the loss must be -mean(log_softmax(logits)[target]): check its sign, the log and the mean")
    return _result("loss_sign", True, ev)


def F_log_softmax(logits):
    return F.log_softmax(logits, dim=-1)


def model_loss(model, batch=None, *, rtol: float = 1e-3, seed: int = 0) -> CheckResult:
    """The loss a model returns itself (nanoGPT's ``model(x, targets)``, a Hugging Face style
    ``model(x, labels=x).loss``) is the mean next-token cross-entropy of the logits it returns
    with it: recomputed here from those logits, it must agree within ``rtol``. Names what it
    matches instead: the negative (a flipped sign), a sum (no mean), the same position's token
    (labels not shifted), two positions ahead (shifted twice)."""
    view = _view(model)
    if not view.own_loss:
        return _skip("model_loss", "the model returns no loss of its own (the loss is computed outside it)")
    x, y = _model_batch(view, batch, seed)
    native = view.native
    kw = view._target_kw
    tx, ty = view.tokens(x), view.tokens(y)
    with eval_mode(view.model), native.no_grad():
        out = view.model(tx, **{kw: tx if kw == "labels" else ty})
        lg = view._logits_of(out, tx)
        own = native.item(view._own_loss_of(out))
        V = lg.shape[-1]

        def ce(logits, targets, reduction="mean"):
            return to_numpy(native.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), reduction=reduction))

        if kw == "labels":  # the model shifts: logits at t score token t+1 of the labels
            expect_lg, expect_t, same_t = lg[:, :-1], tx[:, 1:], tx
            per_pos = ce(expect_lg, expect_t, "none")
            twice = ce(lg[:, :-2], tx[:, 2:]) if x.shape[1] > 2 else None
        else:
            expect_lg, expect_t, same_t = lg, ty, tx
            per_pos = ce(lg, ty, "none")
            twice = ce(lg[:, :-1], ty[:, 1:]) if x.shape[1] > 1 else None
        expect = float(per_pos.mean())
        same = float(ce(lg, same_t))
    targets = to_numpy(expect_t, dtype=None).reshape(-1)
    ev = f"the model's loss {_g(own, 4)}; mean next-token cross-entropy of its logits {_g(expect, 4)}"
    if not _finite(own, expect):
        return _nonfinite("model_loss", "the loss or the logits")
    close = lambda a, b: abs(a - b) <= rtol * max(abs(b), 1e-12)  # noqa: E731
    if close(own, expect):
        return _result("model_loss", True, ev + f" ({'labels shifted inside the model' if kw == 'labels' else 'targets = y'})")
    for t in np.unique(targets):  # a pad id the loss ignores (ignore_index)
        keep = targets != t
        if keep.any() and close(own, float(per_pos[keep].mean())):
            return _result("model_loss", True, ev + f" with positions of target {int(t)} ignored (a pad id?)")
    what = []
    if close(own, -expect):
        what.append("the negative of it: the sign is flipped")
    if close(own, expect * per_pos.size):
        what.append(f"{per_pos.size} x it: a sum over tokens, not a mean")
    if close(own, same):
        what.append("the cross-entropy against the same position's input token: the labels are not shifted")
    if twice is not None and close(own, float(twice)):
        what.append("the cross-entropy two tokens ahead: the targets are shifted twice")
    if not what:
        with native.no_grad():  # label smoothing eps: (1 - eps) * CE + eps * mean over classes of -log p
            logp = to_numpy(expect_lg.float().log_softmax(-1) if native.name == "torch" else
                            F_log_softmax(expect_lg))
        uniform = float(-logp.mean())
        if abs(uniform - expect) > 1e-6:
            eps = (own - expect) / (uniform - expect)
            if 0 < eps < 0.5 and close(own, (1 - eps) * expect + eps * uniform):
                return _result("model_loss", True, ev + f"; with label smoothing {_g(eps, 3)} it matches")
    ev += ": it matches " + "; ".join(what) if what else ": no match"
    return _result("model_loss", False, ev,
                   "the loss must be cross_entropy(logits[:, t], token[t+1]) averaged over positions "
                   "(label smoothing or an extra loss term also change it: then this check does not apply)")


# ------------------------------------------------------------------------------------------------
# attention
# ------------------------------------------------------------------------------------------------
def _no_attention(name):
    return _skip(name, "no attention seen: no softmax over (T, T) scores and no scaled_dot_product_attention "
                       "in the forward")


def _layer_name(view, a):
    """The block an attention call belongs to (its name), else the module running it."""
    for b, _ in view.blocks:
        if b in a.stack:
            return b
    return a.module or "<model>"


def attention_sums_to_one(model_or_weights, batch=None, *, tol: float = 1e-4, seed: int = 0) -> CheckResult:
    """For every layer, head and query, the attention weights sum to 1 over the keys.

    Takes a model (the weights are captured from the softmax / sdpa calls of one forward) or the
    weights themselves, an array ``(..., T_q, T_k)``. Softmax over the query axis sums to 1 over
    *queries* instead, which this check reports."""
    if hasattr(model_or_weights, "named_modules") or isinstance(model_or_weights, ModelView):
        view = _view(model_or_weights)
        x, _ = _model_batch(view, batch, seed)
        cap = _capture(view, x)
        if not cap.attention:
            return _no_attention("attention_sums_to_one")
        weights = [(_layer_name(view, a), a.weights) for a in cap.attention]
    else:
        weights = [("weights", to_numpy(model_or_weights))]
    if not _finite(*[w for _, w in weights]):
        bad = next(n for n, w in weights if not _finite(w))
        return _nonfinite("attention_sums_to_one", f"the attention weights of {bad}")
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
    return _result("attention_sums_to_one", True, ev)


def _projection_chunks(view, cap, a, vecs):
    """Find each row of ``vecs`` ``(N, d)`` (an operand of the scores at position 0) as a ``d``-wide
    slice of a projection's output at position 0 (a module with a 2-D weight inside the same
    block). Returns per row ``(status, alpha, call, b, offset)`` with status "exact" (the same
    direction, alpha = |row| / |slice|), "flipped" (the same magnitudes, signs changed), or None."""
    block = _layer_name(view, a)
    scope = [c for c in cap.calls if (c.name.startswith(block + ".") or block == "<model>") and c.out is not None
             and getattr(c.module, "weight", None) is not None and len(c.module.weight.shape) == 2
             and "float" in str(c.out.dtype) and len(c.out.shape) == 3]
    d = vecs.shape[-1]
    table, where = [], []
    for c in scope:
        o = to_numpy(c.out)
        B, T, F = o.shape
        if F % d or T != cap.seq_len:
            continue
        chunks = o[:, 0, :].reshape(B, F // d, d)
        for b in range(B):
            for j in range(F // d):
                table.append(chunks[b, j])
                where.append((c, b, j * d))
    out = [None] * len(vecs)
    if not table:
        return out, []
    tab = np.stack(table)
    tn = np.linalg.norm(tab, axis=1)
    vn = np.linalg.norm(vecs, axis=1)
    ok_t = tn > 1e-12
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (vecs @ tab.T) / np.maximum(vn[:, None] * tn[None, :], 1e-300)
        acos = (np.abs(vecs) @ np.abs(tab).T) / np.maximum(vn[:, None] * tn[None, :], 1e-300)
    for n in range(len(vecs)):
        if vn[n] < 1e-12:
            continue
        # the same float32 vector, scaled, has a cosine of 1 - 1e-14 or so: 1e-9 rules out near misses
        j = int(np.argmax(np.where(ok_t, cos[n], -2)))
        if cos[n, j] > 1 - 1e-9:
            out[n] = ("exact", float(vn[n] / tn[j]), *where[j])
            continue
        j = int(np.argmax(np.where(ok_t, acos[n], -2)))
        if acos[n, j] > 1 - 1e-9 and abs(float(vn[n] / tn[j]) - 1) < 0.5:
            out[n] = ("flipped", float(vn[n] / tn[j]), *where[j])
    return out, where


def _prescale(view, cap, a, operand):
    """The factor by which a score operand was scaled after its projection (1 when it was not),
    from the rows found as projection slices; None when none was found."""
    rows = operand.reshape(-1, operand.shape[-2], operand.shape[-1])[:, 0, :]
    found, _ = _projection_chunks(view, cap, a, rows)
    alphas = [f[1] for f in found if f is not None and f[0] == "exact"]
    return float(np.median(alphas)) if len(alphas) >= 0.9 * len(found) else None


def attention_scale(model, batch=None, *, tol: float = 1.2, seed: int = 0) -> CheckResult:
    """The attention logits are ``q . k / sqrt(d_head)``. For every attention computation the
    factor between the score product ``q @ k^T`` and the softmax's logits is read (sdpa's
    ``scale``) or measured (the most common ratio of logits to products over unmasked entries),
    times any factor applied to q or k after their projection (``q = q * d**-0.5`` before the
    product counts); it must be ``1 / sqrt(d_head)`` within a factor ``tol``. Multiplying by
    ``sqrt(d_head)`` gives ``d_head`` (too steep); forgetting the scale ``sqrt(d_head)``;
    dividing by ``sqrt(d_model)`` gives ``1/sqrt(n_heads)``. ``1/d_head`` (muP) is a warning."""
    view = _view(model)
    x, _ = _model_batch(view, batch, seed)
    cap = _capture(view, x)
    if not cap.attention:
        return _no_attention("attention_scale")
    per_layer, worst, where = {}, 1.0, ""
    for a in cap.attention:
        if a.q is None or a.k is None or a.scale is None:
            continue
        aq, ak = _prescale(view, cap, a, a.q), _prescale(view, cap, a, a.k)
        eff = a.scale * (aq or 1.0) * (ak or 1.0)
        ratio = eff * math.sqrt(a.q.shape[-1])
        name = _layer_name(view, a)
        per_layer.setdefault(name, ratio)
        if abs(math.log(max(abs(ratio), 1e-12))) > abs(math.log(max(abs(worst), 1e-12))):
            worst, where = ratio, name
    if not per_layer:
        if any(a.q is not None and a.scale is None for a in cap.attention):
            return _skip("attention_scale", "the softmax's logits are not one multiple of q.k: a bias is added "
                                            "to the scores (ALiBi, relative positions?), so no scale to read")
        return _skip("attention_scale", "q and k of the scores could not be traced (e.g. nn.MultiheadAttention, "
                                        "which scales correctly by construction)")
    if not math.isfinite(worst):
        return _nonfinite("attention_scale", "the attention scores")
    hd = next(a.q.shape[-1] for a in cap.attention if a.q is not None)
    ev = ("softmax scale x sqrt(d_head), per layer: " + ", ".join(_g(r, 3) for r in per_layer.values())
          + " (expected 1)")
    if any(a.score_bias for a in cap.attention):
        ev += "; a position bias is added to the scores (ALiBi?): the scale is read where it cancels"
    if 1 / tol <= worst <= tol:
        return _result("attention_scale", True, ev)
    if abs(math.log(worst * math.sqrt(hd))) < math.log(tol):
        return _result("attention_scale", False, ev + f" ({where}: 1/d_head, muP style)",
                       "scores are scaled by 1/d_head: right for muP, too flat for standard "
                       "parametrisation (1/sqrt(d_head))", status="warn")
    why = "too steep" if worst > 1 else "too flat"
    return _result("attention_scale", False, ev + f" ({where}, {why})",
                   "scores must be q k^T / sqrt(d_head), with d_head the per-head width (not d_model), "
                   "divided, not multiplied")


def attention_entropy(model, batch=None, *, min_entropy: float | None = None, seed: int = 0) -> CheckResult:
    """At initialisation attention is close to uniform over the keys a query may see (the scores
    are small): no head may already be collapsed onto one key (mean entropy below
    ``min_entropy`` nats, the probes' dead-head threshold). A head that is one-hot at step 0 has
    huge logits: the scale or the init is off, and its gradient is already gone."""
    min_entropy = DEAD_HEAD_ENTROPY if min_entropy is None else min_entropy
    view = _view(model)
    x, _ = _model_batch(view, batch, seed)
    cap = _capture(view, x)
    if not cap.attention:
        return _no_attention("attention_entropy")
    layers, dead, total, uniform = [], [], 0, []
    for a in cap.attention:
        w = a.weights
        if not _finite(w):
            return _nonfinite("attention_entropy", f"the attention weights of {_layer_name(view, a)}")
        if float(np.abs(w.sum(-1) - 1).max()) > 1e-3:
            return _skip("attention_entropy", "the weights do not sum to 1 over keys (see attention_sums_to_one)")
        w4 = w.reshape((-1,) + w.shape[-3:]) if w.ndim >= 4 else w.reshape((-1, 1) + w.shape[-2:])
        # the keys a query may see come from the mask's structure, not from p > 0: a saturated
        # softmax underflows to exact zeros too
        T = w4.shape[-1]
        causal = float(np.triu(w4, 1).max()) < 1e-6
        n_keys = np.arange(1, T + 1) if causal else np.full(T, T)
        allowed = np.broadcast_to(n_keys, w4.shape[:-1])
        rows = allowed >= 4
        if not rows.any():
            continue
        ent = -(w4 * np.log(np.where(w4 > 0, w4, 1.0))).sum(-1)
        per_head = np.array([ent[:, h][rows[:, h]].mean() if rows[:, h].any() else np.nan
                             for h in range(w4.shape[1])])
        uniform.append(float(np.log(allowed[rows]).mean()))
        name = _layer_name(view, a)
        layers.append((name, float(np.nanmean(per_head))))
        total += len(per_head)
        dead += [f"{name} head {h}" for h, e in enumerate(per_head) if e < min_entropy]
    if not layers:
        return _skip("attention_entropy", "no query sees 4 or more keys")
    ev = (f"mean attention entropy per layer: {', '.join(_g(e, 3) for _, e in layers)} nats "
          f"(uniform: {_g(np.mean(uniform), 3)}); heads below {_g(min_entropy)} nats: {len(dead)} of {total}")
    if dead:
        return _result("attention_entropy", False, ev + f" ({', '.join(dead[:3])}{' ...' if len(dead) > 3 else ''})",
                       "heads one-hot at init have huge logits: check the attention scale and the init std")
    return _result("attention_entropy", True, ev)


def _leaky_layers(view, x):
    out = []
    for a in _capture(view, x).attention:
        w = a.weights
        if w.shape[-1] == w.shape[-2]:
            up = float(np.triu(np.nan_to_num(w), 1).max())
            if up > 1e-6:
                out.append(f"{_layer_name(view, a)} ({_g(up, 2)})")
    return out


def causal_leak(fn, vocab_size: int | None = None, seq_len: int | None = None, *, batch_size: int = 2,
                n_cuts: int = 4, seed: int = 0, rtol: float = 1e-5) -> CheckResult:
    """Changing the tokens after position ``t`` changes no logit at or before ``t``.

    ``fn`` is a tensorlite or torch model (run natively through its model view) or any
    ``tokens -> logits`` function on NumPy arrays (int64 ``(B, T)`` in, ``(B, T, V)`` out; then
    give ``vocab_size`` and ``seq_len``). Cut points are spread over the sequence; every row of
    the batch is rerun with its tail replaced by different random tokens, in one forward."""
    view = None
    if isinstance(fn, ModelView) or hasattr(fn, "named_modules"):
        view = _view(fn, vocab_size=vocab_size, seq_len=seq_len)
        V, T, run = view.vocab_size, min(seq_len or view.probe_len, view.probe_len), view.logits
        if not view.causal:
            return _skip("causal_leak", "the model is declared non-causal (causal=False)")
    else:
        V, T = vocab_size, seq_len
        if V is None or T is None:
            raise ValueError("causal_leak: give vocab_size and seq_len")
        T = min(T, 64)
        run = lambda x: to_numpy(fn(x))  # noqa: E731
    rng = np.random.default_rng(seed)
    x = rng.integers(0, V, size=(batch_size, T))
    cuts = sorted({int(c) for c in np.linspace(0, T - 2, n_cuts)})
    rows = [x, x]
    for t in cuts:
        x2 = x.copy()
        x2[:, t + 1:] = (x[:, t + 1:] + rng.integers(1, V, size=x[:, t + 1:].shape)) % V  # every later token differs
        rows.append(x2)
    out = run(np.concatenate(rows))
    if not _finite(out):
        return _nonfinite("causal_leak", "the logits")
    base = out[:batch_size]
    scale = float(np.abs(base).max()) + 1e-12
    if float(np.abs(out[batch_size:2 * batch_size] - base).max()) > rtol * scale:
        return _skip("causal_leak", "not measured: the same tokens give different logits in eval mode "
                                    "(see eval_determinism)")
    diffs = []
    for i, t in enumerate(cuts):
        other = out[(i + 2) * batch_size:(i + 3) * batch_size]
        diffs.append(float(np.abs(other[:, : t + 1] - base[:, : t + 1]).max()))
    worst = max(diffs)
    leaks = [t for t, d in zip(cuts, diffs) if d > rtol * scale]
    ev = f"max |change| of logits at positions <= t after changing tokens > t: {_g(worst, 2)} (cuts t = {cuts})"
    if leaks:
        ev += f"; first leak at t = {leaks[0]} (logit scale {_g(scale, 2)})"
        if view is not None:
            layers = _leaky_layers(view, x)
            if layers:
                ev += "; weight above the diagonal in " + ", ".join(layers[:3])
        return _result("causal_leak", False, ev,
                       "queries see later keys: the causal mask must be lower-triangular (tril), filled with "
                       "-inf (not 0) before the softmax, in every attention call; no op may mix positions")
    return _result("causal_leak", True, ev)


def position_signal(model, *, seed: int = 0, rtol: float = 1e-4) -> CheckResult:
    """The model knows where each token is: reversing the order of the tokens before the last
    changes what the first block computes at the last position. Without any position signal
    (no position embedding added, no rotary embedding applied) the first layer's output at the
    last position is a function of the *set* of earlier tokens only: the same for every order.
    The first block is rerun on its recorded inputs with every token scaled to unit RMS, and its
    update (output - input) compared, so that position effects that are tiny at init (small
    weights, small scores) are measured well above rounding."""
    view = _view(model)
    if view.probe_len < 3:
        return _skip("position_signal", "needs at least 3 positions")
    T = view.probe_len
    rng = np.random.default_rng(seed)
    x = np.stack([rng.permutation(view.vocab_size)[:T] if view.vocab_size >= T
                  else rng.integers(0, view.vocab_size, size=T) for _ in range(2)])
    xp = x.copy()
    xp[:, :-1] = x[:, :-1][:, ::-1]
    both = np.concatenate([x, x, xp])
    where = "the logits"
    out = None
    if view.blocks:
        cap = view.capture(both)
        first = view.block_calls(cap)[view.blocks[0][0]]
        if first is not None:
            xi = to_numpy(first.input)
            xi = xi / np.maximum(np.sqrt((xi * xi).mean(-1, keepdims=True)), 1e-12)
            b0 = view.blocks[0][0]
            attn = view.attention.get(b0)
            if attn and attn != b0:  # the attention sublayer's own output: where positions enter
                seen = []
                hook = (view.module(attn), lambda m, i, o: seen.append(to_numpy(first_tensor(o))))
                _replay(view, first, xi, hooks=[hook])
                out, where = seen[0], f"{attn}'s output"
            else:  # the block's update (output - input) when it keeps a residual, else its output
                o = to_numpy(_replay(view, first, xi))
                upd = o - xi
                out = upd if np.abs(upd[:2, -1]).max() < np.abs(o[:2, -1]).max() else o
                where = f"{b0}'s update"
    if out is None:
        out = view.logits(both)
    if not _finite(out):
        return _nonfinite("position_signal", where)
    a, again, b = out[0:2, -1], out[2:4, -1], out[4:6, -1]
    if float(np.abs(again - a).max()) > 1e-6 * (float(np.abs(a).max()) + 1e-12):
        return _random_skip("position_signal")
    if float(np.abs(out[0] - out[1]).max()) <= 1e-7 * (float(np.abs(out[0]).max()) + 1e-30):
        # the same for two different sequences: e.g. an output projection initialised to zero (a
        # healthy choice), whose output is its bias
        return _skip("position_signal", f"{where} does not depend on the tokens at init (an output projection "
                                        "initialised to zero?): positions are not measurable there")
    if not np.any(a) and not np.any(b):  # zero at the last position only: a query that sees no key
        return _result("position_signal", False, f"{where} at the last position is exactly zero for every input, "
                                                 "though not elsewhere: does the last query see no key at all?",
                       "check the attention mask's convention (True = masked for nn.MultiheadAttention, "
                       "True = may attend for scaled_dot_product_attention)")
    change = float(np.abs(b - a).max()) / (float(np.abs(a).max()) + 1e-12)
    ev = f"relative change of {where} at the last position when the earlier tokens are reversed: {_g(change, 2)}"
    if change <= rtol:
        parts = _position_parts(view)
        if parts:  # built but without effect: the classic bug
            return _result("position_signal", False,
                           ev + f" (the model cannot tell positions apart, though it has {parts})",
                           "add the position embedding to the token embedding (x = tok_emb + pos_emb) or apply the "
                           "rotary embedding to q and k; a causal mask alone gives no position at the first layer")
        # no position encoding at all: a NoPE design can learn order in its deeper layers from the
        # causal mask, so this is a question, not a verdict
        return _result("position_signal", False,
                       ev + " and no position embedding or rotary tables were found (a model without position "
                       "encoding, 'NoPE')",
                       "if positions were meant, add a position embedding or RoPE; a deliberate NoPE model infers "
                       "order only from the causal mask in its later layers: skip this check "
                       "(doctor(..., skip=['position_signal']))", status="warn")
    return _result("position_signal", True, ev)


# Names of the parts that encode positions (one dotted segment): a learned table, rotary tables
# or frequencies. "post_attention_layernorm" or "cost" must not match.
_POSITION_NAME = re.compile(r"wpe|pos|pos_\w+|\w*position\w*|\w*rope\w*|\w*rotary\w*|inv_freq|freqs?(_\w+)?"
                            r"|(cos|sin)(_\w+)?|\w+_(cos|sin)|\w*alibi\w*|slopes?", re.IGNORECASE)


def _names_position(name: str) -> bool:
    return any(_POSITION_NAME.fullmatch(part) for part in name.split("."))


def _position_parts(view) -> str:
    """What the model has that should give positions, named for the report, or "": a position
    embedding the view found, modules, parameters (minGPT's ``pos_emb``) or buffers under a
    position-like name (a parameterless ``pos_drop`` module does not count; nor does a ``weight``
    alone), rotary modules by class name, or position-like tensors kept as plain attributes."""
    if view.position_embedding:
        return f"a position embedding ({view.position_embedding})"
    model = view.model
    if not hasattr(model, "named_modules"):
        return ""
    names = [n for n, m in model.named_modules()
             if n and _names_position(n) and (any(True for _ in m.parameters()) or any(True for _ in m.buffers()))]
    names += [n for n, _ in model.named_buffers() if _names_position(n)]
    names += [n for n, _ in model.named_parameters() if _names_position(n)]
    names += [n for n, m in model.named_modules() if n and re.search(r"rope|rotary", type(m).__name__, re.IGNORECASE)]
    if not names:  # tables kept as plain attributes (self.cos = ...), not registered
        names = [f"{n}.{a}" if n else a for n, m in model.named_modules() for a, v in vars(m).items()
                 if _names_position(a) and len(getattr(v, "shape", ())) >= 1]
    return f"position parts ({', '.join(sorted(set(names))[:3])})" if names else ""


def _function_rope(name, rope, head_dim, n_positions, tol, seed):
    """The rotation maps ``R_t`` of a rotary-embedding module or function, read off the basis."""
    D = head_dim or getattr(rope, "head_dim", None)
    if D is None:
        raise ValueError("rope_rotation: give head_dim")
    P = min(n_positions, getattr(rope, "max_seq_len", n_positions))
    basis = np.zeros((D, P, D), dtype=np.float32)
    basis[np.arange(D), :, np.arange(D)] = 1.0
    native = native_for(rope) if hasattr(rope, "named_modules") else native_for(np.zeros(1))
    like = next(iter(rope.buffers()), None) if hasattr(rope, "buffers") else None
    with native.no_grad():
        inp = native.floats(basis, like if like is not None else _proto(native))
        out = to_numpy(rope(inp))  # out[j, t] = R_t e_j
    R = np.transpose(out, (1, 2, 0))
    return _rotation_verdict(name, R, R, tol, seed, P, D)


def _rotation_verdict(name, Rq, Rk, tol, seed, P, D, extra=""):
    eye = np.eye(D)
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((D, 8))
    norm_err = max(float(np.abs(np.linalg.norm(Rq[t] @ v, axis=0) / np.linalg.norm(v, axis=0) - 1).max())
                   for t in range(P))
    id_err = float(np.abs(Rq[0] - eye).max())
    comp_err = max(float(np.abs(Rq[a] @ Rq[b] - Rq[a + b]).max()) for a in range(P) for b in range(P - a))
    q, k = rng.standard_normal(D), rng.standard_normal(D)
    rel = []
    s = P // 2
    for m in range(0, P // 2):
        for n in range(0, P // 2):
            rel.append(abs((Rq[m] @ q) @ (Rk[n] @ k) - (Rq[m + s] @ q) @ (Rk[n + s] @ k)))
    rel_err = float(max(rel)) / (np.linalg.norm(q) * np.linalg.norm(k))
    bad = []
    if norm_err > tol:
        bad.append("norm not preserved")
    if id_err > tol or comp_err > tol:
        bad.append("not a rotation that composes (R_a R_b != R_(a+b), so R_-a does not undo R_a)")
    if rel_err > tol:
        bad.append("q.k depends on absolute position")
    ev = (f"|norm ratio - 1| {_g(norm_err, 2)}, |R_0 - I| {_g(id_err, 2)}, |R_a R_b - R_(a+b)| {_g(comp_err, 2)}, "
          f"relative-position error {_g(rel_err, 2)} ({P} positions, head_dim {D}){extra}")
    if bad:
        return _result(name, False, ev + ": " + "; ".join(bad),
                       "each pair (2i, 2i+1) (or (i, i + d/2)) must turn by +t*theta_i with one frequency per pair: "
                       "[[cos, -sin], [sin, cos]], the same map for q and k")
    return _result(name, True, ev)


def _estimate_maps(pre, post, T, d):
    """Least-squares ``R_t`` with ``post[:, t] = pre[:, t] @ R_t^T`` (rows: samples), and the
    largest relative residual of the fit (0 when each position's q is a linear map of its own
    projection)."""
    R = np.zeros((T, d, d))
    worst, determined = 0.0, np.zeros(T, dtype=bool)
    for t in range(T):
        sol, _, rank, _ = np.linalg.lstsq(pre[:, t], post[:, t], rcond=None)
        R[t] = sol.T
        determined[t] = rank == d  # fewer independent samples than dimensions: R_t is not pinned down
        fit = pre[:, t] @ sol
        worst = max(worst, float(np.abs(fit - post[:, t]).max() / (np.abs(post[:, t]).max() + 1e-30)))
    return R, worst, determined


def rope_rotation(rope, head_dim: int | None = None, n_positions: int = 16, *, tol: float = 1e-4,
                  seed: int = 0) -> CheckResult:
    """A rotary embedding is a rotation that composes: norms are preserved, position 0 is the
    identity, rotating by ``a`` then ``b`` equals rotating by ``a + b`` (so rotating back by ``-a``
    inverts it), q and k turn by the same maps, and ``(R_m q) . (R_n k)`` depends only on ``n - m``.

    ``rope``: a model (q and k are captured where the scores are computed and compared, position
    by position, with the projection outputs they came from: the maps ``R_t`` in between are
    estimated by least squares), or a rotary-embedding module / callable ``x (..., T, D) -> rotated
    x`` applying position ``t`` to row ``t`` (the maps are read off the basis vectors)."""
    is_model = isinstance(rope, ModelView) or (hasattr(rope, "named_modules")
                                                and any(True for _ in rope.parameters()))
    if not is_model:
        return _function_rope("rope_rotation", rope, head_dim, n_positions, tol, seed)
    view = _view(rope)
    probe = view.capture(view.random_tokens(1))
    d = max((a.q.shape[-1] for a in probe.attention if a.q is not None), default=1)
    B = int(min(32, view.vocab_size, max(4, d + 1)))
    # distinct tokens at every position: each sequence's position-0 q and k are then found in one
    # row only, and the first layer's q and k at position t span d dimensions (R_t is determined)
    rng = np.random.default_rng(seed)
    x = np.stack([rng.permutation(view.vocab_size)[:B] for _ in range(view.probe_len)], axis=1)
    cap = view.capture(x)
    calls = [a for a in cap.attention if a.q is not None and a.k is not None]
    if not _finite(*[a.q for a in calls], *[a.k for a in calls]):
        return _nonfinite("rope_rotation", "q or k")
    if not calls:
        if not cap.attention:
            return _no_attention("rope_rotation")
        return _skip("rope_rotation", "q and k of the scores could not be traced")
    results, rotary_seen, unmatched, last = [], False, 0, None
    for a in calls:
        T = a.q.shape[-2]
        sides = {}
        for side, op in (("q", a.q), ("k", a.k)):
            rows = op.reshape(-1, T, op.shape[-1])
            found, _ = _projection_chunks(view, cap, a, rows[:, 0, :])
            n_found = sum(f is not None for f in found)
            if not n_found:
                sides[side] = None
                continue
            if n_found < 0.9 * len(found):
                sides[side] = ("mixed", n_found / len(found))
                continue
            if any(f is not None and f[0] == "flipped" for f in found):
                sides[side] = ("flipped",)
                continue
            pre, post = [], []
            for n, f in enumerate(found):
                if f is None:
                    continue
                _, alpha, call, b, off = f
                o = to_numpy(call.out)[b, :, off:off + rows.shape[-1]]
                pre.append(o)
                post.append(rows[n] / alpha)
            pre, post = np.stack(pre), np.stack(post)
            if not _finite(pre, post):
                return _nonfinite("rope_rotation", f"q or k of {_layer_name(view, a)}")
            sides[side] = ("ok", pre, post)
        if sides.get("q") is None or sides.get("k") is None:
            unmatched += 1
            continue
        results.append((a, sides))
    if not results:
        return _skip("rope_rotation", "q and k are not slices of a projection output (a norm or another op between "
                                      "them?): the rotation is not measured")
    for a, sides in results:
        name = _layer_name(view, a)
        for side in ("q", "k"):
            if sides[side][0] == "mixed":
                return _result("rope_rotation", False,
                               f"{name}: only {_g(100 * sides[side][1], 2)}% of the {side} rows at position 0 are "
                               "slices of position 0's projection: positions are mixed between the projection "
                               "and the scores",
                               "split heads as view(B, T, H, d).transpose(1, 2), not view(B, H, T, d)")
            if sides[side][0] == "flipped":
                return _result("rope_rotation", False,
                               f"{name}: at position 0 the {side} rows reach the scores with some signs flipped "
                               "(R_0 != I): the rotation is a reflection",
                               "the rotation must be [[cos, -sin], [sin, cos]] (the identity at position 0): "
                               "check the signs of the sin terms")
        (_, pq, sq), (_, pk, sk) = sides["q"], sides["k"]
        moved_q = float(np.abs(sq - pq).max() / (np.abs(pq).max() + 1e-30))
        moved_k = float(np.abs(sk - pk).max() / (np.abs(pk).max() + 1e-30))
        if max(moved_q, moved_k) < 1e-4:
            continue
        rotary_seen = True
        if min(moved_q, moved_k) < 1e-4:
            one = "q" if moved_q >= 1e-4 else "k"
            return _result("rope_rotation", False,
                           f"{name}: only {one} is turned by position (relative change {_g(max(moved_q, moved_k), 2)}, "
                           f"the other {_g(min(moved_q, moved_k), 2)}): q.k depends on absolute position",
                           "apply the rotary embedding to both q and k (and not to v)")
        T, dd = pq.shape[1], pq.shape[2]
        norm_q = float(np.abs(np.linalg.norm(sq, axis=-1) / np.maximum(np.linalg.norm(pq, axis=-1), 1e-30) - 1).max())
        norm_k = float(np.abs(np.linalg.norm(sk, axis=-1) / np.maximum(np.linalg.norm(pk, axis=-1), 1e-30) - 1).max())
        if max(norm_q, norm_k) >= 1e-3:
            return _result("rope_rotation", False, f"{name}: |norm ratio - 1| {_g(max(norm_q, norm_k), 2)} over {T} "
                           f"positions (head_dim {dd}): norm not preserved",
                           "each pair must turn by one angle: cos and sin of the same frequency on both dims")
        norm_ev = f"|norm ratio - 1| {_g(max(norm_q, norm_k), 2)} ({T} positions, head_dim {dd}; R_t not estimated)"
        if last is None:
            last = _result("rope_rotation", True, norm_ev)
        if pq.shape[0] < dd or pk.shape[0] < dd:
            continue
        (Rq, fq, okq), (Rk, fk, okk) = _estimate_maps(pq, sq, T, dd), _estimate_maps(pk, sk, T, dd)
        if max(fq, fk) > 1e-3:
            return _result("rope_rotation", False,
                           f"{name}: q or k at position t is not a function of position t's projection (fit error "
                           f"{_g(max(fq, fk), 2)}): positions are mixed between the projection and the scores",
                           "split heads as view(B, T, H, d).transpose(1, 2), not view(B, H, T, d)")
        ok = okq & okk
        P = min(T, 16, int(np.argmin(ok)) if not ok.all() else T)
        if P < 3:
            continue
        qk_err = float(np.abs(Rq[:P] - Rk[:P]).max())
        r = _rotation_verdict("rope_rotation", Rq[:P], Rk[:P], 1e-3, seed, P, dd,
                              extra=f", q/k maps differ by {_g(qk_err, 2)} ({name})")
        if r.status != "pass" or qk_err > 1e-3:
            if qk_err > 1e-3 and r.status == "pass":
                return _result("rope_rotation", False, r.evidence + ": q and k are turned by different maps",
                               "apply the same rotary embedding (same positions, same frequencies) to q and k")
            return r
        last = r
    if not rotary_seen:
        return _skip("rope_rotation", "no rotary embedding: q and k reach the scores as their projections made them")
    return last


def rope_values(model, *, tol: float = 1e-4, seed: int = 0) -> CheckResult:
    """Values carry content, not position. Each block gets a sequence whose positions all hold one
    vector: every value vector is then the same, whatever the weights, so a block whose only
    position-dependent part is its attention weights (RoPE on q and k, ALiBi, a mask) returns the
    same vector at every position. Rotating the values by position makes the positions differ.
    Blocks whose weights do not sum to 1 over keys are left to :func:`attention_sums_to_one`."""
    view = _view(model)
    if not view.blocks:
        return _skip("rope_values", "no blocks found")
    if _eval_is_random(view):
        return _random_skip("rope_values")
    x, _ = _model_batch(view, None, seed)
    cap = _capture(view, x)
    worst, where, measured = 0.0, "", 0
    for bname, call in view.block_calls(cap).items():
        if call is None or not any(bname in a.stack for a in cap.attention):
            continue
        xi = to_numpy(call.input)
        const = np.broadcast_to(xi[:, :1, :], xi.shape).copy()
        with Capture(view.model, seq_len=xi.shape[1], modules=False) as c2:
            out = _replay(view, call, const)
        if any(float(np.abs(a.weights.sum(-1) - 1).max()) > 1e-3 for a in c2.attention):
            continue
        o = to_numpy(out)
        if not _finite(o):
            return _nonfinite("rope_values", f"{bname}'s output for a constant input")
        spread = float(np.abs(o - o[:, :1]).max() / (np.abs(o).max() + 1e-12))
        measured += 1
        if spread > worst:
            worst, where = spread, bname
    if not measured:
        return _skip("rope_values", "no block with attention normalised over keys (see attention_sums_to_one)")
    ev = f"spread over positions of a block's output when every position holds the same vector: {_g(worst, 2)}"
    if worst > tol:
        return _result("rope_values", False, ev + f" ({where})",
                       "values must carry content only: apply the rotary embedding to q and k, never to v")
    return _result("rope_values", True, ev)


# ------------------------------------------------------------------------------------------------
# normalisation and residual structure
# ------------------------------------------------------------------------------------------------
def norms_finite_on_zeros(model) -> CheckResult:
    """Every normalisation layer maps an all-zeros input to finite values (an ``eps`` inside the
    square root keeps ``0 / sqrt(0)`` away), and every block stays finite when one position of its
    input is all zeros (which catches a norm written inline in the block). A zero row happens: a
    zero-initialised padding embedding, a masked position."""
    view = _view(model)
    x, _ = _model_batch(view, None, 0)
    cap = _capture(view, x)
    bad, n_norms = [], 0
    for name in view.norms:
        calls = cap.calls_of(name)
        if not calls:
            continue
        c = calls[0]
        zero = np.zeros((1, 4, int(c.input.shape[-1])), dtype=np.float32)
        try:
            with view.native.no_grad():
                out = to_numpy(first_tensor(c.module(view.native.floats(zero, c.input))))
        except Exception:  # a norm that cannot run alone is tested through its block below
            continue
        n_norms += 1
        nf = int((~np.isfinite(out)).sum())
        if nf:
            bad.append(f"{name}: {nf}/{out.size} non-finite")
    n_blocks = 0
    for bname, call in view.block_calls(cap).items():
        if call is None:
            continue
        xi = to_numpy(call.input).copy()
        if not _finite(to_numpy(call.out)):  # NaN on the model's own input: not a zero row's doing
            return _nonfinite("norms_finite_on_zeros", f"{bname}'s output on its usual input")
        xi[:, min(1, xi.shape[1] - 1), :] = 0.0
        try:
            out = to_numpy(_replay(view, call, xi))
        except Exception:
            continue
        n_blocks += 1
        if not _finite(out):
            if not any(b.startswith(bname + ".") for b in bad):
                bad.append(f"{bname}: non-finite output for an all-zero position")
    if not n_norms and not n_blocks:
        return _skip("norms_finite_on_zeros", "no normalisation layer and no block found")
    if bad:
        return _result("norms_finite_on_zeros", False, "; ".join(bad[:3]) + (" ..." if len(bad) > 3 else ""),
                       "a norm divides by sqrt(mean(x^2) + eps): eps must be > 0 (e.g. 1e-6)")
    ev = f"{n_norms} norm layer{'s' if n_norms != 1 else ''} finite on all-zeros input"
    if n_blocks:
        ev += f", {n_blocks} blocks finite with an all-zero position"
    return _result("norms_finite_on_zeros", True, ev)


def _zero_hook(native):
    """A forward hook that replaces a module's (first) output by zeros: the sublayer switched off."""
    def zero(module, inputs, output):
        return _replace_first(output, native.zeros_like(first_tensor(output)))
    return zero


def residual(model, batch=None, *, tol: float = 1e-6, seed: int = 0) -> CheckResult:
    """Each block keeps an identity path around each of its sublayers. A sublayer's writer (the
    innermost module with parameters whose output has the stream's shape: an output projection)
    is switched off (its output set to zero); with a residual around it the block's output still
    depends on the block's input, through the identity. Without one, every path from the input
    runs through that writer, and the output becomes the same for any input. Works for pre-norm
    and post-norm blocks alike. In a pre-norm block the path must also *be* the identity: with
    every sublayer switched off the output is the input (a norm or a scale on the residual path,
    ``h = norm(x); x = h + attn(h)``, fails this)."""
    view = _view(model)
    if not view.blocks:
        return _skip("residual", "no blocks found")
    if _eval_is_random(view):
        return _random_skip("residual")
    x, _ = _model_batch(view, batch, seed)
    cap = _capture(view, x)
    per_block, bad, measured = [], [], 0
    for bname, call in view.block_calls(cap).items():
        if call is None:
            continue
        writers = _stream_calls(view, cap, call, by="out")
        if not writers:
            continue
        xi = to_numpy(call.input)
        alt = np.roll(xi, 1, axis=0) if xi.shape[0] > 1 else xi[:, ::-1].copy()
        alt = alt + 0.5 * np.random.default_rng(seed).standard_normal(xi.shape) * (np.abs(xi).mean() + 1e-3)
        deps = []
        for w in writers:
            zero = _zero_hook(view.native)
            o1 = to_numpy(_replay(view, call, xi, hooks=[(w.module, zero)]))
            o2 = to_numpy(_replay(view, call, alt, hooks=[(w.module, zero)]))
            if not _finite(o1, o2):
                return _nonfinite("residual", f"{bname}'s output with {_rel_name(w.name, bname)} switched off")
            dep = float(np.linalg.norm(o1 - o2) / (np.linalg.norm(o1) + np.linalg.norm(o2) + 1e-30))
            deps.append(dep)
            if dep <= tol:
                bad.append(f"{bname}: no path around {_rel_name(w.name, bname)}")
        measured += 1
        per_block.append(min(deps))
        reads = _norm_placement(view, cap, 100.0, seed).get(bname, ({}, 0.0, True))[0]
        if min(deps) > tol and reads and max(reads.values()) <= 0.5:
            # pre-norm with a path around every sublayer: with all of them off, the block is the identity
            hooks = [(w.module, _zero_hook(view.native)) for w in writers]
            o = to_numpy(_replay(view, call, xi, hooks=hooks))
            off = float(np.linalg.norm(o - xi) / (np.linalg.norm(xi) + 1e-30))
            if not _finite(o):
                return _nonfinite("residual", f"{bname}'s output with its sublayers switched off")
            if off > 1e-3:
                bad.append(f"{bname}: with every sublayer switched off its output is not its input "
                           f"(|out - x| / |x| = {_g(off, 2)}): something else sits on the identity path")
    if not measured:
        return _skip("residual", "no sublayer with parameters writing the residual stream found in the blocks")
    ev = ("dependence of each block's output on its input with one sublayer switched off (0: no identity path), "
          "smallest per block: " + ", ".join(_g(d, 2) for d in per_block))
    if bad:
        return _result("residual", False, ev + f" ({'; '.join(bad[:2])})",
                       "each sublayer's output must be added to its input: x = x + attn(norm1(x)); "
                       "x = x + mlp(norm2(x))")
    return _result("residual", True, ev)


def _norm_placement(view, cap, scale, seed):
    """Per block: the largest |log10 change| of a sublayer reader's per-token input RMS, and of the
    block output's, when every other token of the block's input is multiplied by ``scale``."""
    cache = view.__dict__.setdefault("_placement_cache", {})
    if scale in cache:
        return cache[scale]
    out = {}
    for bname, call in view.block_calls(cap).items():
        if call is None:
            continue
        readers = _stream_calls(view, cap, call, by="in")
        seen = {}

        def keep(module, inputs, key=None, seen=seen):
            first = first_tensor(inputs)
            a = to_numpy(first)
            seen.setdefault(key, []).append(np.sqrt((a * a).mean(axis=-1)))
            # further inputs of the stream's shape (attention's key and value: attn(h, x, x) reads
            # the raw stream for k and v even when its query is normalised)
            for j, t in enumerate(inputs[1:] if isinstance(inputs, tuple) else (), 1):
                if t is not first and _is_float(t) and hasattr(t, "shape") and tuple(t.shape) == tuple(first.shape):
                    b = to_numpy(t)
                    seen.setdefault(f"{key} (input {j + 1})", []).append(np.sqrt((b * b).mean(axis=-1)))

        handles = [r.module.register_forward_pre_hook(lambda m, i, k=r.name: keep(m, i, k)) for r in readers]
        xi = to_numpy(call.input)
        c = np.where(np.arange(xi.shape[1]) % 2 == 1, scale, 1.0)[None, :, None]
        try:
            o1 = to_numpy(_replay(view, call, xi))
            o2 = to_numpy(_replay(view, call, xi * c))
        finally:
            for h in handles:
                h.remove()

        def change(v0, v1):
            return float(np.nanmax(np.abs(np.log10((v1 + 1e-30) / (v0 + 1e-30)))))

        reads = {k: change(v[0], v[1]) for k, v in seen.items() if len(v) >= 2 and v[0].shape == v[1].shape}
        rms = lambda a: np.sqrt((a * a).mean(axis=-1))  # noqa: E731
        out[bname] = (reads, change(rms(o1), rms(o2)) if _finite(o1, o2) else float("nan"), _finite(o1, o2))
    cache[scale] = out
    return out


def prenorm(model, batch=None, *, scale: float = 100.0, tol: float = 0.5, seed: int = 0) -> CheckResult:
    """Each sublayer reads a normalised input. Every other token of a block's input is multiplied
    by ``scale``; a per-token norm in front of a sublayer cancels that, so the RMS of each token the
    sublayer's first layers receive stays put: 0 with pre-norm, ``log10(scale)`` without.

    A block whose sublayers read the raw stream but whose *output* is normalised is **post-norm**
    (``x = norm(x + f(x))``, the original Transformer's layout): a design choice, reported as
    such, not a failure. A block where neither holds has lost a norm."""
    view = _view(model)
    if not view.blocks:
        return _skip("prenorm", "no blocks found")
    if _eval_is_random(view):
        return _random_skip("prenorm")
    x, _ = _model_batch(view, batch, seed)
    cap = _capture(view, x)
    place = _norm_placement(view, cap, scale, seed)
    if not place:
        return _skip("prenorm", "no block ran")
    worst, where, post, missing = 0.0, "", [], []
    for bname, (reads, out_change, finite) in place.items():
        if not finite:
            return _nonfinite("prenorm", f"{bname}'s output")
        if not reads:
            continue
        name, e = max(reads.items(), key=lambda kv: kv[1])
        if e > tol:
            if out_change <= tol:
                post.append(bname)
            else:  # name the first sublayer (in call order) that reads the raw stream
                first = next(n for n, v in reads.items() if v > tol)
                missing.append((bname, _rel_name(first, bname), e))
        if e > worst:
            worst, where = e, f"{_rel_name(name, bname)} in {bname}"
    ev = (f"max |log10 change| of a sublayer's per-token input RMS when every other block-input token is "
          f"scaled x{_g(scale)}: {_g(worst, 2)}")
    if missing:
        b, n, e = missing[0]
        return _result("prenorm", False, ev + f" ({b}: {n} sees an unnormalised input and the block's output "
                       "is not normalised either)",
                       "normalise before each sublayer: x = x + attn(norm1(x)); x = x + mlp(norm2(x)) (pre-norm), "
                       "or after each residual add (post-norm)")
    if post:
        return _result("prenorm", True, ev + f" ({where}): post-norm, each block's output is normalised: a design "
                       "choice (the original Transformer's), not a bug; pre-norm trains deep stacks more easily")
    return _result("prenorm", True, ev)


def final_norm(model, *, scale: float = 100.0, tol: float = 0.5, seed: int = 0) -> CheckResult:
    """The LM head reads a normalised stream. In a pre-norm model the residual stream leaves the
    last block unnormalised, so a final norm must come before the head: every other token of the
    last block's output is multiplied by ``scale``, and the logits of those tokens must not grow.
    Post-norm blocks already end in a norm (no final norm needed)."""
    view = _view(model)
    if not view.blocks:
        return _skip("final_norm", "no blocks found")
    if _eval_is_random(view):
        return _random_skip("final_norm")
    x, _ = _model_batch(view, None, seed)
    cap = _capture(view, x)
    place = _norm_placement(view, cap, scale, seed)
    last = view.blocks[-1][0]
    if last in place:
        reads, out_change, finite = place[last]
        if finite and reads and max(reads.values()) > tol and out_change <= tol:
            return _result("final_norm", True, "post-norm: the last block's output is already normalised")
    module = view.module(last)
    c = np.where(np.arange(x.shape[1]) % 2 == 1, scale, 1.0)[None, :, None]

    def scaled(mod, inputs, output, native=view.native):
        t = first_tensor(output)
        return _replace_first(output, t * native.floats(c.astype(np.float32), t))

    base = view.logits(x)
    h = module.register_forward_hook(scaled)
    try:
        moved = view.logits(x)
    finally:
        h.remove()
    if not _finite(base, moved):
        return _nonfinite("final_norm", "the logits")
    rms = lambda a: np.sqrt((a * a).mean(axis=-1))  # noqa: E731
    change = float(np.nanmax(np.abs(np.log10((rms(moved) + 1e-30) / (rms(base) + 1e-30)))))
    ev = (f"max |log10 change| of a token's logit RMS when the last block's output for that token is scaled "
          f"x{_g(scale)}: {_g(change, 2)}")
    if change > tol:
        where = f"the head ({view.lm_head})" if view.lm_head else "the head"
        return _result("final_norm", False, ev + f": {where} reads the raw residual stream",
                       "pre-norm blocks leave the stream unnormalised: apply a final norm before the LM head "
                       "(logits = head(norm_f(x)))")
    return _result("final_norm", True, ev)


def init_scale(model, batch=None, *, act_max: float = 10.0, logit_std_max: float = 2.0, seed: int = 0) -> CheckResult:
    """At init the residual stream and the logits are on a healthy scale: every block's output RMS
    below ``act_max`` and the logits' standard deviation below ``logit_std_max`` (then the loss starts
    near ``ln(V)``). The course page's ``init x100`` puts both in the hundreds at step 0."""
    view = _view(model)
    x, _ = _model_batch(view, batch, seed)
    cap = _capture(view, x)
    acts = {}
    for bname, call in view.block_calls(cap).items():
        if call is not None:
            a = to_numpy(call.out)
            acts[bname] = float(np.sqrt(np.mean(a * a)))
    logits = view.logits(x)
    lstd = float(np.std(logits))
    amax = max(acts.values()) if acts else float("nan")
    key = max(acts, key=acts.get) if acts else "-"
    if not _finite(lstd, *(acts.values())):
        bad = [k for k, v in acts.items() if not math.isfinite(v)]
        return _nonfinite("init_scale", f"the residual stream ({bad[0]})" if bad else "the logits")
    if acts:
        ev = f"max residual RMS {_g(amax)} ({key}), logit std {_g(lstd)} (healthy: < {_g(act_max)}, < {_g(logit_std_max)})"
    else:
        ev = f"logit std {_g(lstd)} (healthy: < {_g(logit_std_max)}); no blocks found for the residual stream"
    ok = (not acts or amax < act_max) and lstd < logit_std_max
    if not ok:
        return _result("init_scale", False, ev,
                       "initial weights are too large: use std 0.02 (residual projections 0.02/sqrt(2*n_layers))")
    return _result("init_scale", True, ev)


# ------------------------------------------------------------------------------------------------
# behaviour
# ------------------------------------------------------------------------------------------------
def eval_determinism(model, *, seed: int = 0, rtol: float = 1e-6) -> CheckResult:
    """In eval mode the model is a function: two forwards on the same tokens agree, and no module
    is left in training mode by ``model.eval()``. Dropout applied regardless of the mode
    (``F.dropout(x, p)`` without ``training=self.training``, sdpa's ``dropout_p`` passed in eval)
    makes validation losses and generations random."""
    view = _view(model)
    x = view.random_tokens(2, seed=seed)
    a, b = view.logits(x), view.logits(x)
    with eval_mode(view.model):
        still = [n for n, m in view.model.named_modules() if getattr(m, "training", False)]
    if not _finite(a, b):
        return _nonfinite("eval_determinism", "the logits")
    diff = float(np.abs(a - b).max()) / (float(np.abs(a).max()) + 1e-12)
    ev = f"relative difference of two eval-mode forwards on the same tokens: {_g(diff, 2)}"
    if still:
        ev += f"; in training mode after model.eval(): {', '.join(still[:3])}"
    if diff > rtol or still:
        return _result("eval_determinism", False, ev,
                       "something stays random in eval mode: dropout must be F.dropout(x, p, training=self.training) "
                       "(or nn.Dropout), and sdpa's dropout_p=p if self.training else 0")
    return _result("eval_determinism", True, ev)


def batch_independence(model, *, seed: int = 0, rtol: float = 1e-5) -> CheckResult:
    """Each sequence of a batch is processed on its own: changing the other rows of a batch leaves a
    row's logits unchanged (in eval mode). A reshape that mixes the batch and time axes, or a norm
    over the batch axis, breaks it (and leaks other sequences' future into training)."""
    view = _view(model)
    x = view.random_tokens(3, seed=seed)
    x2 = x.copy()
    x2[1:] = (x[1:] + 1 + np.random.default_rng(seed + 1).integers(0, view.vocab_size - 1, size=x[1:].shape)) \
        % view.vocab_size
    out = view.logits(np.concatenate([x, x2]))
    if not _finite(out):
        return _nonfinite("batch_independence", "the logits")
    a, b = out[0], out[3]
    scale = float(np.abs(a).max()) + 1e-12
    again = view.logits(np.concatenate([x, x2]))
    if float(np.abs(again - out).max()) > rtol * scale:
        return _skip("batch_independence", "not measured: the same tokens give different logits in eval mode "
                                           "(see eval_determinism)")
    diff = float(np.abs(a - b).max()) / scale
    ev = f"relative change of row 0's logits when the other rows of the batch change: {_g(diff, 2)}"
    if diff > rtol:
        return _result("batch_independence", False, ev,
                       "the model mixes sequences of the batch: check reshapes/views of (B, T, ...) tensors (heads "
                       "must be split as view(B, T, H, d).transpose(1, 2)) and norms over the batch axis")
    return _result("batch_independence", True, ev)


# ------------------------------------------------------------------------------------------------
# training dynamics
# ------------------------------------------------------------------------------------------------
def _trainable(view):
    return [(n, p) for n, p in view.model.named_parameters() if p.requires_grad]


def _gradients(view, x, y):
    """``{name: gradient array or None}`` of one backward of the training loss, in eval mode; the
    parameters' ``.grad`` are put back as they were."""
    native = view.native
    params = _trainable(view)
    saved = [native.grad(p) for _, p in params]
    for _, p in params:
        native.set_grad(p, None)
    try:
        with eval_mode(view.model), native.enable_grad():
            loss = view.loss_native(x, y)
            if not getattr(loss, "requires_grad", True):
                raise _NoGraph(native.item(loss))
            loss.backward()
        grads = {n: to_numpy(native.grad(p)) if native.grad(p) is not None else None for n, p in params}
    finally:
        for (_, p), g in zip(params, saved):
            native.set_grad(p, g)
    return native.item(loss), grads


class _NoGraph(Exception):
    pass


def gradient_flow(model, batch=None, *, loss_fn=None, seed: int = 0) -> CheckResult:
    """One backward pass gives every trainable parameter a finite, non-zero gradient. A parameter
    with none is outside the graph: unused, detached (``.detach()``, ``.data``, ``.item()``), or
    computed under ``no_grad``. (Gradients are put back afterwards.)"""
    view = _view(model, loss_fn=loss_fn)
    x, y = _model_batch(view, batch, seed)
    try:
        _, grads = _gradients(view, x, y)
    except _NoGraph as e:
        return _result("gradient_flow", False, f"the loss ({_g(e.args[0])}) does not depend on any parameter",
                       "the loss was computed under no_grad, or detached from the model")
    norms = {n: None if g is None else float(np.sqrt((g * g).sum())) for n, g in grads.items()}
    none = [n for n, v in norms.items() if v is None]
    nonfinite = [n for n, v in norms.items() if v is not None and not math.isfinite(v)]
    zero = [n for n, v in norms.items() if v == 0.0]
    finite = {n: v for n, v in norms.items() if v is not None and math.isfinite(v) and v > 0}
    lo = min(finite, key=finite.get) if finite else None
    ev = f"{len(finite)}/{len(norms)} parameters got a finite non-zero gradient"
    if lo is not None:
        ev += f" (smallest: {lo} {_g(finite[lo], 2)})"
    behind = []
    if zero and not none and not nonfinite:
        zero, behind = _zero_only_at_init(view, x, y, grads, zero, seed)
        if behind:
            ev = f"{len(norms) - len(zero)}/{len(norms)} parameters get a finite non-zero gradient"
    problems = [(k, v) for k, v in (("no grad", none), ("non-finite", nonfinite), ("zero", zero)) if v]
    if behind and not problems:
        return _result("gradient_flow", True, ev + f"; those behind zero-initialised {', '.join(behind[:3])}"
                       f"{' ...' if len(behind) > 3 else ''} get none at init only (a design: zero-initialised "
                       "projections or gates; they learn from the first step)")
    if problems:
        ev += "; " + "; ".join(f"{k}: {', '.join(v[:3])}{' ...' if len(v) > 3 else ''}" for k, v in problems)
        return _result("gradient_flow", False, ev,
                       "a parameter outside the graph (unused, detached, or computed under no_grad) or a "
                       "NaN in the forward: see detect_anomaly()")
    return _result("gradient_flow", True, ev)


def _zero_only_at_init(view, x, y, grads, zero, seed):
    """``(still zero, zero-valued parameters that blocked the rest)``: parameters whose gradient is
    zero only because a parameter after them is all zeros at init (an output projection or a gate
    initialised to zero, ReZero style). Those zero-valued parameters get a gradient themselves, so
    after the first step the rest do too; the check perturbs them slightly (on the live model, put
    back afterwards) and takes the gradients again."""
    native = view.native
    params = dict(_trainable(view))
    blockers = [n for n, p in params.items() if n not in zero and grads.get(n) is not None
                and not np.any(to_numpy(p)) and np.any(grads[n])]
    if not blockers:
        return zero, []
    rng = np.random.default_rng(seed)
    saved = native.snapshot([params[n] for n in blockers])
    try:
        for n in blockers:
            native.assign(params[n], 1e-3 * rng.standard_normal(tuple(params[n].shape)))
        _, again = _gradients(view, x, y)
    finally:
        native.restore([params[n] for n in blockers], saved)
    still = [n for n in zero if again.get(n) is None or not np.any(again[n]) or not np.all(np.isfinite(again[n]))]
    if len(still) == len(zero):
        return zero, []
    named = [n for n in blockers if not n.endswith("bias")] or blockers
    return still, named


def overfit_one_batch(model, batch=None, *, steps: int = 60, lr: float = 1e-2, threshold: float = 0.5,
                      loss_fn=None, seed: int = 0) -> CheckResult:
    """A model that can learn memorises one small batch: ``steps`` AdamW steps on it (no weight
    decay, clipping at 1, eval mode: no dropout) bring the loss below ``threshold`` x its starting
    value. The weights and gradients are put back afterwards."""
    view = _view(model, loss_fn=loss_fn)
    native = view.native
    x, y = _model_batch(view, batch, seed)
    x, y = x[:4], y[:4]
    tx, ty = view.tokens(x), view.tokens(y)
    params = [p for _, p in _trainable(view)]
    if not params:
        return _skip("overfit_one_batch", "the model has no trainable parameter")
    saved = native.snapshot(params)
    saved_grads = [native.grad(p) for p in params]
    losses = []
    try:
        with eval_mode(view.model), native.enable_grad():
            opt = native.adamw(params, lr)
            for _ in range(steps):
                opt.zero_grad()
                loss = view.loss_native(tx, ty)
                losses.append(native.item(loss))
                if not math.isfinite(losses[-1]) or not getattr(loss, "requires_grad", True):
                    break
                loss.backward()
                native.clip_grad_norm_(params, 1.0)
                opt.step()
    finally:
        native.restore(params, saved)
        for p, g in zip(params, saved_grads):
            native.set_grad(p, g)
    first, best = losses[0], min(losses)
    if not math.isfinite(first):
        return _nonfinite("overfit_one_batch", "the loss at the start")
    if not first > 0:
        return _skip("overfit_one_batch", f"not measured: the loss at the start is {_g(first)}, not positive (see loss_sign)")
    ev = (f"loss {_g(first)} -> {_g(losses[-1], 2)} in {len(losses)} steps on {x.shape[0]}x{x.shape[1]} tokens "
          f"(needed < {_g(threshold)} x start)")
    if not math.isfinite(losses[-1]):
        return _result("overfit_one_batch", False, ev + ": the loss became NaN/Inf",
                       "the update blew up on one batch: check the init scale, the norms and the learning rate")
    if not best < threshold * first:
        return _result("overfit_one_batch", False, ev,
                       "a model that cannot memorise one batch has a bug in the forward, the loss or the update")
    return _result("overfit_one_batch", True, ev)


def graph_size(model, seq_lens=(8, 16), *, batch_size: int = 2) -> CheckResult:
    """The number of ops in one forward does not grow with sequence length: a per-token Python
    loop makes it grow linearly (and makes the model slow). Ops are counted by the framework's
    own observer (tensorlite's op observers, torch's function mode)."""
    view = _view(model)
    T_max = view.probe_len
    lens = [min(t, T_max) for t in seq_lens]
    if lens[0] == lens[-1]:
        lens = [max(2, T_max // 2), T_max]
    counts = []
    for T in lens:
        x = view.tokens(np.random.default_rng(0).integers(0, view.vocab_size, size=(batch_size, T)))
        with eval_mode(view.model), view.native.no_grad(), view.native.count_ops() as c:
            view.logits_native(x)
        counts.append(c.n)
    ev = ", ".join(f"{c} ops at T={t}" for c, t in zip(counts, lens))
    if counts[-1] > counts[0]:
        per = (counts[-1] - counts[0]) / (batch_size * (lens[-1] - lens[0]))
        return _result("graph_size", False, ev + f" (+{_g(per, 3)} per extra token)",
                       "the graph grows with the sequence: a Python loop over tokens where one batched op serves")
    return _result("graph_size", True, ev)


# ------------------------------------------------------------------------------------------------
# optimisation
# ------------------------------------------------------------------------------------------------
def _is_adamw(optimizer) -> bool:
    return any("adamw" in c.__name__.lower() for c in type(optimizer).__mro__)


def _opt_params(optimizer):
    return [p for g in optimizer.param_groups for p in g["params"]]


def _copy_optimizer(optimizer):
    """A deep copy of ``optimizer`` (and of its parameters), with its state cleared and each
    group's ``lr`` at its peak (``initial_lr``, which schedulers record) so that a warmup's
    step-0 LR of 0 does not hide what a step does."""
    memo: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = copy.deepcopy(optimizer, memo)
        # torch's Optimizer pickles only defaults, state and param_groups: copy the subclass's own
        # attributes too (a hand-written AdamW's switches)
        for k, v in optimizer.__dict__.items():
            if k not in opt.__dict__ and k != "step":
                with contextlib.suppress(Exception):
                    opt.__dict__[k] = copy.deepcopy(v, memo)
    # a torch scheduler wraps optimizer.step with a weak reference to *its* optimizer: the copy
    # must use its class's step, or it would step the original
    opt.__dict__.pop("step", None)
    opt.state.clear()
    for g in opt.param_groups:
        if "initial_lr" in g:
            g["lr"] = g["initial_lr"]
        if "max_lr" in g:
            g["lr"] = g["max_lr"]
    return opt


def _fresh_optimizer(factory, framework):
    """A factory ``params -> optimizer`` on one probe parameter of ``framework``."""
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((4, 4)).astype(np.float32) + 2.0
    native = native_for_framework(framework)
    if native.name == "torch":
        p = native.torch.nn.Parameter(native.torch.from_numpy(w0.copy()))
    else:
        p = Parameter(w0.copy())
    return factory([p])


def optimizer_decay(optimizer, *, seed: int = 0, framework=None) -> CheckResult:
    """One step with a zero gradient: an AdamW shrinks every weight by exactly ``lr * weight_decay``
    (decoupled decay) and leaves its moments at zero.

    ``optimizer``: a tensorlite or torch optimizer (a deep copy is stepped, with copies of its
    parameters; the one given is untouched) or a factory ``params -> optimizer`` (on a probe
    parameter of ``framework``, tensorlite by default). An AdamW with no decay configured is
    tested at ``weight_decay = 0.1`` (the decay code path is what could be wrong); another
    optimizer's coupled L2 decay (Adam's ``weight_decay``) is a warning: it is not AdamW's."""
    if not hasattr(optimizer, "param_groups"):
        opt = _fresh_optimizer(optimizer, framework)
    else:
        opt = _copy_optimizer(optimizer)
    native = native_for(_opt_params(opt)[0])
    groups = [g for g in opt.param_groups if g["params"]]
    adamw = _is_adamw(opt)
    if not any(float(g.get("weight_decay", 0.0)) for g in groups):
        if not adamw:
            return _skip("optimizer_decay", f"{type(opt).__name__} with no weight decay configured: nothing to check")
        groups[0]["weight_decay"] = 0.1  # verify the decay code path even when the run sets none
    before = {}
    for g in groups:
        for p in g["params"]:
            before[id(p)] = to_numpy(p)
            native.set_grad(p, native.zeros_like(p))
    opt.step()
    worst, shown, moved = 0.0, None, {}
    for g in groups:
        lr, wd = float(g["lr"]), float(g.get("weight_decay", 0.0))
        expect = 1.0 - lr * wd
        for p in g["params"]:
            w0, w1 = before[id(p)], to_numpy(p)
            nz = np.abs(w0) > 1e-3
            if not nz.any():
                continue
            ratio = w1[nz] / w0[nz]
            err = float(np.abs(ratio - expect).max())
            if shown is None or (wd and err >= worst):
                worst, shown = err, (float(ratio.mean()), expect, lr * wd)
            for k, v in opt.state.get(p, {}).items():
                if k != "step" and hasattr(v, "shape") and int(np.prod(v.shape)) > 1:
                    moved[k] = max(moved.get(k, 0.0), float(np.abs(to_numpy(v)).max()))
    if shown is None:
        return _skip("optimizer_decay", "no parameter with a non-zero value to measure")
    mean_ratio, expect, lw = shown
    ev = (f"zero-grad step: w_new / w = {_g(mean_ratio, 6)} (expected 1 - lr*wd = {_g(expect, 6)}); "
          f"max |moment| " + (", ".join(f"{k} {_g(v, 2)}" for k, v in moved.items()) or "none"))
    if not math.isfinite(mean_ratio):
        return _nonfinite("optimizer_decay", "the weights after one step")
    if worst > 1e-6 * max(1.0, lw * 10) + 1e-7 or any(v > 0 for v in moved.values()):
        if not adamw:
            return _result("optimizer_decay", False, ev + f": {type(opt).__name__}'s weight decay is coupled "
                           "(L2, through the gradient and the moments)",
                           "Adam's weight_decay is L2 regularisation, weaker on weights with large gradients; "
                           "AdamW decouples it (p *= 1 - lr*wd)", status="warn")
        return _result("optimizer_decay", False, ev,
                       "decoupled weight decay scales the weights (p *= 1 - lr*wd) and never enters the "
                       "moments (exp_avg, exp_avg_sq)")
    return _result("optimizer_decay", True, ev)


def _param_names(model):
    return {id(p): n for n, p in model.named_parameters()}


def optimizer_groups(optimizer, model, *, max_decay_on_vectors: float = 0.01) -> CheckResult:
    """Weight decay belongs on weight matrices. Decaying biases and norm gains (1-D parameters)
    pulls a norm's gain towards 0 and shifts every bias: nanoGPT, minGPT and Hugging Face put them
    in a group with ``weight_decay=0``. More than ``max_decay_on_vectors`` on any of them is a
    warning (torch's AdamW default, 0.01 on every parameter, is let through). Embedding matrices
    may go either way (nanoGPT decays them, minGPT does not); the evidence names them."""
    names = _param_names(model)
    vec, mats, emb = [], 0, []
    emb_ids = {id(m.weight) for _, m in model.named_modules()
               if hasattr(m, "num_embeddings") and getattr(m, "weight", None) is not None}
    for g in optimizer.param_groups:
        wd = float(g.get("weight_decay", 0.0))
        for p in g["params"]:
            n = names.get(id(p), "?")
            if len(p.shape) < 2:
                vec.append((n, wd))
            else:
                mats += wd > 0
                if wd > 0 and id(p) in emb_ids:
                    emb.append(n)
    decayed = [(n, wd) for n, wd in vec if wd > max_decay_on_vectors]
    ev = (f"weight decay on {mats} weight matrices and on {sum(wd > 0 for _, wd in vec)} of {len(vec)} "
          f"biases/norm gains")
    if emb:
        ev += f"; embeddings decayed: {', '.join(emb[:2])}"
    if decayed:
        wd = max(wd for _, wd in decayed)
        return _result("optimizer_groups", False, ev + f" (weight_decay {_g(wd)} on {', '.join(n for n, _ in decayed[:3])}"
                       f"{' ...' if len(decayed) > 3 else ''})",
                       "put parameters with ndim < 2 (biases, norm gains) in a group with weight_decay=0: "
                       "[{'params': matrices, 'weight_decay': wd}, {'params': vectors, 'weight_decay': 0.0}]",
                       status="warn")
    return _result("optimizer_groups", True, ev)


def optimizer_step(optimizer, model, batch=None, *, loss_fn=None, seed: int = 0) -> CheckResult:
    """The optimizer trains this model: it holds the model's trainable parameters (the same
    objects: not another instance's, not copies made before ``.to(device)``), and one step on the
    real gradient moves them downhill (``sum(dw * g) < 0``). Stepped on a deep copy, at each
    group's peak LR; the model and the optimizer are untouched."""
    view = _view(model, loss_fn=loss_fn)
    trainable = _trainable(view)
    held = {id(p) for p in _opt_params(optimizer)}
    missing = [n for n, p in trainable if id(p) not in held]
    if len(missing) == len(trainable):
        return _result("optimizer_step", False,
                       f"the optimizer holds none of the model's {len(trainable)} trainable parameters",
                       "build the optimizer from this model's parameters, after moving the model to its device")
    x, y = _model_batch(view, batch, seed)
    try:
        _, grads = _gradients(view, x, y)
    except _NoGraph:
        return _skip("optimizer_step", "the loss does not depend on the parameters (see gradient_flow)")
    by_id = {id(p): grads[n] for n, p in trainable}
    native = view.native
    opt = _copy_optimizer(optimizer)
    # the copy's parameters stand in the same places of its groups as the originals
    orig = _opt_params(optimizer)
    copies = _opt_params(opt)
    before, gsum, moved, total = [], 0.0, 0, 0
    for p0, p1 in zip(orig, copies):
        g = by_id.get(id(p0))
        if g is None or not np.isfinite(g).all():
            native.set_grad(p1, None)
            continue
        native.set_grad(p1, native.floats(g.astype(np.float32), p1))
        before.append((p1, to_numpy(p1), g))
    if not before:
        return _skip("optimizer_step", "no parameter of the optimizer got a finite gradient (see gradient_flow)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt.step()
    dots, rel = 0.0, []
    for p1, w0, g in before:
        w1 = to_numpy(p1)
        dw = w1 - w0
        total += 1
        if float(np.abs(dw).max()) > 0:
            moved += 1
        dots += float((dw * g).sum())
        rel.append(float(np.linalg.norm(dw) / (np.linalg.norm(w0) + 1e-12)))
        gsum += float((g * g).sum())
    ev = (f"one step on the real gradient: {moved}/{total} tensors moved, median |dw|/|w| {_g(np.median(rel), 2)}, "
          f"sum(dw * g) = {_g(dots, 2)}")
    if missing:
        ev += f"; not in the optimizer: {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
    if not math.isfinite(dots):
        return _nonfinite("optimizer_step", "the weights after one step")
    if moved == 0:
        return _result("optimizer_step", False, ev + ": no weight moved",
                       "the learning rate is 0 (or the step ignores the gradient)")
    if dots >= 0:
        return _result("optimizer_step", False, ev + ": the step goes uphill",
                       "the update must be w -= lr * f(grad): check the sign (and maximize=False)")
    if missing:
        return _result("optimizer_step", False, ev,
                       "trainable parameters outside the optimizer never change: pass model.parameters() "
                       "(or set requires_grad=False on the ones you freeze)", status="warn")
    return _result("optimizer_step", True, ev)


def _scheduler_lrs(schedule, steps):
    """The LR (first group) at steps 0 .. of a deep copy of ``schedule`` (its optimizer's parameters
    shared, not copied): the scheduler and its optimizer are untouched."""
    opt = schedule.optimizer
    memo = {id(p): p for p in _opt_params(opt)}
    for st in getattr(opt, "state", {}).values():
        for v in st.values():
            memo[id(v)] = v
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = copy.deepcopy(schedule, memo)
        lrs = [float(s.get_last_lr()[0])]
        for _ in range(steps - 1):
            try:
                s.step()
            except (ValueError, IndexError, ZeroDivisionError):  # OneCycleLR past its total steps
                break
            lrs.append(float(s.get_last_lr()[0]))
    return lrs, s


def lr_schedule(schedule, *, lr_max: float | None = None, warmup: int | None = None,
                small: float = 0.25, steps: int = 3000) -> CheckResult:
    """The schedule is a sensible LR curve. The LR at step 0 is small (``<= small * peak``) when
    there is a warmup; no warmup at all is a warning (Adam's first steps at the peak LR are the
    course page's failure 2). The peak stays within a factor 100 below / 10 above the optimizer's
    LR: a ``LambdaLR`` lambda must return a *factor* (returning an LR, e.g. 3e-4, multiplies the LR
    by 3e-4 again, unless the optimizer's LR is 1). Every LR is finite and non-negative.

    ``schedule``: a tensorlite or torch scheduler (LambdaLR, OneCycleLR, CosineAnnealingLR,
    SequentialLR, WarmupCosine ...: a deep copy is stepped ``steps`` times), a run config with
    ``lr`` and ``warmup`` fields, or a function ``step -> lr`` (give ``lr_max`` to compare)."""
    base = None
    schedule = getattr(schedule, "optim", schedule)  # a TrainConfig: its optimisation section
    if type(schedule).__name__ == "ReduceLROnPlateau":
        return _skip("lr_schedule", "ReduceLROnPlateau sets the LR from the loss: nothing to check before training")
    if hasattr(schedule, "get_last_lr") and hasattr(schedule, "optimizer"):
        if getattr(schedule, "last_epoch", 0) > 0 and hasattr(schedule, "lr_lambdas"):
            lrs = [float(b * f(0)) for b, f in zip(schedule.base_lrs, schedule.lr_lambdas)][:1]
            lrs += _scheduler_lrs(schedule, steps)[0]
            note = f" (the scheduler has stepped {schedule.last_epoch} times; step 0 from its lambda)"
        else:
            lrs, _ = _scheduler_lrs(schedule, steps)
            note = (f" (the scheduler has stepped {schedule.last_epoch} times: the curve from there)"
                    if getattr(schedule, "last_epoch", 0) > 0 else "")
            if note and hasattr(schedule, "warmup_steps"):
                saved = schedule.last_epoch
                schedule.last_epoch = 0
                lrs[0] = float(schedule.get_lr()[0])
                schedule.last_epoch = saved
                note = ""
        g = schedule.optimizer.param_groups[0]
        base = float(g.get("max_lr", g.get("initial_lr", g["lr"])))
        warmup = warmup if warmup is not None else getattr(schedule, "warmup_steps", None)
    elif hasattr(schedule, "lr") and hasattr(schedule, "warmup"):
        cfg = schedule
        base = float(cfg.lr)
        warmup = int(cfg.warmup) if warmup is None else warmup
        total = max(int(getattr(cfg, "steps", max(warmup, 1))), warmup)
        lrs = [warmup_cosine_lr(s, lr_max=base, warmup_steps=warmup, total_steps=total,
                                lr_min=float(getattr(cfg, "lr_min", 0.0))) for s in range(min(steps, total + 1))]
        note = ""
    elif callable(schedule):
        lrs = [float(schedule(s)) for s in range(steps)]
        base = lr_max
        note = ""
    else:
        raise TypeError(f"lr_schedule: expected a scheduler, a config or a function, got {type(schedule).__name__}")
    arr = np.asarray(lrs, dtype=np.float64)
    if not np.isfinite(arr).all():
        return _nonfinite("lr_schedule", "the learning-rate curve")
    peak = float(arr.max())
    lr0 = float(arr[0])
    lr_ref = lr_max or peak
    frac = lr0 / lr_ref if lr_ref else float("nan")
    if warmup is None and peak > 0:
        reach = int(np.argmax(arr >= 0.99 * peak))
        inferred = reach if reach > 0 else 0
    else:
        inferred = warmup
    ev = f"LR at step 0: {_g(lr0)} = {_g(frac, 2)} x lr_max {_g(lr_ref)}" + (
        f", warmup {inferred} steps" if inferred is not None else "") + note
    if (arr < 0).any():
        return _result("lr_schedule", False, ev + f": negative LR at step {int(np.argmax(arr < 0))}",
                       "a negative learning rate climbs the loss")
    if peak == 0:
        return _result("lr_schedule", False, ev + ": the LR is 0 at every step", "the schedule never trains")
    if base and base != 1.0:
        r = peak / base
        if r < 1e-2:
            return _result("lr_schedule", False, ev + f"; the peak LR {_g(peak)} is {_g(r, 2)} x the optimizer's lr "
                           f"{_g(base)}", "a LambdaLR lambda returns a factor of the optimizer's lr, not an LR: "
                           "return e.g. min(1, (step + 1) / warmup), or set the optimizer's lr to 1", status="fail")
        if r > 10:
            return _result("lr_schedule", False, ev + f"; the peak LR {_g(peak)} is {_g(r, 3)} x the optimizer's lr "
                           f"{_g(base)}", "the schedule's factor should stay <= 1 (a lambda returning the step "
                           "count instead of step / warmup?)")
    if warmup == 0 or (warmup is None and frac >= 0.99):
        return _result("lr_schedule", False, ev + ": no warmup",
                       "no warmup: Adam's first updates run at lr_max; use a linear warmup (a few % of the steps)",
                       status="warn")
    if frac > small:
        return _result("lr_schedule", False, ev + f": warmup configured but step 0 is above {small} x lr_max",
                       "the warmup does not reach step 0: is the scheduler built before the optimizer's LR "
                       "is set, or is the warmup too short?", status="fail" if warmup else "warn")
    return _result("lr_schedule", True, ev)


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------
def input_label_alignment(batcher_or_batch, *, bos_id: int | None = None, pad_id: int | None = None,
                          shifted_inside: bool = False) -> CheckResult:
    """Targets are the inputs shifted by one: ``y[:, t] == x[:, t+1]`` everywhere, no constant
    first input column (a BOS prepended to the inputs) and no constant last label column (a pad
    appended to the labels). Takes ``(x, y)``, a batcher (one batch drawn, its state restored),
    a ``get_batch(split)`` function or a DataLoader. ``shifted_inside=True`` (a Hugging Face style
    model that shifts its ``labels`` itself) expects ``y == x`` instead."""
    x, y = make_batch(batch=batcher_or_batch) if not hasattr(batcher_or_batch, "get_batch") else \
        make_batch(batcher=batcher_or_batch, batch_size=10**9)
    if x.shape != y.shape:
        return _result("input_label_alignment", False, f"inputs {x.shape} and targets {y.shape} differ in shape",
                       "x and y must both be (batch, seq_len)")
    if shifted_inside:
        same = float(np.mean(x == y))
        ev = f"labels == inputs at {_g(100 * same, 4)}% of {x.size} positions (the model shifts them)"
        if same < 0.999:
            return _result("input_label_alignment", False, ev,
                           "a model that shifts its labels itself takes labels = input_ids, unshifted; if the "
                           "loss is computed outside the model, pass that loss_fn to the doctor")
        return _result("input_label_alignment", True, ev)
    match = float(np.mean(y[:, :-1] == x[:, 1:])) if x.shape[1] > 1 else 1.0
    notes = []
    if x.shape[0] > 1:
        if np.all(x[:, 0] == x[0, 0]) and (bos_id is None or x[0, 0] == bos_id):
            notes.append(f"x[:, 0] is {int(x[0, 0])} in every row (a BOS?)")
        if np.all(y[:, -1] == y[0, -1]) and (pad_id is None or y[0, -1] == pad_id):
            notes.append(f"y[:, -1] is {int(y[0, -1])} in every row (a pad?)")
    ev = f"y[:, t] == x[:, t+1] at {_g(100 * match, 4)}% of {y[:, :-1].size} positions"
    if match < 0.999 and np.mean(x == y) > 0.999:
        notes.append("y equals x: the labels are not shifted")
    elif match < 0.999 and x.shape[1] > 1 and np.mean(y[:, 1:] == x[:, :-1]) > 0.999:
        notes.append("y[:, t] == x[:, t-1]: shifted the wrong way")
    if notes:
        ev += "; " + "; ".join(notes)
    if match < 0.999 or (notes and match < 1.0):
        return _result("input_label_alignment", False, ev,
                       "take x = tokens[i : i+T] and y = tokens[i+1 : i+T+1] from one window; never prepend "
                       "a BOS to x or append a pad to y separately")
    return _result("input_label_alignment", True, ev)


# ------------------------------------------------------------------------------------------------
# the registry
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckSpec:
    """One entry of :data:`REGISTRY`: the check's ``name`` (also its anchor on the doctor's page),
    its ``topic``, what it ``needs`` ("model", "optimizer", "scheduler", "data", "loss_fn"), and
    ``run(ctx)``, which calls the check function with what the doctor gathered."""

    name: str
    topic: str
    needs: tuple
    run: object

    @property
    def function(self):
        return globals()[self.name]


def _shifts_labels_inside(c) -> bool:
    """The labels of the batch are the model's ``labels=`` (Hugging Face style, shifted inside the
    model) only when the model computes its own loss and no ``loss_fn`` says the loss is computed
    outside it (then the batch's targets are the usual shifted ones)."""
    return c.view is not None and c.view._target_kw == "labels" and c.loss_fn is None


@dataclass
class DoctorContext:
    """What :func:`~tensorlite.debug.doctor` hands each check."""

    view: object = None
    optimizer: object = None
    scheduler: object = None
    batch: object = None
    data: object = None
    loss_fn: object = None
    overfit_steps: int = 60
    seed: int = 0


def _spec(name, topic, needs, run):
    return CheckSpec(name, topic, tuple(needs), run)


#: Every check once, in the doctor's table order, with what it needs.
REGISTRY = (
    _spec("loss_at_init", "loss", ["model"], lambda c: loss_at_init(c.view, c.batch, seed=c.seed)),
    _spec("loss_sign", "loss", ["loss_fn"], lambda c: loss_sign(c.loss_fn, framework=c.view.framework
                                                                 if c.view is not None else None)),
    _spec("model_loss", "loss", ["model"], lambda c: model_loss(c.view, c.batch, seed=c.seed)),
    _spec("attention_sums_to_one", "attention", ["model"], lambda c: attention_sums_to_one(c.view, c.batch, seed=c.seed)),
    _spec("attention_scale", "attention", ["model"], lambda c: attention_scale(c.view, c.batch, seed=c.seed)),
    _spec("attention_entropy", "attention", ["model"], lambda c: attention_entropy(c.view, c.batch, seed=c.seed)),
    _spec("causal_leak", "attention", ["model"], lambda c: causal_leak(c.view, seed=c.seed)),
    _spec("position_signal", "attention", ["model"], lambda c: position_signal(c.view, seed=c.seed)),
    _spec("rope_rotation", "attention", ["model"], lambda c: rope_rotation(c.view, seed=c.seed)),
    _spec("rope_values", "attention", ["model"], lambda c: rope_values(c.view, seed=c.seed)),
    _spec("norms_finite_on_zeros", "structure", ["model"], lambda c: norms_finite_on_zeros(c.view)),
    _spec("residual", "structure", ["model"], lambda c: residual(c.view, c.batch, seed=c.seed)),
    _spec("prenorm", "structure", ["model"], lambda c: prenorm(c.view, c.batch, seed=c.seed)),
    _spec("final_norm", "structure", ["model"], lambda c: final_norm(c.view, seed=c.seed)),
    _spec("init_scale", "structure", ["model"], lambda c: init_scale(c.view, c.batch, seed=c.seed)),
    _spec("eval_determinism", "behaviour", ["model"], lambda c: eval_determinism(c.view, seed=c.seed)),
    _spec("batch_independence", "behaviour", ["model"], lambda c: batch_independence(c.view, seed=c.seed)),
    _spec("gradient_flow", "training", ["model"], lambda c: gradient_flow(c.view, c.batch, seed=c.seed)),
    _spec("overfit_one_batch", "training", ["model"],
          lambda c: overfit_one_batch(c.view, c.batch, steps=c.overfit_steps, seed=c.seed)),
    _spec("graph_size", "training", ["model"], lambda c: graph_size(c.view)),
    _spec("optimizer_decay", "optimizer", ["optimizer"], lambda c: optimizer_decay(c.optimizer)),
    _spec("optimizer_groups", "optimizer", ["optimizer", "model"],
          lambda c: optimizer_groups(c.optimizer, c.view.model)),
    _spec("optimizer_step", "optimizer", ["optimizer", "model"],
          lambda c: optimizer_step(c.optimizer, c.view, c.batch, seed=c.seed)),
    _spec("lr_schedule", "optimizer", ["scheduler"], lambda c: lr_schedule(c.scheduler)),
    _spec("input_label_alignment", "data", ["data"],
          lambda c: input_label_alignment(c.data, shifted_inside=_shifts_labels_inside(c))),
)
