"""RoPE faults: the healthy :class:`~tensorlite.nn.RotaryEmbedding` rotates pair ``(2i, 2i+1)`` by
``[[cos, -sin], [sin, cos]]`` at angle ``position * theta_i``. :class:`FaultyRotary` writes the same
rotation out with tensor ops and the faulty lines marked:

* ``rope_sign_flip`` (answer key, bug 5): ``[[cos, sin], [sin, -cos]]``, a reflection. Norms
  survive, and ``M(m)^T M(n) = R(m - n)`` still depends on the offset only, but with its sign
  reversed (the score table is the healthy one transposed), and position 0 is not the identity.
  A model trained from scratch can absorb that (it equals negating the odd dims of ``W_q`` and
  ``W_k``); weights or numbers from a correct implementation cannot.
* ``rope_pairing_mismatch`` (sweep issue, bug 3): the angle table is laid out for the *halves*
  convention (``cat(theta, theta)``: dim ``j`` turns by ``theta[j mod head_dim/2]``) while the
  rotation pairs interleaved dims, so the two dims of a pair turn by different angles: the map is
  no rotation, norms are not kept and relative position is lost.
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..nn.rope import RotaryEmbedding, rope_frequencies
from ._swap import become


class FaultyRotary(RotaryEmbedding):
    """:class:`RotaryEmbedding` with a flipped sign or a mismatched angle layout (off until switched on)."""

    sign_flip = False
    pairing_mismatch = False

    def forward(self, x, offset: int = 0):
        self.check_input(x, offset)
        pos = np.arange(offset, offset + x.shape[-2], dtype=np.float64)[:, None]
        theta = rope_frequencies(self.head_dim, self.base)
        if self.pairing_mismatch:
            per_dim = np.concatenate([theta, theta])  # rope_pairing_mismatch: the halves layout's table
            first, second = pos * per_dim[0::2], pos * per_dim[1::2]
        else:
            first = second = pos * theta  # healthy: both dims of pair i turn by theta_i
        cos1, sin1, cos2, sin2 = (F.as_tensor_like(f(a), x)  # float64 tables cast to x's dtype
                                  for f, a in ((np.cos, first), (np.sin, first), (np.cos, second), (np.sin, second)))
        x1, x2 = x[..., 0::2], x[..., 1::2]
        if self.sign_flip:
            out1 = x1 * cos1 + x2 * sin1  # rope_sign_flip; healthy: x1 cos - x2 sin
            out2 = x1 * sin2 - x2 * cos2  # rope_sign_flip; healthy: x1 sin + x2 cos
        else:
            out1 = x1 * cos1 - x2 * sin1
            out2 = x1 * sin2 + x2 * cos2
        return F.reshape(F.stack([out1, out2], dim=-1), *x.shape)  # pairs back side by side


def rotary_layers(model) -> list:
    """Every :class:`RotaryEmbedding` in ``model``."""
    return [m for m in model.modules() if isinstance(m, RotaryEmbedding)]


def rope_sign_flip(rope: RotaryEmbedding) -> None:
    become(rope, FaultyRotary, sign_flip=True)


def rope_pairing_mismatch(rope: RotaryEmbedding) -> None:
    become(rope, FaultyRotary, pairing_mismatch=True)
