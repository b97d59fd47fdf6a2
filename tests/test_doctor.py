"""The doctor's checks: each passes on healthy models and fails on the model with its fault."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tensorlite as tl
from tensorlite import cli, data, nn, optim
from tensorlite import faults as fault_zoo
from tensorlite import functional as F
from tensorlite._docs import DOCS_URL
from tensorlite.debug import checks as C
from tensorlite.debug import doctor
from tensorlite.debug.checks import REGISTRY
from tensorlite.debug.doctor import CHECK_ORDER

KNOWN_FAULTS = tuple(f for f in fault_zoo.names() if fault_zoo.get(f).target == "model")

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

SMALL = dict(vocab_size=40, seq_len=16, d_model=32, n_layers=2, n_heads=4, pos="rope")


def gpt(*faults, **kw):
    cfg = {**SMALL, **kw, **fault_zoo.requirements(faults)}
    tl.manual_seed(0)
    return fault_zoo.inject(nn.GPT(nn.GPTConfig(**cfg)), *faults)


MODEL_CHECKS = {s.name: s.function for s in REGISTRY if s.needs == ("model",)}

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
        assert r.name == name and r.doc_url == DOCS_URL + f"debug/doctor/#{name}"
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
# the registry and the report
# ------------------------------------------------------------------------------------------------
def test_the_registry_is_the_one_list_of_checks():
    assert CHECK_ORDER == tuple(s.name for s in REGISTRY)
    assert len(set(CHECK_ORDER)) == len(CHECK_ORDER)
    for s in REGISTRY:
        assert s.function.__name__ == s.name and s.function.__doc__
        assert set(s.needs) <= {"model", "optimizer", "scheduler", "data", "loss_fn"}


def test_doc_links_are_site_urls_and_the_anchors_exist():
    import pathlib

    assert C.check_url("residual") == DOCS_URL + "debug/doctor/#residual"
    assert DOCS_URL.startswith("https://") and "docs/" not in C.check_url("residual")
    page = (pathlib.Path(__file__).parents[1] / "docs" / "debug" / "doctor.md").read_text()
    for name in CHECK_ORDER:
        assert f"### `{name}`" in page, name


def test_doctor_report_table_and_dict():
    m = gpt()
    opt = optim.AdamW(optim.param_groups_for_decay(m, 0.1), lr=1e-3)
    sched = optim.lr_scheduler.WarmupCosine(opt, warmup_steps=0, total_steps=100)
    rep = doctor(m, opt, sched, batcher=None, overfit_steps=20)
    assert rep.ok  # a warning is not a failure
    assert [r.name for r in rep.results] == list(CHECK_ORDER)
    assert rep["lr_schedule"].status == "warn" and rep["input_label_alignment"].status == "skip"
    assert rep["model_loss"].status == "skip" and rep["rope_rotation"].status == "pass"
    text = str(rep)
    assert text.startswith("model: GPT (tensorlite)") and "blocks: blocks, 2 x Block" in text
    assert "tensorlite doctor: 21 passed, 1 warning, 3 skipped" in text
    assert "docs: " + C.check_url("lr_schedule") in text
    d = rep.to_dict()
    assert d["ok"] and len(d["results"]) == len(CHECK_ORDER) and d["found"][1] == "blocks: blocks, 2 x Block"
    assert rep.counts() == {"pass": 21, "warn": 1, "skip": 3}


def test_only_and_skip_select_checks_and_unknown_names_raise():
    rep = doctor(gpt(), only=["causal_leak", "residual"])
    assert [r.name for r in rep.results] == ["causal_leak", "residual"]
    rep = doctor(gpt(), skip=["overfit_one_batch"], only=["overfit_one_batch", "graph_size"])
    assert [r.name for r in rep.results] == ["graph_size"]
    with pytest.raises(ValueError, match="unknown check"):
        doctor(gpt(), only=["no_such_check"])
    with pytest.raises(TypeError, match="model-view options are"):
        doctor(gpt(), block="blocks")


def test_a_model_whose_forward_raises_is_reported_not_raised():
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


# ------------------------------------------------------------------------------------------------
# the checks one by one
# ------------------------------------------------------------------------------------------------
def test_loss_at_init_far_above_ln_v_and_evidence():
    r = C.loss_at_init(gpt("init_x100"))
    assert r.status == "fail" and "far above ln(V) at initialisation" in r.evidence
    assert "impossible" not in r.evidence + r.hint
    ok = C.loss_at_init(gpt())
    assert ok.evidence.startswith("loss 3.7") and "ln(40) = 3.69" in ok.evidence


def test_loss_at_init_with_a_loss_that_is_not_cross_entropy():
    r = C.loss_at_init(gpt(), loss_fn=lambda lg, t: -F.cross_entropy(lg, t))
    assert r.status == "fail" and "below ln(V)" in r.evidence


def test_loss_sign_in_both_frameworks():
    assert C.loss_sign().status == "pass"
    r = C.loss_sign(lambda lg, t: -F.cross_entropy(lg, t))  # the answer key's bug 7
    assert r.status == "fail" and "negative" in r.evidence and "does not fall" in r.evidence
    r = C.loss_sign(lambda lg, t: F.nll_loss(lg, t))  # the log forgotten
    assert r.status == "fail" and "not ln(V)" in r.evidence
    tf = torch.nn.functional
    assert C.loss_sign(tf.cross_entropy, framework="torch").status == "pass"
    r = C.loss_sign(lambda lg, t: tf.cross_entropy(lg, t, reduction="sum"), framework="torch")
    assert r.status == "fail" and "not ln(V) at uniform logits" in r.evidence  # a sum, not a mean
    r = C.loss_sign(lambda lg, t: -tf.cross_entropy(lg, t))  # found to be torch by trying
    assert r.status == "fail" and "negative" in r.evidence


def test_attention_sums_to_one_on_raw_weights():
    w = np.random.default_rng(0).random((2, 3, 5, 5))
    assert C.attention_sums_to_one(w / w.sum(-1, keepdims=True)).status == "pass"
    r = C.attention_sums_to_one(w / w.sum(-2, keepdims=True))
    assert r.status == "fail" and "the sums over queries are 1" in r.evidence
    w[0, 0, 0, 0] = np.nan
    r = C.attention_sums_to_one(w)
    assert r.status == "fail" and "NaN or Inf" in r.evidence


def test_attention_scale_measures_the_factor():
    r = C.attention_scale(gpt("attn_scale_multiply"))
    assert "per layer: 8, 8" in r.evidence  # head_dim 8: sqrt(8) * sqrt(8) too steep
    assert C.attention_scale(gpt("softmax_over_queries")).status == "pass"  # the scale is right there


def test_causal_leak_names_the_first_leaking_cut():
    r = C.causal_leak(gpt("causal_mask_open"))
    assert r.status == "fail" and "first leak at t = 0" in r.evidence
    assert "weight above the diagonal in blocks.0" in r.evidence


def test_causal_leak_fails_on_nan_logits_saying_so():
    r = C.causal_leak(lambda x: np.full(x.shape + (5,), np.nan), vocab_size=5, seq_len=8)
    assert r.status == "fail" and "NaN or Inf" in r.evidence


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


def test_causal_leak_on_a_torch_model_and_a_plain_function():
    torch.manual_seed(0)
    assert C.causal_leak(TinyTorchLM(), vocab_size=40, seq_len=16).status == "pass"
    r = C.causal_leak(TinyTorchLM(causal=False), vocab_size=40, seq_len=16)
    assert r.status == "fail"
    model = TinyTorchLM()
    fn = lambda x: model(torch.from_numpy(x)).detach().numpy()  # noqa: E731
    assert C.causal_leak(fn, vocab_size=40, seq_len=16).status == "pass"
    with pytest.raises(ValueError, match="vocab_size and seq_len"):
        C.causal_leak(lambda x: x)


def test_rope_rotation_of_a_rotary_module():
    rope = nn.RotaryEmbedding(8, 16)
    assert C.rope_rotation(rope).status == "pass"
    flip = C.rope_rotation(fault_zoo.inject(nn.RotaryEmbedding(8, 16), "rope_sign_flip"))
    # a reflection keeps norms (and even q.k's dependence on n - m) but is no rotation
    assert flip.status == "fail" and "not a rotation" in flip.evidence and "norm not preserved" not in flip.evidence
    mis = C.rope_rotation(fault_zoo.inject(nn.RotaryEmbedding(8, 16), "rope_pairing_mismatch"))
    assert mis.status == "fail" and "norm not preserved" in mis.evidence and "absolute position" in mis.evidence


def test_rope_rotation_read_from_a_model():
    r = C.rope_rotation(gpt())
    assert r.status == "pass" and "|R_0 - I| " in r.evidence
    r = C.rope_rotation(gpt("rope_sign_flip"))
    assert r.status == "fail" and "signs flipped (R_0 != I)" in r.evidence
    r = C.rope_rotation(gpt("rope_pairing_mismatch"))
    assert r.status == "fail" and "norm not preserved" in r.evidence
    assert C.rope_rotation(gpt(pos="learned")).status == "skip"


def test_norms_finite_on_zeros_names_the_layer():
    r = C.norms_finite_on_zeros(gpt("rmsnorm_no_eps"))
    assert r.evidence.startswith("blocks.0.norm1: 128/128 non-finite; blocks.0.norm2")


def test_residual_and_prenorm_are_specific():
    for fault in ("no_attn_residual", "no_ffn_residual"):
        m = gpt(fault)
        r = C.residual(m)
        assert r.status == "fail" and C.prenorm(m).status == "pass", fault
        assert ("attn.proj" if fault == "no_attn_residual" else "ffn.proj") in r.evidence
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
    r = C.overfit_one_batch(gpt(), steps=20, lr=0.0)
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
    assert bad.status == "fail" and "w_new / w = 1 " in bad.evidence and "exp_avg 0.0003" in bad.evidence
    # L2-style Adam decay goes through the moments: not decoupled, a warning
    assert C.optimizer_decay(optim.Adam(m.parameters(), lr=1e-3, weight_decay=0.1)).status == "warn"
    assert C.optimizer_decay(optim.Adam(m.parameters(), lr=1e-3)).status == "skip"
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
    lr = opt.param_groups[0]["lr"]
    assert C.lr_schedule(sched).status == "pass"
    assert sched.last_epoch == 30 and opt.param_groups[0]["lr"] == lr  # the scheduler is untouched


def _torch_opt(lr=1e-3):
    return torch.optim.AdamW(torch.nn.Linear(4, 4).parameters(), lr=lr)


@pytest.mark.parametrize("make, status, words", [
    (lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: min(1.0, (s + 1) / 50)), "pass", "warmup 49 steps"),
    (lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: 1e-3 * min(1.0, (s + 1) / 50)), "fail",
     "0.001 x the optimizer's lr"),
    (lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: s + 1), "fail", "x the optimizer's lr"),
    (lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=1e-3, total_steps=200), "pass", "x lr_max 0.001"),
    (lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=100), "warn", "no warmup"),
    (lambda o: torch.optim.lr_scheduler.SequentialLR(o, [torch.optim.lr_scheduler.LinearLR(o, 0.01, total_iters=10),
                                                         torch.optim.lr_scheduler.CosineAnnealingLR(o, 100)], [10]),
     "pass", "warmup 10 steps"),
    (lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o), "skip", "ReduceLROnPlateau"),
])
def test_lr_schedule_of_torch_schedulers(make, status, words):
    opt = _torch_opt()
    sched = make(opt)
    lr, state = opt.param_groups[0]["lr"], dict(getattr(sched, "__dict__", {})).get("last_epoch")
    r = C.lr_schedule(sched)
    assert r.status == status and words in r.evidence, r.evidence
    assert opt.param_groups[0]["lr"] == lr and getattr(sched, "last_epoch", None) == state


def test_lr_schedule_with_an_lr_of_one_and_a_lambda_returning_the_lr():
    opt = _torch_opt(lr=1.0)  # a lambda returning the LR itself is right when the optimizer's lr is 1
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1e-3 * min(1.0, (s + 1) / 50))
    assert C.lr_schedule(sched).status == "pass"


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
    r = C.input_label_alignment((x, x))
    assert r.status == "fail" and "the labels are not shifted" in r.evidence
    assert "shifted the wrong way" in C.input_label_alignment((x + 1, x)).evidence
    assert C.input_label_alignment((x, x), shifted_inside=True).status == "pass"


def test_input_label_alignment_takes_what_torch_users_have():
    data_ = torch.arange(200) % 37
    def get_batch(split):
        ix = torch.arange(0, 64, 8)
        return torch.stack([data_[i:i + 16] for i in ix]), torch.stack([data_[i + 1:i + 17] for i in ix])
    assert C.input_label_alignment(get_batch).status == "pass"
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*get_batch("train")), batch_size=4)
    assert C.input_label_alignment(loader).status == "pass"


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


FACTORY = """
import sys
sys.path.insert(0, {tests!r})
from user_models import torch_lm

def make():
    d = torch_lm.build()
    return d["model"], d["optimizer"], d["scheduler"]

def make_leaky():
    return torch_lm.build("causal_mask_open")["model"]

def batch():
    return torch_lm.make_batch()

def boom():
    raise RuntimeError("no GPU here")

not_callable = 3
"""


def test_cli_doctor_model_factory(tmp_path, capsys, monkeypatch):
    import pathlib

    (tmp_path / "my_gpt.py").write_text(FACTORY.format(tests=str(pathlib.Path(__file__).parent)))
    assert cli.main(["doctor", "--model", f"{tmp_path / 'my_gpt.py'}:make", "--batch",
                     f"{tmp_path / 'my_gpt.py'}:batch"]) == 0
    out = capsys.readouterr().out
    assert "tensorlite doctor (GPT from " in out and "blocks: transformer.h, 2 x Block" in out
    assert "input_label_alignment  pass" in out and "FAIL" not in out
    monkeypatch.chdir(tmp_path)  # the module form imports from the current folder
    assert cli.main(["doctor", "--model", "my_gpt:make_leaky", "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rep["results"] if r["status"] == "fail"] == ["causal_leak"]


@pytest.mark.parametrize("argv, words", [
    (["--model", "my_gpt"], "expected MODULE:FACTORY"),
    (["--model", "my_gpt:nope"], "has no attribute 'nope'"),
    (["--model", "no_such_module:make"], "cannot import no_such_module"),
    (["--model", "missing.py:make"], "no such file missing.py"),
    (["--model", "my_gpt:boom"], "the factory raised RuntimeError: no GPU here"),
    (["--model", "my_gpt:not_callable"], "int is not callable"),
    (["--model", "my_gpt:batch"], "expected the factory to return a model"),
    (["cfg.json", "--model", "my_gpt:make"], "not both"),
    (["--seq-len", "8"], "--seq-len need --model"),
    ([], "give a run directory"),
])
def test_cli_doctor_model_user_errors(tmp_path, capsys, monkeypatch, argv, words):
    import pathlib

    (tmp_path / "my_gpt.py").write_text(FACTORY.format(tests=str(pathlib.Path(__file__).parent)))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["doctor", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tensorlite doctor: error:") and words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_model_that_cannot_run_on_token_ids_is_said_once_per_check_with_what_the_doctor_calls():
    class Seq2Seq(torch.nn.Module):  # needs a second input the doctor does not have
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(10, 8)

        def forward(self, src, tgt):
            return self.emb(src) + self.emb(tgt)

    report = doctor(Seq2Seq(), only=["loss_at_init", "causal_leak"])
    for r in report.results:
        assert r.status == "error" and r.evidence.startswith("the model could not be run: TypeError"), r
        assert "model(x) with x a (batch, seq_len) tensor of token ids" in r.hint and "logits_fn=" in r.hint
