"""Attention seen without the model's help.

:class:`Capture` watches one forward of any tensorlite or torch model and records

* every **module call** (:class:`ModuleCall`): which module ran, inside which other call, with
  which arguments and output: the model's call tree, read by :mod:`~tensorlite.debug.view` and
  the checks that replay a block;
* every **attention computation** (:class:`AttentionCall`): a softmax over a square
  ``(..., T, T)`` score array (hand-written attention), a ``scaled_dot_product_attention`` call
  (torch's, or tensorlite's fused op), or ``torch.nn.MultiheadAttention``: the weights, the softmax
  axis, the query and key operands of the score product, the scale, the causal flag, and the
  module that ran it.

tensorlite ops are seen through :class:`tensorlite.autograd.observe`; torch ops through
``torch.overrides.TorchFunctionMode`` (which sees ``F.softmax``, ``torch.softmax``,
``Tensor.softmax`` and ``F.scaled_dot_product_attention``). For sdpa the weights are rebuilt by
the reference formula ``softmax(q k^T * scale + mask)``. Nothing in the model changes: its
``forward`` methods are wrapped for the duration of the context and put back afterwards.

Example (``tensorlite.debug.capture_attention(model)`` does the same through the model view)::

    with Capture(model) as cap:
        model(tokens)
    for a in cap.attention:
        print(a.module, a.kind, a.weights.shape)
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..autograd import observe
from ..backend import array_module
from .native import is_torch, native_for, to_numpy

__all__ = ["AttentionCall", "Capture", "ModuleCall", "first_tensor"]

# ops whose output is a product of two operands: the attention scores q @ k^T come from one of them
_MATMULS_TORCH = {"matmul", "__matmul__", "bmm", "mm", "baddbmm", "einsum"}
_MATMULS_TL = {"MatMul"}


def _is_array_like(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, np.ndarray)


def first_tensor(obj):
    """The first tensor in a module's output or arguments: the tensor itself, the first tensor of
    a tuple/list, the ``logits`` / ``last_hidden_state`` field of a Hugging Face style output, or
    the first tensor value of a dict."""
    if obj is None:
        return None
    if _is_array_like(obj):
        return obj
    if isinstance(obj, (tuple, list)):
        for o in obj:
            t = first_tensor(o)
            if t is not None:
                return t
        return None
    if isinstance(obj, dict):
        for o in obj.values():
            t = first_tensor(o)
            if t is not None:
                return t
        return None
    for attr in ("last_hidden_state", "logits"):
        t = getattr(obj, attr, None)
        if _is_array_like(t):
            return t
    return None


@dataclass(eq=False)
class ModuleCall:
    """One call of one module during a captured forward.

    ``name`` is the module's dotted name in the model (``""`` for the model itself), ``parent``
    the index of the call it ran inside (None at the top), ``args`` / ``kwargs`` / ``output`` what
    its ``forward`` received and returned (references, valid while the capture is kept).
    """

    index: int
    name: str
    module: object
    parent: int | None
    depth: int
    args: tuple
    kwargs: dict
    output: object = None
    children: list = field(default_factory=list)

    @property
    def input(self):
        """The first tensor argument (positional, else keyword)."""
        t = first_tensor(self.args)
        return t if t is not None else first_tensor(self.kwargs)

    @property
    def out(self):
        """The first tensor of the output."""
        return first_tensor(self.output)

    def __repr__(self) -> str:
        shape = lambda t: tuple(t.shape) if t is not None else None  # noqa: E731
        return f"ModuleCall({self.name or '<model>'}: {shape(self.input)} -> {shape(self.out)})"


@dataclass(eq=False)
class AttentionCall:
    """One attention computation seen during a forward.

    Attributes:
        kind: ``"softmax"`` (a softmax over a square score array), ``"sdpa"`` (torch's
            ``scaled_dot_product_attention``), ``"fused"`` (tensorlite's), ``"mha"``
            (``torch.nn.MultiheadAttention``).
        module: the dotted name of the innermost module running it (``""``: the model itself).
        stack: the names of every module running at that moment, outermost first.
        weights: the attention weights as the softmax returned them, float64 ``(..., T_q, T_k)``
            (with ``Capture(native=True)``: the framework's tensor, on the model's device).
        dim: the axis the softmax normalised, as a negative index (``-1``: over keys, as it must).
        scores: the logits the softmax received (after scale and mask), or None (sdpa: rebuilt).
        q, k, v: the operands: ``q`` ``(..., T_q, d)`` and ``k`` ``(..., T_k, d)`` of the score
            product ``q @ k^T`` as it was computed (after any rotation), ``v`` for sdpa / fused;
            None where they could not be traced.
        scale: the factor between ``q @ k^T`` and the softmax's logits: sdpa's / the fused op's
            ``scale``, or measured on the softmax path (the most common ratio over unmasked
            entries). None when unknown.
        is_causal: sdpa's ``is_causal`` flag; None elsewhere.
        score_bias: True when the logits are ``scale * q.k`` plus a bias that does not depend on
            the tokens (ALiBi, a relative-position table): ``scale`` was then read from the
            differences between the batch's rows, where such a bias cancels.
        call: the index of the :class:`ModuleCall` of ``module`` (None for the model itself).
    """

    kind: str
    module: str
    stack: tuple
    weights: np.ndarray
    dim: int = -1
    scores: np.ndarray | None = None
    q: np.ndarray | None = None
    k: np.ndarray | None = None
    v: np.ndarray | None = None
    scale: float | None = None
    is_causal: bool | None = None
    score_bias: bool = False
    call: int | None = None

    @property
    def head_dim(self) -> int | None:
        return None if self.q is None else int(self.q.shape[-1])

    @property
    def n_heads(self) -> int:
        """Heads in one call: ``weights`` is ``(B, H, T, T)``; a ``(B, T, T)`` call is one head."""
        return int(self.weights.shape[-3]) if self.weights.ndim >= 4 else 1

    def raw_scores(self) -> np.ndarray | None:
        """``q @ k^T`` without scale or mask (None without operands)."""
        if self.q is None or self.k is None:
            return None
        return self.q @ np.swapaxes(self.k, -1, -2)

    def __repr__(self) -> str:
        return f"AttentionCall({self.kind} in {self.module or '<model>'}: weights {tuple(self.weights.shape)}, dim {self.dim})"


def _softmax(x, axis=-1):
    with np.errstate(invalid="ignore", over="ignore"):
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        e = np.exp(x - m)
        return e / e.sum(axis=axis, keepdims=True)


def _tiled_weights(q, k, scale, mask, causal):
    """The attention weights a tiled kernel never forms: ``softmax(q k^T * scale + mask)``."""
    scores = (q.astype(np.float64) @ np.swapaxes(k, -1, -2).astype(np.float64)) * scale
    t_q, t_k = scores.shape[-2:]
    if causal:
        scores = np.where(np.tril(np.ones((t_q, t_k), dtype=bool), k=t_k - t_q), scores, -np.inf)
    if mask is not None:
        mask = to_numpy(mask)
        scores = np.where(mask, scores, -np.inf) if mask.dtype == bool else scores + mask
    return _softmax(scores)


def _mode_ratio(num: np.ndarray, den: np.ndarray, keep: np.ndarray) -> float | None:
    """The most common value of ``num / den`` over ``keep`` (robust to masked entries, which
    hold -inf, a large negative number or a 0 instead of the scaled score)."""
    den_max = float(np.abs(den[keep]).max()) if keep.any() else 0.0
    sel = keep & (np.abs(den) > 1e-6 * den_max) & np.isfinite(num)
    if sel.sum() < 4:
        return None
    r = num[sel] / den[sel]
    r = r[np.isfinite(r) & (r != 0)]
    if r.size < 4:
        return None
    bins = np.round(np.log10(np.abs(r)) * 300).astype(np.int64) * np.sign(r).astype(np.int64)
    best, count = Counter(bins.tolist()).most_common(1)[0]
    if count < 0.5 * r.size:  # not one factor: a bias is added to the scores (ALiBi, relative positions)
        return None
    return float(np.median(r[bins == best]))


def _ratio_under_bias(num: np.ndarray, den: np.ndarray, keep: np.ndarray) -> float | None:
    """The factor ``s`` of logits ``s * q.k + bias`` whose bias depends on the position (and head)
    but not on the tokens (ALiBi, relative-position tables): it cancels in the differences
    between the batch's rows, which leave ``s`` times the differences of the products."""
    if num.ndim < 3 or num.shape[0] < 2:
        return None
    both = keep[1:] & keep[:1] & np.isfinite(num[1:]) & np.isfinite(num[:1])
    return _mode_ratio(num[1:] - num[:1], den[1:] - den[:1], both)


def _canonical_operands(name, args, kwargs):
    """``(q (..., T_q, d), k (..., T_k, d))`` from a product op's operands, as NumPy float64."""
    if name in ("einsum",):
        eq = args[0]
        ops = list(args[1]) if len(args) == 2 and isinstance(args[1], (list, tuple)) else list(args[1:])
        if not isinstance(eq, str) or len(ops) != 2:
            return None
        return _einsum_operands(eq, [to_numpy(o) for o in ops])
    if name == "baddbmm":
        a, b = args[1], args[2]
    else:
        a, b = args[0], args[1]
    if not (hasattr(a, "shape") and hasattr(b, "shape")) or len(a.shape) < 2 or len(b.shape) < 2:
        return None
    return to_numpy(a), np.swapaxes(to_numpy(b), -1, -2)


def _einsum_operands(eq: str, ops):
    eq = eq.replace(" ", "")
    if "..." in eq or "->" not in eq:
        return None
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    if len(terms) != 2 or len(out) < 2:
        return None
    qa, ka = out[-2], out[-1]
    batch = out[:-2]
    contract = [c for c in terms[0] if c in terms[1] and c not in out]
    if len(contract) != 1 or qa not in terms[0] or ka not in terms[1]:
        return None
    c = contract[0]
    if any(b not in terms[0] or b not in terms[1] for b in batch):
        return None
    q = np.einsum(f"{terms[0]}->{batch}{qa}{c}", ops[0])
    k = np.einsum(f"{terms[1]}->{batch}{ka}{c}", ops[1])
    return q, k



def _tiled_weights_native(q, k, scale, mask, causal):
    """:func:`_tiled_weights` on the arrays' own device (NumPy or CuPy), in float32."""
    xp = array_module(q)
    scores = (q.astype(xp.float32) @ xp.swapaxes(k, -1, -2).astype(xp.float32)) * scale
    t_q, t_k = scores.shape[-2:]
    if causal:
        scores = xp.where(xp.tril(xp.ones((t_q, t_k), dtype=bool), k=t_k - t_q), scores, -xp.inf)
    if mask is not None:
        mask = getattr(mask, "data", mask)
        scores = xp.where(mask, scores, -xp.inf) if mask.dtype == bool else scores + mask
    scores = scores - scores.max(axis=-1, keepdims=True)
    e = xp.exp(scores)
    return e / e.sum(axis=-1, keepdims=True)


def _detached(t):
    """A framework tensor's array without its graph: tensorlite's ``.data``, torch's ``.detach()``."""
    return t.detach() if hasattr(t, "detach") and is_torch(t) else getattr(t, "data", t)


def _sdpa_weights_torch(a: dict):
    """The weights of a torch ``scaled_dot_product_attention`` call, rebuilt by its reference
    formula in torch, on the call's device (the call runs inside the capture's torch mode, so
    torch is already imported)."""
    torch = sys.modules["torch"]
    q, k = a["query"].detach(), a["key"].detach()
    if q.dim() >= 3 and k.dim() >= 3 and q.shape[-3] != k.shape[-3] and q.shape[-3] % k.shape[-3] == 0:
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)  # grouped-query attention
    scale = a.get("scale")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    s = (q.float() @ k.float().transpose(-2, -1)) * scale
    mask = a.get("attn_mask")
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else s + mask.float()
    if a.get("is_causal"):
        keep = torch.ones(s.shape[-2], s.shape[-1], dtype=torch.bool, device=s.device).tril()
        s = s.masked_fill(~keep, float("-inf"))
    return torch.softmax(s, dim=-1)

class Capture:
    """Record module calls and attention computations during the forwards run inside the context.

    Args:
        model: a tensorlite ``nn.Module`` or a ``torch.nn.Module``.
        seq_len: when given, only softmax calls over ``(..., seq_len, seq_len)`` count as attention
            (default: any softmax over a square array of at least 3 dimensions).
        modules: record module calls (and attribute attention to them). Default True.
        native: keep each ``weights`` as the framework's own tensor on the model's device (no host
            copy) and trace no operands (``scores``, ``q``, ``k``, ``scale`` stay None): what the
            training probes use, cheap enough to run every few steps.
    """

    def __init__(self, model, *, seq_len: int | None = None, modules: bool = True, native: bool = False) -> None:
        self.model = model
        self.seq_len = seq_len
        self.record_modules = modules
        self.keep_native = native
        self.torch = is_torch(model)
        self.native = native_for(model)
        self.calls: list[ModuleCall] = []
        self.attention: list[AttentionCall] = []
        self._stack: list[int] = []
        self._trace: dict = {}
        self._keep: list = []
        self._wrapped: list = []
        self._ctx = None

    # ---- module calls ------------------------------------------------------------------------
    def _wrap(self, name, module):
        had = "forward" in module.__dict__
        saved = module.__dict__.get("forward")
        orig = module.forward
        cap = self

        def forward(*args, **kwargs):
            parent = cap._stack[-1] if cap._stack else None
            rec = ModuleCall(len(cap.calls), name, module, parent, len(cap._stack), args, kwargs)
            cap.calls.append(rec)
            if parent is not None:
                cap.calls[parent].children.append(rec.index)
            cap._stack.append(rec.index)
            try:
                out = orig(*args, **kwargs)
            finally:
                cap._stack.pop()
            rec.output = out
            return out

        object.__setattr__(module, "forward", forward)
        self._wrapped.append((module, had, saved))

    def _unwrap(self):
        for module, had, saved in reversed(self._wrapped):
            if had:
                object.__setattr__(module, "forward", saved)
            else:
                module.__dict__.pop("forward", None)
        self._wrapped.clear()

    def _where(self):
        names = tuple(self.calls[i].name for i in self._stack)
        return (names[-1] if names else ""), names, (self._stack[-1] if self._stack else None)

    # ---- attention -----------------------------------------------------------------------------
    def _is_attention_shape(self, shape) -> bool:
        if len(shape) < 3 or shape[-1] != shape[-2]:
            return False
        return self.seq_len is None or shape[-1] == self.seq_len

    def _add(self, **kw):
        module, stack, call = self._where()
        self.attention.append(AttentionCall(module=module, stack=stack, call=call, **kw))

    def _trace_back_to_product(self, scores, matmuls):
        """Walk back from the softmax's input through elementwise ops (scale, mask, bias, casts)
        to the product op that made the scores; its operands are q and k."""
        t = scores
        shape = tuple(scores.shape)
        for _ in range(24):
            rec = self._trace.get(id(t))
            if rec is None:
                return None
            name, args, kwargs = rec
            if name in matmuls:
                return _canonical_operands(name, args, kwargs)
            nxt = None
            cands = [a for a in list(args) + list(kwargs.values()) if _is_array_like(a)]
            for a in cands:  # the same shape first: the score array itself, not a mask
                if tuple(a.shape) == shape and str(a.dtype) not in ("bool", "torch.bool"):
                    nxt = a
                    break
            if nxt is None:
                big = [a for a in cands if len(a.shape) == len(shape) and str(a.dtype) not in ("bool", "torch.bool")]
                if not big:
                    return None
                nxt = max(big, key=lambda a: int(np.prod(a.shape)))
            t = nxt
        return None

    def _softmax_seen(self, scores, weights, dim, matmuls):
        shape = tuple(scores.shape)
        if not self._is_attention_shape(shape):
            return
        nd = len(shape)
        dim = int(dim) - nd if int(dim) >= 0 else int(dim)
        if self.keep_native:
            self._add(kind="softmax", weights=_detached(weights), dim=dim)
            return
        L, P = to_numpy(scores), to_numpy(weights)
        ops = self._trace_back_to_product(scores, matmuls)
        q = k = None
        scale, bias = None, False
        if ops is not None:
            q, k = ops
            try:
                raw = np.broadcast_to(q @ np.swapaxes(k, -1, -2), L.shape)
                scale = _mode_ratio(L, raw, P > 1e-30)
                if scale is None:
                    scale = _ratio_under_bias(L, raw, P > 1e-30)
                    bias = scale is not None
            except ValueError:
                q = k = None
        self._add(kind="softmax", weights=P, dim=dim, scores=L, q=q, k=k, scale=scale, score_bias=bias)

    def _sdpa_seen(self, args, kwargs):
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
        a = dict(zip(names, args))
        a.update(kwargs)
        if self.keep_native:
            w = _sdpa_weights_torch(a)
            if self._is_attention_shape(tuple(w.shape)):
                self._add(kind="sdpa", weights=w, dim=-1, scale=a.get("scale"), is_causal=bool(a.get("is_causal")))
            return
        q, k, v = (to_numpy(a[n]) for n in ("query", "key", "value"))
        if q.shape[-3:-2] != k.shape[-3:-2] and q.ndim >= 3 and k.ndim >= 3 and q.shape[-3] % k.shape[-3] == 0:
            rep = q.shape[-3] // k.shape[-3]  # grouped-query attention: each key head serves `rep` queries
            k, v = np.repeat(k, rep, axis=-3), np.repeat(v, rep, axis=-3)
        scale = a.get("scale")
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
        s = (q @ np.swapaxes(k, -1, -2)) * scale
        mask = a.get("attn_mask")
        if mask is not None:
            m = to_numpy(mask, dtype=None)
            s = np.where(m, s, -np.inf) if m.dtype == bool else s + m.astype(np.float64)
        if a.get("is_causal"):
            tq, tk = s.shape[-2], s.shape[-1]
            s = np.where(np.tril(np.ones((tq, tk), dtype=bool)), s, -np.inf)  # torch: top-left aligned
        if not self._is_attention_shape(s.shape):
            return
        self._add(kind="sdpa", weights=_softmax(s), dim=-1, scores=None, q=q, k=k, v=v, scale=scale,
                  is_causal=bool(a.get("is_causal")))

    # ---- op observers ---------------------------------------------------------------------------
    def _on_tl_op(self, fn, inputs, out):
        name = fn.name
        if not self.keep_native:
            self._trace[id(out)] = (name, inputs, {})
            self._keep.append(out)
        if name == "Softmax":
            self._softmax_seen(inputs[0], out, fn.dim, _MATMULS_TL)
        elif name in ("Attention", "PackedSelfAttention", "TiledAttention") and self.keep_native:
            p = getattr(fn, "p", None)
            if p is None:  # the tiled kernel never forms them: rebuilt on the device
                p = _tiled_weights_native(fn.q, fn.k, float(fn.scale), getattr(fn, "mask", None), fn.causal)
            if self._is_attention_shape(tuple(p.shape)):
                self._add(kind="fused", weights=p, dim=-1, scale=float(fn.scale))
        elif name in ("Attention", "PackedSelfAttention", "TiledAttention"):
            # tensorlite's fused kernels: the weights they keep, or (tiled: never formed) rebuilt
            q, k, v = (to_numpy(a) for a in (fn.q, fn.k, fn.v))
            p = getattr(fn, "p", None)
            if p is None:
                p = _tiled_weights(q, k, float(fn.scale), getattr(fn, "mask", None), fn.causal)
            if self._is_attention_shape(tuple(p.shape)):
                self._add(kind="fused", weights=to_numpy(p), dim=-1, q=q, k=k, v=v, scale=float(fn.scale))

    def _torch_mode(self):
        from torch.overrides import TorchFunctionMode  # noqa: PLC0415

        cap = self

        class _Observe(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                name = getattr(func, "__name__", "")
                if name == "multi_head_attention_forward":
                    return cap._mha(func, args, kwargs)
                out = func(*args, **kwargs)
                cap._on_torch_op(name, args, kwargs, out)
                return out

        return _Observe()

    def _mha(self, func, args, kwargs):
        """nn.MultiheadAttention computes inside one overridable function: ask it for per-head
        weights (the math is the same), record them, and return what the caller asked for."""
        want = kwargs.get("need_weights", True)
        avg = kwargs.get("average_attn_weights", True)
        kw = dict(kwargs, need_weights=True, average_attn_weights=False)
        out, w = func(*args, **kw)
        if w is not None and self.keep_native:
            wn = w.detach() if w.dim() == 4 else w.detach()[None]
            if self._is_attention_shape(tuple(wn.shape)):
                self._add(kind="mha", weights=wn, dim=-1)
        elif w is not None:
            wn = to_numpy(w)
            if wn.ndim == 3:
                wn = wn[None]
            if self._is_attention_shape(wn.shape):
                self._add(kind="mha", weights=wn, dim=-1)
        if not want:
            return out, None
        return out, (w.mean(dim=-3) if avg and w is not None else w)

    def _on_torch_op(self, name, args, kwargs, out):
        # an op that returns one of its inputs unchanged (x.float() on a float tensor,
        # .contiguous(), .to(same)) adds nothing to the trace and would make it loop
        if not self.keep_native and _is_array_like(out) and not any(a is out for a in args):
            self._trace[id(out)] = (name, args, kwargs)
            self._keep.append(out)
        if name == "softmax":
            x = args[0]
            dim = args[1] if len(args) > 1 else kwargs.get("dim")
            if dim is None:  # torch's implicit dim (deprecated)
                dim = 0 if x.dim() in (0, 1, 3) else 1
            self._softmax_seen(x, out, dim, _MATMULS_TORCH)
        elif name == "scaled_dot_product_attention":
            self._sdpa_seen(args, kwargs)

    # ---- context --------------------------------------------------------------------------------
    def __enter__(self):
        if self.record_modules and hasattr(self.model, "named_modules"):
            for name, m in self.model.named_modules():
                self._wrap(name, m)
        if self.torch:
            self._ctx = self._torch_mode()
        else:
            self._ctx = observe(forward=self._on_tl_op)
        try:
            self._ctx.__enter__()
        except BaseException:
            self._unwrap()
            raise
        return self

    def __exit__(self, *exc):
        try:
            self._ctx.__exit__(*exc)
        finally:
            self._unwrap()
            self._trace.clear()
            self._keep.clear()
        return False

    # ---- reading ----------------------------------------------------------------------------------
    def calls_of(self, name: str) -> list:
        """The calls of the module named ``name``, in order."""
        return [c for c in self.calls if c.name == name]

    def attention_in(self, name: str) -> list:
        """The attention computations that ran inside module ``name`` (at any depth)."""
        if name == "":
            return list(self.attention)
        return [a for a in self.attention if name in a.stack]

    def descendants(self, call: ModuleCall) -> list:
        """Every call made (at any depth) inside ``call``, in order."""
        out, todo = [], list(call.children)
        while todo:
            i = todo.pop(0)
            out.append(self.calls[i])
            todo[:0] = self.calls[i].children
        return out
