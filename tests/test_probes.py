"""Probes: the metrics behind the dashboard, read through hooks, written on probe steps."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import tensorlite as tl
from tensorlite import faults, nn
from tensorlite.debug import probes as P
from tensorlite.debug.probes import Probes, forward_stats, is_dead_head, spectral_norm
from tensorlite.train import TrainConfig, Trainer, train

RUN = dict(seq_len=16, d_model=32, n_layers=2, n_heads=4, steps=12, batch_size=4, lr=3e-3, warmup=2,
           eval_interval=6, eval_batches=1, ckpt_interval=0, corpus_max_chars=30_000, progress=False)


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    out = tmp_path_factory.mktemp("probes")
    res = train(TrainConfig().replace(**RUN, out_dir=str(out), name="probed"), callbacks=[Probes(interval=5)])
    plain = train(TrainConfig().replace(**RUN, out_dir=str(out), name="plain"))
    return res, plain


def test_probe_steps_and_keys(probed):
    res, _ = probed
    rows = [r for r in _rows(res.run_dir) if "event" not in r]
    probe_steps = [r["step"] for r in rows if "act_rms" in r]
    assert probe_steps == [0, 5, 10, 11]  # every 5 steps, and the last one
    r = next(r for r in rows if r["step"] == 5)
    assert list(r["act_rms"]) == ["blocks.0", "blocks.1", "norm_f"]
    assert r["n_heads_total"] == 8 and 0 <= r["dead_heads"] <= 8
    assert len(r["attn_entropy"]) == 2 and len(r["attn_entropy"][0]) == 4
    assert len(r["head_share"]) == 2 and sum(r["head_share"][0]) == pytest.approx(1.0, abs=1e-3)
    assert 0.0 <= r["dead_units"] <= 1.0
    assert r["nonfinite"] is False
    assert 0.0 <= r["clipped_frac"] <= 1.0
    weights = {n for n, p in Trainer(TrainConfig().replace(**RUN)).model.named_parameters() if p.ndim == 2}
    assert set(r["spectral_norm"]) == weights and set(r["update_ratio"]) == weights
    assert "blocks.0.norm1.bias" in r["grad_norm_layer"]


def test_probes_do_not_change_training(probed):
    res, plain = probed
    assert res.losses == plain.losses  # hooks read; they never touch the RNG, the batcher or the weights


def test_layer_grad_norms_add_up_to_the_global_norm(probed):
    res, _ = probed
    for r in _rows(res.run_dir):
        if "grad_norm_layer" in r:
            total = math.sqrt(sum(v * v for v in r["grad_norm_layer"].values()))
            assert total == pytest.approx(r["grad_norm"], rel=1e-3)  # pre-clip, like grad_norm


def test_entropy_at_init_is_uniform_over_the_causal_window(probed):
    res, _ = probed
    r0 = next(r for r in _rows(res.run_dir) if r.get("step") == 0)
    # tiny init: near-uniform attention, query t spreads over t + 1 keys: mean_t ln(t + 1)
    uniform = float(np.mean(np.log(np.arange(1, RUN["seq_len"] + 1))))
    assert np.allclose(r0["attn_entropy"], uniform, atol=0.01)


def test_spectral_norm_and_update_ratio_match_numpy():
    tl.manual_seed(0)
    trainer = Trainer(TrainConfig().replace(**RUN, out_dir="unused", name="x"))
    probes = Probes(interval=1, spectral_iters=2)
    trainer.callbacks.append(probes)  # so train_step calls on_before_optimizer_step
    probes.on_train_start(trainer)
    w = trainer.model.blocks[0].attn.qkv.weight
    for s in range(4):  # persistent vectors: the estimate sharpens over probe steps
        trainer.step = s
        snap = w.numpy().copy()
        metrics = trainer.train_step()
        probes.on_step_end(trainer, metrics)
    sigma = np.linalg.svd(snap.astype(np.float64), compute_uv=False)[0]  # measured before the update
    assert metrics["spectral_norm"]["blocks.0.attn.qkv.weight"] == pytest.approx(sigma, rel=1e-3)
    ratio = np.linalg.norm(w.numpy().astype(np.float64) - snap) / np.linalg.norm(snap)
    assert metrics["update_ratio"]["blocks.0.attn.qkv.weight"] == pytest.approx(ratio, rel=1e-4)


def test_spectral_norm_function():
    a = np.random.default_rng(0).standard_normal((20, 12)).astype(np.float32)
    assert spectral_norm(a, iters=50) == pytest.approx(np.linalg.svd(a, compute_uv=False)[0], rel=1e-4)
    assert spectral_norm(tl.tensor(a), iters=50) == pytest.approx(np.linalg.norm(a, 2), rel=1e-4)


@pytest.mark.parametrize("before_hook", [True, False])
def test_one_host_fetch_per_probe_step(monkeypatch, before_hook):
    calls = []
    real = P.to_numpy
    monkeypatch.setattr(P, "to_numpy", lambda a: calls.append(1) or real(a))
    tl.manual_seed(0)
    trainer = Trainer(TrainConfig().replace(**RUN, out_dir="unused", name="x"))
    probes = Probes(interval=2)
    if before_hook:
        trainer.callbacks.append(probes)
    probes.on_train_start(trainer)
    for s in range(4):
        trainer.step = s
        before = len(calls)
        m = trainer.train_step()
        probes.on_step_end(trainer, m)
        assert len(calls) - before == (1 if s % 2 == 0 else 0)


def test_forward_stats_and_dead_heads_at_init_x100():
    cfg = dict(vocab_size=30, seq_len=16, d_model=32, n_layers=2, n_heads=4)
    x = tl.tensor(np.random.default_rng(0).integers(0, 30, size=(2, 16)))
    tl.manual_seed(0)
    healthy = forward_stats(nn.GPT(nn.GPTConfig(**cfg)), x)
    tl.manual_seed(0)
    broken = forward_stats(faults.inject(nn.GPT(nn.GPTConfig(**cfg)), "init_x100"), x)
    assert healthy["dead_heads"] == 0 and broken["dead_heads"] == 8  # saturated softmax: one-hot heads
    assert max(broken["act_rms"].values()) > 1000 * max(v for k, v in healthy["act_rms"].items() if k != "norm_f")
    assert healthy["finite"] and healthy["n_heads_total"] == 8


def test_dead_head_rule():
    assert not is_dead_head(2.0, 0.25, 4)
    assert is_dead_head(0.1, 0.25, 4)  # collapsed onto one key
    assert is_dead_head(2.0, 0.02, 4)  # silent: below a tenth of an even split
    assert is_dead_head(float("nan"), 0.25, 4)


def test_dead_units_count_gates_never_positive():
    tl.manual_seed(0)
    model = nn.GPT(nn.GPTConfig(vocab_size=30, seq_len=8, d_model=16, n_layers=1, n_heads=2))
    with tl.no_grad():
        model.blocks[0].ffn.fc.bias[:16] = -100.0  # the first 16 of 64 hidden units can never fire
    st = forward_stats(model, tl.tensor(np.random.default_rng(0).integers(0, 30, size=(2, 8))))
    assert st["dead_units"] == pytest.approx(16 / 64)


def test_nonfinite_sentinel():
    tl.manual_seed(0)
    trainer = Trainer(TrainConfig().replace(**RUN, out_dir="unused", name="x"))
    probes = Probes(interval=1)
    probes.on_train_start(trainer)
    m = trainer.train_step()
    with tl.no_grad():
        trainer.model.lm_head.weight[0, 0] = float("nan")
    probes.on_step_end(trainer, m)
    assert m["nonfinite"] is True and m["nonfinite_params"] == ["lm_head.weight"]


def test_explicit_batch_and_interval_validation():
    with pytest.raises(ValueError, match="interval must be >= 1"):
        Probes(interval=0)
    tl.manual_seed(0)
    trainer = Trainer(TrainConfig().replace(**RUN, out_dir="unused", name="x"))
    x = tl.tensor(np.zeros((2, 16), dtype=np.int64))
    probes = Probes(interval=1, batch=x)
    probes.on_train_start(trainer)
    m = trainer.train_step()
    probes.on_step_end(trainer, m)
    assert probes.batch is x and "act_rms" in m


@pytest.mark.gpu
def test_probes_on_gpu(tmp_path):
    res = train(TrainConfig().replace(**RUN, device="cuda", out_dir=str(tmp_path), name="gpu"), callbacks=[Probes(5)])
    rows = [r for r in _rows(res.run_dir) if "act_rms" in r]
    assert rows and all(not r["nonfinite"] for r in rows)
