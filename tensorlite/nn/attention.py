"""Multi-head causal self-attention with an optional KV cache.

One ``Linear(d, 3d)`` makes queries, keys and values; heads are reshapes and transposes of its
output (no per-head Python loop), and the attention itself is the fused
:func:`tensorlite.functional.scaled_dot_product_attention` (one graph node). Setting
``record_attention = True`` switches to the readable reference path and keeps the attention
weights in ``last_attention``.
"""

from __future__ import annotations

import math

from .. import functional as F
from ..autograd import Function
from ..backend import array_module
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
    return tuple(SplitHeads.apply(qkv, index=i, n_heads=n_heads) for i in range(3))


def merge_heads(y):
    """``(B, H, T, D)`` -> ``(B, T, H*D)``."""
    return MergeHeads.apply(y)


class LayerKV:
    """One layer's cached keys and values, ``(B, H, T_past, D)`` each (detached Tensors)."""

    __slots__ = ("k", "v")

    def __init__(self) -> None:
        self.k = None
        self.v = None

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]

    def append(self, k, v):
        """Append the new positions; returns keys and values of all positions so far."""
        if self.k is not None:
            if k.shape[0] != self.k.shape[0]:
                raise ValueError(
                    f"KV cache: batch size {k.shape[0]} differs from the cached batch size {self.k.shape[0]}; "
                    "call cache.reset() (or model.init_cache()) for a new batch"
                )
            k = F.cat([self.k, k], dim=-2)
            v = F.cat([self.v, v], dim=-2)
        self.k, self.v = k.detach(), v.detach()
        return k, v


class KVCache:
    """Keys and values of the positions processed so far, for every layer.

    Made by ``model.init_cache()``; ``model(idx, cache=cache)`` runs ``idx`` (B, T_new) at positions
    ``cache.length ..`` and appends its keys and values. Keys are stored *after* RoPE, so cached
    keys never need re-rotating. The cache holds at most ``max_len`` positions (the model's
    ``seq_len``): learned position embeddings have no row beyond it.
    """

    def __init__(self, n_layers: int, max_len: int) -> None:
        self.max_len = max_len
        self.layers = [LayerKV() for _ in range(n_layers)]
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
        linear_cls=Linear,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"MultiHeadAttention: n_heads ({n_heads}) must divide d_model ({d_model})")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
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
        self.record_attention = False
        self.last_attention = None

    def attend(self, q, k, v):
        """The attention of ``(B, H, T, D)`` queries, keys and values. With ``record_attention``
        the readable reference path runs instead and keeps its weights ``(B, H, T_q, T_k)`` in
        ``last_attention`` (a NumPy/CuPy array)."""
        if self.record_attention:
            out, weights = F.attention_reference(q, k, v, is_causal=self.is_causal, scale=self.scale)
            self.last_attention = weights.data
            return out
        return F.scaled_dot_product_attention(q, k, v, is_causal=self.is_causal, scale=self.scale)

    def forward(self, x, cache: LayerKV | None = None):
        """``x`` (B, T, d_model) -> (B, T, d_model). With ``cache`` (one layer's :class:`LayerKV`)
        the positions continue after the cached ones and the new keys/values are appended."""
        q, k, v = split_heads(self.qkv(x), self.n_heads)
        if self.rope is not None:
            offset = 0 if cache is None else cache.length
            q, k = self.rope(q, offset), self.rope(k, offset)
        if cache is not None:
            k, v = cache.append(k, v)
        return self.proj(merge_heads(self.attend(q, k, v)))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_heads={self.n_heads}"


__all__ = ["KVCache", "LayerKV", "MultiHeadAttention", "merge_heads", "split_heads"]
