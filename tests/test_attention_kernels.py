"""The attention kernels against the reference attention (``F.attention_reference``, primitive
ops): the fused one that keeps the weights and the tiled one (online softmax over key blocks,
recomputation in backward). Values and the three input gradients, float32 within 1e-5 and float64
within 1e-10, causal and not, with masks, broadcast batch dims, fewer queries than keys, block
sizes that do not divide the sequence, on one thread and over the pool; gradcheck in float64;
and the tiled graph holds no ``T x T`` array.
"""

from __future__ import annotations

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.functional as F
from tensorlite.kernels import attention as attention_kernels

TOL = {np.float32: 1e-5, np.float64: 1e-10}


@pytest.fixture(params=["serial", "pool"])
def threads(request, monkeypatch):
    saved = tl.get_num_threads()
    if request.param == "pool":
        tl.set_num_threads(2)
        monkeypatch.setattr(attention_kernels, "GRAIN", 16)  # a block per batch entry or two
    else:
        tl.set_num_threads(1)
    yield request.param
    tl.set_num_threads(saved)


def _run(fn, q, k, v, g):
    leaves = [tl.tensor(a, requires_grad=True) for a in (q, k, v)]
    out = fn(*leaves)
    out = out[0] if isinstance(out, tuple) else out
    out.backward(tl.tensor(g))
    return [out.numpy()] + [t.grad.numpy() for t in leaves]


def _check(q, k, v, dtype, rng, block_size=None, **kw):
    def ref(q, k, v):
        return F.attention_reference(q, k, v, **kw)

    def fused(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, **kw)

    def tiled(q, k, v):
        return F.tiled_attention(q, k, v, block_size=block_size or 128, **kw)

    out_shape = F.attention_reference(tl.tensor(q), tl.tensor(k), tl.tensor(v), **kw)[0].shape
    g = rng.standard_normal(out_shape).astype(dtype)
    want = _run(ref, q, k, v, g)
    for fn in (fused, tiled):
        got = _run(fn, q, k, v, g)
        for name, a, b in zip(("out", "dq", "dk", "dv"), got, want):
            assert a.dtype == dtype and a.shape == b.shape, (fn.__name__, name)
            err = np.abs(a - b).max()
            assert err <= TOL[dtype] * max(1.0, np.abs(b).max()), (fn.__name__, name, err)


def _qkv(rng, dtype, q_shape, k_shape, dv=None):
    q = rng.standard_normal(q_shape).astype(dtype)
    k = rng.standard_normal(k_shape).astype(dtype)
    v = rng.standard_normal(k_shape[:-1] + (dv or k_shape[-1],)).astype(dtype)
    return q, k, v


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("t,block", [(1, 4), (17, 4), (33, 16), (64, 128), (40, 7)])
def test_kernels_match_reference(dtype, causal, t, block, threads, rng):
    q, k, v = _qkv(rng, dtype, (2, 3, t, 8), (2, 3, t, 8), dv=5)
    _check(q * 2, k, v, dtype, rng, block_size=block, is_causal=causal)


@pytest.mark.parametrize("causal", [False, True])
def test_fewer_queries_than_keys_decoding(causal, threads, rng):
    """KV-cache decoding: the queries are the last positions (bottom-right causal alignment)."""
    for tq in (1, 5):
        q, k, v = _qkv(rng, np.float32, (2, 2, tq, 8), (2, 2, 23, 8))
        _check(q, k, v, np.float32, rng, block_size=4, is_causal=causal)


@pytest.mark.parametrize("kind", ["bool", "additive"])
def test_masks_combine_with_causal(kind, threads, rng):
    t = 19
    keep = rng.random((2, 1, t, t)) < 0.7
    keep[..., 0] = True  # every query may attend at least one key
    mask = keep if kind == "bool" else np.where(keep, 0.0, -1e9).astype(np.float32) + \
        rng.standard_normal((2, 1, t, t)).astype(np.float32) * 0.1
    q, k, v = _qkv(rng, np.float32, (2, 3, t, 8), (2, 3, t, 8))
    for causal in (False, True):
        _check(q, k, v, np.float32, rng, block_size=5, attn_mask=tl.tensor(mask), is_causal=causal)


def test_broadcast_batch_dims_and_no_head_dim(threads, rng):
    q, _, _ = _qkv(rng, np.float64, (2, 4, 9, 6), (1,))
    k, v = rng.standard_normal((2, 1, 12, 6)), rng.standard_normal((1, 1, 12, 3))  # shared by heads
    _check(q, k, v, np.float64, rng, block_size=5)
    q, k, v = _qkv(rng, np.float64, (10, 6), (10, 6))  # plain (T, D)
    _check(q, k, v, np.float64, rng, block_size=3, is_causal=True)


@pytest.mark.parametrize("causal", [False, True])
def test_tiled_attention_passes_gradcheck(causal, rng):
    q, k, v = (tl.tensor(rng.standard_normal((1, 2, 7, 3)), requires_grad=True) for _ in range(3))
    tl.gradcheck(lambda q, k, v: F.tiled_attention(q, k, v, is_causal=causal, block_size=3), q, k, v)


def test_tiled_graph_holds_no_t_by_t_array(rng):
    t = 256
    q, k, v = (tl.tensor(rng.standard_normal((1, 2, t, 16)).astype(np.float32), requires_grad=True)
               for _ in range(3))
    held = {}
    for name, fn in (("fused", F.scaled_dot_product_attention), ("tiled", F.tiled_attention)):
        with tl.debug.array_memory() as mem:
            out = fn(q, k, v, is_causal=True)
        largest = max(a.size for a in vars(out.grad_fn).values() if isinstance(a, np.ndarray))
        held[name] = (mem.held_bytes, largest)
        del out
    assert held["fused"][1] == 2 * t * t  # the weights, (1, 2, T, T)
    assert held["tiled"][1] <= 2 * t * 16  # nothing bigger than q, k, v or the output
    assert held["tiled"][0] < 2 * t * 16 * 4 * 2 < held["fused"][0]


@pytest.mark.parametrize("bad", [0, -3, 2.5, None])
def test_tiled_attention_rejects_bad_block_size(bad):
    q = tl.zeros(1, 4, 2)
    with pytest.raises(ValueError, match="tiled_attention: block_size must be a positive integer"):
        F.tiled_attention(q, q, q, block_size=bad)


@pytest.mark.gpu
@pytest.mark.parametrize("causal", [False, True])
def test_attention_kernels_on_gpu_match_cpu(causal, rng):
    q, k, v = _qkv(rng, np.float32, (2, 3, 37, 8), (2, 3, 37, 8))
    g = rng.standard_normal((2, 3, 37, 8)).astype(np.float32)
    for fn in (F.scaled_dot_product_attention, lambda *a, **kw: F.tiled_attention(*a, block_size=16, **kw)):
        cpu = _run(lambda q, k, v, fn=fn: fn(q, k, v, is_causal=causal), q, k, v, g)
        leaves = [tl.tensor(a, device="cuda", requires_grad=True) for a in (q, k, v)]
        out = fn(*leaves, is_causal=causal)
        out.backward(tl.tensor(g, device="cuda"))
        for a, b in zip([out.numpy()] + [t.grad.numpy() for t in leaves], cpu):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("tiled", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_packed_self_attention_equals_split_attend_merge(tiled, causal, threads, rng):
    """The one-node packed op against head split, the reference attention and head merge."""
    b, t, h, hd = 2, 11, 3, 4
    qkv = rng.standard_normal((b, t, 3 * h * hd))
    g = rng.standard_normal((b, t, h * hd))

    def unpacked(x):
        q, k, v = (F.transpose(F.reshape(part, b, t, h, hd), 1, 2) for part in F.split(x, h * hd, dim=-1))
        out, _ = F.attention_reference(q, k, v, is_causal=causal)
        return F.reshape(F.transpose(out, 1, 2), b, t, h * hd)

    def packed(x):
        return F.packed_self_attention(x, h, is_causal=causal, tiled=tiled, block_size=4)

    results = []
    for fn in (unpacked, packed):
        x = tl.tensor(qkv, requires_grad=True)
        out = fn(x)
        out.backward(tl.tensor(g))
        results.append((out.numpy(), x.grad.numpy()))
    for a, b_ in zip(*results):
        np.testing.assert_allclose(a, b_, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="packed_self_attention: qkv must be"):
        F.packed_self_attention(tl.zeros(2, 3, 10), 3)


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_gpt_with_tiled_attention_equals_fused(pos, rng):
    """``GPTConfig(attention="tiled")``: same weights give the same loss and gradients as the
    default fused attention (float64), and the same greedy tokens with the KV cache."""
    from tensorlite import nn
    from tensorlite.generate import generate

    grads, losses = {}, {}
    x = rng.integers(0, 30, (2, 20))
    y = rng.integers(0, 30, (2, 20))
    models = {}
    for kind in ("fused", "tiled"):
        tl.manual_seed(0)
        model = nn.GPT(nn.GPTConfig(vocab_size=30, seq_len=20, d_model=16, n_layers=2, n_heads=2, pos=pos,
                                    attention=kind))
        for p in model.parameters():
            p.data = p.data.astype(np.float64)
        loss = model.loss(x, y)
        loss.backward()
        losses[kind] = loss.item()
        grads[kind] = {n: p.grad.numpy() for n, p in model.named_parameters()}
        models[kind] = model
    assert losses["tiled"] == pytest.approx(losses["fused"], rel=1e-12)
    for name, g in grads["fused"].items():
        np.testing.assert_allclose(grads["tiled"][name], g, rtol=1e-9, atol=1e-12, err_msg=name)
    assert "attention='tiled'" in repr(models["tiled"].blocks[0].attn)
    tokens = {k: generate(m, [1, 2, 3], 25, temperature=0) for k, m in models.items()}
    assert tokens["tiled"] == tokens["fused"]


def test_gpt_config_attention_field_is_validated_and_round_trips():
    from tensorlite import nn

    cfg = nn.GPTConfig(vocab_size=10, seq_len=8, d_model=8, n_layers=1, n_heads=2, attention="tiled")
    assert nn.GPTConfig.from_dict(cfg.to_dict()).attention == "tiled"
    with pytest.raises(ValueError, match="GPTConfig: attention must be one of 'fused', 'tiled', got 'flash'"):
        nn.GPTConfig(vocab_size=10, seq_len=8, d_model=8, n_layers=1, n_heads=2, attention="flash")
