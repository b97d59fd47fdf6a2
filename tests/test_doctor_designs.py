"""Healthy designs the checks must not mistake for bugs (QK-norm, ALiBi, a pre-scaled q, parallel
attention and MLP, label smoothing, Karpathy's lecture layout with per-head modules and flattened
logits, a forward that requires its targets, output projections initialised to zero), and the bug
each would hide, found."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tensorlite.debug import doctor, model_view


class Attention(nn.Module):
    def __init__(self, d, h, kind, bug=""):
        super().__init__()
        self.qkv, self.o, self.h, self.kind, self.bug = nn.Linear(d, 3 * d), nn.Linear(d, d), h, kind, bug
        if kind == "qk_norm":
            self.q_norm, self.k_norm = nn.LayerNorm(d // h), nn.LayerNorm(d // h)
        if kind == "alibi":
            self.register_buffer("slopes", torch.tensor([2.0 ** (-8 * (i + 1) / h) for i in range(h)]))

    def forward(self, x):
        b, t, d = x.shape
        hd = d // self.h
        q, k, v = self.qkv(x).view(b, t, 3, self.h, hd).permute(2, 0, 3, 1, 4)
        if self.kind == "qk_norm":
            q, k = self.q_norm(q), self.k_norm(k)
        if self.kind == "prescaled":  # x-transformers style: q scaled before the product
            att = (q * (1.0 if self.bug == "no_scale" else hd ** -0.5)) @ k.transpose(-1, -2)
        elif self.bug == "times_sqrt_d":
            att = q @ k.transpose(-1, -2) * math.sqrt(hd)
        else:
            att = q @ k.transpose(-1, -2) / math.sqrt(hd)
        if self.kind == "alibi":
            pos = torch.arange(t)
            att = att - self.slopes[:, None, None] * (pos[None, :] - pos[:, None]).abs().float()
        keep = torch.ones(t, t, dtype=torch.bool).tril()
        if self.bug != "no_mask":
            att = att.masked_fill(~keep, float("-inf"))
        return self.o((att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d, h, kind, bug):
        super().__init__()
        self.n1, self.n2, self.attn = nn.LayerNorm(d), nn.LayerNorm(d), Attention(d, h, kind, bug)
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.parallel = kind == "parallel"

    def forward(self, x):
        if self.parallel:  # GPT-J / NeoX: attention and MLP read the same input
            return x + self.attn(self.n1(x)) + self.ff(self.n2(x))
        x = x + self.attn(self.n1(x))
        return x + self.ff(self.n2(x))


class LM(nn.Module):
    def __init__(self, kind="plain", bug="", smoothing=0.0, vocab=40, ctx=16, d=32, h=4, layers=2):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(vocab, d)
        self.pos = None if kind == "alibi" else nn.Parameter(torch.randn(1, ctx, d) * 0.02)
        self.blocks = nn.Sequential(*[Block(d, h, kind, bug) for _ in range(layers)])
        self.norm, self.out, self.smoothing = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False), smoothing
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, idx, targets):  # targets required: the doctor passes them
        x = self.emb(idx) + (0 if self.pos is None else self.pos[:, : idx.shape[1]])
        logits = self.out(self.norm(self.blocks(x)))
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten(), label_smoothing=self.smoothing)


def flags(model):
    report = doctor(model, torch.optim.AdamW(model.parameters(), lr=1e-3), overfit_steps=30)
    return {r.name: r.status for r in report.results if r.status in ("fail", "warn", "error")}, report


@pytest.mark.parametrize("kind", ["plain", "qk_norm", "alibi", "prescaled", "parallel"])
def test_healthy_designs_trip_nothing(kind):
    found, report = flags(LM(kind))
    assert found == {}, report


def test_label_smoothing_is_no_false_alarm():
    found, report = flags(LM(smoothing=0.1))
    assert found == {} and report["model_loss"].status == "pass"


def test_alibi_scale_is_read_where_the_position_bias_cancels():
    # the logits are scale * q.k + a bias of the position alone: not one multiple of q.k, but the
    # differences between the batch's rows are
    _, report = flags(LM("alibi"))
    r = report["attention_scale"]
    assert r.status == "pass" and "a position bias is added" in r.evidence, r
    assert "per layer: 1, 1 (expected 1)" in r.evidence, r


@pytest.mark.parametrize("kind, bug, check", [("prescaled", "no_scale", "attention_scale"),
                                              ("alibi", "no_mask", "causal_leak"),
                                              ("alibi", "times_sqrt_d", "attention_scale"),
                                              ("qk_norm", "no_mask", "causal_leak")])
def test_the_bug_each_design_could_hide_is_found(kind, bug, check):
    found, report = flags(LM(kind, bug))
    assert found.get(check) == "fail", report


class Head(nn.Module):
    """Karpathy's lecture GPT: one module per head, a tril buffer, (B*T, V) logits with targets."""

    def __init__(self, d, hs, ctx):
        super().__init__()
        self.key, self.query, self.value = (nn.Linear(d, hs, bias=False) for _ in range(3))
        self.register_buffer("tril", torch.tril(torch.ones(ctx, ctx)))

    def forward(self, x):
        _, t, _ = x.shape
        k, q = self.key(x), self.query(x)
        wei = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5
        wei = F.softmax(wei.masked_fill(self.tril[:t, :t] == 0, float("-inf")), dim=-1)
        return wei @ self.value(x)


class LectureBlock(nn.Module):
    def __init__(self, d, h, ctx):
        super().__init__()
        self.heads = nn.ModuleList([Head(d, d // h, ctx) for _ in range(h)])
        self.proj, self.ln1, self.ln2 = nn.Linear(d, d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.ffwd = nn.Sequential(nn.Linear(d, 4 * d), nn.ReLU(), nn.Linear(4 * d, d))

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.proj(torch.cat([head(h) for head in self.heads], dim=-1))
        return x + self.ffwd(self.ln2(x))


class LectureGPT(nn.Module):
    def __init__(self, vocab=40, ctx=16, d=32, h=4):
        super().__init__()
        torch.manual_seed(0)
        self.token_embedding_table = nn.Embedding(vocab, d)
        self.position_embedding_table = nn.Embedding(ctx, d)
        self.blocks = nn.Sequential(*[LectureBlock(d, h, ctx) for _ in range(2)])
        self.ln_f, self.lm_head = nn.LayerNorm(d), nn.Linear(d, vocab)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, idx, targets=None):
        b, t = idx.shape
        x = self.token_embedding_table(idx) + self.position_embedding_table(torch.arange(t))
        logits = self.lm_head(self.ln_f(self.blocks(x)))
        if targets is None:
            return logits, None
        logits = logits.view(b * t, -1)
        return logits, F.cross_entropy(logits, targets.view(b * t))


def test_the_lecture_layout():
    model = LectureGPT()
    v = model_view(model)
    assert v.blocks_path == "blocks" and v.attention["blocks.0"] == "blocks.0"  # heads concatenated inline
    assert v.own_loss and v.seq_len == 16 and v.sources["seq_len"] == "position_embedding_table rows"
    found, report = flags(model)
    assert found == {}, report
    assert report["model_loss"].status == "pass"


def test_model_loss_reads_a_label_smoothing_off_sharp_logits():
    from tensorlite.debug import checks

    model = LM(smoothing=0.1)
    with torch.no_grad():
        model.out.weight.mul_(100)  # sharp logits: smoothing changes the loss visibly
    r = checks.model_loss(model)
    assert r.status == "pass" and "label smoothing 0.1" in r.evidence
    model.smoothing = 0.0
    assert "label smoothing" not in checks.model_loss(model).evidence


def test_zero_initialised_output_projections_are_a_design():
    # modded-nanogpt style: the projections back into the residual stream start at zero, so at
    # init nothing before them has a gradient; they learn from the first step
    model = LM()
    with torch.no_grad():
        for block in model.blocks:
            block.attn.o.weight.zero_()
            block.ff[2].weight.zero_()
    found, report = flags(model)
    assert found == {}, report
    assert "zero-initialised blocks.0.attn.o.weight" in report["gradient_flow"].evidence
    assert report["position_signal"].status == "skip" and "does not depend on the tokens" in report["position_signal"].evidence


def test_a_detached_branch_behind_a_zero_projection_is_still_found():
    model = LM()
    with torch.no_grad():
        for block in model.blocks:
            block.attn.o.weight.zero_()
    model.blocks[0].ff[0].weight.requires_grad_(True)
    original = model.blocks[0].ff.forward
    model.blocks[0].ff.forward = lambda x: original(x.detach() * 0 + x.detach())  # the MLP's input detached
    found, report = flags(model)
    assert found.get("gradient_flow") == "fail", report


class MHABlock(nn.Module):
    """Pre-norm with torch's nn.MultiheadAttention (True = masked); ``bug="kv_raw"`` reads k and v from the raw stream."""

    def __init__(self, d, h, bug=""):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, h, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.bug = bug

    def forward(self, x):
        t = x.shape[1]
        mask = torch.ones(t, t, dtype=torch.bool).triu(1)
        h = self.n1(x)
        kv = x if self.bug == "kv_raw" else h
        x = x + self.attn(h, kv, kv, attn_mask=mask, need_weights=False)[0]
        return x + self.ff(self.n2(x))


class MHALM(nn.Module):
    def __init__(self, bug="", vocab=40, ctx=16, d=32, h=4):
        super().__init__()
        torch.manual_seed(0)
        self.block_size = ctx
        self.emb, self.pos = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.blocks = nn.Sequential(*[MHABlock(d, h, bug) for _ in range(2)])
        self.norm, self.out = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)
        for m in (self.emb, self.pos):
            nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, idx):
        x = self.emb(idx) + self.pos(torch.arange(idx.shape[1]))
        return self.out(self.norm(self.blocks(x)))


def test_multihead_attention_reading_keys_and_values_from_the_raw_stream():
    # the query is normalised, the keys and values are not: attn(h, x, x) instead of attn(h, h, h)
    found, report = flags(MHALM())
    assert found == {}, report
    found, report = flags(MHALM("kv_raw"))
    assert found.get("prenorm") == "fail" and "(input 2)" in report["prenorm"].evidence, report
