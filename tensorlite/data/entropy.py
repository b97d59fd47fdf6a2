"""Entropy estimates of a token stream: the reference points a language model's loss is read against.

Both are plug-in estimates, in nats per token, and both are **upper bounds** on the stream's
entropy rate (the loss no model can beat on held-out text): the unigram entropy
:math:`H(x_t)` is the loss of a model that ignores the context, and the bigram conditional entropy
:math:`H(x_t \\mid x_{t-1})` the loss of one that sees only the previous token. Real text has a
much lower entropy rate than either. (A plug-in bigram estimate on a short stream is biased low:
pairs seen once look deterministic.)
"""

from __future__ import annotations

import numpy as np

__all__ = ["unigram_entropy", "bigram_entropy"]


def _ids(tokens, need: int, what: str) -> np.ndarray:
    t = np.asarray(tokens).ravel()
    if t.size < need:
        raise ValueError(f"{what}: need at least {need} tokens, got {t.size}")
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"{what}: token ids must be integers, got dtype {t.dtype}")
    return t - t.min()


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def unigram_entropy(tokens) -> float:
    """Entropy of the token frequencies, :math:`-\\sum_i p_i \\ln p_i` (nats per token)."""
    return _entropy(np.bincount(_ids(tokens, 1, "unigram_entropy")).astype(float))


def bigram_entropy(tokens) -> float:
    """Conditional entropy of a token given the one before, :math:`H(x_t \\mid x_{t-1})` (nats)."""
    t = _ids(tokens, 2, "bigram_entropy")
    v = int(t.max()) + 1
    _, pair_counts = np.unique(t[:-1] * v + t[1:], return_counts=True)
    # H(x_t | x_{t-1}) = H(x_{t-1}, x_t) - H(x_{t-1}), both over the n - 1 pairs
    return max(0.0, _entropy(pair_counts.astype(float)) - _entropy(np.bincount(t[:-1]).astype(float)))
