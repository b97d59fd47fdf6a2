"""diagnose(): names a training failure from its metrics, with the evidence; silent on a healthy run."""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from tensorlite.debug import Probes, Thresholds, data_entropy, diagnose, load_metrics
from tensorlite.debug.diagnose import FAILURES
from tensorlite.optim import warmup_cosine_lr
from tensorlite.train import NonFiniteLossError, TrainConfig, train

V = 64
LN_V = math.log(V)


def _run(n=200, *, lr_max=1e-2, warmup=20, loss_end=2.0, tau=50.0, noise=0.03, clip_every=0,
         header=True, data_entropy=3.2, probes=True, seed=0, **extra_rows):
    """Synthetic metrics of a smooth run (the healthy baseline the failure cases perturb)."""
    rng = np.random.default_rng(seed)
    rows = [{"event": "start", "vocab_size": V, "data_entropy": data_entropy, "config": {"clip": 1.0}}] if header else []
    for s in range(n):
        lr = warmup_cosine_lr(s, lr_max=lr_max, warmup_steps=warmup, total_steps=n, lr_min=lr_max / 10)
        loss = loss_end + (LN_V - loss_end) * math.exp(-s / tau) + noise * rng.standard_normal()
        g = 0.8 + 0.1 * rng.standard_normal()
        r = {"step": s, "loss": loss, "lr": lr, "grad_norm": g, "grad_norm_clipped": min(g, 1.0),
             "clipped": bool(clip_every and s % clip_every == 0), "tokens_per_s": 1e4}
        if s % 50 == 0 or s == n - 1:
            r["val_loss"] = loss + 0.05
        if probes and s % 10 == 0:
            r.update(act_rms={"blocks.0": 0.5, "blocks.1": 0.7, "norm_f": 1.0}, dead_heads=0, n_heads_total=8,
                     dead_units=0.01, update_ratio={"blocks.0.attn.qkv.weight": 1e-2})
        rows.append(r)
    return rows


def _steps(rows):
    return [r for r in rows if "step" in r and "event" not in r]


def test_healthy_synthetic_run_is_healthy():
    d = diagnose(_run())
    assert d.healthy and d.name == "healthy" and d.findings == []
    assert str(d).startswith("healthy: loss 4.16 -> 2")


def test_impossible_loss_from_the_sweep_issue():
    # seed 003: flat 22.3 against a ceiling of ln(32768) = 10.4
    rows = [{"event": "start", "vocab_size": 32768}] + [
        {"step": s, "loss": 22.3, "lr": 1e-3, "grad_norm": 1.0, "clipped": False} for s in range(100)]
    d = diagnose(rows)
    assert d.name == "impossible_loss"
    assert d.findings[0].evidence == "loss 22.3 at step 0 > ln(32768) = 10.4"
    assert d.findings[0].doc_url.endswith("#loss-above-lnvocab")


def test_stuck_at_ln_vocab():
    rows = _run(loss_end=LN_V)
    d = diagnose(rows)
    assert d.names == ["stuck_at_uniform"]
    assert "vs ln(64) = 4.16" in d.findings[0].evidence


def test_divergence_to_nan():
    rows = _run()
    for r in _steps(rows):
        if r["step"] >= 150:
            r["loss"] = float("nan")
    rows.append({"event": "nan", "step": 150})
    d = diagnose(rows)
    assert d.name == "divergence"
    assert "step 150" in d.findings[0].evidence


def test_nan_event_alone_is_divergence():
    rows = _run(n=120) + [{"event": "nan", "step": 120}]
    assert diagnose(rows).name == "divergence"


def _clip_all(rows, norm):
    for r in _steps(rows):
        r.update(grad_norm=norm, grad_norm_clipped=1.0, clipped=True)
    return rows


def test_clipping_on_most_steps():
    d = diagnose(_clip_all(_run(), 5.0))
    assert d.names == ["clipping_too_often"]
    assert d.findings[0].severity == "warning"
    assert d.facts["clipped_frac"] == 1.0
    assert d.findings[0].evidence == ("clipped on 100% of steps 50..199, the median pre-clip norm 5 x the "
                                      "threshold 1")


def test_clipping_that_only_trims_is_fine():
    # the default config clips ~80% of steps at 1.4x the threshold and trains well: AdamW rescales anyway
    assert diagnose(_clip_all(_run(), 1.4)).healthy
    assert diagnose(_run(clip_every=4)).healthy


def test_plateau_from_a_tiny_learning_rate():
    rows = _run(lr_max=1e-6, loss_end=LN_V - 0.5, tau=4000)
    for r in _steps(rows):
        if "update_ratio" in r:
            r["update_ratio"] = {"w": 3e-6}
    d = diagnose(rows)
    assert d.names == ["lr_too_low"]


def test_missing_warmup_needs_both_the_lr_and_early_trouble():
    rows = _run(warmup=0)
    assert diagnose(rows).healthy  # LR at max from step 0 but a smooth start: no alarm
    for r in _steps(rows):
        if r["step"] == 6:
            r["grad_norm"] = 9.0
    d = diagnose(rows)
    assert d.names == ["missing_warmup"]
    assert "= 1 x lr_max" in d.findings[0].evidence and "at step 6" in d.findings[0].evidence
    assert diagnose(_run(warmup=20)).healthy


def test_bad_init_from_activations_at_step_0():
    rows = _run()
    _steps(rows)[0]["act_rms"] = {"blocks.0": 115.0, "blocks.1": 160.0, "norm_f": 1.0}
    _steps(rows)[0]["loss"] = 32.0
    d = diagnose(rows)
    assert d.name == "bad_init" and "impossible_loss" in d.names
    assert d.findings[0].evidence == "residual-stream RMS 160 at step 0 (healthy < 20)"


def test_bad_init_without_probes_from_an_impossible_start_then_nan():
    rows = _run(n=25, probes=False)
    _steps(rows)[0]["loss"] = 40.0
    rows.append({"event": "nan", "step": 25})
    assert diagnose(rows).name == "bad_init"


def test_broken_causal_mask():
    rows = _run(loss_end=0.05, tau=30)
    for r in _steps(rows):
        if "dead_heads" in r and r["step"] > 100:
            r["dead_heads"] = 5
    d = diagnose(rows)
    assert d.names == ["broken_causal_mask"]
    assert "dead heads 5/8" in d.findings[0].evidence
    assert "both below 0.5 (the lower of 0.3 x data entropy 3.2 and 0.5)" in d.findings[0].evidence


def test_a_long_healthy_run_below_a_third_of_the_unigram_entropy_is_not_a_broken_mask():
    # unigram entropy 3.2: a good model of real text ends far below it, but not near 0
    assert diagnose(_run(n=600, loss_end=0.8, tau=100)).healthy


def test_overfitting_is_not_a_broken_mask():
    rows = _run(loss_end=0.05, tau=30)
    for r in _steps(rows):
        if "val_loss" in r:
            r["val_loss"] = 2.5 + r["step"] / 200  # val far above train: memorisation
    assert "broken_causal_mask" not in diagnose(rows).names


def test_inputs_path_run_dir_and_torn_line(tmp_path):
    rows = _run()
    run = tmp_path / "run"
    run.mkdir()
    text = "".join(json.dumps(r) + "\n" for r in rows) + '{"step": 200, "loss": 2.'
    (run / "metrics.jsonl").write_text(text)
    for src in (run, run / "metrics.jsonl", str(run)):
        assert diagnose(src).healthy
    m = load_metrics(run)
    assert len(m.rows) == 200 and m.vocab_size == V and m.data_entropy == 3.2


def test_vocab_size_comes_from_the_header_never_from_a_config(tmp_path):
    # the vocab_size of a tensorlite 0.1 config.json was the BPE tokenizer's target, not the model's
    rows = _run(header=False)
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 2}))
    assert load_metrics(tmp_path).vocab_size is None
    assert load_metrics(_run()).vocab_size == V


def test_missing_metrics_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics log"):
        diagnose(tmp_path)


def test_no_rows_is_not_a_crash():
    d = diagnose([{"event": "start", "vocab_size": 10}])
    assert d.healthy and d.summary == "no steps logged"


def test_thresholds_can_be_changed():
    rows = _clip_all(_run(), 1.4)
    assert diagnose(rows, thresholds=Thresholds(clip_over=1.2)).names == ["clipping_too_often"]


def test_every_failure_has_title_hint_and_anchor():
    for name, (title, hint, anchor) in FAILURES.items():
        assert title and hint and anchor and " " not in anchor, name


def test_data_entropy_unigram_and_bigram():
    h = data_entropy([0, 1] * 500)
    assert h["unigram"] == pytest.approx(math.log(2), abs=1e-4)
    assert h["bigram"] == pytest.approx(0.0, abs=1e-4)  # alternation is fully predictable
    with pytest.raises(ValueError, match="at least 2 tokens"):
        data_entropy([3])


# ------------------------------------------------------------------------------------------------
# The course page's three engineered failures, from short real runs of a tiny model
# ------------------------------------------------------------------------------------------------
# One healthy config; each failure changes exactly one thing. RoPE makes the copy-from-the-future
# trick cheap to learn, so the open mask shows within 200 steps (with learned positions it takes
# far longer in a model this small); lr 2e-2 makes a missing warmup hurt.
BASE = dict(seq_len=32, d_model=32, n_layers=2, n_heads=4, pos="rope", steps=200, batch_size=16, lr=2e-2,
            lr_min=1e-3, warmup=20, clip=1.0, eval_interval=50, eval_batches=2, ckpt_interval=0,
            corpus_max_chars=200_000, progress=False)
BREAKS = {"healthy": {}, "init_x100": {"faults": ("init_x100",)}, "no_warmup": {"warmup": 0},
          "causal_mask_open": {"faults": ("causal_mask_open",)}}
EXPECTED = {"healthy": "healthy", "init_x100": "bad_init", "no_warmup": "missing_warmup",
            "causal_mask_open": "broken_causal_mask"}


def _shared_dir(tmp_path_factory) -> Path:
    # Under xdist every worker has its own basetemp inside one per-run folder: share that folder,
    # so the four runs happen once per test session whichever worker asks first.
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def break_it_runs(tmp_path_factory):
    out = _shared_dir(tmp_path_factory) / "tensorlite-break-it"
    with open(str(out) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = out / "done"
        if not done.exists():
            with threadpool_limits(1):  # tiny matrices: threads only add contention
                for name, change in BREAKS.items():
                    cfg = TrainConfig().replace(**{**BASE, **change, "out_dir": str(out), "name": name})
                    shutil.rmtree(out / name, ignore_errors=True)
                    try:
                        train(cfg, callbacks=[Probes(interval=10)])
                    except NonFiniteLossError:
                        pass  # the run dir and its metrics are there: that is what is diagnosed
            done.write_text("ok")
    return {name: out / name for name in BREAKS}


@pytest.mark.parametrize("name", list(BREAKS))
def test_diagnosis_names_each_engineered_failure(break_it_runs, name):
    d = diagnose(break_it_runs[name])
    assert d.name == EXPECTED[name], str(d)
    if name == "healthy":
        assert d.findings == []


def test_break_it_signatures_in_the_measurements(break_it_runs):
    facts = {n: diagnose(p).facts for n, p in break_it_runs.items()}
    # init x100: the residual stream is two orders of magnitude above the healthy run at step 0
    assert facts["init_x100"]["act_rms_first"] > 50 * facts["healthy"]["act_rms_first"]
    # no warmup: LR at its maximum at step 0
    assert facts["no_warmup"]["lr_first"] == facts["no_warmup"]["lr_max"]
    assert facts["healthy"]["lr_first"] <= 0.1 * facts["healthy"]["lr_max"]
    # open mask: val loss close to train, far below the data entropy; dead heads
    f = facts["causal_mask_open"]
    assert f["final_val_loss"] < 0.5 and abs(f["final_val_loss"] - f["final_loss"]) < 0.3
    assert f["dead_heads"] >= 2 and facts["healthy"]["dead_heads"] == 0
