"""Attention faults: each is the healthy :class:`~tensorlite.nn.MultiHeadAttention` with one line changed.

* ``attn_scale_multiply`` (answer key, bug 1) and ``causal_mask_open`` (course, failure 3) are
  attributes the healthy forward already reads: ``scale`` and ``is_causal``.
* ``softmax_over_queries`` (bug 2) and ``rope_on_values`` (bug 3) change a line of the forward:
  :class:`FaultyAttention` repeats the healthy code with the faulty line marked.
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..nn.attention import MultiHeadAttention, merge_heads, split_heads
from ._swap import become


class FaultyAttention(MultiHeadAttention):
    """:class:`MultiHeadAttention` whose forward can rotate the values and whose softmax can run
    over the query axis (both off until switched on by :func:`softmax_over_queries` or
    :func:`rope_on_values`)."""

    softmax_dim = -1
    rotate_values = False

    def forward(self, x, cache=None):
        q, k, v = split_heads(self.qkv(x), self.n_heads)
        if self.rope is not None:
            offset = 0 if cache is None else cache.length
            q, k = self.rope(q, offset), self.rope(k, offset)
            if self.rotate_values:
                v = self.rope(v, offset)  # rope_on_values; healthy: values carry no position
        if cache is not None:
            k, v = cache.append(k, v)
        return self.proj(merge_heads(self.attend(q, k, v)))

    def attend(self, q, k, v):
        if self.softmax_dim == -1:
            return super().attend(q, k, v)
        scores = F.matmul(q, F.transpose(k, -2, -1)) * self.scale
        if self.is_causal:
            mask = F.causal_mask(q.device.xp, q.shape[-2], k.shape[-2])
            scores = F.masked_fill(scores, ~mask, float(np.finfo(q.dtype).min))
        weights = F.softmax(scores, self.softmax_dim)  # softmax_over_queries; healthy: dim=-1, the keys
        return F.matmul(weights, v)


def attention_layers(model) -> list:
    """Every :class:`MultiHeadAttention` in ``model``."""
    return [m for m in model.modules() if isinstance(m, MultiHeadAttention)]


def attn_scale_multiply(attn: MultiHeadAttention) -> None:
    attn.scale = math.sqrt(attn.head_dim)  # healthy: 1 / sqrt(head_dim)


def causal_mask_open(attn: MultiHeadAttention) -> None:
    attn.is_causal = False  # healthy: True, every query sees only the keys up to its own position


def softmax_over_queries(attn: MultiHeadAttention) -> None:
    become(attn, FaultyAttention, softmax_dim=-2)


def rope_on_values(attn: MultiHeadAttention) -> None:
    if attn.rope is None:
        raise ValueError("inject: 'rope_on_values' needs rotary positions (GPTConfig(pos='rope'))")
    become(attn, FaultyAttention, rotate_values=True)
