"""Block faults: the healthy pre-norm block is ``x = x + drop(attn(norm1(x)))`` then
``x + drop(ffn(norm2(x)))``. :class:`FaultyBlock` repeats it with three switches, so the faults of
the sweep issue combine (its model had ``no_attn_residual`` and ``no_prenorm`` together):

* ``no_prenorm`` (sweep issue, bug 2): the sublayers read the raw residual stream;
* ``no_attn_residual`` (bug 1): the attention output replaces the stream instead of adding to it;
* ``no_ffn_residual`` (answer key, bug 6): the same for the FFN.
"""

from __future__ import annotations

from ..nn.transformer import Block
from ._swap import become


class FaultyBlock(Block):
    """:class:`Block` with its norms or residual additions switchable (all healthy until switched)."""

    prenorm = True
    attn_residual = True
    ffn_residual = True

    def forward(self, x, cache=None):
        h = self.norm1(x) if self.prenorm else x  # no_prenorm; healthy: attn(norm1(x))
        a = self.drop(self.attn(h, cache))
        x = x + a if self.attn_residual else a  # no_attn_residual; healthy: x + attn(...)
        h = self.norm2(x) if self.prenorm else x  # no_prenorm; healthy: ffn(norm2(x))
        f = self.drop(self.ffn(h))
        return x + f if self.ffn_residual else f  # no_ffn_residual; healthy: x + ffn(...)


def blocks(model) -> list:
    """Every :class:`Block` in ``model``."""
    return [m for m in model.modules() if isinstance(m, Block)]


def no_prenorm(block: Block) -> None:
    become(block, FaultyBlock, prenorm=False)


def no_attn_residual(block: Block) -> None:
    become(block, FaultyBlock, attn_residual=False)


def no_ffn_residual(block: Block) -> None:
    become(block, FaultyBlock, ffn_residual=False)
