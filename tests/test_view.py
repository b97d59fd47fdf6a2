"""The model view finds blocks, attention, norms, embeddings, head, sizes and a logits forward on
models it was not written for: tensorlite's GPT, a user's tensorlite model, nanoGPT-style and
Hugging Face style torch models; every guess can be overridden."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from user_models import tl_lm, torch_lm

import tensorlite as tl
from tensorlite import nn
from tensorlite.debug.view import eval_mode, model_view


def test_tensorlite_gpt():
    tl.manual_seed(0)
    v = model_view(nn.GPT(nn.GPTConfig(vocab_size=40, seq_len=16, d_model=32, n_layers=2, n_heads=4,
                                       tie_weights=True)))
    assert v.framework == "tensorlite" and v.blocks_path == "blocks" and len(v.blocks) == 2
    assert v.attention == {"blocks.0": "blocks.0.attn", "blocks.1": "blocks.1.attn"}
    assert v.attention_kind["blocks.0"] == "fused" and v.mlp["blocks.0"] == "blocks.0.ffn"
    assert v.norms == ["blocks.0.norm1", "blocks.0.norm2", "blocks.1.norm1", "blocks.1.norm2", "norm_f"]
    assert v.final_norm == "norm_f" and v.lm_head == "lm_head" and v.tied
    assert v.token_embedding == "tok_emb" and v.position_embedding == "pos_emb (its weight read directly)"
    assert (v.seq_len, v.vocab_size, v.d_model) == (16, 40, 32)
    assert v.sources["seq_len"] == "config.seq_len" and v.forward_kind == "model(x) -> logits"


def test_a_users_tensorlite_model():
    v = model_view(tl_lm.build()["model"])
    assert v.blocks_path == "layers" and v.attention["layers.0"] == "layers.0.attn"
    assert v.attention_kind["layers.0"] == "softmax"
    assert "layers.0.attn_norm" in v.norms and v.final_norm == "final_norm" and v.lm_head == "head"
    assert v.seq_len == tl_lm.T and v.sources["seq_len"] == "context_length"
    assert v.logits(np.zeros((2, 5), dtype=np.int64)).shape == (2, 5, tl_lm.V)


def test_nanogpt_style_torch_model():
    v = model_view(torch_lm.build()["model"])
    assert v.framework == "torch" and v.blocks_path == "transformer.h"
    assert v.attention["transformer.h.0"] == "transformer.h.0.attn" and v.attention_kind["transformer.h.0"] == "sdpa"
    assert v.mlp["transformer.h.0"] == "transformer.h.0.mlp"
    assert v.final_norm == "transformer.ln_f" and v.tied and v.lm_head == "lm_head"
    assert v.position_embedding == "transformer.wpe" and v.sources["seq_len"] == "config.block_size"
    # without targets the model returns the last position only: the view asks with targets
    assert v.forward_kind == "model(x, targets=y) -> (logits, loss)" and v.own_loss
    assert v.logits(np.zeros((3, 7), dtype=np.int64)).shape == (3, 7, torch_lm.V)
    text = v.describe()
    assert "blocks: transformer.h, 2 x Block" in text and "attention: attn (via sdpa)" in text
    assert "head: lm_head (tied to transformer.wte)" in text


def test_hugging_face_style_output_and_labels():
    v = model_view(torch_lm.build(output="hf")["model"])
    assert v.forward_kind == "model(x, labels=x) -> Output" and v.own_loss and v._target_kw == "labels"
    x = np.random.default_rng(0).integers(0, torch_lm.V, size=(2, 9))
    with torch.no_grad():
        loss = float(v.model_loss_native(x, x))
    logits = torch.from_numpy(v.logits(x))
    ref = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, torch_lm.V), torch.from_numpy(x[:, 1:]).reshape(-1))
    assert loss == pytest.approx(float(ref), rel=1e-5)


class BaseModel(torch.nn.Module):
    """Hugging Face's layout: the causal-LM class passes the token ids to a base model."""

    def __init__(self, cfg):
        super().__init__()
        self.wte, self.wpe = torch.nn.Embedding(cfg.vocab_size, cfg.n_embd), torch.nn.Embedding(cfg.block_size, cfg.n_embd)
        self.h = torch.nn.ModuleList([torch_lm.Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = torch.nn.LayerNorm(cfg.n_embd)

    def forward(self, input_ids):
        x = self.wte(input_ids) + self.wpe(torch.arange(input_ids.shape[1]))
        for block in self.h:
            x = block(x)
        return self.ln_f(x)


class ForCausalLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.config = torch_lm.Config()
        self.transformer = BaseModel(self.config)
        self.lm_head = torch.nn.Linear(self.config.n_embd, self.config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight
        for m in (self.transformer.wte, self.transformer.wpe):
            torch.nn.init.normal_(m.weight, 0.0, 0.02)  # N(0, 1), torch's default, tied to the head is a bug

    def forward(self, input_ids):
        return self.lm_head(self.transformer(input_ids))


def test_hugging_face_layout_a_base_model_takes_the_tokens():
    # the first module called with the tokens is the base model, not the embedding table
    v = model_view(ForCausalLM())
    assert v.token_embedding == "transformer.wte" and v.position_embedding == "transformer.wpe"
    assert v.blocks_path == "transformer.h" and v.final_norm == "transformer.ln_f" and v.tied
    from tensorlite.debug import doctor

    report = doctor(ForCausalLM(), overfit_steps=20)
    assert not [r for r in report.results if r.status in ("fail", "warn", "error")], report


class FakeNorm(torch.nn.Linear):
    """Named like a norm, behaves like a linear layer."""


class OddNames(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.vocab = torch.nn.Embedding(20, 12)
        self.stack = torch.nn.Sequential(*[torch.nn.Sequential(torch.nn.LayerNorm(12), FakeNorm(12, 12))
                                           for _ in range(3)])
        self.out = torch.nn.Linear(12, 20)

    def forward(self, idx):
        return self.out(self.stack(self.vocab(idx)))


def test_norms_are_recognised_by_behaviour_not_by_name():
    v = model_view(OddNames())
    assert v.blocks_path == "stack" and len(v.blocks) == 3
    assert v.norms == ["stack.0.0", "stack.1.0", "stack.2.0"]  # the LayerNorms, not the FakeNorms
    assert v.vocab_size == 20 and v.sources["vocab_size"] == "logits shape"
    assert any("context length not found" in n for n in v.notes)


def test_overrides():
    m = torch_lm.build()["model"]
    v = model_view(m, blocks="transformer.h", seq_len=8, vocab_size=torch_lm.V)
    assert v.sources["blocks"] == "given" and v.seq_len == 8 and v.probe_len == 8
    v = model_view(m, logits_fn=lambda x: m(x, torch.zeros_like(x))[0])
    assert v.forward_kind == "logits_fn(x)" and v.logits(np.zeros((1, 4), dtype=np.int64)).shape == (1, 4, torch_lm.V)


class NoLogits(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.e = torch.nn.Embedding(10, 4)

    def forward(self, idx):
        return self.e(idx).sum()


def test_a_forward_without_logits_is_an_error_naming_the_override():
    with pytest.raises(ValueError, match="pass logits_fn="):
        model_view(NoLogits())


def test_eval_mode_restores_each_modules_flag():
    m = torch_lm.build(dropout=0.1)["model"]
    m.train()
    m.transformer.h[0].eval()  # deliberately half in eval
    with eval_mode(m):
        assert not any(x.training for x in m.modules())
    assert m.training and not m.transformer.h[0].training and m.transformer.h[1].training
    tm = tl_lm.build()["model"]
    with eval_mode(tm):
        assert not tm.training
    assert tm.training
