"""Rotary position embeddings (RoPE, Su et al. 2021, "RoFormer").

Convention: **interleaved pairs**. Dimensions ``(2i, 2i+1)`` of each head form the pair that
rotates at frequency ``theta_i = base ** (-2i / head_dim)``; at position ``m`` the pair is
multiplied by the rotation matrix ``[[cos(m theta_i), -sin(m theta_i)], [sin(m theta_i), cos(m theta_i)]]``.
This is the pairing of the RoFormer paper, of GPT-J and of Meta's original LLaMA code (which views
the pairs as complex numbers); the GPT-NeoX / Hugging Face LLaMA "rotate_half" layout pairs
``(i, i + head_dim/2)`` instead. We keep the paper's convention because the sweep issue's RoPE bug is
stated in it ("frequencies interleaved"), and because a pair is then two neighbours in memory.
Weights trained with one convention do not work with the other (the test-suite's torch reference
implements the same interleaved convention independently, with complex numbers).

Two classic bugs of this module (a flipped sign, an angle table laid out for the other pairing)
are in the bug catalogue, :mod:`tensorlite.faults.rope`, as the lines they change.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..backend import array_module
from .module import Module


class RotaryFunction(Function):
    """``out[2i] = x[2i] cos - x[2i+1] sin``, ``out[2i+1] = x[2i] sin + x[2i+1] cos`` per position;
    the backward applies the transposed map, the rotation by ``-angle``."""

    def forward(self, x, cos=None, sin=None):
        self.cos, self.sin = cos, sin
        x1, x2 = x[..., 0::2], x[..., 1::2]
        out = array_module(x).empty_like(x)
        out[..., 0::2] = x1 * cos - x2 * sin
        out[..., 1::2] = x1 * sin + x2 * cos
        return out

    def backward(self, g):
        cos, sin = self.cos, self.sin
        g1, g2 = g[..., 0::2], g[..., 1::2]
        gx = array_module(g).empty_like(g)
        gx[..., 0::2] = g1 * cos + g2 * sin
        gx[..., 1::2] = g2 * cos - g1 * sin
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

    def __init__(self, head_dim: int, max_seq_len: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim <= 0 or head_dim % 2:
            raise ValueError(f"RotaryEmbedding: head_dim must be a positive even number, got {head_dim}")
        if max_seq_len <= 0:
            raise ValueError(f"RotaryEmbedding: max_seq_len must be positive, got {max_seq_len}")
        self.head_dim, self.max_seq_len, self.base = head_dim, max_seq_len, float(base)
        angles = np.arange(max_seq_len, dtype=np.float64)[:, None] * rope_frequencies(head_dim, base)
        self.register_buffer("cos", np.cos(angles).astype(np.float32), persistent=False)
        self.register_buffer("sin", np.sin(angles).astype(np.float32), persistent=False)

    def check_input(self, x, offset: int) -> None:
        """ValueError unless ``x`` is ``(..., T, head_dim)`` with positions ``offset + T <= max_seq_len``."""
        if x.shape[-1] != self.head_dim:
            raise ValueError(
                f"RotaryEmbedding: input of shape {tuple(x.shape)} has last dimension {x.shape[-1]}, "
                f"expected head_dim {self.head_dim}"
            )
        if offset + x.shape[-2] > self.max_seq_len:
            raise ValueError(
                f"RotaryEmbedding: positions {offset}..{offset + x.shape[-2] - 1} exceed max_seq_len {self.max_seq_len}"
            )

    def forward(self, x, offset: int = 0):
        self.check_input(x, offset)
        positions = slice(offset, offset + x.shape[-2])
        return RotaryFunction.apply(x, cos=self.cos.data[positions], sin=self.sin.data[positions])

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, max_seq_len={self.max_seq_len}, base={self.base:g}"
