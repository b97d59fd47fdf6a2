"""Faults of single layers and of the initialisation.

* ``rmsnorm_no_eps`` (answer key, bug 4): ``RMSNorm.eps = 0``; an all-zero (or underflowing) row
  is then ``0 / sqrt(0)``. Healthy: 1e-6 inside the square root.
* ``init_x100`` (course, failure 1): every weight matrix and embedding 100x its GPT-2 draw.
* ``bitlinear_latent_scale`` (sweep issue, bug 4): :class:`FaultyBitLinear` takes BitLinear's output
  scale from the latent weights (std 0.02 at init) instead of the ternary ones (magnitude 1): about
  40x too large per layer.
* ``per_token_loop`` (sweep issue, bug 6): :class:`PerTokenEmbedding` looks tokens up one Python call
  at a time and stacks the rows: the same numbers, a graph of ``B * T`` nodes per lookup.
"""

from __future__ import annotations

from .. import functional as F
from ..nn.bitlinear import BitLinear, ternarize, ternary_rescale
from ..nn.layers import Embedding, Linear, RMSNorm
from ._swap import become


class FaultyBitLinear(BitLinear):
    """:class:`BitLinear` whose output rescale comes from the latent weights."""

    def effective_weight(self):
        w = self.weight.data
        w_t, _ = ternarize(w)
        gamma = ternary_rescale(w, self.in_features)  # bitlinear_latent_scale; healthy: ternary_rescale(w_t, ...)
        return (w_t * gamma).astype(w.dtype, copy=False)


class PerTokenEmbedding(Embedding):
    """:class:`Embedding` that looks up one token per call."""

    def forward(self, idx):
        rows = [super(PerTokenEmbedding, self).forward(idx[i, j])  # per_token_loop; healthy: one call for all
                for i in range(idx.shape[0]) for j in range(idx.shape[1])]
        return F.reshape(F.stack(rows), idx.shape[0], idx.shape[1], self.embedding_dim)


def of_type(model, cls) -> list:
    """Every module of ``model`` that is a ``cls``."""
    return [m for m in model.modules() if isinstance(m, cls)]


def rmsnorm_no_eps(norm: RMSNorm) -> None:
    norm.eps = 0.0  # healthy: 1e-6 (GPTConfig's default for RMSNorm)


def bitlinear_latent_scale(layer: BitLinear) -> None:
    become(layer, FaultyBitLinear)


def per_token_loop(embedding: Embedding) -> None:
    become(embedding, PerTokenEmbedding)


def init_x100(model) -> None:
    """Every Linear, BitLinear and Embedding weight of ``model`` times 100 (a tied weight once)."""
    seen = set()
    for m in of_type(model, (Linear, BitLinear, Embedding)):
        if id(m.weight) not in seen:
            seen.add(id(m.weight))
            m.weight.data *= 100.0  # healthy: N(0, 0.02), residual projections 0.02 / sqrt(2 n_layers)
