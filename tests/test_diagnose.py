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

from tensorlite import data, nn, optim
from tensorlite._docs import DOCS_URL, docs_url
from tensorlite.debug import Probes, Thresholds, data_entropy, diagnose, load_metrics
from tensorlite.debug.diagnose import FAILURES, RULES, Run
from tensorlite.optim import warmup_cosine_lr
from tensorlite.train import NonFiniteLossError, TrainConfig, train

V = 64
LN_V = math.log(V)


def _run(n=200, *, lr_max=1e-2, warmup=20, loss_end=2.0, tau=50.0, noise=0.03, clip_every=0,
         header=True, unigram_entropy=3.2, probes=True, seed=0, **extra_rows):
    """Synthetic metrics of a smooth run (the healthy baseline the failure cases perturb)."""
    rng = np.random.default_rng(seed)
    rows = [{"event": "start", "vocab_size": V, "unigram_entropy": unigram_entropy, "config": {"clip": 1.0}}] if header else []
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


def test_high_initial_loss_from_the_sweep_issue():
    # seed 003: a flat 22.3 from the first step, against ln(32768) = 10.4 for a uniform guess
    rows = [{"event": "start", "vocab_size": 32768}] + [
        {"step": s, "loss": 22.3, "lr": 1e-3, "grad_norm": 1.0, "clipped": False} for s in range(100)]
    d = diagnose(rows)
    assert d.names == ["high_initial_loss"]  # at init, not "later": no second alarm for the same loss
    assert d.findings[0].evidence == "loss 22.3 at step 0 > ln(32768) = 10.4"
    assert d.findings[0].doc_url == DOCS_URL + "debug/diagnose/#loss-above-lnv-at-initialisation"


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


def test_missing_warmup_needs_both_the_lr_and_the_loss_climbing_back():
    rows = _run(warmup=0)
    assert diagnose(rows).healthy  # LR at max from step 0 but a smooth start: no alarm
    for r in _steps(rows):
        if r["step"] == 6:
            r["grad_norm"] = 9.0
    assert diagnose(rows).healthy  # a gradient-norm spike alone: healthy runs have them too
    for r in _steps(rows):
        if r["step"] == 15:
            r["loss"] *= 1.3
    assert diagnose(rows).healthy  # one noisy batch among flat neighbours: no V
    for r in _steps(rows):
        if 16 <= r["step"] <= 19:
            r["loss"] *= 1.15
    d = diagnose(rows)
    assert d.names == ["missing_warmup"] and d.findings[0].severity == "warning"
    assert "= 1 x lr_max" in d.findings[0].evidence and "at step 15" in d.findings[0].evidence
    rows = _run(warmup=20)
    for r in _steps(rows):
        if 15 <= r["step"] <= 19:
            r["loss"] *= 1.2
    assert diagnose(rows).healthy  # the same V with the LR ramping up: no warmup to blame


def test_a_growing_gradient_norm_is_a_warning():
    rows = _run(n=300)
    assert "growing_gradients" not in diagnose(rows).names
    for r in _steps(rows):  # a gradient summed over steps: its norm grows with the step count
        r["grad_norm"] = 4.0 + 0.6 * r["step"]
    d = diagnose(rows)
    assert "growing_gradients" in d.names and d.facts["grad_norm_growth"] > 10, d
    f = next(f for f in d.findings if f.name == "growing_gradients")
    assert f.severity == "warning" and "zero_grad" in f.hint


def test_gradients_not_zeroed_needs_most_steps_flagged():
    rows = _run()
    for r in _steps(rows)[1:4]:
        r["stale_grads"] = True
    assert "gradients_not_zeroed" not in diagnose(rows).names  # 3 of 199 steps: not the loop's habit
    for r in _steps(rows)[1:]:
        r["stale_grads"] = True
    d = diagnose(rows)
    assert d.name == "gradients_not_zeroed" and d.findings[0].severity == "error"


def test_overfitting_needs_the_best_val_before_the_end():
    rows = _run(n=200, loss_end=2.0)
    vals = iter([4.5, 3.67, 3.01, 2.86, 2.70])  # still falling: the last evaluation is the best
    for r in _steps(rows):
        if "val_loss" in r:
            r["val_loss"] = next(vals)
    assert "overfitting" not in diagnose(rows).names


def test_bad_init_from_activations_at_step_0():
    rows = _run()
    _steps(rows)[0]["act_rms"] = {"blocks.0": 115.0, "blocks.1": 160.0, "norm_f": 1.0}
    _steps(rows)[0]["loss"] = 32.0
    d = diagnose(rows)
    assert d.names == ["bad_init", "high_initial_loss"]
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
    assert "dead (one-hot or silent) heads 5/8" in d.findings[0].evidence
    assert "both below 0.5 (the lower of 0.3 x unigram entropy 3.2 and 0.5)" in d.findings[0].evidence


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
    assert len(m.rows) == 200 and m.vocab_size == V and m.unigram_entropy == 3.2


def test_vocab_size_comes_from_the_header_never_from_a_config(tmp_path):
    # the vocab_size of a tensorlite 0.1 config.json was the BPE tokenizer's target, not the model's
    rows = _run(header=False)
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 2}))
    assert load_metrics(tmp_path).vocab_size is None
    assert load_metrics(_run()).vocab_size == V


def test_a_loss_that_climbs_above_ln_v_after_the_start_is_worse_than_guessing():
    d = diagnose(_run(loss_end=30.0))  # starts at ln V, climbs to 30 smoothly: no spike, no overfitting
    assert d.names == ["loss_above_uniform"] and "> ln(64) = 4.16, after having been below it" in str(d)


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
    iid = np.random.default_rng(0).integers(0, 8, 50_000)  # no context to use: both near ln 8
    assert data.bigram_entropy(iid) == pytest.approx(data.unigram_entropy(iid), abs=0.01)
    assert data.unigram_entropy(iid) == pytest.approx(math.log(8), abs=0.01)


@pytest.mark.parametrize("header", [
    {"unigram_entropy": 3.2, "bigram_entropy": 2.3},
    {"data_entropy": 3.2},                                  # logs written before the rename
    {"data_entropy": {"unigram": 3.2, "bigram": 2.3}},
])
def test_metrics_read_the_entropies_under_old_and_new_names(header):
    m = load_metrics([{"event": "start", "vocab_size": V, **header}, {"step": 0, "loss": 4.0}])
    assert m.unigram_entropy == 3.2 and m.data_entropy == 3.2
    assert m.bigram_entropy == (None if header == {"data_entropy": 3.2} else 2.3)
    assert diagnose(m).facts["unigram_entropy"] == 3.2


def test_each_rule_is_one_function_silent_on_a_healthy_run():
    run = Run(load_metrics(_run()), Thresholds(), V, 3.2, 2.3)
    assert list(RULES)[0] == "bad_init" and list(FAILURES) == list(RULES)
    for name, r in RULES.items():
        assert r.check(run, {}) is None, name
        assert r.severity in ("error", "warning") and r.doc_url.startswith(DOCS_URL)


def test_every_rule_links_to_a_heading_of_the_diagnose_page():
    from markdown.extensions.toc import slugify

    page = (Path(__file__).parents[1] / "docs" / "debug" / "diagnose.md").read_text(encoding="utf-8")
    anchors = {slugify(h.strip("# ").strip(), "-") for h in page.splitlines() if h.startswith("#")}
    assert {r.anchor for r in RULES.values()} <= anchors, sorted({r.anchor for r in RULES.values()} - anchors)


def test_docs_urls_are_site_urls(monkeypatch):
    assert docs_url("debug/diagnose.md", "overfitting") == DOCS_URL + "debug/diagnose/#overfitting"
    assert docs_url("index.md") == DOCS_URL and docs_url("guide/index.md") == DOCS_URL + "guide/"
    monkeypatch.setenv("TENSORLITE_DOCS_URL", "http://127.0.0.1:8000")
    assert docs_url("guide/nan.md") == "http://127.0.0.1:8000/guide/nan/"
    mkdocs_yml = (Path(__file__).parents[1] / "mkdocs.yml").read_text(encoding="utf-8")
    assert f"site_url: {DOCS_URL}\n" in mkdocs_yml  # the site and the hints agree


def test_overfitting_above_ln_v_is_not_a_bug():
    # val climbs far above ln V while train keeps falling: memorisation, named as such
    rows = _run(n=400, loss_end=0.3, tau=60)
    for r in _steps(rows):
        if "val_loss" in r:
            r["val_loss"] = 2.6 + max(0, r["step"] - 100) / 60  # best at step 100, then 7.6 at the end
    d = diagnose(rows)
    assert d.names == ["overfitting"], str(d)
    assert "above ln(64) = 4.16: confidently wrong on text it has not memorised" in d.findings[0].evidence


def test_a_mid_run_spike_is_instability():
    rows = _run(n=300)
    for r in _steps(rows):
        if 150 <= r["step"] < 153:
            r["loss"] = 3.6  # from about 2.1: 1.7x, below ln V
    d = diagnose(rows)
    assert d.names == ["loss_spike"] and d.findings[0].severity == "warning"
    assert d.findings[0].evidence.startswith("loss 3.6 at step 150, 1.7 x the median 2.09 of the steps before")
    for r in _steps(rows):
        if r["step"] == 150:
            r["loss"] = 9.0  # above ln V: worse than guessing, still not a bug
    d = diagnose(rows)
    assert d.names == ["loss_spike"] and d.findings[0].severity == "error"
    assert "above ln(64) = 4.16 after training started: worse than guessing" in d.findings[0].evidence


def test_clipping_hint_says_a_steady_clip_is_close_to_a_no_op_with_adam():
    d = diagnose(_clip_all(_run(), 5.0))
    assert "barely changes the update" in d.findings[0].hint and "too high" not in d.findings[0].hint


def _context_blind_run(aligned: bool, steps=300, seed=0):
    """A real run of a tiny GPT with its own loop: ``aligned=False`` is a data bug where inputs and
    targets come from unrelated windows, so the context says nothing about the next token."""
    text = data.default_corpus(max_chars=20_000)
    tok = data.CharTokenizer.from_text(text)
    ids = np.array(tok.encode(text))
    split = int(0.9 * len(ids))
    rng = np.random.default_rng(seed)
    cfg = nn.GPTConfig(vocab_size=tok.vocab_size, seq_len=16, d_model=32, n_layers=1, n_heads=4)
    import tensorlite as tl

    tl.manual_seed(seed)
    model = nn.GPT(cfg)
    opt = optim.AdamW(model.parameters(), lr=1e-2)

    def batch(lo, hi):
        ix = rng.integers(lo, hi - 17, 16)
        iy = ix if aligned else rng.integers(lo, hi - 17, 16)
        return ids[ix[:, None] + np.arange(16)], ids[iy[:, None] + 1 + np.arange(16)]

    rows = [{"event": "start", "vocab_size": tok.vocab_size, "unigram_entropy": data.unigram_entropy(ids),
             "bigram_entropy": data.bigram_entropy(ids)}]
    for step in range(steps):
        lr = 1e-2 * min(1.0, (step + 1) / 30)  # a short warmup
        opt.param_groups[0]["lr"] = lr
        row = {"step": step, "lr": lr}
        if step % 50 == 0 or step == steps - 1:
            with tl.no_grad():
                row["val_loss"] = float(np.mean([model.loss(*batch(split, len(ids))).item() for _ in range(4)]))
        loss = model.loss(*batch(0, split))
        opt.zero_grad()
        loss.backward()
        opt.step()
        rows.append({**row, "loss": loss.item()})
    return rows


def test_a_model_blind_to_its_context_plateaus_at_the_unigram_entropy():
    with threadpool_limits(1):
        blind, healthy = _context_blind_run(aligned=False), _context_blind_run(aligned=True)
    d = diagnose(blind)
    assert d.names == ["stuck_at_unigram"], str(d)
    assert diagnose(healthy).healthy, str(diagnose(healthy))


# ------------------------------------------------------------------------------------------------
# The course page's three engineered failures, from short real runs of a tiny model
# ------------------------------------------------------------------------------------------------
# One healthy config; each failure changes exactly one thing. RoPE makes the copy-from-the-future
# trick cheap to learn, so the open mask shows within 200 steps (with learned positions it takes
# far longer in a model this small); lr 2e-2 makes a missing warmup hurt.
BASE = dict(seq_len=32, d_model=32, n_layers=2, n_heads=4, pos="rope", steps=200, batch_size=16, lr=2e-2,
            lr_min=1e-3, warmup=20, clip=1.0, eval_interval=50, eval_batches=2, ckpt_interval=0,
            corpus_max_chars=200_000, progress=False)
# Two runs that go above ln V with no bug at all: a model memorising a tiny corpus (the "too little
# data" setup of the convergence page: 1 500 characters), and AdamW at lr 0.3 with no warmup.
TINY_CORPUS = dict(seq_len=16, d_model=32, n_layers=1, n_heads=4, steps=800, batch_size=16, lr=1e-2, lr_min=1e-3,
                   warmup=0, eval_interval=40, eval_batches=4, ckpt_interval=0, corpus_max_chars=1_500,
                   val_fraction=0.2, progress=False)
# name -> (config, probe interval: 0 for none)
BREAKS = {"healthy": (BASE, 10), "init_x100": ({**BASE, "faults": ("init_x100",)}, 10),
          "no_warmup": ({**BASE, "warmup": 0}, 10), "causal_mask_open": ({**BASE, "faults": ("causal_mask_open",)}, 10),
          "too_little_data": (TINY_CORPUS, 0), "lr_0.3_no_warmup": ({**BASE, "lr": 0.3, "lr_min": 0.03, "warmup": 0}, 10)}
EXPECTED = {"healthy": "healthy", "init_x100": "bad_init", "no_warmup": "missing_warmup",
            "causal_mask_open": "broken_causal_mask", "too_little_data": "overfitting",
            "lr_0.3_no_warmup": "loss_spike"}


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
                for name, (config, probe_interval) in BREAKS.items():
                    cfg = TrainConfig().replace(**config, out_dir=str(out), name=name)
                    shutil.rmtree(out / name, ignore_errors=True)
                    try:
                        train(cfg, callbacks=[Probes(interval=probe_interval)] if probe_interval else [])
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
    # above ln V after the start is never blamed on a bug when overfitting or instability explain it
    if name in ("too_little_data", "lr_0.3_no_warmup"):
        assert not {"high_initial_loss", "loss_above_uniform", "bad_init"} & set(d.names), str(d)


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
    # the two runs above ln V without a bug: they really went above it
    too_little, lr03 = (load_metrics(break_it_runs[n]) for n in ("too_little_data", "lr_0.3_no_warmup"))
    assert np.nanmax(too_little.series("val_loss")[1]) > math.log(too_little.vocab_size) + 0.5
    assert np.nanmax(lr03.series("loss")[1]) > math.log(lr03.vocab_size) + 0.5
    assert facts["too_little_data"]["final_loss"] < 1.0  # while train is far below
