"""Our GPT against a reference GPT written in torch (tests/torch_reference.py): weights move through
safetensors in both directions, and logits and every parameter gradient agree (float32)."""

from __future__ import annotations

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch
from torch_reference import RefGPT

import tensorlite as tl
import tensorlite.nn as nn

BASE = dict(vocab_size=37, seq_len=16, d_model=32, n_layers=2, n_heads=4)

CONFIGS = {
    "layernorm-gelu-learned": dict(),
    "rmsnorm-swiglu-rope-nobias-tied": dict(norm="rmsnorm", ffn="swiglu", pos="rope", bias=False, tie_weights=True),
    "layernorm-gelu-rope-tied": dict(pos="rope", tie_weights=True),
    "rmsnorm-gelu-learned-nobias": dict(norm="rmsnorm", bias=False),
    "layernorm-swiglu-learned-eps": dict(ffn="swiglu", norm_eps=1e-3, d_ff=48),
    "bitlinear-rope": dict(linear="bitlinear", pos="rope", n_layers=3),
}


def make_pair(overrides, seed=0):
    tl.manual_seed(seed)
    cfg = nn.GPTConfig(**{**BASE, **overrides})
    ours = nn.GPT(cfg)
    ref = RefGPT(cfg.to_dict(), cfg.ffn_dim)
    return cfg, ours, ref


def batch(cfg, b=3, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, cfg.vocab_size, size=(b, cfg.seq_len))
    y = rng.integers(0, cfg.vocab_size, size=(b, cfg.seq_len))
    return x, y


def ours_to_torch(ours, ref, path):
    safetensors.numpy.save_file({k: np.ascontiguousarray(v.numpy()) for k, v in ours.state_dict().items()}, path)
    ref.load_state_dict(safetensors.torch.load_file(path), strict=True)


def torch_to_ours(ref, ours, path):
    # safetensors refuses tensors that share memory (tied weights): save independent copies
    safetensors.torch.save_file({k: v.detach().clone().contiguous() for k, v in ref.state_dict().items()}, path)
    ours.load_state_dict(safetensors.numpy.load_file(path), strict=True)


def assert_same(ours, ref, cfg):
    x, y = batch(cfg)
    loss = ours.loss(x, y)
    loss.backward()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    ref_logits = ref(tx)
    np.testing.assert_allclose(ours(x).numpy(), ref_logits.detach().numpy(), atol=1e-4, rtol=1e-4)
    ref_loss = ref.loss(tx, ty)
    ref_loss.backward()
    assert abs(loss.item() - ref_loss.item()) < 1e-5
    ref_params = dict(ref.named_parameters())
    names = [n for n, _ in ours.named_parameters()]
    assert sorted(names) == sorted(ref_params)
    for name, p in ours.named_parameters():
        g_ref = ref_params[name].grad.numpy()
        scale = float(np.abs(g_ref).max()) + 1e-12
        err = float(np.abs(p.grad.numpy() - g_ref).max())
        assert err <= 1e-4 * scale + 1e-7, f"{name}: max error {err:.3g} (max |grad| {scale:.3g})"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_logits_and_grads_match_torch(name, tmp_path):
    cfg, ours, ref = make_pair(CONFIGS[name])
    ours_to_torch(ours, ref, str(tmp_path / "w.safetensors"))
    assert_same(ours, ref, cfg)


@pytest.mark.parametrize("name", ["layernorm-gelu-learned", "rmsnorm-swiglu-rope-nobias-tied"])
def test_torch_weights_load_into_ours(name, tmp_path):
    cfg, ours, ref = make_pair(CONFIGS[name])
    torch.manual_seed(3)
    with torch.no_grad():  # torch's own (non-GPT) init, so nothing of ours survives by accident
        for p in ref.parameters():
            p.normal_(0.0, 0.05)
    torch_to_ours(ref, ours, str(tmp_path / "w.safetensors"))
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[k].numpy(), v.numpy())
    assert_same(ours, ref, cfg)


def test_parity_holds_at_the_last_positions_with_a_shorter_batch(tmp_path):
    # fewer positions than seq_len: learned positions are sliced, RoPE tables too
    cfg, ours, ref = make_pair(dict(pos="rope", norm="rmsnorm"))
    ours_to_torch(ours, ref, str(tmp_path / "w.safetensors"))
    x = np.random.default_rng(5).integers(0, cfg.vocab_size, size=(2, 7))
    np.testing.assert_allclose(ours(x).numpy(), ref(torch.from_numpy(x)).detach().numpy(), atol=1e-4)


def test_state_dict_keys_match_torch_reference():
    for overrides in CONFIGS.values():
        _, ours, ref = make_pair(overrides)
        assert list(ours.state_dict()) == list(ref.state_dict())
        for k, v in ours.state_dict().items():
            assert tuple(v.shape) == tuple(ref.state_dict()[k].shape), k


def test_torch_state_dict_loads_directly():
    # torch CPU tensors are accepted as values (through NumPy), no file needed
    cfg, ours, ref = make_pair(CONFIGS["layernorm-gelu-rope-tied"], seed=4)
    ours.load_state_dict(ref.state_dict())
    x = np.random.default_rng(2).integers(0, cfg.vocab_size, size=(2, cfg.seq_len))
    np.testing.assert_allclose(ours(x).numpy(), ref(torch.from_numpy(x)).detach().numpy(), atol=1e-4)
