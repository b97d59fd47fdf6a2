"""The doctor on models users write (tests/user_models): every healthy variant passes every check
(no failure, no warning, no error) and every one-line bug is found by the check written for it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from user_models import tl_lm, torch_lm

import tensorlite as tl
import tensorlite.nn as tl_nn
from tensorlite.debug import doctor
from tensorlite.nn import GPTConfig
from tensorlite.nn.transformer import Block

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


#: bug -> the check that must flag it (fail, or warn where the check only warns)
EXPECTED = {
    "attn_scale_multiply": "attention_scale",
    "softmax_over_queries": "attention_sums_to_one",
    "rope_on_values": "rope_values",
    "rmsnorm_no_eps": "norms_finite_on_zeros",
    "rope_sign_flip": "rope_rotation",
    "no_mlp_residual": "residual",
    "adamw_decay_on_moment": "optimizer_decay",
    "init_x100": "init_scale",
    "no_warmup": "lr_schedule",
    "causal_mask_open": "causal_leak",
    "no_attn_residual": "residual",
    "no_prenorm": "prenorm",
    "rope_pairing_mismatch": "rope_rotation",
    "bos_pad_misalignment": "input_label_alignment",
    "per_token_loop": "graph_size",
    "mask_triu": "causal_leak",
    "mask_fill_zero": "causal_leak",
    "no_scale": "attention_scale",
    "scale_d_model": "attention_scale",
    "heads_no_transpose": "causal_leak",
    "softmax_over_heads": "attention_sums_to_one",
    "no_final_norm": "final_norm",
    "norm_over_time": "causal_leak",
    "pos_not_added": "position_signal",
    "rope_not_applied": "position_signal",
    "rope_q_only": "rope_rotation",
    "dropout_in_eval": "eval_determinism",
    "weight_decay_everywhere": "optimizer_groups",
    "lr_lambda_returns_lr": "lr_schedule",
    "detached_attention": "gradient_flow",
    "optimizer_on_other_model": "optimizer_step",
}
EXPECTED_TL = {**EXPECTED, "ce_sign_flip": "loss_sign", "labels_not_shifted": "input_label_alignment"}
EXPECTED_TORCH = {**EXPECTED, "ce_sign_flip": "model_loss", "labels_not_shifted": "model_loss",
                  "targets_equal_inputs": "input_label_alignment", "loss_summed": "model_loss"}

HEALTHY_TL = [{}, {"pos": "learned"}, {"placement": "post"}, {"dropout": 0.1}]
HEALTHY_TORCH = [{}, {"attn": "manual"}, {"pos": "rope"}, {"pos": "rope", "attn": "manual"}, {"norm": "rms"},
                 {"placement": "post"}, {"output": "hf"}, {"dropout": 0.1}, {"dropout": 0.1, "attn": "manual"}]


def run(parts, **kw):
    return doctor(parts["model"], parts["optimizer"], parts["scheduler"], batch=parts["batch"],
                  loss_fn=parts["loss_fn"], **kw)


def test_every_bug_has_a_catching_check():
    assert set(EXPECTED_TL) == set(tl_lm.BUGS)
    assert set(EXPECTED_TORCH) == set(torch_lm.BUGS)


def _flags(report):
    return {r.name: r.status for r in report.results if r.status in ("fail", "warn", "error")}


@pytest.mark.parametrize("variant", HEALTHY_TL, ids=str)
def test_healthy_tensorlite_variants_trip_nothing(variant):
    report = run(tl_lm.build(**variant), overfit_steps=30)
    assert _flags(report) == {}, report


@pytest.mark.parametrize("variant", HEALTHY_TORCH, ids=str)
def test_healthy_torch_variants_trip_nothing(variant):
    report = run(torch_lm.build(**variant), overfit_steps=30)
    assert _flags(report) == {}, report


@pytest.mark.parametrize("bug", sorted(EXPECTED_TL))
def test_each_tensorlite_bug_is_found(bug):
    check = EXPECTED_TL[bug]
    report = run(tl_lm.build(bug), only=[check])
    assert report[check].status in ("fail", "warn"), report[check]
    assert report[check].hint


@pytest.mark.parametrize("bug", sorted(EXPECTED_TORCH))
def test_each_torch_bug_is_found(bug):
    check = EXPECTED_TORCH[bug]
    report = run(torch_lm.build(bug), only=[check])
    assert report[check].status in ("fail", "warn"), report[check]
    assert report[check].hint


def test_post_norm_is_a_design_choice_not_a_failure():
    report = run(torch_lm.build(placement="post"), only=["prenorm", "final_norm", "residual"])
    assert "post-norm" in report["prenorm"].evidence and "design choice" in report["prenorm"].evidence
    assert report["final_norm"].evidence.startswith("post-norm")
    assert all(r.status == "pass" for r in report.results)


@pytest.mark.parametrize("bug", ["pos_not_added", "rope_not_applied"])
@pytest.mark.parametrize("lib", [tl_lm, torch_lm], ids=["tensorlite", "torch"])
def test_position_parts_without_effect_fail(lib, bug):
    report = run(lib.build(bug), only=["position_signal"])
    assert report["position_signal"].status == "fail", report["position_signal"]
    assert "though it has" in report["position_signal"].evidence


class _NoPE(tl_nn.Module):
    """A causal LM with no position encoding at all (a NoPE design), on tensorlite's own blocks."""

    def __init__(self):
        super().__init__()
        cfg = GPTConfig(vocab_size=24, seq_len=16, d_model=32, n_layers=2, n_heads=2)
        self.seq_len, self.vocab_size = cfg.seq_len, cfg.vocab_size
        self.tok = tl_nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = tl_nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.norm = tl_nn.LayerNorm(cfg.d_model)
        self.out = tl_nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def forward(self, idx):
        x = self.tok(idx)
        for block in self.blocks:
            x = block(x)
        return self.out(self.norm(x))


@pytest.mark.parametrize("make", [lambda: torch_lm.build(pos="none")["model"], _NoPE], ids=["torch", "tensorlite"])
def test_a_model_without_any_position_encoding_is_a_warning_not_a_failure(make):
    # NoPE is a design (deeper layers can infer order from the causal mask), not proof of a bug
    tl.manual_seed(0)
    torch.manual_seed(0)
    r = doctor(make(), only=["position_signal"])["position_signal"]
    assert r.status == "warn", r
    assert "NoPE" in r.evidence and "skip" in r.hint


def test_a_nan_model_fails_the_checks_that_see_it_saying_so():
    report = run(torch_lm.build("softmax_over_heads"), only=["causal_leak", "init_scale", "eval_determinism"])
    for r in report.results:
        assert r.status == "fail" and "NaN or Inf" in r.evidence, r


def test_nothing_the_doctor_is_given_changes():
    parts = torch_lm.build()
    model, opt, sched = parts["model"], parts["optimizer"], parts["scheduler"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lr, epoch = opt.param_groups[0]["lr"], sched.last_epoch
    run(parts, overfit_steps=10)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert all(p.grad is None for p in model.parameters()) and not opt.state
    assert opt.param_groups[0]["lr"] == lr and sched.last_epoch == epoch
    assert all("forward" not in m.__dict__ for m in model.modules())
    # and the user's optimizer still steps the user's parameters (not a copy's)
    x, y = parts["batch"]
    model(x, y)[1].backward()
    opt.step()
    assert not torch.equal(model.lm_head.weight, before["lm_head.weight"])


def test_tensorlite_model_and_optimizer_untouched():
    parts = tl_lm.build()
    model, opt = parts["model"], parts["optimizer"]
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    run(parts, overfit_steps=10)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])
    assert all(p.grad is None for p in model.parameters()) and not opt.state


def test_the_report_says_what_was_found():
    found = run(torch_lm.build(output="hf"), only=["causal_leak"]).found
    assert "forward: model(x, labels=x) -> Output" in found
    assert "blocks: transformer.h, 2 x Block" in found and "attention: attn (via sdpa)" in found
    found = run(tl_lm.build(), only=["causal_leak"]).found
    assert "blocks: layers, 2 x Layer" in found and "attention: attn (via softmax)" in found
    assert "norms: attn_norm, mlp_norm in each block; final: final_norm" in found


def test_a_loss_fn_means_the_batch_holds_shifted_targets_even_if_the_model_takes_labels():
    # a Hugging Face style forward(input_ids, labels=None) trained with a loss computed outside:
    # the targets are the usual shifted ones, not labels for the model to shift
    parts = torch_lm.build(output="hf")
    x, y = torch_lm.make_batch()
    loss_fn = torch.nn.functional.cross_entropy
    with_fn = doctor(parts["model"], batch=(x, y), loss_fn=loss_fn, only=["input_label_alignment"])
    assert with_fn["input_label_alignment"].status == "pass", with_fn
    without = doctor(parts["model"], batch=(x, y), only=["input_label_alignment"])  # the model's own loss
    assert without["input_label_alignment"].status == "fail"
    assert "pass that loss_fn" in without["input_label_alignment"].hint
