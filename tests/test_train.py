"""The training loop: it learns, accumulates exactly, resumes exactly, and fails safely."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import tensorlite as tl
from tensorlite import faults, nn, optim
from tensorlite.checkpoint import load_checkpoint
from tensorlite.debug import Probes, WriteDashboard
from tensorlite.runlog import read_jsonl as read_metrics
from tensorlite.train import (
    DataConfig,
    NonFiniteLossError,
    OptimConfig,
    RunConfig,
    TrainConfig,
    Trainer,
    TrainingInterrupted,
    build,
    load_run,
    train,
)

CORPUS = "".join(
    f"def f{i}(x):\n    return x * {i} + {i % 7}\n\n" for i in range(400)
)  # ~13k characters of python-ish text
VOCAB = len(set(CORPUS))


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS)
    return str(path)


def tiny(tmp_path, corpus, **kw) -> TrainConfig:
    base = dict(corpus=corpus, seq_len=16, d_model=32, n_layers=1, n_heads=2, batch_size=8, steps=20,
                lr=3e-3, warmup=5, eval_interval=10, eval_batches=2, ckpt_interval=0, progress=False,
                out_dir=str(tmp_path / "runs"), name="run")
    base.update(kw)
    return TrainConfig().replace(**base)


class FixedBatcher:
    """Always the same (x, y), split into micro-batches in order: a batcher with no randomness."""

    def __init__(self, x, y, micro: int):
        self.x, self.y, self.micro, self.i = x, y, micro, 0

    def get_batch(self, split="train"):
        n = self.x.shape[0] // self.micro
        j = self.i % self.micro
        self.i += 1
        sl = slice(j * n, (j + 1) * n)
        return tl.tensor(self.x[sl]), tl.tensor(self.y[sl])

    def state_dict(self):
        return {"i": self.i}

    def load_state_dict(self, state):
        self.i = state["i"]


def with_batcher(cfg, batcher):
    """A trainer of ``cfg``'s parts with another batcher."""
    parts = build(cfg)
    parts.batcher = batcher
    return Trainer(cfg, parts=parts)


def losses(run_dir) -> dict:
    return {r["step"]: r["loss"] for r in read_metrics(run_dir / "metrics.jsonl") if "event" not in r}


# ------------------------------------------------------------------------------------------------
# it learns
# ------------------------------------------------------------------------------------------------
def test_default_model_starts_at_ln_vocab(tmp_path):
    cfg = TrainConfig().replace(corpus_max_chars=100_000, out_dir=str(tmp_path), progress=False)
    t = Trainer(cfg)
    assert t.model.config == nn.GPTConfig(vocab_size=t.tokenizer.vocab_size)  # the defaults are GPTConfig's
    V = t.tokenizer.vocab_size
    assert abs(t.evaluate(batches=2) - math.log(V)) < 0.1
    assert not (tmp_path / t.run_dir.name).exists()  # nothing written before fit()


def test_overfits_one_batch(tmp_path, corpus):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 24, (4, 16))
    y = rng.integers(0, 24, (4, 16))
    cfg = tiny(tmp_path, corpus, steps=150, lr=1e-2, warmup=10, lr_min=1e-2, eval_interval=0,
               weight_decay=0.0, batch_size=4)
    res = with_batcher(cfg, FixedBatcher(x, y, 1)).fit()
    assert res.final_loss < 0.05, res.losses[-5:]


def test_period_5_sequence_is_learned_quickly(tmp_path):
    path = tmp_path / "abcde.txt"
    path.write_text("abcde" * 400)
    cfg = tiny(tmp_path, str(path), steps=60, lr=1e-2, warmup=5, lr_min=1e-3, eval_interval=30)
    res = train(cfg)
    assert res.losses[0] > 1.4  # starts near ln 5 = 1.61
    assert res.final_loss < 0.05 and res.final_val_loss < 0.05


# ------------------------------------------------------------------------------------------------
# exactness: accumulation, schedule, metrics
# ------------------------------------------------------------------------------------------------
class GradGrab:
    def on_before_optimizer_step(self, trainer):
        self.grads = {n: p.grad.numpy().copy() for n, p in trainer.model.named_parameters()}


def test_accumulation_equals_the_big_batch(tmp_path, corpus):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 24, (8, 16))
    y = rng.integers(0, 24, (8, 16))
    got = {}
    for k in (1, 2, 4):
        grab = GradGrab()
        cfg = tiny(tmp_path, corpus, steps=1, batch_size=8 // k, grad_accum=k, clip=0.0, eval_interval=0,
                   name=f"k{k}")
        trainer = with_batcher(cfg, FixedBatcher(x, y, k))
        trainer.callbacks.append(grab)
        res = trainer.fit()
        got[k] = (grab.grads, res.final_loss)
    for k in (2, 4):
        assert got[k][1] == pytest.approx(got[1][1], abs=1e-6)  # the logged loss is the big batch's
        for name, g in got[1][0].items():
            np.testing.assert_allclose(got[k][0][name], g, rtol=1e-4, atol=1e-7, err_msg=name)


def test_metrics_records_schedule_and_clipping(tmp_path, corpus):
    res = train(tiny(tmp_path, corpus, steps=12, warmup=4, lr=2e-3, lr_min=2e-4, clip=0.5, eval_interval=5))
    recs = read_metrics(res.metrics_path)
    assert recs[0]["event"] == "start" and recs[0]["vocab_size"] == VOCAB
    assert 0 < recs[0]["bigram_entropy"] < recs[0]["unigram_entropy"] < math.log(VOCAB)
    steps = [r for r in recs if "event" not in r]
    assert [r["step"] for r in steps] == list(range(12))
    for r in steps:
        assert set(r) >= {"step", "loss", "lr", "grad_norm", "grad_norm_clipped", "clipped", "tokens_per_s"}
        want = optim.warmup_cosine_lr(r["step"], lr_max=2e-3, warmup_steps=4, total_steps=12, lr_min=2e-4)
        assert r["lr"] == pytest.approx(want)
        assert r["clipped"] == (r["grad_norm"] > 0.5)
        assert r["grad_norm_clipped"] == pytest.approx(min(r["grad_norm"], 0.5), rel=1e-5)
        assert r["tokens_per_s"] > 0
    assert [r["step"] for r in steps if "val_loss" in r] == [0, 5, 10, 11]
    assert res.final_val_loss == steps[-1]["val_loss"]


def test_warmup_zero_and_no_clipping(tmp_path, corpus):
    res = train(tiny(tmp_path, corpus, steps=3, warmup=0, clip=0.0, lr=1e-3))
    steps = [r for r in read_metrics(res.metrics_path) if "event" not in r]
    assert steps[0]["lr"] == pytest.approx(1e-3)  # no warmup: lr_max at once
    assert not any(r["clipped"] for r in steps)
    assert all(r["grad_norm"] == r["grad_norm_clipped"] for r in steps)


def test_callbacks_see_the_trainer_and_can_add_metrics(tmp_path, corpus):
    seen = []

    class CB:
        def on_train_start(self, trainer):
            seen.append(("start", trainer.step, type(trainer.optimizer).__name__))

        def on_step_end(self, trainer, metrics):
            assert trainer.step == metrics["step"]
            metrics["custom"] = {"step_twice": 2 * metrics["step"]}

        def on_train_end(self, trainer):
            seen.append(("end", trainer.step, trainer.run_dir.name))

    res = train(tiny(tmp_path, corpus, steps=3, log_interval=100), callbacks=[CB()])
    assert seen == [("start", 0, "AdamW"), ("end", 3, "run")]
    steps = [r for r in read_metrics(res.metrics_path) if "event" not in r]
    assert [r["custom"]["step_twice"] for r in steps] == [0, 2, 4]  # extra keys force the line out


# ------------------------------------------------------------------------------------------------
# checkpoints and resume
# ------------------------------------------------------------------------------------------------
class StopAt:
    """Ctrl-C at the end of step ``step`` (after its update) or inside its forward (before it)."""

    def __init__(self, step: int, where: str = "end"):
        self.step, self.where = step, where

    def on_train_start(self, trainer):
        if self.where == "forward":
            def hook(module, inputs, output):
                if trainer.step == self.step and trainer.model.training:
                    raise KeyboardInterrupt
            self.handle = trainer.model.blocks[0].register_forward_hook(hook)

    def on_step_end(self, trainer, metrics):
        if self.where == "end" and metrics["step"] == self.step:
            raise KeyboardInterrupt


@pytest.mark.parametrize("dropout,where", [(0.0, "end"), (0.1, "end"), (0.1, "forward")])
def test_resume_continues_exactly(tmp_path, corpus, dropout, where):
    kw = dict(steps=20, dropout=dropout, eval_interval=7, ckpt_interval=0)
    full = train(tiny(tmp_path, corpus, name="full", **kw))

    stop = 9 if where == "end" else 10  # either way 10 updates are done when Ctrl-C lands
    with pytest.raises(TrainingInterrupted) as info:
        train(tiny(tmp_path, corpus, name="split", **kw), callbacks=[StopAt(stop, where)])
    assert info.value.step == 10
    assert load_checkpoint(info.value.run_dir).step == 10
    events = [r for r in read_metrics(info.value.run_dir / "metrics.jsonl") if r.get("event") == "interrupt"]
    assert events == [{"event": "interrupt", "step": 10}]

    resumed = train(resume=info.value.run_dir)
    assert resumed.steps == 20
    a, b = losses(full.run_dir), losses(resumed.run_dir)
    assert sorted(b) == list(range(20))  # each step exactly once, none lost or doubled
    np.testing.assert_allclose([b[s] for s in range(20)], [a[s] for s in range(20)], rtol=0, atol=1e-6)
    m_full, _, _ = load_run(full.run_dir)
    m_res, _, _ = load_run(resumed.run_dir)
    for (name, p), (_, q) in zip(m_full.named_parameters(), m_res.named_parameters()):
        np.testing.assert_allclose(q.numpy(), p.numpy(), atol=1e-6, err_msg=name)


def test_resume_may_extend_steps_but_not_change_the_model(tmp_path, corpus):
    res = train(tiny(tmp_path, corpus, steps=4))
    more = train(tiny(tmp_path, corpus, steps=6), resume=res.run_dir)
    assert more.steps == 6 and sorted(losses(more.run_dir)) == list(range(6))
    with pytest.raises(ValueError, match="d_model is 32 in .* and cannot change"):
        train(tiny(tmp_path, corpus, steps=8, d_model=64), resume=res.run_dir)


def test_kill_during_checkpoint_write_keeps_previous(tmp_path, corpus, monkeypatch):
    from tensorlite import checkpoint as ck

    real, calls = ck._write_file, []

    def dying(path, data):
        calls.append(path)
        if path.name == "optimizer.safetensors" and len(calls) > 6:  # the second checkpoint
            raise OSError("simulated power cut")
        real(path, data)

    monkeypatch.setattr(ck, "_write_file", dying)
    with pytest.raises(OSError, match="power cut"):
        train(tiny(tmp_path, corpus, steps=20, ckpt_interval=5))
    monkeypatch.undo()
    run = tmp_path / "runs" / "run"
    assert load_checkpoint(run).step == 5
    res = train(resume=run)  # and the run goes on from there
    assert res.steps == 20 and sorted(losses(run)) == list(range(20))


class Poison:
    """Make the weights NaN after step ``step``, so the next loss is NaN."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer, metrics):
        if metrics["step"] == self.step:
            trainer.model.lm_head.weight.data[...] = np.nan


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, corpus):
    with pytest.raises(NonFiniteLossError, match=r"step 12: loss is nan.*step 10\)") as info:
        train(tiny(tmp_path, corpus, steps=20, ckpt_interval=5), callbacks=[Poison(11)])
    assert info.value.step == 12 and isinstance(info.value, RuntimeError)
    run = tmp_path / "runs" / "run"
    recs = read_metrics(run / "metrics.jsonl")
    assert recs[-1] == {"event": "nan", "step": 12}
    ck = load_checkpoint(run)
    assert ck.step == 10
    assert all(np.isfinite(v).all() for v in ck.model_state.values())


def test_nan_before_any_checkpoint_says_so(tmp_path, corpus):
    with pytest.raises(NonFiniteLossError, match="no checkpoint had been written yet"):
        train(tiny(tmp_path, corpus, steps=5, ckpt_interval=0), callbacks=[Poison(1)])
    assert not (tmp_path / "runs" / "run" / "checkpoint").exists()


def test_run_dir_contents_and_load_run(tmp_path, corpus):
    res = train(tiny(tmp_path, corpus, steps=2))
    names = {p.name for p in res.run_dir.iterdir()}
    assert {"config.json", "tokenizer.json", "metrics.jsonl", "checkpoint"} <= names
    cfg = json.loads((res.run_dir / "config.json").read_text())
    assert cfg["model"]["d_model"] == 32 and cfg["run"]["name"] == "run" and cfg["faults"] == []
    model, tok, config = load_run(res.run_dir)
    assert tok.vocab_size == VOCAB and not model.training and config.optim.steps == 2
    with pytest.raises(FileExistsError, match="already holds a run"):
        Trainer(tiny(tmp_path, corpus, steps=2))


def test_config_errors_name_the_field(tmp_path, corpus):
    with pytest.raises(ValueError, match=r"n_heads \(3\) must divide d_model \(32\)"):
        Trainer(tiny(tmp_path, corpus, n_heads=3))
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        tiny(tmp_path, corpus, steps=0)
    with pytest.raises(ValueError, match="DataConfig: tokenizer must be one of 'char', 'bpe', got 'word'"):
        tiny(tmp_path, corpus, tokenizer="word")
    with pytest.raises(ValueError, match="unknown field"):
        TrainConfig.from_dict({"d_modle": 3})
    assert not (tmp_path / "runs").exists()


def test_train_faults_are_wired(tmp_path, corpus):
    t = Trainer(tiny(tmp_path, corpus, faults=("adamw_decay_on_moment", "bos_pad_misalignment")))
    assert type(t.optimizer) is faults.loop.AdamWDecayOnMoment and type(t.batcher) is faults.loop.MisalignedBatcher
    res = train(tiny(tmp_path, corpus, steps=3, name="flip", faults=("ce_sign_flip", "no_warmup")))
    assert res.final_loss < 0
    first = [r for r in read_metrics(res.metrics_path) if "event" not in r][0]
    assert first["lr"] == pytest.approx(3e-3)  # no_warmup: the peak LR at step 0


def test_probes_and_dashboard_are_callbacks(tmp_path, corpus):
    res = train(tiny(tmp_path, corpus, steps=6), callbacks=[Probes(interval=4), WriteDashboard()])
    probed = [r["step"] for r in read_metrics(res.metrics_path) if "act_rms" in r]
    assert probed == [0, 4, 5]  # every interval steps, and the last
    assert (res.run_dir / "dashboard.html").stat().st_size > 1000
    plain = train(tiny(tmp_path, corpus, steps=2, name="plain"))
    assert not (plain.run_dir / "dashboard.html").exists()  # the loop itself writes no report


# ------------------------------------------------------------------------------------------------
# the config: four sections, each field declared once
# ------------------------------------------------------------------------------------------------
def test_config_sections_and_flat_names():
    import dataclasses

    c = TrainConfig()
    assert isinstance(c.model, nn.GPTConfig) and c.model.vocab_size is None
    assert (type(c.data), type(c.optim), type(c.run)) == (DataConfig, OptimConfig, RunConfig)
    names = [f.name for cls in (nn.GPTConfig, DataConfig, OptimConfig, RunConfig) for f in dataclasses.fields(cls)]
    assert len(names) == len(set(names))  # every field once: replace() and the flags take them by name
    d = c.replace(d_model=32, steps=7, bpe_vocab_size=300, seed=3, faults=("no_warmup",))
    assert (d.model.d_model, d.optim.steps, d.data.bpe_vocab_size, d.run.seed, d.faults) == (32, 7, 300, 3, ("no_warmup",))
    assert c.model.d_model == 64  # replace returns a copy
    assert TrainConfig.from_dict(d.to_dict()) == d
    assert d.get("steps") == 7 and d.tokens_per_step == 32 * 64 * 7 // 7
    with pytest.raises(ValueError, match="unknown field 'colour'"):
        c.replace(colour="red")
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        c.replace(steps=0)
    with pytest.raises(ValueError, match="GPTConfig: norm must be one of 'layernorm', 'rmsnorm', got 'batch'"):
        c.replace(norm="batch")
    with pytest.raises(ValueError, match="unknown field.*in optim: colour"):
        TrainConfig.from_dict({**c.to_dict(), "optim": {"colour": 1}})


def test_a_flat_config_of_tensorlite_0_1_loads_with_vocab_size_as_the_bpe_target():
    old = {"d_model": 32, "steps": 5, "tokenizer": "bpe", "vocab_size": 300, "probe_interval": 10, "faults": []}
    c = TrainConfig.from_dict(old)
    assert c.data.bpe_vocab_size == 300 and c.model.vocab_size is None and c.model.d_model == 32


def test_model_vocab_size_may_pad_the_tokenizer_but_not_cut_it():
    c = TrainConfig()
    assert c.gpt_config(96).vocab_size == 96
    assert c.replace(vocab_size=128).gpt_config(96).vocab_size == 128
    with pytest.raises(ValueError, match=r"model.vocab_size \(50\) is smaller than the tokenizer's vocabulary \(96\)"):
        c.replace(vocab_size=50).gpt_config(96)
