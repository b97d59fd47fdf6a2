"""Rotary position embeddings (RoPE, Su et al. 2021, "RoFormer").

Convention: **interleaved pairs**. Dimensions ``(2i, 2i+1)`` of each head form the pair that
rotates at frequency ``theta_i = base ** (-2i / head_dim)``; at position ``m`` the pair is
multiplied by the rotation matrix ``[[cos(m theta_i), -sin(m theta_i)], [sin(m theta_i), cos(m theta_i)]]``.
This is the pairing of the RoFormer paper, of GPT-J and of Meta's original LLaMA code (which views
the pairs as complex numbers); the GPT-NeoX / Hugging Face LLaMA "rotate_half" layout pairs
``(i, i + head_dim/2)`` instead. We keep the paper's convention because it is the one the issue's
"frequencies interleaved" fault is stated in, and because a pair is then two neighbours in memory.
Weights trained with one convention do not work with the other (the test-suite's torch reference
implements the same interleaved convention independently, with complex numbers).

Two faults from the bug catalogue live here, chosen when the module is built:

* ``sign_flip``: ``row1 = x1 cos + x2 sin``, ``row2 = x1 sin - x2 cos``. That matrix ``M`` is a
  reflection, not a rotation: it is not the identity at position 0 and positions do not compose
  (``M(a) M(a) = I``, not ``M(2a)``). Norms survive, and since ``M(m)^T M(n) = R(m - n)`` the score
  ``q_m . k_n`` still depends on the offset only, but with its sign reversed: the score table is
  the healthy one transposed. A model trained from scratch can absorb that (it equals negating the
  odd dims of ``W_q`` and ``W_k``); weights or numbers from a correct implementation cannot.
* ``pairing_mismatch``: the angle table is laid out for the *halves* convention
  (``angle[j] = m * theta[j mod head_dim/2]``, i.e. ``cat(freqs, freqs)``) while the rotation pairs
  interleaved dims. Pair ``i`` then turns its first coordinate by ``theta[2i mod h]`` and its second by
  ``theta[(2i+1) mod h]`` (``h = head_dim/2``): two dims that should share a frequency do not, so the
  map is no rotation, norms are not preserved and relative position is lost.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..backend import device_of
from .module import Module


def _xp(a):
    return np if isinstance(a, np.ndarray) else device_of(a).xp


class RotaryFunction(Function):
    """``out[2i] = a x[2i] + b x[2i+1]``, ``out[2i+1] = c x[2i] + d x[2i+1]`` per position.

    The healthy rotation is ``(a, b, c, d) = (cos, -sin, sin, cos)``; the backward applies the
    transposed 2x2 map (for a rotation: the rotation by ``-angle``).
    """

    def forward(self, x, a=None, b=None, c=None, d=None):
        self.coef = (a, b, c, d)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        out = _xp(x).empty_like(x)
        out[..., 0::2] = x1 * a + x2 * b
        out[..., 1::2] = x1 * c + x2 * d
        return out

    def backward(self, g):
        a, b, c, d = self.coef
        g1, g2 = g[..., 0::2], g[..., 1::2]
        gx = _xp(g).empty_like(g)
        gx[..., 0::2] = g1 * a + g2 * c
        gx[..., 1::2] = g1 * b + g2 * d
        return gx


def rope_frequencies(head_dim: int, base: float = 10000.0) -> np.ndarray:
    """``theta_i = base ** (-2i / head_dim)`` for ``i = 0 .. head_dim/2 - 1`` (float64)."""
    return base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)


class RotaryEmbedding(Module):
    """Rotate pairs ``(2i, 2i+1)`` of the last dimension by ``position * theta_i``.

    ``rope(x, offset=0)`` takes ``x`` of shape ``(..., T, head_dim)`` (positions ``offset ..
    offset+T-1`` along dim -2) and returns the rotated tensor. Applied to queries and keys only.
    The cos/sin tables for ``max_seq_len`` positions are precomputed (non-persistent buffers).
    """

    def __init__(
        self,
        head_dim: int,
        max_seq_len: int,
        base: float = 10000.0,
        *,
        sign_flip: bool = False,
        pairing_mismatch: bool = False,
    ) -> None:
        super().__init__()
        if head_dim <= 0 or head_dim % 2:
            raise ValueError(f"RotaryEmbedding: head_dim must be a positive even number, got {head_dim}")
        if max_seq_len <= 0:
            raise ValueError(f"RotaryEmbedding: max_seq_len must be positive, got {max_seq_len}")
        self.head_dim, self.max_seq_len, self.base = head_dim, max_seq_len, float(base)
        self.sign_flip, self.pairing_mismatch = sign_flip, pairing_mismatch
        freqs = rope_frequencies(head_dim, base)
        pos = np.arange(max_seq_len, dtype=np.float64)[:, None]
        if pairing_mismatch:
            per_dim = np.concatenate([freqs, freqs])  # halves layout: dim j uses theta[j mod h]
            first, second = pos * per_dim[0::2], pos * per_dim[1::2]
        else:
            first = second = pos * freqs
        cos1, sin1 = np.cos(first).astype(np.float32), np.sin(first).astype(np.float32)
        cos2, sin2 = np.cos(second).astype(np.float32), np.sin(second).astype(np.float32)
        if sign_flip:
            a, b, c, d = cos1, sin1, sin2, -cos2
        else:
            a, b, c, d = cos1, -sin1, sin2, cos2
        for name, table in zip("abcd", (a, b, c, d)):
            self.register_buffer(f"coef_{name}", table, persistent=False)

    def forward(self, x, offset: int = 0):
        t = x.shape[-2]
        if x.shape[-1] != self.head_dim:
            raise ValueError(
                f"RotaryEmbedding: input of shape {tuple(x.shape)} has last dimension {x.shape[-1]}, "
                f"expected head_dim {self.head_dim}"
            )
        if offset + t > self.max_seq_len:
            raise ValueError(
                f"RotaryEmbedding: positions {offset}..{offset + t - 1} exceed max_seq_len {self.max_seq_len}"
            )
        sl = slice(offset, offset + t)
        return RotaryFunction.apply(
            x,
            a=self.coef_a.data[sl],
            b=self.coef_b.data[sl],
            c=self.coef_c.data[sl],
            d=self.coef_d.data[sl],
        )

    def extra_repr(self) -> str:
        faults = "".join(
            f", {n}=True" for n, on in (("sign_flip", self.sign_flip), ("pairing_mismatch", self.pairing_mismatch)) if on
        )
        return f"head_dim={self.head_dim}, max_seq_len={self.max_seq_len}, base={self.base:g}{faults}"
