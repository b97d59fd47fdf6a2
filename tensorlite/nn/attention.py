"""Multi-head causal self-attention with an optional KV cache.

One ``Linear(d, 3d)`` makes queries, keys and values; heads are reshapes and transposes of its
output (no per-head Python loop), and the attention itself is the fused
:func:`tensorlite.functional.scaled_dot_product_attention` (one graph node). To see the attention
weights, capture them: :func:`tensorlite.debug.capture_attention` (on any model).
"""

from __future__ import annotations

import math

from .. import functional as F
from ..autograd import Function, is_grad_enabled
from ..backend import array_module
from ..tensor import Tensor
from .layers import Linear
from .module import Module
from .rope import RotaryEmbedding


class SplitHeads(Function):
    """Packed ``(B, T, 3C)`` qkv -> part ``index`` (0 q, 1 k, 2 v) as ``(B, H, T, C/H)``, a view."""

    def forward(self, qkv, index=0, n_heads=1):
        b, t, c3 = qkv.shape
        self.shape, self.index, self.split = qkv.shape, index, (b, t, 3, n_heads, c3 // (3 * n_heads))
        return qkv.reshape(self.split)[:, :, index].transpose(0, 2, 1, 3)

    def backward(self, g):
        out = array_module(g).zeros(self.shape, dtype=g.dtype)
        out.reshape(self.split)[:, :, self.index] = g.transpose(0, 2, 1, 3)  # one strided copy
        return out


class MergeHeads(Function):
    """``(B, H, T, D)`` -> ``(B, T, H*D)``: the heads side by side again."""

    def forward(self, y):
        b, h, t, hd = y.shape
        self.h = h
        return y.transpose(0, 2, 1, 3).reshape(b, t, h * hd)

    def backward(self, g):
        b, t, c = g.shape
        return g.reshape(b, t, self.h, c // self.h).transpose(0, 2, 1, 3)


def split_heads(qkv, n_heads: int):
    """``(q, k, v)``, each ``(B, H, T, D)``, from the packed output of a ``Linear(d, 3d)``."""
    if not (qkv.requires_grad and is_grad_enabled()):  # no graph to record (decoding): plain views
        b, t, c3 = qkv.shape
        parts = qkv.data.reshape(b, t, 3, n_heads, c3 // (3 * n_heads))
        return tuple(Tensor._wrap(parts[:, :, i].transpose(0, 2, 1, 3), qkv.device, False) for i in range(3))
    return tuple(SplitHeads.apply(qkv, index=i, n_heads=n_heads) for i in range(3))


def merge_heads(y):
    """``(B, H, T, D)`` -> ``(B, T, H*D)``."""
    if not (y.requires_grad and is_grad_enabled()):
        b, h, t, hd = y.shape
        return Tensor._wrap(y.data.transpose(0, 2, 1, 3).reshape(b, t, h * hd), y.device, False)
    return MergeHeads.apply(y)


class LayerKV:
    """One layer's cached keys and values, ``(B, H, T_past, D)`` each (detached Tensors).

    With ``max_len`` the positions are written into buffers of ``max_len`` positions made at the
    first append (and kept across :meth:`KVCache.reset`), and ``k``/``v`` are views of their
    filled part: a decoding step copies one position, not the whole cache. A step run with
    gradients on (a new ``k`` that requires grad) concatenates instead, so the gradient reaches
    the new positions as before.
    """

    __slots__ = ("k", "v", "max_len", "_kbuf", "_vbuf")

    def __init__(self, max_len: int | None = None) -> None:
        self.k = None
        self.v = None
        self.max_len = max_len
        self._kbuf = self._vbuf = None

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]

    def append(self, k, v):
        """Append the new positions; returns keys and values of all positions so far."""
        n = self.length
        if self.k is not None and k.shape[0] != self.k.shape[0]:
            raise ValueError(
                f"KV cache: batch size {k.shape[0]} differs from the cached batch size {self.k.shape[0]}; "
                "call cache.reset() (or model.init_cache()) for a new batch"
            )
        t = k.shape[-2]
        grads = is_grad_enabled() and (k.requires_grad or v.requires_grad)
        if self.max_len is None or grads or n + t > self.max_len:
            if self.k is not None:
                k = F.cat([self.k, k], dim=-2)
                v = F.cat([self.v, v], dim=-2)
            self.k, self.v = k.detach(), v.detach()
            return k, v
        kb, vb = self._kbuf, self._vbuf
        if kb is None or kb.shape[:2] != k.shape[:2] or kb.shape[3] != k.shape[3] or kb.dtype != k.dtype \
                or vb.shape[3] != v.shape[3] or array_module(kb) is not k.device.xp:
            xp = k.device.xp
            kb = self._kbuf = xp.empty(k.shape[:2] + (self.max_len, k.shape[3]), dtype=k.dtype)
            vb = self._vbuf = xp.empty(v.shape[:2] + (self.max_len, v.shape[3]), dtype=v.dtype)
            if n:
                kb[:, :, :n] = self.k.data
                vb[:, :, :n] = self.v.data
        kb[:, :, n:n + t] = k.data
        vb[:, :, n:n + t] = v.data
        self.k = Tensor._wrap(kb[:, :, :n + t], k.device, False)
        self.v = Tensor._wrap(vb[:, :, :n + t], v.device, False)
        return self.k, self.v


class KVCache:
    """Keys and values of the positions processed so far, for every layer.

    Made by ``model.init_cache()``; ``model(idx, cache=cache)`` runs ``idx`` (B, T_new) at positions
    ``cache.length ..`` and appends its keys and values. Keys are stored *after* RoPE, so cached
    keys never need re-rotating. The cache holds at most ``max_len`` positions (the model's
    ``seq_len``): learned position embeddings have no row beyond it.
    """

    def __init__(self, n_layers: int, max_len: int) -> None:
        self.max_len = max_len
        self.layers = [LayerKV(max_len) for _ in range(n_layers)]
        self.length = 0

    def reset(self) -> None:
        """Forget every cached position."""
        for layer in self.layers:
            layer.k = layer.v = None
        self.length = 0

    @property
    def remaining(self) -> int:
        """How many more positions fit."""
        return self.max_len - self.length

    def __repr__(self) -> str:
        return f"KVCache(layers={len(self.layers)}, length={self.length}, max_len={self.max_len})"


class MultiHeadAttention(Module):
    """Causal multi-head self-attention: ``proj(softmax(q k^T * scale + mask) v)``.

    Args:
        d_model: model width; ``n_heads`` must divide it.
        n_heads: number of heads.
        bias: biases in ``qkv`` and ``proj``.
        max_seq_len: longest sequence (needed for RoPE tables).
        rope: apply rotary embeddings to queries and keys.
        attention: ``"fused"`` (keeps the attention weights for backward) or ``"tiled"`` (online
            softmax over key blocks, recomputed in backward: no ``T x T`` array in the graph).
        linear_cls: the linear layer class (``Linear`` or ``BitLinear``).

    ``scale`` (``1/sqrt(head_dim)``) and ``is_causal`` (True) are plain attributes, read by every
    forward.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        bias: bool = True,
        *,
        max_seq_len: int | None = None,
        rope: bool = False,
        rope_base: float = 10000.0,
        attention: str = "fused",
        linear_cls=Linear,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"MultiHeadAttention: n_heads ({n_heads}) must divide d_model ({d_model})")
        if attention not in ("fused", "tiled"):
            raise ValueError(f"MultiHeadAttention: attention must be 'fused' or 'tiled', got {attention!r}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.attention = attention
        self.qkv = linear_cls(d_model, 3 * d_model, bias=bias)
        self.proj = linear_cls(d_model, d_model, bias=bias)
        if rope:
            if max_seq_len is None:
                raise ValueError("MultiHeadAttention: rope=True needs max_seq_len")
            self.rope = RotaryEmbedding(self.head_dim, max_seq_len, rope_base)
        else:
            self.rope = None
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.is_causal = True

    def attend(self, q, k, v):
        """The attention of ``(B, H, T, D)`` queries, keys and values."""
        if self.attention == "tiled":
            return F.tiled_attention(q, k, v, is_causal=self.is_causal, scale=self.scale)
        return F.scaled_dot_product_attention(q, k, v, is_causal=self.is_causal, scale=self.scale)

    def forward(self, x, cache: LayerKV | None = None):
        """``x`` (B, T, d_model) -> (B, T, d_model). With ``cache`` (one layer's :class:`LayerKV`)
        the positions continue after the cached ones and the new keys/values are appended."""
        qkv = self.qkv(x)
        if cache is None and self.rope is None and type(self).attend is MultiHeadAttention.attend:
            # the common training case: split, attend and merge as one node
            return self.proj(F.packed_self_attention(qkv, self.n_heads, self.is_causal, self.scale,
                                                     tiled=self.attention == "tiled"))
        q, k, v = split_heads(qkv, self.n_heads)
        if self.rope is not None:
            offset = 0 if cache is None else cache.length
            q, k = self.rope(q, offset), self.rope(k, offset)
        if cache is not None:
            k, v = cache.append(k, v)
        return self.proj(merge_heads(self.attend(q, k, v)))

    def extra_repr(self) -> str:
        tiled = ", attention='tiled'" if self.attention == "tiled" else ""
        return f"d_model={self.d_model}, n_heads={self.n_heads}{tiled}"


__all__ = ["KVCache", "LayerKV", "MultiHeadAttention", "merge_heads", "split_heads"]
