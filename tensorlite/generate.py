"""Sampling from a language model: greedy, temperature, top-k, top-p, repetition penalty, KV cache.

Each knob is a small function on a 1-D NumPy array of logits (float64), so the docs can show them
one at a time; :func:`sample_next` chains them in the usual order (repetition penalty, temperature,
top-k, top-p, then a draw) and :func:`generate` runs the loop.

KV cache and the context window: the model sees at most ``seq_len`` positions. Once the text
outgrows that window, the context restarts from the most recent ``seq_len // 2`` tokens
(:func:`context_start`) and grows again until the window is full. With the cache, the restart is
one prefill of half a window, after which every token is again one position of work; so the
re-prefill costs, amortised, about one extra position per token, instead of a whole window per
token for a cache that is dropped when full. Without the cache, every step runs the model on the
same context, chosen by the same rule, so both paths return the same tokens at any length.
On the CPU the two paths agree to float32 rounding and return the same tokens (tested); that is a
property of this implementation, not of KV caches in general (other kernels, dtypes or devices
round the two paths differently: test caches by their logits, with a tolerance).
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import numpy as np

from .autograd import no_grad
from .backend import to_numpy
from .decode import decoder
from .kernels.parallel import blas_threads
from .random import generator
from .tensor import Tensor

__all__ = [
    "apply_repetition_penalty",
    "apply_temperature",
    "context_start",
    "generate",
    "sample_next",
    "softmax",
    "top_k_filter",
    "top_p_filter",
]


def _check_number(name: str, value, *, low: float, inclusive: bool, hint: str = "") -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = math.isfinite(value) and (value >= low if inclusive else value > low)
    if not ok:
        bound = f">= {low:g}" if inclusive else f"> {low:g}"
        raise ValueError(f"{name} must be a finite number {bound}{hint}, got {value!r}")
    return value


def _as_logits(logits) -> np.ndarray:
    arr = to_numpy(logits.data) if isinstance(logits, Tensor) else np.asarray(logits)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"expected a 1-D array of logits over the vocabulary, got shape {arr.shape}")
    return arr.astype(np.float64)


def softmax(logits) -> np.ndarray:
    """Probabilities from logits (``-inf`` entries get probability 0)."""
    z = _as_logits(logits)
    e = np.exp(z - z.max())
    return e / e.sum()


def apply_temperature(logits, temperature: float) -> np.ndarray:
    """``logits / temperature``: below 1 sharpens the distribution, above 1 flattens it.

    Temperature 0 means greedy decoding, which :func:`sample_next` handles with an argmax; here it
    must be positive.
    """
    t = _check_number("temperature", temperature, low=0.0, inclusive=False, hint=" (use sample_next for 0 = greedy)")
    return _as_logits(logits) / t


def top_k_filter(logits, k: int | None) -> np.ndarray:
    """Keep the ``k`` largest logits, set the rest to ``-inf``. Ties with the k-th value are kept;
    ``k >= vocab`` or ``None`` keeps everything."""
    z = _as_logits(logits)
    if k is None:
        return z
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"top_k must be a positive integer or None, got {k!r}")
    if k >= z.size:
        return z
    kth = np.partition(z, z.size - k)[z.size - k]
    return np.where(z >= kth, z, -np.inf)


def top_p_filter(logits, p: float | None) -> np.ndarray:
    """Nucleus filtering: keep the most likely tokens until their probability reaches ``p``.

    Tokens are taken in order of decreasing probability and a token is kept when the mass *before*
    it is below ``p``, so the most likely token is always kept (even for tiny ``p``) and the kept
    set is the smallest one whose mass reaches ``p``. ``p >= 1`` (or ``None``) keeps every token.
    """
    z = _as_logits(logits)
    if p is None:
        return z
    p = _check_number("top_p", p, low=0.0, inclusive=False, hint=" (values >= 1 keep every token)")
    if p >= 1.0:
        return z
    order = np.argsort(-z, kind="stable")
    probs = softmax(z)[order]
    mass_before = np.cumsum(probs) - probs
    keep = np.zeros(z.size, dtype=bool)
    keep[order[mass_before < p]] = True
    return np.where(keep, z, -np.inf)


def apply_repetition_penalty(logits, previous_ids, penalty: float) -> np.ndarray:
    """Make tokens already in ``previous_ids`` less likely (the sign-aware form of the CTRL penalty).

    CTRL (Keskar et al. 2019) divides every seen token's logit by ``penalty``; this is the fix that
    Hugging Face's ``transformers`` made in its implementation, so that negative logits go down too.

    For each *distinct* previous token: a positive logit is divided by ``penalty``, a negative one
    multiplied by it, so with ``penalty > 1`` the logit always moves down. (Dividing a negative
    logit, as the Go guide does, moves it *up*: -2 / 1.5 = -1.33, making the token more likely.)
    ``penalty = 1`` changes nothing; ``penalty < 1`` rewards repetition.
    """
    penalty = _check_number("repetition_penalty", penalty, low=0.0, inclusive=False)
    z = _as_logits(logits)
    if penalty == 1.0:
        return z
    ids = np.unique(np.asarray(list(previous_ids), dtype=np.int64))
    if ids.size == 0:
        return z
    if ids[0] < 0 or ids[-1] >= z.size:
        raise ValueError(f"repetition penalty: token ids must be in [0, {z.size}), got {ids[0]}..{ids[-1]}")
    sel = z[ids]
    z[ids] = np.where(sel > 0, sel / penalty, sel * penalty)
    return z


def sample_next(
    logits,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    previous_ids=(),
    rng: np.random.Generator | None = None,
) -> int:
    """Pick the next token id from one row of logits.

    Order: repetition penalty, then temperature 0 -> argmax (greedy; the lowest id wins a tie),
    otherwise temperature, top-k, top-p, and a draw from the remaining distribution with ``rng``
    (tensorlite's seeded generator by default).
    """
    z = apply_repetition_penalty(logits, previous_ids, repetition_penalty)
    temperature = _check_number("temperature", temperature, low=0.0, inclusive=True, hint=" (0 means greedy)")
    if temperature == 0.0:
        return int(np.argmax(z))
    z = top_p_filter(top_k_filter(apply_temperature(z, temperature), top_k), top_p)
    probs = softmax(z)
    rng = generator() if rng is None else rng
    cdf = np.cumsum(probs)
    # inverse-CDF draw; clipping guards the last bin against rounding in the cumulative sum
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), z.size - 1))


def _check_prompt(prompt_ids, vocab_size: int) -> list[int]:
    if isinstance(prompt_ids, Tensor):
        prompt_ids = to_numpy(prompt_ids.data)
    arr = np.asarray(prompt_ids)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise ValueError(f"generate: prompt_ids must be a 1-D sequence of token ids, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("generate: the prompt is empty; give at least one token id (e.g. a BOS or newline token)")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"generate: prompt_ids must be integers, got dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= vocab_size:
        bad = lo if lo < 0 else hi
        raise ValueError(f"generate: token id {bad} is outside the vocabulary [0, {vocab_size})")
    return [int(i) for i in arr]


def context_start(start: int, length: int, seq_len: int) -> int:
    """Where the model's context begins, given where it began for the last token (``start``) and
    the ``length`` of the text so far: unchanged while ``length - start <= seq_len``, else the
    most recent ``seq_len // 2`` tokens (at least one). Both decoding paths of :func:`generate`
    follow it, so they see the same context at every step.

    >>> [context_start(0, n, 8) for n in (8, 9)], context_start(5, 13, 8), context_start(5, 14, 8)
    ([0, 5], 5, 10)
    """
    if length - start <= seq_len:
        return start
    return length - max(1, seq_len // 2)


def generate(
    model,
    prompt_ids,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    seed: int | None = None,
    use_cache: bool = True,
) -> list[int]:
    """Continue ``prompt_ids`` by ``max_new_tokens`` tokens; returns prompt + new ids.

    ``temperature=0`` is greedy decoding. ``seed`` makes sampling reproducible (without it the
    draws come from tensorlite's generator, seeded by :func:`tensorlite.manual_seed`). The model
    runs in eval mode without gradients and is put back in its previous mode afterwards. See the
    module docstring for how the KV cache meets the ``seq_len`` window.
    """
    cfg = model.config
    ids = _check_prompt(prompt_ids, cfg.vocab_size)
    if not isinstance(max_new_tokens, (int, np.integer)) or isinstance(max_new_tokens, bool) or max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    _check_number("temperature", temperature, low=0.0, inclusive=True, hint=" (0 means greedy)")
    if top_k is not None and (not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or top_k < 1):
        raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}")
    if top_p is not None:
        _check_number("top_p", top_p, low=0.0, inclusive=False, hint=" (values >= 1 keep every token)")
    _check_number("repetition_penalty", repetition_penalty, low=0.0, inclusive=False)
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise ValueError(f"generate: seed must be an integer or None, got {seed!r}")
    rng = np.random.default_rng(seed) if seed is not None else generator()
    window = cfg.seq_len
    start = max(0, len(ids) - window)  # a prompt longer than the window: its last seq_len tokens
    was_training = model.training
    model.eval()
    # A decoding step is a chain of one-row products, which BLAS would split over its threads
    # only to wait for them (worst when a neighbour holds a core): one thread while the cache runs.
    one_blas_thread = blas_threads(1) if use_cache and model.device.type == "cpu" else nullcontext()
    try:
        with no_grad(), one_blas_thread:
            cache = model.init_cache() if use_cache else None
            fast_step = decoder(model) if use_cache else None  # None unless a plain GPT
            for _ in range(max_new_tokens):
                new_start = context_start(start, len(ids), window)
                if cache is None:  # the whole context, every step
                    row = model(np.asarray([ids[new_start:]], dtype=np.int64)).data[0, -1]
                elif cache.length == 0 or new_start != start:  # prefill, or re-prefill half a window
                    cache.reset()
                    row = model(np.asarray([ids[new_start:]], dtype=np.int64), cache=cache).data[0, -1]
                elif fast_step is not None:  # one new token: the same kernels, without the modules
                    row = fast_step(ids[-1], cache)
                else:  # one new token at the next position
                    row = model(np.asarray([ids[-1:]], dtype=np.int64), cache=cache).data[0, -1]
                start = new_start
                ids.append(
                    sample_next(to_numpy(row), temperature, top_k, top_p, repetition_penalty, ids, rng)
                )
    finally:
        model.train(was_training)
    return ids
