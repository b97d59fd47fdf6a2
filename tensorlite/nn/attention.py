"""Multi-head causal self-attention with an optional KV cache.

One ``Linear(d, 3d)`` makes queries, keys and values; heads are reshapes and transposes of its
output (no per-head Python loop), and the attention itself is the fused
:func:`tensorlite.functional.scaled_dot_product_attention` (one graph node). Setting
``record_attention = True`` switches to the readable reference path, which also returns the
attention weights, and keeps them in ``last_attention``.
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..autograd import Function
from ..backend import device_of
from .layers import Linear
from .module import Module
from .rope import RotaryEmbedding

ATTENTION_FAULTS = ("attn_scale_multiply", "softmax_over_queries", "causal_mask_open", "rope_on_values")


def _xp(a):
    return np if isinstance(a, np.ndarray) else device_of(a).xp


class SplitHeads(Function):
    """Packed ``(B, T, 3C)`` qkv -> part ``index`` (0 q, 1 k, 2 v) as ``(B, H, T, C/H)``, a view."""

    def forward(self, qkv, index=0, n_heads=1):
        b, t, c3 = qkv.shape
        self.shape, self.index, self.split = qkv.shape, index, (b, t, 3, n_heads, c3 // (3 * n_heads))
        return qkv.reshape(self.split)[:, :, index].transpose(0, 2, 1, 3)

    def backward(self, g):
        out = _xp(g).zeros(self.shape, dtype=g.dtype)
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
    """Causal multi-head self-attention: ``proj(softmax(q k^T / sqrt(d_head) + mask) v)``.

    Args:
        d_model: model width; ``n_heads`` must divide it.
        n_heads: number of heads.
        bias: biases in ``qkv`` and ``proj``.
        max_seq_len: longest sequence (needed for RoPE tables).
        rope: apply rotary embeddings to queries and keys.
        linear_cls: the linear layer class (``Linear`` or ``BitLinear``).
        faults: names from :data:`ATTENTION_FAULTS` (and the RoPE faults) to reproduce bugs; the
            choice is made here, once, so the healthy forward never tests for them.
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
        faults=(),
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"MultiHeadAttention: n_heads ({n_heads}) must divide d_model ({d_model})")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        faults = frozenset(faults)
        self.qkv = linear_cls(d_model, 3 * d_model, bias=bias)
        self.proj = linear_cls(d_model, d_model, bias=bias)
        if rope:
            if max_seq_len is None:
                raise ValueError("MultiHeadAttention: rope=True needs max_seq_len")
            self.rope = RotaryEmbedding(
                self.head_dim,
                max_seq_len,
                rope_base,
                sign_flip="rope_sign_flip" in faults,
                pairing_mismatch="rope_pairing_mismatch" in faults,
            )
            self._position = self._rotate_qkv if "rope_on_values" in faults else self._rotate_qk
        else:
            self.rope = None
            self._position = self._no_position
        root = math.sqrt(self.head_dim)
        self.scale = root if "attn_scale_multiply" in faults else 1.0 / root
        self.is_causal = "causal_mask_open" not in faults
        self.softmax_dim = -2 if "softmax_over_queries" in faults else -1
        self._attend_default = self._attend_fused if self.softmax_dim == -1 else self._attend_reference
        self._attend = self._attend_default
        self._record = False
        self.last_attention = None

    # ---- the pieces chosen at construction ------------------------------------------------------
    def _no_position(self, q, k, v, offset):
        return q, k, v

    def _rotate_qk(self, q, k, v, offset):
        return self.rope(q, offset), self.rope(k, offset), v

    def _rotate_qkv(self, q, k, v, offset):  # fault rope_on_values
        return self.rope(q, offset), self.rope(k, offset), self.rope(v, offset)

    def _attend_fused(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=self.is_causal, scale=self.scale)

    def _attend_reference(self, q, k, v):
        out, _ = F.attention_reference(
            q, k, v, is_causal=self.is_causal, scale=self.scale, softmax_dim=self.softmax_dim
        )
        return out

    def _attend_recording(self, q, k, v):
        out, weights = F.attention_reference(
            q, k, v, is_causal=self.is_causal, scale=self.scale, softmax_dim=self.softmax_dim
        )
        self.last_attention = weights.data
        return out

    @property
    def record_attention(self) -> bool:
        """When True, each forward keeps the weights ``(B, H, T_q, T_k)`` in ``last_attention``
        (a NumPy/CuPy array) using the slower reference path."""
        return self._record

    @record_attention.setter
    def record_attention(self, on: bool) -> None:
        self._record = bool(on)
        self._attend = self._attend_recording if on else self._attend_default
        if not on:
            self.last_attention = None

    # ---- forward --------------------------------------------------------------------------------
    def forward(self, x, cache: LayerKV | None = None):
        """``x`` (B, T, d_model) -> (B, T, d_model). With ``cache`` (one layer's :class:`LayerKV`)
        the positions continue after the cached ones and the new keys/values are appended."""
        q, k, v = split_heads(self.qkv(x), self.n_heads)
        if cache is None:
            q, k, v = self._position(q, k, v, 0)
        else:
            q, k, v = self._position(q, k, v, cache.length)
            k, v = cache.append(k, v)
        return self.proj(merge_heads(self._attend(q, k, v)))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_heads={self.n_heads}"


__all__ = ["ATTENTION_FAULTS", "KVCache", "LayerKV", "MultiHeadAttention", "merge_heads", "split_heads"]
