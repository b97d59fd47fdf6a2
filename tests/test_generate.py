"""Generation: each sampling knob against a hand-derived answer, the KV cache against uncached
decoding, reproducibility, and input validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.nn as nn
from tensorlite.generate import (
    apply_repetition_penalty,
    apply_temperature,
    generate,
    sample_next,
    softmax,
    top_k_filter,
    top_p_filter,
)


def tiny_gpt(seed=0, **overrides):
    tl.manual_seed(seed)
    kw = dict(vocab_size=29, seq_len=12, d_model=32, n_layers=3, n_heads=4)
    kw.update(overrides)
    model = nn.GPT(nn.GPTConfig(**kw))
    # sharpen the weights a little so greedy choices are far from ties
    for p in model.parameters():
        if p.ndim == 2:
            p.data *= 4.0
    return model


# ---- the knobs, one at a time --------------------------------------------------------------------
def test_temperature_divides_logits():
    np.testing.assert_allclose(apply_temperature([2.0, -1.0, 0.5], 2.0), [1.0, -0.5, 0.25])
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        apply_temperature([1.0, 2.0], 0.0)


def test_top_k_keeps_the_k_largest():
    z = np.array([0.1, 3.0, -1.0, 2.0, 2.5])
    out = top_k_filter(z, 2)
    assert np.isfinite(out).tolist() == [False, True, False, False, True]
    np.testing.assert_array_equal(top_k_filter(z, 1) == 3.0, np.isfinite(top_k_filter(z, 1)))
    np.testing.assert_array_equal(top_k_filter(z, 5), z)
    np.testing.assert_array_equal(top_k_filter(z, 50), z)
    np.testing.assert_array_equal(top_k_filter(z, None), z)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="top_k must be a positive integer"):
            top_k_filter(z, bad)


def test_top_k_keeps_ties_with_the_kth_value():
    assert np.isfinite(top_k_filter([1.0, 2.0, 2.0, 0.0], 2)).sum() == 2
    assert np.isfinite(top_k_filter([1.0, 2.0, 1.0, 0.0], 2)).sum() == 3


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    z = np.log(probs)
    kept = lambda p: np.isfinite(top_p_filter(z, p)).tolist()
    assert kept(0.49) == [True, False, False, False]  # 0.5 already reaches p
    assert kept(0.51) == [True, True, False, False]
    assert kept(0.79) == [True, True, False, False]
    assert kept(0.81) == [True, True, True, False]
    assert kept(0.99) == [True, True, True, True]


def test_top_p_always_keeps_at_least_one_token():
    z = np.array([0.0, 5.0, 1.0])
    for p in (1e-12, 1e-3, 0.2):
        out = top_p_filter(z, p)
        assert np.isfinite(out).tolist() == [False, True, False]
    # a flat distribution: still exactly one survivor for a tiny p
    assert np.isfinite(top_p_filter(np.zeros(10), 1e-9)).sum() == 1


def test_top_p_at_or_above_one_keeps_everything():
    z = np.array([30.0, 0.0, -30.0, -60.0])  # tail probabilities underflow the cumulative sum
    for p in (1.0, 1.5, 100.0, None):
        np.testing.assert_array_equal(top_p_filter(z, p), z)


def test_top_p_respects_tokens_already_removed():
    z = np.array([2.0, -np.inf, 1.0, 0.0])
    out = top_p_filter(z, 0.999999)
    assert out[1] == -np.inf and np.isfinite(out[[0, 2, 3]]).all()


@pytest.mark.parametrize("p", [0.0, -0.1, float("nan"), float("inf"), "0.5"])
def test_top_p_rejects_bad_values(p):
    with pytest.raises(ValueError, match="top_p must be a finite number > 0"):
        top_p_filter([1.0, 2.0], p)


def test_repetition_penalty_sign():
    # positive logits are divided, negative ones multiplied: both move DOWN
    z = np.array([2.0, -2.0, 1.0, 0.5])
    out = apply_repetition_penalty(z, [0, 1], 2.0)
    np.testing.assert_allclose(out, [1.0, -4.0, 1.0, 0.5])
    before, after = softmax(z), softmax(out)
    assert after[0] < before[0] and after[1] < before[1]
    # the bug this guards against: dividing the negative logit makes the token MORE likely
    buggy = z.copy()
    buggy[[0, 1]] /= 2.0
    assert softmax(buggy)[1] > before[1]


def test_repetition_penalty_counts_each_distinct_token_once():
    z = np.array([2.0, -2.0, 1.0])
    np.testing.assert_allclose(apply_repetition_penalty(z, [0, 0, 0, 1, 1], 2.0), apply_repetition_penalty(z, [0, 1], 2.0))


def test_repetition_penalty_identity_and_validation():
    z = np.array([1.0, -1.0])
    np.testing.assert_array_equal(apply_repetition_penalty(z, [0, 1], 1.0), z)
    np.testing.assert_array_equal(apply_repetition_penalty(z, [], 3.0), z)
    with pytest.raises(ValueError, match="repetition_penalty must be a finite number > 0"):
        apply_repetition_penalty(z, [0], 0.0)
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 2\)"):
        apply_repetition_penalty(z, [5], 1.3)


def test_the_knobs_do_not_modify_their_input():
    z = np.array([2.0, -2.0, 1.0])
    for out in (apply_repetition_penalty(z, [0, 1], 2.0), top_k_filter(z, 1), top_p_filter(z, 0.1), apply_temperature(z, 2)):
        assert out is not z
    np.testing.assert_array_equal(z, [2.0, -2.0, 1.0])


def test_sample_next_greedy_and_distribution():
    z = np.array([0.0, 1.0, 2.0, 0.5])
    assert sample_next(z, temperature=0) == 2
    assert sample_next([1.0, 3.0, 3.0], temperature=0) == 1  # ties: the lowest id
    rng = np.random.default_rng(0)
    draws = np.array([sample_next(z, 1.0, rng=rng) for _ in range(20000)])
    freq = np.bincount(draws, minlength=4) / draws.size
    np.testing.assert_allclose(freq, softmax(z), atol=0.015)
    # top_k=2 leaves tokens 1 and 2 in proportion e^1 : e^2
    draws = np.array([sample_next(z, 1.0, top_k=2, rng=rng) for _ in range(5000)])
    assert set(draws.tolist()) <= {1, 2}
    assert abs((draws == 2).mean() - 1 / (1 + math.exp(-1))) < 0.03


def test_sample_next_low_temperature_tends_to_argmax():
    z = np.array([0.0, 1.0, 1.2])
    rng = np.random.default_rng(1)
    assert all(sample_next(z, 0.01, rng=rng) == 2 for _ in range(200))


# ---- generate() --------------------------------------------------------------------------------
def manual_greedy(model, prompt, n):
    """Greedy decoding by hand, with the context rule written out: the window grows to seq_len
    tokens, then restarts from the most recent seq_len // 2."""
    ids, w = list(prompt), model.config.seq_len
    start = max(0, len(ids) - w)
    with tl.no_grad():
        for _ in range(n):
            if len(ids) - start > w:
                start = len(ids) - w // 2
            ids.append(int(np.argmax(model(np.asarray([ids[start:]])).numpy()[0, -1])))
    return ids


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_cached_greedy_equals_uncached_greedy(pos):
    model = tiny_gpt(pos=pos, norm="rmsnorm" if pos == "rope" else "layernorm")
    prompt = [3, 1, 4, 1, 5]
    # 20 new tokens: past the 12-position window, so the cached path also has to slide
    cached = generate(model, prompt, 20, temperature=0, use_cache=True)
    uncached = generate(model, prompt, 20, temperature=0, use_cache=False)
    assert cached == uncached == manual_greedy(model, prompt, 20)
    assert len(cached) == 25 and cached[:5] == prompt
    assert len(set(cached[5:])) > 1  # not a degenerate constant stream


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_cached_logits_equal_full_forward(pos):
    model = tiny_gpt(pos=pos, n_layers=4)
    x = np.random.default_rng(0).integers(0, 29, size=(2, 12))
    with tl.no_grad():
        full = model(x).numpy()
        cache = model.init_cache()
        parts = [model(x[:, :5], cache=cache), model(x[:, 5:8], cache=cache)]
        parts += [model(x[:, t : t + 1], cache=cache) for t in range(8, 12)]
    assert cache.length == 12
    np.testing.assert_allclose(np.concatenate([p.numpy() for p in parts], axis=1), full, atol=1e-5, rtol=1e-5)


def test_cache_refuses_positions_past_seq_len_and_a_new_batch_size():
    model = tiny_gpt()
    cache = model.init_cache()
    with tl.no_grad():
        model(np.zeros((1, 10), dtype=np.int64), cache=cache)
        with pytest.raises(ValueError, match="exceed seq_len 12"):
            model(np.zeros((1, 3), dtype=np.int64), cache=cache)
        with pytest.raises(ValueError, match="batch size 2 differs from the cached batch size 1"):
            model(np.zeros((2, 1), dtype=np.int64), cache=cache)
    cache.reset()
    assert cache.length == 0 and cache.remaining == 12


def test_sampled_generation_is_reproducible_with_a_seed():
    model = tiny_gpt()
    kw = dict(temperature=1.3, top_k=10, top_p=0.95, repetition_penalty=1.2)
    a = generate(model, [1, 2], 15, seed=7, **kw)
    b = generate(model, [1, 2], 15, seed=7, **kw)
    c = generate(model, [1, 2], 15, seed=8, **kw)
    assert a == b and a != c
    assert generate(model, [1, 2], 15, seed=7, use_cache=False, **kw) == a
    tl.manual_seed(3)
    d = generate(model, [1, 2], 15, **kw)
    tl.manual_seed(3)
    assert generate(model, [1, 2], 15, **kw) == d


def test_greedy_ignores_top_k_and_top_p():
    model = tiny_gpt()
    ref = generate(model, [4], 8, temperature=0)
    assert generate(model, [4], 8, temperature=0, top_k=1, top_p=0.01) == ref


def test_strong_repetition_penalty_prevents_repeats_under_greedy():
    model = tiny_gpt()
    out = generate(model, [0], 15, temperature=0, repetition_penalty=1e6)
    assert len(set(out)) == len(out)


def test_generate_restores_training_mode_and_accepts_tensors():
    model = tiny_gpt()
    model.train()
    out = generate(model, tl.tensor([[2, 3]]), 3, temperature=0)
    assert model.training and len(out) == 5 and all(isinstance(i, int) for i in out)
    model.eval()
    generate(model, np.array([2, 3]), 0)
    assert not model.training


def test_zero_new_tokens_returns_the_prompt():
    assert generate(tiny_gpt(), [5, 6, 7], 0) == [5, 6, 7]


def test_long_prompt_is_cropped_to_the_window():
    model = tiny_gpt()
    prompt = list(np.random.default_rng(0).integers(0, 29, size=30))
    out = generate(model, prompt, 4, temperature=0)
    assert out[:30] == prompt and out == manual_greedy(model, prompt, 4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prompt_ids=[]), "the prompt is empty"),
        (dict(prompt_ids=[1, 99]), r"token id 99 is outside the vocabulary \[0, 29\)"),
        (dict(prompt_ids=[-1]), "token id -1 is outside"),
        (dict(prompt_ids=[[1, 2], [3, 4]]), "1-D sequence"),
        (dict(prompt_ids=[1.5]), "must be integers"),
        (dict(temperature=-1.0), "temperature must be a finite number >= 0"),
        (dict(temperature=float("nan")), "temperature must be"),
        (dict(top_p=0.0), "top_p must be a finite number > 0"),
        (dict(top_k=0), "top_k must be a positive integer"),
        (dict(repetition_penalty=-2.0), "repetition_penalty must be"),
        (dict(max_new_tokens=-1), "max_new_tokens must be an integer >= 0"),
        (dict(seed="abc"), "seed must be an integer"),
    ],
)
def test_generate_validates_its_inputs(kwargs, message):
    args = dict(prompt_ids=[1, 2], max_new_tokens=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        generate(tiny_gpt(), **args)


def test_cache_processes_one_token_per_step():
    # speed sanity without timing: count the positions the model is run on
    model = tiny_gpt()
    seen = []
    handle = model.tok_emb.register_forward_hook(lambda m, inputs, out: seen.append(out.shape[1]))
    generate(model, [1, 2, 3], 6, temperature=0, use_cache=True)
    cached = list(seen)
    seen.clear()
    generate(model, [1, 2, 3], 6, temperature=0, use_cache=False)
    handle.remove()
    assert cached == [3, 1, 1, 1, 1, 1]
    assert seen == [3, 4, 5, 6, 7, 8]


def test_cache_re_prefills_half_a_window_when_full():
    """Past the 12-position window the context restarts from the last 6 tokens: the cached path
    re-runs those 6 once and then goes on one position per step; the uncached path runs the
    same context every step (6, 7, ... 12, then 6 again)."""
    model = tiny_gpt()
    seen = []
    handle = model.tok_emb.register_forward_hook(lambda m, inputs, out: seen.append(out.shape[1]))
    cached_ids = generate(model, [1, 2, 3], 24, temperature=0, use_cache=True)
    cached = list(seen)
    seen.clear()
    uncached_ids = generate(model, [1, 2, 3], 24, temperature=0, use_cache=False)
    handle.remove()
    assert cached == [3] + [1] * 9 + [6] + [1] * 6 + [6] + [1] * 6
    assert seen == list(range(3, 13)) + list(range(6, 13)) + list(range(6, 13))
    assert cached_ids == uncached_ids == manual_greedy(model, [1, 2, 3], 24)


def test_context_start_rule():
    from tensorlite.generate import context_start

    assert [context_start(0, n, 8) for n in range(1, 10)] == [0] * 8 + [5]
    assert context_start(5, 13, 8) == 5 and context_start(5, 14, 8) == 10
    assert context_start(0, 2, 1) == 1  # a window of one keeps one token
