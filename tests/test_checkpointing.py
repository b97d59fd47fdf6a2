"""Gradient checkpointing: same gradients as the plain graph, less memory held by the graph."""

import numpy as np
import pytest

import tensorlite as tl
from tensorlite import nn
from tensorlite.nn.utils import checkpoint


def _grads(model, x, y):
    model.zero_grad()
    model.loss(x, y).backward()
    return {n: p.grad.numpy().copy() for n, p in model.named_parameters()}


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_checkpointed_gpt_has_the_same_gradients(dropout):
    cfg = dict(vocab_size=32, seq_len=16, d_model=32, n_layers=3, n_heads=4, dropout=dropout)
    tl.manual_seed(0)
    plain = nn.GPT(nn.GPTConfig(**cfg))
    ckpt = nn.GPT(nn.GPTConfig(**cfg, gradient_checkpointing=True))
    ckpt.load_state_dict(plain.state_dict())
    x, y = tl.randint(0, 32, (4, 16)), tl.randint(0, 32, (4, 16))
    tl.manual_seed(1)
    g_plain = _grads(plain, x, y)
    tl.manual_seed(1)  # same dropout masks in both forwards; the recompute replays them
    g_ckpt = _grads(ckpt, x, y)
    assert g_plain.keys() == g_ckpt.keys()
    for name in g_plain:
        np.testing.assert_allclose(g_ckpt[name], g_plain[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_checkpoint_matches_plain_gradients_for_a_function_of_two_inputs():
    a = tl.randn(3, 4, dtype=tl.float64, requires_grad=True)
    b = tl.randn(4, 2, dtype=tl.float64, requires_grad=True)

    def fn(u, v):
        return (u @ v).tanh() * 2.0

    (checkpoint(fn, a, b) ** 2).sum().backward()
    ga, gb = a.grad.numpy().copy(), b.grad.numpy().copy()
    a.grad = b.grad = None
    (fn(a, b) ** 2).sum().backward()
    np.testing.assert_allclose(ga, a.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gb, b.grad.numpy(), rtol=1e-12)


def _graph_bytes(checkpointed: bool, n_layers: int) -> int:
    tl.manual_seed(0)
    cfg = nn.GPTConfig(vocab_size=64, seq_len=64, d_model=64, n_layers=n_layers, n_heads=4,
                       gradient_checkpointing=checkpointed)
    model = nn.GPT(cfg)
    x, y = tl.randint(0, 64, (8, 64)), tl.randint(0, 64, (8, 64))
    with tl.debug.array_memory() as mem:
        loss = model.loss(x, y)
    loss.backward()
    return mem.held_bytes


def test_checkpointing_saves_graph_memory_and_grows_less_with_depth():
    plain2, plain6 = _graph_bytes(False, 2), _graph_bytes(False, 6)
    ckpt2, ckpt6 = _graph_bytes(True, 2), _graph_bytes(True, 6)
    per_block_plain = (plain6 - plain2) / 4
    per_block_ckpt = (ckpt6 - ckpt2) / 4
    assert ckpt6 < 0.5 * plain6
    # a checkpointed block keeps only its input (B*T*d floats), not its activations
    assert per_block_ckpt < 0.2 * per_block_plain


def test_checkpoint_rejects_non_tensors_and_passes_through_without_grad():
    with pytest.raises(TypeError, match="checkpoint: input 0 must be a Tensor"):
        checkpoint(lambda u: u, np.ones(3))
    x = tl.ones(3)
    out = checkpoint(lambda u: u * 2.0, x)
    assert out.grad_fn is None and out.tolist() == [2.0, 2.0, 2.0]


def test_train_config_and_cli_reach_the_switch():
    from tensorlite.cli import build_parser
    from tensorlite.cli.train import config_from_args
    from tensorlite.train import TrainConfig

    assert TrainConfig().replace(gradient_checkpointing=True).gpt_config(vocab_size=10).gradient_checkpointing
    args = build_parser().parse_args(["train", "--gradient-checkpointing", "--steps", "1"])
    assert config_from_args(args).model.gradient_checkpointing is True
