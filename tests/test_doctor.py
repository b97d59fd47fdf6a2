"""The doctor's checks: each passes on healthy models and fails on the model with its fault."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import tensorlite as tl
from tensorlite import cli, data, nn, optim
from tensorlite import faults as fault_zoo
from tensorlite import functional as F
from tensorlite.debug import checks as C
from tensorlite.debug import doctor
from tensorlite.debug.doctor import CHECK_ORDER

KNOWN_FAULTS = tuple(f for f in fault_zoo.names() if fault_zoo.get(f).target == "model")

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

SMALL = dict(vocab_size=40, seq_len=16, d_model=32, n_layers=2, n_heads=4, pos="rope")


def gpt(*faults, **kw):
    cfg = {**SMALL, **kw, **fault_zoo.requirements(faults)}
    tl.manual_seed(0)
    return fault_zoo.inject(nn.GPT(nn.GPTConfig(**cfg)), *faults)


MODEL_CHECKS = {
    "loss_at_init": C.loss_at_init,
    "attention_sums_to_one": C.attention_sums_to_one,
    "attention_scale": C.attention_scale,
    "causal_leak": C.causal_leak,
    "rope_rotation": C.rope_rotation,
    "rope_values": C.rope_values,
    "norms_finite_on_zeros": C.norms_finite_on_zeros,
    "residual": C.residual,
    "prenorm": C.prenorm,
    "init_scale": C.init_scale,
    "gradient_flow": C.gradient_flow,
    "overfit_one_batch": C.overfit_one_batch,
    "graph_size": C.graph_size,
}

# fault -> the check that names it
CATCHES = {
    "attn_scale_multiply": "attention_scale",
    "softmax_over_queries": "attention_sums_to_one",
    "rope_on_values": "rope_values",
    "rmsnorm_no_eps": "norms_finite_on_zeros",
    "rope_sign_flip": "rope_rotation",
    "no_ffn_residual": "residual",
    "init_x100": "init_scale",
    "causal_mask_open": "causal_leak",
    "no_attn_residual": "residual",
    "no_prenorm": "prenorm",
    "rope_pairing_mismatch": "rope_rotation",
    "bitlinear_latent_scale": "init_scale",
    "per_token_loop": "graph_size",
}

HEALTHY = [dict(), dict(pos="learned"), dict(norm="rmsnorm"), dict(ffn="swiglu"), dict(linear="bitlinear"),
           dict(tie_weights=True, bias=False), dict(n_layers=3, n_heads=2)]


def test_every_model_fault_has_a_catching_check():
    assert set(CATCHES) == set(KNOWN_FAULTS)


@pytest.mark.parametrize("arch", HEALTHY, ids=lambda a: ",".join(f"{k}={v}" for k, v in a.items()) or "default")
def test_every_check_passes_on_healthy_models(arch):
    model = gpt(**arch)
    for name, check in MODEL_CHECKS.items():
        r = check(model)
        assert r.status in ("pass", "skip"), (name, r.evidence)
        assert r.name == name and r.doc_url == f"docs/debug/doctor.md#{name}"
    if arch.get("pos") == "learned":
        assert C.rope_rotation(model).status == "skip"


@pytest.mark.parametrize("fault", sorted(CATCHES))
def test_each_fault_fails_its_check(fault):
    r = MODEL_CHECKS[CATCHES[fault]](gpt(fault))
    assert r.status == "fail", r.evidence
    assert r.hint and r.doc_url.endswith("#" + CATCHES[fault])


@pytest.mark.parametrize("fault", sorted(CATCHES))
def test_doctor_fails_on_each_fault_and_passes_without(fault):
    arch = fault_zoo.requirements(fault)
    assert doctor(gpt(**arch), overfit_steps=30).ok
    report = doctor(gpt(fault), overfit_steps=30)
    assert not report.ok
    assert CATCHES[fault] in [r.name for r in report.failed]


# ------------------------------------------------------------------------------------------------
# the checks one by one
# ------------------------------------------------------------------------------------------------
def test_loss_at_init_impossible_and_evidence():
    r = C.loss_at_init(gpt("init_x100"))
    assert r.status == "fail" and "above ln(V), impossible" in r.evidence
    ok = C.loss_at_init(gpt())
    assert ok.evidence.startswith("loss 3.7") and "ln(40) = 3.69" in ok.evidence


def test_loss_at_init_with_a_loss_that_is_not_cross_entropy():
    r = C.loss_at_init(gpt(), loss_fn=lambda lg, t: -F.cross_entropy(lg, t))
    assert r.status == "fail" and "below ln(V)" in r.evidence


def test_loss_sign():
    assert C.loss_sign().status == "pass"
    r = C.loss_sign(lambda lg, t: -F.cross_entropy(lg, t))  # the answer key's bug 7
    assert r.status == "fail" and "negative" in r.evidence and "does not fall" in r.evidence
    r = C.loss_sign(lambda lg, t: F.nll_loss(lg, t))  # the log forgotten
    assert r.status == "fail" and "not ln(V)" in r.evidence


def test_attention_sums_to_one_on_raw_weights():
    w = np.random.default_rng(0).random((2, 3, 5, 5))
    assert C.attention_sums_to_one(w / w.sum(-1, keepdims=True)).status == "pass"
    r = C.attention_sums_to_one(w / w.sum(-2, keepdims=True))
    assert r.status == "fail" and "the sums over queries are 1" in r.evidence


def test_attention_scale_is_skipped_when_weights_are_not_normalised_over_keys():
    r = C.attention_scale(gpt("softmax_over_queries"))
    assert r.status == "skip" and "attention_sums_to_one" in r.evidence


def test_attention_scale_measures_the_factor():
    r = C.attention_scale(gpt("attn_scale_multiply"))
    assert "per layer: 8, 8" in r.evidence  # head_dim 8: sqrt(8) * sqrt(8) too steep


def test_causal_leak_names_the_first_leaking_cut():
    r = C.causal_leak(gpt("causal_mask_open"))
    assert r.status == "fail" and "first leak at t = 0" in r.evidence


class TinyTorchLM(torch.nn.Module):
    """A one-layer causal transformer in PyTorch (the doctor checks any tokens -> logits function)."""

    def __init__(self, vocab=40, d=32, heads=4, causal=True):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, d)
        self.pos = torch.nn.Parameter(torch.randn(16, d) * 0.02)
        self.attn = torch.nn.MultiheadAttention(d, heads, batch_first=True)
        self.head = torch.nn.Linear(d, vocab)
        self.causal = causal

    def forward(self, idx):
        t = idx.shape[1]
        x = self.emb(idx) + self.pos[:t]
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1) if self.causal else None
        a, _ = self.attn(x, x, x, attn_mask=mask, need_weights=False)
        return self.head(x + a)


def test_causal_leak_on_a_torch_model():
    torch.manual_seed(0)
    assert C.causal_leak(TinyTorchLM(), vocab_size=40, seq_len=16).status == "pass"
    r = C.causal_leak(TinyTorchLM(causal=False), vocab_size=40, seq_len=16)
    assert r.status == "fail"
    # a plain function on NumPy arrays works too
    model = TinyTorchLM()
    fn = lambda x: model(torch.from_numpy(x)).detach().numpy()  # noqa: E731
    assert C.causal_leak(fn, vocab_size=40, seq_len=16).status == "pass"


def test_causal_leak_needs_sizes_for_a_plain_function():
    with pytest.raises(ValueError, match="vocab_size and seq_len"):
        C.causal_leak(lambda x: x)


def test_rope_rotation_properties():
    rope = nn.RotaryEmbedding(8, 16)
    r = C.rope_rotation(rope)
    assert r.status == "pass"
    flip = C.rope_rotation(fault_zoo.inject(nn.RotaryEmbedding(8, 16), "rope_sign_flip"))
    # a reflection keeps norms (and even q.k's dependence on n - m) but is no rotation
    assert flip.status == "fail" and "not a rotation" in flip.evidence and "norm not preserved" not in flip.evidence
    mis = C.rope_rotation(fault_zoo.inject(nn.RotaryEmbedding(8, 16), "rope_pairing_mismatch"))
    assert mis.status == "fail" and "norm not preserved" in mis.evidence and "absolute position" in mis.evidence


def test_norms_finite_on_zeros_names_the_layer():
    r = C.norms_finite_on_zeros(gpt("rmsnorm_no_eps"))
    assert r.evidence.startswith("blocks.0.norm1: 128/128 non-finite; blocks.0.norm2")


def test_residual_and_prenorm_are_specific():
    for fault in ("no_attn_residual", "no_ffn_residual"):
        m = gpt(fault)
        assert C.residual(m).status == "fail" and C.prenorm(m).status == "pass", fault
    m = gpt("no_prenorm")
    assert C.prenorm(m).status == "fail" and C.residual(m).status == "pass"


def test_init_scale_evidence():
    r = C.init_scale(gpt("init_x100"))
    assert r.status == "fail" and "logit std" in r.evidence


def test_gradient_flow_reports_parameters_without_gradient():
    m = gpt()
    m.register_parameter("unused", nn.Parameter(np.ones(3, dtype=np.float32)))
    r = C.gradient_flow(m)
    assert r.status == "fail" and "no grad: unused" in r.evidence
    assert all(p.grad is None for p in m.parameters())  # gradients left as found


def test_overfit_one_batch_restores_the_weights():
    m = gpt()
    before = {k: v.numpy().copy() for k, v in m.state_dict().items()}
    r = C.overfit_one_batch(m, steps=40)
    assert r.status == "pass"
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])


def test_overfit_one_batch_fails_when_nothing_can_learn():
    m = gpt()
    r = C.overfit_one_batch(m, steps=20, lr=0.0)
    assert r.status == "fail" and "(needed < 0.5 x start)" in r.evidence


def test_graph_size_counts_per_token_ops():
    r = C.graph_size(gpt("per_token_loop"))
    assert r.status == "fail" and "per extra token" in r.evidence


def test_optimizer_decay():
    m = gpt()
    ok = C.optimizer_decay(optim.AdamW(optim.param_groups_for_decay(m, 0.1), lr=3e-3))
    assert ok.status == "pass" and "w_new / w = 0.9997" in ok.evidence
    bad = C.optimizer_decay(fault_zoo.inject(optim.AdamW(m.parameters(), lr=3e-3, weight_decay=0.1),
                                             "adamw_decay_on_moment"))
    assert bad.status == "fail" and "w_new / w = 1 " in bad.evidence and "exp_avg 0.0009" in bad.evidence
    # L2-style Adam decay goes through the moments: not decoupled
    assert C.optimizer_decay(optim.Adam(m.parameters(), lr=1e-3, weight_decay=0.1)).status == "fail"
    # a factory works too, and the optimizer given is never stepped
    assert C.optimizer_decay(lambda ps: optim.AdamW(ps, lr=1e-2)).status == "pass"


def test_lr_schedule():
    opt = optim.AdamW(gpt().parameters(), lr=3e-3)
    WC = optim.lr_scheduler.WarmupCosine
    assert C.lr_schedule(WC(opt, warmup_steps=10, total_steps=100)).status == "pass"
    assert C.lr_schedule(WC(opt, warmup_steps=0, total_steps=100)).status == "warn"
    short = C.lr_schedule(WC(opt, warmup_steps=2, total_steps=100))
    assert short.status == "fail" and "0.5 x lr_max" in short.evidence
    assert C.lr_schedule(lambda s: 1e-3).status == "warn"
    assert C.lr_schedule(lambda s: min(1.0, (s + 1) / 100) * 1e-3).status == "pass"
    from tensorlite.train import TrainConfig

    assert C.lr_schedule(TrainConfig().replace(warmup=50)).status == "pass"
    assert C.lr_schedule(TrainConfig().replace(warmup=0)).status == "warn"


def test_lr_schedule_after_the_scheduler_has_stepped():
    opt = optim.AdamW(gpt().parameters(), lr=3e-3)
    sched = optim.lr_scheduler.WarmupCosine(opt, warmup_steps=10, total_steps=100)
    for _ in range(30):
        sched.step()
    assert C.lr_schedule(sched).status == "pass"
    assert sched.last_epoch == 30


def _batcher(**kw):
    text = "the quick brown fox jumps over the lazy dog. " * 40
    toks = np.array(data.CharTokenizer.from_text(text).encode(text))
    return data.TokenBatcher(toks, 16, 8, **kw)


def test_input_label_alignment_and_batcher_state_restored():
    b = _batcher()
    state = json.dumps(b.state_dict())
    assert C.input_label_alignment(b).status == "pass"
    assert json.dumps(b.state_dict()) == state
    bad = fault_zoo.inject(_batcher(), "bos_pad_misalignment")
    bad.pad_id = 1
    bad = C.input_label_alignment(bad)
    assert bad.status == "fail"
    assert "x[:, 0] is 0 in every row" in bad.evidence and "y[:, -1] is 1 in every row" in bad.evidence
    x = np.arange(20).reshape(2, 10)
    assert C.input_label_alignment((x, x + 1)).status == "pass"
    assert C.input_label_alignment((x, x)).status == "fail"


def test_doctor_report_table_and_dict():
    m = gpt()
    opt = optim.AdamW(m.parameters(), lr=1e-3)
    sched = optim.lr_scheduler.WarmupCosine(opt, warmup_steps=0, total_steps=100)
    rep = doctor(m, opt, sched, batcher=None, overfit_steps=20)
    assert rep.ok  # a warning is not a failure
    assert [r.name for r in rep.results] == list(CHECK_ORDER)
    assert rep["lr_schedule"].status == "warn" and rep["input_label_alignment"].status == "skip"
    text = str(rep)
    assert text.splitlines()[0] == "tensorlite doctor: 15 passed, 1 warning, 1 skipped"
    assert "docs: docs/debug/doctor.md#lr_schedule" in text
    d = rep.to_dict()
    assert d["ok"] and len(d["results"]) == len(CHECK_ORDER)
    assert rep.counts() == {"pass": 15, "warn": 1, "skip": 1}


def test_doctor_reports_a_check_that_raises_as_an_error():
    class NotAGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(np.ones((4, 4), dtype=np.float32))
            self.config = type("Cfg", (), {"vocab_size": 4, "seq_len": 8})()

        def forward(self, idx):
            raise RuntimeError("boom")

    rep = doctor(NotAGPT(), only=["loss_at_init", "graph_size"])
    assert [r.status for r in rep.results] == ["error", "error"]
    assert not rep.ok and "RuntimeError: boom" in rep.results[0].evidence


def test_doc_anchors_exist():
    import pathlib

    page = (pathlib.Path(__file__).parents[1] / "docs" / "debug" / "doctor.md").read_text()
    for name in CHECK_ORDER:
        assert f"### `{name}`" in page, name


# ------------------------------------------------------------------------------------------------
# the command line
# ------------------------------------------------------------------------------------------------
TINY_RUN = dict(seq_len=16, d_model=32, n_layers=2, n_heads=4, pos="rope", steps=50, batch_size=8,
                corpus_max_chars=30_000, warmup=5)


def test_cli_doctor_exit_codes(tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(TINY_RUN))
    assert cli.main(["doctor", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "faults: none" in out and "FAIL" not in out
    assert cli.main(["doctor", str(cfg), "--faults", "causal_mask_open,adamw_decay_on_moment"]) == 1
    out = capsys.readouterr().out
    assert "causal_leak            FAIL" in out and "optimizer_decay        FAIL" in out


def test_cli_doctor_on_a_run_dir_with_a_loop_fault(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({**TINY_RUN, "faults": ["ce_sign_flip", "bos_pad_misalignment"]}))
    assert cli.main(["doctor", str(run), "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    failed = {r["name"] for r in rep["results"] if r["status"] == "fail"}
    assert {"loss_sign", "input_label_alignment"} <= failed


def test_cli_doctor_user_errors(tmp_path, capsys):
    assert cli.main(["doctor", str(tmp_path / "nope")]) == 2
    assert "no such run directory or config file" in capsys.readouterr().err
    assert cli.main(["doctor", str(tmp_path)]) == 2
    assert "config.json: missing; is" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"d_model": 30, "n_heads": 4}))
    assert cli.main(["doctor", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tensorlite doctor: error:") and "Traceback" not in err
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(TINY_RUN))
    assert cli.main(["doctor", str(cfg), "--faults", "no_such_fault"]) == 2
    assert "no_such_fault" in capsys.readouterr().err


def test_cli_doctor_is_fast(tmp_path):
    import time

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(TINY_RUN))
    t = time.perf_counter()
    cli.main(["doctor", str(cfg)])
    assert time.perf_counter() - t < 30  # "seconds": a generous bound for a loaded CI machine
    assert math.isfinite(t)
