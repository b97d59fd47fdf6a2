"""The raw-array decoding step (``tensorlite.decode``) against the modules: bitwise the same
logits, the same cache state, the same generated tokens; and it steps aside for every model it
cannot vouch for."""

from __future__ import annotations

import numpy as np
import pytest

import tensorlite as tl
from tensorlite import faults, nn
from tensorlite.decode import decoder
from tensorlite.generate import generate


def _gpt(**kw):
    tl.manual_seed(0)
    cfg = dict(vocab_size=40, seq_len=24, d_model=32, n_layers=2, n_heads=4)
    cfg.update(kw)
    model = nn.GPT(nn.GPTConfig(**cfg))
    model.eval()
    return model


@pytest.mark.parametrize("kw", [{}, {"attention": "tiled"}, {"norm": "rmsnorm"},
                                {"bias": False, "tie_weights": True}])
def test_decoder_step_equals_the_modules_bitwise(kw):
    model = _gpt(**kw)
    step = decoder(model)
    assert step is not None
    ids = np.arange(24)[None] % 40
    with tl.no_grad():
        by_modules, by_step = model.init_cache(), model.init_cache()
        model(ids[:, :9], cache=by_modules)
        model(ids[:, :9], cache=by_step)
        for t in range(9, 24):
            want = model(ids[:, t:t + 1], cache=by_modules).numpy()[0, -1]
            got = step(int(ids[0, t]), by_step)
            assert np.array_equal(got, want), t
    assert by_step.length == by_modules.length == 24
    for a, b in zip(by_step.layers, by_modules.layers):
        assert np.array_equal(a.k.numpy(), b.k.numpy()) and np.array_equal(a.v.numpy(), b.v.numpy())
    with pytest.raises(ValueError, match="decode: the cache is full"):
        step(1, by_step)


def test_generate_uses_it_and_returns_the_same_tokens(monkeypatch):
    model = _gpt()
    calls = []
    real = decoder(model)
    monkeypatch.setattr("tensorlite.generate.decoder", lambda m: lambda tok, cache: calls.append(tok) or real(tok, cache))
    fast = generate(model, [1, 2, 3], 40, temperature=0)
    assert len(calls) == 40 - 3  # every one-token step but the prefill and the two re-prefills
    monkeypatch.setattr("tensorlite.generate.decoder", lambda m: None)
    assert generate(model, [1, 2, 3], 40, temperature=0) == fast == generate(model, [1, 2, 3], 40, temperature=0,
                                                                              use_cache=False)


def test_decoder_declines_what_it_cannot_vouch_for():
    assert decoder(_gpt(pos="rope")) is None
    assert decoder(_gpt(ffn="swiglu")) is None
    assert decoder(_gpt(linear="bitlinear")) is None
    assert decoder(faults.inject(_gpt(), "no_ffn_residual")) is None
    assert decoder(faults.inject(_gpt(), "softmax_over_queries")) is None
    assert decoder(faults.inject(_gpt(), "per_token_loop")) is None
    model = _gpt()
    model.train()
    assert decoder(model) is None
    model.eval()
    handle = model.blocks[1].ffn.register_forward_hook(lambda m, i, o: None)
    assert decoder(model) is None
    handle.remove()
    with tl.kernels.use("blocked"):
        assert decoder(model) is None
    assert decoder(model) is not None
