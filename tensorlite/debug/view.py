"""The model view: what the debugging tools need to know about a model, found by looking.

:func:`model_view` takes any tensorlite or torch language model and finds, without assuming names:

* the **repeated blocks**: the ModuleList / Sequential / ModuleDict (at any path: ``blocks``,
  ``layers``, ``transformer.h``, ``model.layers`` ...) whose members are called one after the other
  on the residual stream ``(B, T, D) -> (B, T, D)``;
* in each block, the **attention** sublayer (the innermost module that maps the stream to itself
  and runs a softmax over ``(T, T)`` scores or a ``scaled_dot_product_attention``) and the MLP;
* the **norms**, recognised by behaviour: a small leaf module whose output does not change when
  its input is scaled (a LayerNorm, an RMSNorm, a hand-written one, whatever its class name);
* the token and position **embeddings** and the **LM head** (tied or not);
* the **context length** and **vocabulary** from the usual config names (``seq_len``,
  ``block_size``, ``n_positions``, ``max_position_embeddings``, ``context_length``;
  ``vocab_size``, ``n_vocab``; on ``model.config``, ``model.cfg``, ``model.args`` or the model
  itself), else from the embedding and logit shapes;
* a **forward that yields (B, T, V) logits**: plain ``model(x)``, nanoGPT's
  ``model(x, targets)`` (which returns only last-position logits without targets), Hugging Face
  style outputs with ``.logits``, tuples and dicts.

Every guess can be overridden by keyword (``model_view(model, blocks="h", seq_len=64,
logits_fn=...)``) and :meth:`ModelView.describe` says what was found.
"""

from __future__ import annotations

import inspect

import numpy as np

from .capture import Capture, first_tensor
from .native import eval_mode, is_torch, native_for, to_numpy

__all__ = ["CONTEXT_NAMES", "VOCAB_NAMES", "ModelView", "capture_attention", "eval_mode", "model_view"]

#: Config attribute names read for the context length, in order.
CONTEXT_NAMES = ("seq_len", "block_size", "n_positions", "max_position_embeddings", "context_length",
                 "max_seq_len", "n_ctx", "seq_length", "max_len")
#: Config attribute names read for the vocabulary size, in order.
VOCAB_NAMES = ("vocab_size", "n_vocab", "vocab", "num_tokens", "n_tokens")
_CONFIG_HOLDERS = ("config", "cfg", "args", "params", "hparams", "hp")
_TARGET_KWARGS = ("targets", "target", "labels", "y")
#: The longest sequence the checks feed a model (they need a few positions, not a context).
MAX_PROBE_LEN = 32


def _config_value(model, names):
    """``(value, "config.block_size")`` from the first config holder that has one of ``names``."""
    holders = [(h, getattr(model, h, None)) for h in _CONFIG_HOLDERS] + [("", model)]
    for prefix, holder in holders:
        if holder is None:
            continue
        for n in names:
            v = holder.get(n) if isinstance(holder, dict) else getattr(holder, n, None)
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0:
                return int(v), f"{prefix}.{n}" if prefix else n
    return None, None


def _n_params(module) -> int:
    return sum(int(np.prod(p.shape)) for p in module.parameters())


def _has_params(module) -> bool:
    return any(True for _ in module.parameters())


def _is_float(t) -> bool:
    return t is not None and hasattr(t, "dtype") and ("float" in str(t.dtype) or "bfloat" in str(t.dtype))


def _same_object(a, b) -> bool:
    if a is None or b is None:
        return False
    if a is b:
        return True
    if hasattr(a, "data_ptr") and hasattr(b, "data_ptr"):
        return a.data_ptr() == b.data_ptr() and tuple(a.shape) == tuple(b.shape)
    return getattr(a, "data", None) is getattr(b, "data", 0)


def _rel(name: str, block: str) -> str:
    return name[len(block) + 1:] if name.startswith(block + ".") else name


class ModelView:
    """What :func:`model_view` found. Attributes (names are dotted module paths in the model):

    ``framework`` ("tensorlite" or "torch"), ``native`` (its :class:`~tensorlite.debug.native.Native`),
    ``blocks_path`` and ``blocks`` (``[(name, module)]``), ``attention`` and ``mlp`` (``{block:
    sublayer name}``; the block's own name when the attention is written inline in it),
    ``attention_kind`` (``{block: "sdpa" | "softmax" | "fused" | "mha"}``), ``norms`` (every
    module recognised as a norm), ``final_norm``, ``token_embedding``, ``position_embedding``,
    ``lm_head`` and ``tied``, ``seq_len`` / ``vocab_size`` / ``d_model`` with ``sources``
    (where each came from), ``probe_len`` (the sequence length the checks use), and
    ``forward_kind`` (how logits are obtained).
    """

    def __init__(self, model, *, blocks=None, attention=None, mlp=None, norms=None, final_norm=None,
                 token_embedding=None, position_embedding=None, lm_head=None, seq_len=None, vocab_size=None,
                 logits_fn=None, loss_fn=None, causal=True) -> None:
        if not hasattr(model, "named_modules") and logits_fn is None:
            raise TypeError(f"model_view: expected a tensorlite or torch module, got {type(model).__name__} "
                            "(for a plain function, pass logits_fn= and vocab_size=, seq_len=)")
        self.model = model
        self.framework = "torch" if is_torch(model) else "tensorlite"
        self.native = native_for(model)
        self.user_logits_fn, self.loss_fn, self.causal = logits_fn, loss_fn, causal
        self.sources: dict = {}
        self.notes: list = []
        self._overrides = dict(blocks=blocks, attention=attention, mlp=mlp, norms=norms, final_norm=final_norm,
                               token_embedding=token_embedding, position_embedding=position_embedding,
                               lm_head=lm_head)
        self.seq_len, self.sources["seq_len"] = (seq_len, "given") if seq_len else _config_value(model, CONTEXT_NAMES)
        self.vocab_size, self.sources["vocab_size"] = ((vocab_size, "given") if vocab_size
                                                       else _config_value(model, VOCAB_NAMES))
        self.blocks_path, self.blocks = None, []
        self.attention, self.attention_kind, self.mlp = {}, {}, {}
        self.norms, self.final_norm = [], None
        self.token_embedding = self.position_embedding = self.lm_head = None
        self.tied = False
        self.d_model = None
        self.forward_kind = "model(x)"
        self._target_kw = None
        self._flat_with_targets = False
        self.own_loss = False
        self._discover()

    # ---- running the model ----------------------------------------------------------------------
    def module(self, name: str):
        """The submodule at dotted path ``name`` (``""``: the model)."""
        m = self.model
        for part in [p for p in name.split(".") if p]:
            m = m[int(part)] if part.isdigit() and hasattr(m, "__getitem__") else getattr(m, part)
        return m

    def tokens(self, x):
        """``x`` (int array) as the framework's token tensor on the model's device."""
        if self.native.is_tensor(x):
            return x
        return self.native.tokens(np.asarray(x), like=self.model if hasattr(self.model, "parameters") else None)

    def random_tokens(self, batch_size: int = 4, seq_len: int | None = None, seed: int = 0) -> np.ndarray:
        T = seq_len or self.probe_len
        return np.random.default_rng(seed).integers(0, self.vocab_size, size=(batch_size, T))

    def random_batch(self, batch_size: int = 4, seq_len: int | None = None, seed: int = 0):
        """``(x, y)``: random tokens and the same stream shifted by one."""
        T = seq_len or self.probe_len
        s = np.random.default_rng(seed).integers(0, self.vocab_size, size=(batch_size, T + 1))
        return s[:, :-1].copy(), s[:, 1:].copy()

    def _call(self, x, y=None):
        """The model's raw output on native tokens ``x`` (and targets ``y`` when its forward takes them)."""
        if self.user_logits_fn is not None:
            return self.user_logits_fn(x)
        if self._target_kw is None:
            return self.model(x)
        if y is None:
            y = x if self._target_kw == "labels" else self.native.zeros_like(x)
        return self.model(x, **{self._target_kw: y})

    def _logits_of(self, out, x=None):
        if isinstance(out, dict):
            out = out.get("logits", first_tensor(out))
        elif not (hasattr(out, "shape") and hasattr(out, "dtype")) and hasattr(out, "logits"):
            out = out.logits
        lg = first_tensor(out)
        if x is not None and self._flat_with_targets and lg is not None and len(lg.shape) == 2:
            lg = lg.reshape(x.shape[0], x.shape[1], -1)
        return lg

    def logits_native(self, x, y=None):
        """``(B, T, V)`` logits, a framework tensor, on native tokens ``x`` (grad mode as it is)."""
        x = self.tokens(x)
        return self._logits_of(self._call(x, None if y is None else self.tokens(y)), x)

    def logits(self, x) -> np.ndarray:
        """``(B, T, V)`` float64 logits of int array ``x``, in eval mode without gradients."""
        with eval_mode(self.model), self.native.no_grad():
            return to_numpy(self.logits_native(x))

    def _own_loss_of(self, out):
        if isinstance(out, dict):
            return out.get("loss")
        if isinstance(out, (tuple, list)):
            for o in out[1:]:
                if hasattr(o, "shape") and int(np.prod(o.shape)) == 1:
                    return o
            return None
        return getattr(out, "loss", None)

    def model_loss_native(self, x, y):
        """The loss the model itself returns for ``(x, y)`` (nanoGPT ``targets=y``; ``labels=x``
        for a Hugging Face style forward), or None when it returns none."""
        if not self.own_loss:
            return None
        x, y = self.tokens(x), self.tokens(y)
        out = self.model(x, **{self._target_kw: x if self._target_kw == "labels" else y})
        return self._own_loss_of(out)

    def loss_native(self, x, y):
        """The training loss on ``(x, y)`` as the user computes it: ``loss_fn(logits (N, V),
        targets (N,))`` when given, else the model's own loss, else the mean cross-entropy."""
        x, y = self.tokens(x), self.tokens(y)
        if self.loss_fn is None and self.own_loss:
            return self.model_loss_native(x, y)
        logits = self.logits_native(x, y)
        V = logits.shape[-1]
        flat, tgt = logits.reshape(-1, V), y.reshape(-1)
        return self.native.cross_entropy(flat, tgt) if self.loss_fn is None else self.loss_fn(flat, tgt)

    def loss(self, x, y) -> float:
        """:meth:`loss_native` as a float, in eval mode without gradients."""
        with eval_mode(self.model), self.native.no_grad():
            return self.native.item(self.loss_native(x, y))

    def capture(self, x, seq_len: int | None = None) -> Capture:
        """One eval-mode, no-grad forward on ``x`` under a :class:`~tensorlite.debug.capture.Capture`."""
        x = np.asarray(x)
        with eval_mode(self.model), self.native.no_grad(), Capture(self.model, seq_len=seq_len or x.shape[1]) as cap:
            self.logits_native(x)
        return cap

    # ---- discovery ------------------------------------------------------------------------------
    def _vocab_guess(self) -> int:
        rows = [int(m.num_embeddings) for _, m in self.model.named_modules() if hasattr(m, "num_embeddings")]
        return min(rows) if rows else 2

    def _discover(self):
        model = self.model
        V = self.vocab_size or self._vocab_guess()
        T = min(self.seq_len or 16, MAX_PROBE_LEN)
        out = None
        for attempt in range(3):
            T = max(T, 3)
            x = np.random.default_rng(0).integers(0, V, size=(2, T))
            try:
                out, cap = self._probe(x)
            except Exception:
                # some models only take their full context (a position table added unsliced)
                if self.seq_len is None or T == self.seq_len or self.seq_len > 1024:
                    raise
                T = self.seq_len
                x = np.random.default_rng(0).integers(0, V, size=(2, T))
                out, cap = self._probe(x)
            lg = self._logits_of(out, x)
            if lg is None:
                raise ValueError(f"model_view: the forward of {type(model).__name__} returned "
                                 f"{type(out).__name__}, with no logits tensor in it; pass logits_fn=")
            if len(lg.shape) != 3 or tuple(lg.shape[:2]) != (2, T):
                raise ValueError(f"model_view: cannot get (B, T, V) logits from {type(model).__name__}: "
                                 f"{self.forward_kind} gives shape {tuple(lg.shape)} for tokens (2, {T}); "
                                 "pass logits_fn=")
            V_out = int(lg.shape[-1])
            if not self.vocab_size:
                self.vocab_size, self.sources["vocab_size"] = V_out, "logits shape"
            D = self._stream_width(cap, x)
            if T not in (self.vocab_size, D) or attempt == 2:
                break
            T -= 1  # a sequence as long as the width or vocabulary would make (T, T) shapes ambiguous
        self.probe_len = T
        self._probe_tokens = x
        self._structure(cap, x)
        if self.seq_len is None:
            self.notes.append(f"context length not found (no {'/'.join(CONTEXT_NAMES[:5])}); the checks use T = {T}")

    def _probe(self, x):
        """One forward on tokens ``x``: decides how logits come out, and captures the call tree."""
        tok = self.tokens(x)
        with eval_mode(self.model), self.native.no_grad():
            if self.user_logits_fn is not None:
                self.forward_kind = "logits_fn(x)"
                with Capture(self.model, seq_len=x.shape[1]) if hasattr(self.model, "named_modules") else _Null() as cap:
                    out = self.user_logits_fn(tok)
                return out, cap
            kws = self._targets_kwargs()
            try:
                with Capture(self.model, seq_len=x.shape[1]) as cap:
                    out = self.model(tok)
            except TypeError:
                if not kws:
                    raise
                out, cap = None, None  # a forward(idx, targets) without a default: targets it is
            lg = self._logits_of(out) if out is not None else None
            full = lg is not None and len(lg.shape) == 3 and tuple(lg.shape[:2]) == tuple(x.shape)
            for kw in kws:
                y = tok if kw == "labels" else self.native.zeros_like(tok)
                with Capture(self.model, seq_len=x.shape[1]) as cap2:
                    out2 = self.model(tok, **{kw: y})
                lg2 = self._logits_of(out2)
                if lg2 is not None and len(lg2.shape) == 2 and lg2.shape[0] == x.size and full:
                    self._flat_with_targets = True  # Karpathy's lecture GPT: (B*T, V) logits with targets
                    lg2 = lg2.reshape(x.shape[0], x.shape[1], -1)
                full2 = lg2 is not None and len(lg2.shape) == 3 and tuple(lg2.shape[:2]) == tuple(x.shape)
                if self._own_loss_of(out2) is not None and full2:
                    self.own_loss, self._target_kw = True, kw
                    out, cap = out2, cap2
                    break
                if not full and full2 and self._target_kw is None:
                    self._target_kw = kw  # nanoGPT: only model(x, targets) gives every position's logits
                    out, cap = out2, cap2
            if self._target_kw is not None:
                ret = "(logits, loss)" if isinstance(out, (tuple, list)) else type(out).__name__
                self.forward_kind = f"model(x, {self._target_kw}={'x' if self._target_kw == 'labels' else 'y'}) -> {ret}"
            else:
                ret = ("logits" if hasattr(out, "shape") else "(logits, ...)" if isinstance(out, (tuple, list))
                       else "dict" if isinstance(out, dict) else f"{type(out).__name__}.logits")
                self.forward_kind = f"model(x) -> {ret}"
            return out, cap

    def _targets_kwargs(self):
        """The keyword arguments of the model's forward that take targets, in the usual order."""
        fwd = getattr(self.model, "forward", None)
        try:
            params = inspect.signature(fwd).parameters
        except (TypeError, ValueError):
            return []
        return [kw for kw in _TARGET_KWARGS if kw in params]

    @staticmethod
    def _stream_width(cap, x):
        for c in cap.calls:
            t = c.out
            if c.input is not None and _is_float(t) and len(t.shape) == 3 and tuple(t.shape[:2]) == tuple(x.shape):
                return int(t.shape[-1])
        return None

    def _structure(self, cap, x):
        ov = self._overrides
        calls = [c for c in cap.calls if c.name]
        B, T = x.shape
        # blocks ------------------------------------------------------------------------------------
        if ov["blocks"] is not None:
            self.blocks_path, self.blocks = self._given_blocks(ov["blocks"])
        else:
            self.blocks_path, self.blocks = self._find_blocks(cap, (B, T))
        if self.blocks:
            self.sources["blocks"] = "given" if ov["blocks"] is not None else "found"
        block_calls = self.block_calls(cap)
        first = next((c for c in block_calls.values() if c is not None), None)
        if first is not None and first.input is not None:
            self.d_model = int(first.input.shape[-1])
        # embeddings and head ------------------------------------------------------------------------
        tok = cap.calls[0].input if cap.calls else None
        for c in calls:  # the first table looked up with the tokens (not a base model they are passed to)
            w = getattr(c.module, "weight", None)
            if (self.token_embedding is None and c.input is not None and c.input is tok and _is_float(c.out)
                    and w is not None and len(w.shape) == 2 and c.out.shape[-1] == w.shape[1]):
                self.token_embedding = c.name
        if ov["token_embedding"] is not None:
            self.token_embedding = ov["token_embedding"]
        if self.d_model is None and self.token_embedding is not None:
            self.d_model = int(cap.calls_of(self.token_embedding)[0].out.shape[-1])
        for c in calls:
            i = c.input
            if (c.name != self.token_embedding and i is not None and not _is_float(i) and _is_float(c.out)
                    and hasattr(c.module, "weight") and len(c.module.weight.shape) == 2
                    and not any(c.name.startswith(b + ".") for b, _ in self.blocks)):
                self.position_embedding = c.name
                break
        if self.position_embedding is None:
            for n, m in self.model.named_modules():
                w = getattr(m, "weight", None)
                if (n and n != self.token_embedding and hasattr(m, "num_embeddings") and w is not None
                        and not cap.calls_of(n) and len(w.shape) == 2 and self.d_model and w.shape[1] == self.d_model):
                    self.position_embedding = n + " (its weight read directly)"
                    break
        V = self.vocab_size
        for key in ("position_embedding", "lm_head"):
            if ov[key] is not None:
                setattr(self, key, ov[key])
        for c in reversed(calls if ov["lm_head"] is None else []):
            o, w = c.out, getattr(c.module, "weight", None)
            if _is_float(o) and o.shape[-1] == V and w is not None and len(w.shape) == 2 and w.shape[0] == V:
                self.lm_head = c.name
                break
        if self.lm_head is not None and self.token_embedding is not None:
            head_w = getattr(self.module(self.lm_head), "weight", None)
            emb_w = getattr(self.module(self.token_embedding), "weight", None)
            self.tied = head_w is not None and emb_w is not None and _same_object(head_w, emb_w)
        if self.seq_len is None and self.position_embedding is not None:
            pe = self.module(self.position_embedding.split(" ")[0])
            self.seq_len, self.sources["seq_len"] = int(pe.weight.shape[0]), f"{self.position_embedding.split(' ')[0]} rows"
        # norms ---------------------------------------------------------------------------------------
        if ov["norms"] is not None:
            self.norms = list(ov["norms"])
        else:
            self.norms = self._find_norms(cap)
        last_block = max((self._last_index(cap, c) for c in block_calls.values() if c is not None), default=-1)
        final = [c.name for c in calls if c.index > last_block and c.name in self.norms]
        self.final_norm = ov["final_norm"] if ov["final_norm"] is not None else (final[0] if final and last_block >= 0 else None)
        # sublayers -----------------------------------------------------------------------------------
        for bname, call in block_calls.items():
            if call is None:
                continue
            self.attention[bname], self.attention_kind[bname] = self._find_attention(cap, bname, call)
            self.mlp[bname] = self._find_mlp(cap, call, self.attention[bname])
        if ov["attention"] is not None:
            self.attention = {b: f"{b}.{ov['attention']}" for b, _ in self.blocks}
        if ov["mlp"] is not None:
            self.mlp = {b: f"{b}.{ov['mlp']}" for b, _ in self.blocks}

    @staticmethod
    def _last_index(cap, call):
        d = cap.descendants(call)
        return max([call.index] + [c.index for c in d])

    def _given_blocks(self, blocks):
        if isinstance(blocks, str):
            cont = self.module(blocks)
            items = list(cont.named_children())
            return blocks, [(f"{blocks}.{n}" if blocks else n, m) for n, m in items]
        names = {id(m): n for n, m in self.model.named_modules()}
        out = [(names.get(id(m), f"<block {i}>"), m) for i, m in enumerate(blocks)]
        return "given", out

    def _find_blocks(self, cap, bt):
        """The container whose members each map the stream to itself, most parameters first."""
        cands = []
        for name, m in self.model.named_modules():
            kids = list(m.named_children())
            if not kids or len({type(c) for _, c in kids}) != 1 or not all(_has_params(c) for _, c in kids):
                continue
            cands.append((_n_params(m), name, kids))
        for _, name, kids in sorted(cands, key=lambda c: (-c[0], c[1].count("."))):
            full = [(f"{name}.{k}" if name else k, m) for k, m in kids]
            ok = True
            for n, _ in full:
                cs = cap.calls_of(n)
                if not cs:
                    ok = False
                    break
                i, o = cs[0].input, cs[0].out
                if not (_is_float(i) and _is_float(o) and len(i.shape) == 3 and tuple(i.shape[:2]) == bt
                        and tuple(o.shape) == tuple(i.shape)):
                    ok = False
                    break
            if ok:
                return name, full
        return None, []

    def block_calls(self, cap) -> dict:
        """``{block name: its first ModuleCall in cap}`` (None for a block that did not run)."""
        out = {}
        for n, _ in self.blocks:
            cs = cap.calls_of(n)
            out[n] = cs[0] if cs else None
        return out

    def _find_norms(self, cap):
        found = []
        seen = set()
        for c in cap.calls:
            if not c.name or c.name in seen:
                continue
            seen.add(c.name)
            if self._is_norm_call(c):
                found.append(c.name)
        return found

    def _is_norm_call(self, c) -> bool:
        """A leaf module whose output does not change when its (float) input is scaled by 10 (the
        input it got in the forward, each row brought to unit RMS first)."""
        m, i, o = c.module, c.input, c.out
        if not (_is_float(i) and _is_float(o)) or tuple(i.shape) != tuple(o.shape) or len(i.shape) < 2:
            return False
        if any(_has_params(ch) for ch in m.children()):
            return False
        d = int(i.shape[-1])
        if any(len(p.shape) > 1 or int(np.prod(p.shape)) > d for p in m.parameters()):
            return False
        if len(c.args) != 1 or c.kwargs:
            return False
        a = to_numpy(i)
        if not np.isfinite(a).all() or float(np.abs(a).max()) == 0.0:
            return False
        # the recorded input at unit RMS per row, so that a norm's eps cannot hide the invariance
        a = a / np.maximum(np.sqrt((a * a).mean(-1, keepdims=True)), 1e-30)
        try:
            with self.native.no_grad():
                o1 = to_numpy(first_tensor(m(self.native.floats(a, i))))
                o10 = to_numpy(first_tensor(m(self.native.floats(a * 10.0, i))))
        except Exception:  # a module that cannot be rerun alone is no norm we can use
            return False
        if not (np.isfinite(o1).all() and np.isfinite(o10).all()):
            return False
        scale = float(np.abs(o1).max())
        if scale == 0.0:
            return False
        return float(np.abs(o10 - o1).max()) < 0.05 * scale

    def _find_attention(self, cap, bname, call):
        own = [a for a in cap.attention if bname in a.stack]
        if not own:
            return None, None
        kinds = sorted({a.kind for a in own})
        shape = tuple(call.input.shape)
        depth_names = []
        for a in own:
            names = list(a.stack)
            idx = names.index(bname)
            best = bname
            for n in names[idx + 1:]:
                cs = cap.calls_of(n)
                if cs and cs[0].input is not None and cs[0].out is not None and tuple(cs[0].input.shape) == shape \
                        and tuple(cs[0].out.shape) == shape and n not in self.norms:
                    best = n
            depth_names.append(best)
        return depth_names[0], "+".join(kinds)

    def _find_mlp(self, cap, call, attn):
        shape = tuple(call.input.shape)
        kids = [cap.calls[i] for i in call.children]
        for c in kids:
            if c.name == attn or c.name in self.norms or not _has_params(c.module):
                continue
            if attn and attn.startswith(c.name + "."):
                continue
            if c.input is not None and c.out is not None and tuple(c.input.shape) == shape and tuple(c.out.shape) == shape:
                return c.name
        rest = [c.name for c in kids if c.name != attn and c.name not in self.norms and _has_params(c.module)
                and not (attn and attn.startswith(c.name + "."))]
        return " -> ".join(rest) if rest else None

    # ---- report -----------------------------------------------------------------------------------
    def describe(self) -> str:
        """What was found, one line per part (the doctor prints it above its table)."""
        n = _n_params(self.model) if hasattr(self.model, "parameters") else 0
        lines = [f"model: {type(self.model).__name__} ({self.framework}), {n / 1e6:.3g}M parameters; "
                 f"forward: {self.forward_kind}"]
        if self.blocks:
            kinds = {type(m).__name__ for _, m in self.blocks}
            lines.append(f"blocks: {self.blocks_path}, {len(self.blocks)} x {'/'.join(sorted(kinds))}")
            b0 = self.blocks[0][0]
            a = self.attention.get(b0)
            if a is None:
                lines.append("attention: none seen (no softmax over (T, T) scores, no scaled_dot_product_attention)")
            else:
                where = "inline in the block" if a == b0 else _rel(a, b0)
                lines.append(f"attention: {where} (via {self.attention_kind.get(b0)})")
            m = self.mlp.get(b0)
            lines.append(f"mlp: {_rel(m, b0) if m and ' -> ' not in m else (m or 'none found')}".replace(b0 + ".", ""))
            inner = sorted({_rel(nm, b0) for nm in self.norms if nm.startswith(b0 + ".")})
        else:
            lines.append("blocks: none found (no ModuleList/Sequential of modules mapping (B, T, D) to itself)")
            inner = []
        norms = (", ".join(inner) + " in each block" if inner else "none inside the blocks")
        if self.final_norm:
            norms += f"; final: {self.final_norm}"
        lines.append(f"norms: {norms}")
        emb = [f"{self.token_embedding} (tokens)" if self.token_embedding else "tokens: not found"]
        if self.position_embedding:
            emb.append(f"{self.position_embedding} (positions)")
        lines.append("embeddings: " + ", ".join(emb))
        head = self.lm_head or "inline (no module)"
        if self.tied:
            head += f" (tied to {self.token_embedding})"
        lines.append(f"head: {head}")
        ctx = f"{self.seq_len} ({self.sources.get('seq_len')})" if self.seq_len else "unknown"
        lines.append(f"context: {ctx}; vocabulary: {self.vocab_size} ({self.sources.get('vocab_size')}); "
                     f"width: {self.d_model}; checks run at T = {self.probe_len}")
        lines += [f"note: {t}" for t in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return "ModelView(\n  " + self.describe().replace("\n", "\n  ") + "\n)"


class _Null:
    calls: list = []
    attention: list = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def calls_of(self, name):
        return []

    def descendants(self, call):
        return []


def model_view(model, **overrides) -> ModelView:
    """The :class:`ModelView` of ``model`` (a tensorlite or torch module); ``overrides`` are the
    keyword arguments of :class:`ModelView` (``blocks="transformer.h"``, ``seq_len=64``,
    ``logits_fn=fn`` ...). A :class:`ModelView` passes through unchanged."""
    if isinstance(model, ModelView):
        return model
    return ModelView(model, **overrides)


def capture_attention(model, tokens=None, **view_options) -> list:
    """The :class:`AttentionCall` list of one forward of ``model`` on ``tokens`` (int array
    ``(B, T)``; default: random tokens of the model's vocabulary), run in eval mode without
    gradients through the model's :func:`~tensorlite.debug.view.model_view` (``view_options`` are
    its overrides, e.g. ``blocks="h"``)."""
    view = model_view(model, **view_options)
    if tokens is None:
        tokens = view.random_tokens()
    return view.capture(np.asarray(tokens)).attention

