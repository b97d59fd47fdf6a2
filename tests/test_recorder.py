"""RunRecorder: a hand-written loop (PyTorch or tensorlite) writes the metrics.jsonl of ``tensorlite
train``, probes included, so the dashboard and the diagnosis read it unchanged; the probes measure
the same numbers in both frameworks on the same weights."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch
from torch_reference import RefGPT
from user_models import tl_lm, torch_lm

import tensorlite as tl
from tensorlite import nn, optim
from tensorlite.cli import main as cli_main
from tensorlite.debug import RunRecorder, dashboard, diagnose
from tensorlite.debug.metrics import load_metrics

STEPS = 12


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _torch_loop(run_dir, bug=None, steps=STEPS, record=True, **rec_kw):
    """nanoGPT's loop: forward with targets, backward, clip, step, zero_grad; the recorder's lines added."""
    parts = torch_lm.build(bug)
    model, opt, sched = parts["model"], parts["optimizer"], parts["scheduler"]
    x, y = parts["batch"]
    rec = RunRecorder(run_dir, model, opt, probe_interval=5, grad_clip=1.0, max_steps=steps,
                      config={"lr": torch_lm.LR, "n_layer": torch_lm.L, "grad_clip": 1.0}, data=x, **rec_kw) \
        if record else None
    losses = []
    for step in range(steps):
        _, loss = model(x, y)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if rec is not None:
            rec.step(step, loss, grad_norm=norm)
    if rec is not None:
        rec.close()
    return model, losses


@pytest.fixture(scope="module")
def torch_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("torch") / "run"
    model, losses = _torch_loop(run_dir)
    return run_dir, model, losses


def test_a_torch_loop_writes_the_train_schema(torch_run):
    run_dir, model, _ = torch_run
    rows = _rows(run_dir)
    head, steps = rows[0], rows[1:]
    assert head["event"] == "start" and head["framework"] == "torch"
    assert head["vocab_size"] == torch_lm.V and head["config"]["n_layer"] == torch_lm.L
    assert head["unigram_entropy"] > 0 and "blocks: transformer.h, 2 x Block" in head["model"]
    assert [r["step"] for r in steps] == list(range(STEPS))
    assert [r["step"] for r in steps if "act_rms" in r] == [0, 5, 10, 11]  # every 5, and the last
    r = next(r for r in steps if r["step"] == 5)
    assert list(r["act_rms"]) == ["transformer.h.0", "transformer.h.1", "transformer.ln_f"]
    assert r["n_heads_total"] == 2 * torch_lm.H and len(r["attn_entropy"][0]) == torch_lm.H
    assert sum(r["head_share"][0]) == pytest.approx(1.0, abs=1e-3)
    weights = {n for n, p in model.named_parameters() if p.ndim == 2}
    assert set(r["spectral_norm"]) == weights and set(r["update_ratio"]) == weights
    assert r["nonfinite"] is False and 0 <= r["dead_units"] <= 1 and 0 <= r["clipped_frac"] <= 1
    for r in steps:
        assert r["grad_norm_clipped"] <= min(r["grad_norm"], 1.0) + 1e-6
        assert r["clipped"] == (r["grad_norm"] > 1.0)
        assert r["lr"] > 0


def test_the_recorder_does_not_change_training(torch_run, tmp_path):
    _, _, losses = torch_run
    _, plain = _torch_loop(tmp_path / "plain", record=False)
    assert losses == plain


def test_layer_norms_add_up_and_the_update_ratio_is_the_update(torch_run, tmp_path):
    run_dir, _, _ = torch_run
    for r in _rows(run_dir)[1:]:
        if "grad_norm_layer" in r:  # read after clipping, scaled back: they add up to the pre-clip norm
            total = math.sqrt(sum(v * v for v in r["grad_norm_layer"].values()))
            assert total == pytest.approx(r["grad_norm"], rel=1e-3)
    # one step by hand: the recorded ratio is ||W1 - W0|| / ||W0||, the spectral norm sigma_max(W0)
    parts = torch_lm.build()
    model, opt = parts["model"], parts["optimizer"]
    x, y = parts["batch"]
    rec = RunRecorder(tmp_path / "one", model, opt, probe_interval=1, spectral_iters=30, dashboard=False)
    w = model.transformer.h[0].mlp.c_fc.weight
    w0 = w.detach().clone()
    model(x, y)[1].backward()
    opt.step()
    rec.step(0, 1.0)
    rec.close()
    r = _rows(tmp_path / "one")[1]
    name = "transformer.h.0.mlp.c_fc.weight"
    assert r["update_ratio"][name] == pytest.approx(float((w.detach() - w0).norm() / w0.norm()), rel=1e-4)
    assert r["spectral_norm"][name] == pytest.approx(float(torch.linalg.matrix_norm(w0, ord=2)), rel=1e-3)


def test_dashboard_and_diagnose_read_a_torch_run(torch_run, capsys):
    run_dir, _, _ = torch_run
    html = (run_dir / "dashboard.html").read_text()  # written by close()
    assert html.count('data-panel="') == 6 and 'data-points="0"' not in html
    assert diagnose(run_dir).healthy
    assert cli_main(["dashboard", str(run_dir)]) == 0
    assert "healthy" in capsys.readouterr().out
    m = load_metrics(run_dir)
    assert m.vocab_size == torch_lm.V and m.data_entropy > 0


def test_diagnose_names_bad_init_in_a_torch_run(tmp_path):
    _torch_loop(tmp_path / "x100", bug="init_x100", steps=6)
    diag = diagnose(tmp_path / "x100")
    assert diag.name == "bad_init", diag
    r0 = _rows(tmp_path / "x100")[1]
    assert max(r0["act_rms"].values()) > 20 and r0["dead_heads"] == r0["n_heads_total"]


def test_rows_wait_for_probe_steps_then_close_writes_the_rest(tmp_path):
    parts = torch_lm.build()
    model, opt = parts["model"], parts["optimizer"]
    x, y = parts["batch"]
    rec = RunRecorder(tmp_path / "r", model, opt, probe_interval=4, dashboard=False)
    for step in range(7):
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        rec.step(step, loss)
    assert [r["step"] for r in _rows(tmp_path / "r")[1:]] == [0, 1, 2, 3, 4]
    rec.close()
    rows = _rows(tmp_path / "r")[1:]
    assert [r["step"] for r in rows] == list(range(7))
    assert "act_rms" in rows[-1] and "update_ratio" not in rows[-1]  # the end state, probed after its update
    assert all("grad_norm" in r for r in rows)  # measured at optimizer.step() when not passed in
    with pytest.raises(ValueError, match="closed"):
        rec.step(7, 1.0)
    assert not opt._optimizer_step_pre_hooks  # torch's hook removed at close


def test_a_tensorlite_loop_with_a_hand_written_optimizer(tmp_path):
    parts = tl_lm.build()
    model, opt, sched, loss_fn = parts["model"], parts["optimizer"], parts["scheduler"], parts["loss_fn"]
    x, y = parts["batch"]
    with RunRecorder(tmp_path / "tl", model, opt, probe_interval=3, max_steps=6) as rec:
        for step in range(6):
            logits = model(x)
            loss = loss_fn(logits.reshape(-1, tl_lm.V), tl.tensor(y).reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()  # HandAdamW is no torch optimizer: its step is wrapped for the recorder's reads
            sched.step()
            rec.step(step, loss)
    assert "step" not in vars(opt)  # unwrapped at close
    rows = _rows(tmp_path / "tl")
    assert rows[0]["framework"] == "tensorlite"
    probed = [r for r in rows[1:] if "act_rms" in r]
    assert [r["step"] for r in probed] == [0, 3, 5]
    assert list(probed[0]["act_rms"]) == ["layers.0", "layers.1", "final_norm"]
    assert all("update_ratio" in r for r in probed) and probed[0]["n_heads_total"] == 2 * tl_lm.H
    assert diagnose(tmp_path / "tl").healthy


def _accumulating_loop(run_dir, *, zero_grad: bool, micro_batches: int, steps: int = 8, framework="torch"):
    """A loop with gradient accumulation over ``micro_batches``, zeroing once per optimizer step (or never)."""
    lib = torch_lm if framework == "torch" else tl_lm
    parts = lib.build()
    model, opt, loss_fn = parts["model"], parts["optimizer"], parts["loss_fn"]
    x, y = parts["batch"]
    with RunRecorder(run_dir, model, opt, probe_interval=0, dashboard=False) as rec:
        for step in range(steps):
            for _ in range(micro_batches):
                if framework == "torch":
                    _, loss = model(x, y)
                else:
                    loss = loss_fn(model(x).reshape(-1, tl_lm.V), tl.tensor(y).reshape(-1))
                (loss / micro_batches).backward()
            opt.step()
            if zero_grad:
                opt.zero_grad()
            rec.step(step, loss)
    return _rows(run_dir)[1:]


@pytest.mark.parametrize("framework", ["torch", "tensorlite"])
def test_a_forgotten_zero_grad_is_seen_and_named(framework, tmp_path):
    rows = _accumulating_loop(tmp_path / "nozero", zero_grad=False, micro_batches=1, framework=framework)
    assert [r["step"] for r in rows if r.get("stale_grads")] == list(range(1, 8))
    d = diagnose(tmp_path / "nozero")
    assert d.name == "gradients_not_zeroed" and "on 7 of 7 steps" in d.findings[0].evidence, d
    # accumulating over micro-batches and zeroing once per optimizer step is the right way
    for k in (1, 3):
        rows = _accumulating_loop(tmp_path / f"acc{k}", zero_grad=True, micro_batches=k, framework=framework)
        assert not any(r.get("stale_grads") for r in rows)
        assert "gradients_not_zeroed" not in diagnose(tmp_path / f"acc{k}").names


def test_existing_run_and_bad_arguments(tmp_path):
    model = torch_lm.build()["model"]
    RunRecorder(tmp_path / "r", model, probe_interval=0, dashboard=False).close()
    assert _rows(tmp_path / "r")[0]["vocab_size"] == torch_lm.V  # from the model view, probes or not
    with pytest.raises(FileExistsError, match="already holds a run"):
        RunRecorder(tmp_path / "r", model)
    with pytest.raises(ValueError, match="probe_interval must be >= 0"):
        RunRecorder(tmp_path / "s", model, probe_interval=-1)
    with pytest.raises(TypeError, match="config must be a dict"):
        RunRecorder(tmp_path / "t", model, config=3)


# ------------------------------------------------------------------------------------------------
# the same numbers in both frameworks
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", [dict(), dict(norm="rmsnorm", ffn="swiglu", pos="rope", bias=False)])
def test_tensorlite_gpt_and_the_torch_reference_give_the_same_probes(arch, tmp_path):
    tl.manual_seed(0)
    cfg = nn.GPTConfig(vocab_size=37, seq_len=16, d_model=32, n_layers=2, n_heads=4, **arch)
    ours = nn.GPT(cfg)
    with tl.no_grad():  # sharper attention than at init, and some FFN units that never fire
        for b in ours.blocks:
            b.attn.qkv.weight.data *= 16.0
            gate = getattr(b.ffn, "fc", None) or b.ffn.w_gate
            gate.weight.data[:20] = 0.0  # pre-activation 0 (plus a zero bias) on every token
    ref = RefGPT(cfg.to_dict(), cfg.ffn_dim)
    safetensors.numpy.save_file({k: np.ascontiguousarray(v.numpy()) for k, v in ours.state_dict().items()},
                                tmp_path / "w.safetensors")
    ref.load_state_dict(safetensors.torch.load_file(tmp_path / "w.safetensors"))
    x = np.random.default_rng(1).integers(0, 37, size=(4, 16))
    y = np.random.default_rng(2).integers(0, 37, size=(4, 16))

    rec = RunRecorder(tmp_path / "tl", ours, optim.SGD(ours.parameters(), lr=0.1), probe_interval=1,
                      probe_batch=tl.tensor(x), spectral_iters=50, dashboard=False)
    ours.loss(x, y).backward()
    rec.optimizer.step()
    rec.step(0, 0.0)
    rec.close()
    rec = RunRecorder(tmp_path / "pt", ref, torch.optim.SGD(ref.parameters(), lr=0.1), probe_interval=1,
                      probe_batch=torch.from_numpy(x), spectral_iters=50, dashboard=False)
    ref.loss(torch.from_numpy(x), torch.from_numpy(y)).backward()
    rec.optimizer.step()
    rec.step(0, 0.0)
    rec.close()

    a, b = _rows(tmp_path / "tl")[1], _rows(tmp_path / "pt")[1]
    uniform = float(np.mean(np.log(np.arange(1, 17))))  # every head at init: uniform over its causal window
    assert 0.05 < a["dead_units"] < 0.9 and min(min(h) for h in a["attn_entropy"]) < uniform - 0.5
    for key in ("act_rms", "spectral_norm", "grad_norm_layer", "update_ratio"):
        assert set(a[key]) == set(b[key]), key
        for name in a[key]:
            assert a[key][name] == pytest.approx(b[key][name], rel=2e-3, abs=1e-6), (key, name)
    np.testing.assert_allclose(a["attn_entropy"], b["attn_entropy"], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(a["head_share"], b["head_share"], rtol=1e-3, atol=1e-4)
    for key in ("dead_units", "dead_heads", "n_heads_total", "logit_std", "nonfinite"):
        assert a[key] == pytest.approx(b[key], rel=1e-3), key


def test_dashboard_links_nothing_it_does_not_have(torch_run, tmp_path):
    run_dir, _, _ = torch_run
    out = dashboard(run_dir, out=tmp_path / "d.html")
    assert "attention.html" not in out.read_text()
