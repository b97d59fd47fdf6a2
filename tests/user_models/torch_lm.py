"""A small GPT in PyTorch, laid out like nanoGPT (``transformer.h``, a fused ``c_attn``,
``scaled_dot_product_attention(is_causal=True)``, tied embeddings, ``forward(idx, targets)``
returning ``(logits, loss)`` and only the last position's logits without targets) but written
here, with switches for the variants users write: ``attn`` ("sdpa" or "manual" softmax), ``pos``
("learned" or "rope"), ``norm`` ("layer" or a hand-written "rms"), ``placement`` ("pre" or
"post"), ``output`` ("tuple" or a Hugging Face style object with ``.logits``/``.loss`` and
``labels`` shifted inside), ``dropout``.

``build(bug=None, **variant)`` returns the model, optimizer, scheduler, a batch and a loss
function (None: the model's own loss is the training loss); ``bug`` names one line of
:data:`BUGS` to get wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

BUGS = {
    # the answer key
    "attn_scale_multiply": ("scores multiplied by sqrt(d_head)", {}),
    "softmax_over_queries": ("softmax over the query axis (dim=-2)", {"attn": "manual"}),
    "rope_on_values": ("the rotary embedding applied to v too", {"pos": "rope"}),
    "rmsnorm_no_eps": ("RMSNorm without eps", {"norm": "rms"}),
    "rope_sign_flip": ("the rotation's sin terms with the wrong signs", {"pos": "rope"}),
    "no_mlp_residual": ("x = mlp(ln_2(x))", {}),
    "ce_sign_flip": ("the model's loss is -cross_entropy", {}),
    "adamw_decay_on_moment": ("AdamW's decay added to the first moment", {}),
    # the course page
    "init_x100": ("init std 2 instead of 0.02", {}),
    "no_warmup": ("no warmup", {}),
    "causal_mask_open": ("is_causal=False", {}),
    # the sweep issue (no BitLinear here)
    "no_attn_residual": ("x = attn(ln_1(x))", {}),
    "no_prenorm": ("the sublayers read the raw stream", {}),
    "rope_pairing_mismatch": ("interleaved-pair frequency layout used with rotate_half", {"pos": "rope"}),
    "bos_pad_misalignment": ("a BOS prepended to x, a pad appended to y", {}),
    "per_token_loop": ("tokens embedded one at a time", {}),
    # more
    "mask_triu": ("the mask made with triu", {"attn": "manual"}),
    "mask_fill_zero": ("masked_fill(mask == 0, 0.0)", {"attn": "manual"}),
    "no_scale": ("sdpa(..., scale=1.0)", {}),
    "scale_d_model": ("scores scaled by 1/sqrt(n_embd)", {}),
    "heads_no_transpose": ("q.view(B, nh, T, hs) without the transpose", {}),
    "softmax_over_heads": ("softmax over dim=1", {"attn": "manual"}),
    "no_final_norm": ("ln_f not applied", {}),
    "norm_over_time": ("RMSNorm over the time axis", {"norm": "rms"}),
    "labels_not_shifted": ("the model's loss compares logits[:, t] with labels[:, t]", {"output": "hf"}),
    "targets_equal_inputs": ("the batch's y = x", {}),
    "pos_not_added": ("wpe computed but not added", {"pos": "learned"}),
    "rope_not_applied": ("the rotary tables never applied", {"pos": "rope"}),
    "rope_q_only": ("the rotation applied to q only", {"pos": "rope"}),
    "dropout_in_eval": ("dropout_p passed to sdpa in eval too", {"dropout": 0.1}),
    "weight_decay_everywhere": ("AdamW(model.parameters(), weight_decay=0.1)", {}),
    "lr_lambda_returns_lr": ("the LambdaLR lambda returns an LR", {}),
    "detached_attention": ("the attention output detached", {}),
    "optimizer_on_other_model": ("the optimizer built on another model instance", {}),
    "loss_summed": ("cross_entropy(..., reduction='sum')", {}),
}

V, T, D, H, L = 48, 16, 32, 4, 2
LR = 3e-3


@dataclass
class Config:
    block_size: int = T
    vocab_size: int = V
    n_layer: int = L
    n_head: int = H
    n_embd: int = D
    dropout: float = 0.0
    attn: str = "sdpa"
    pos: str = "learned"
    norm: str = "layer"
    placement: str = "pre"
    output: str = "tuple"
    bug: str | None = None


class RMSNorm(nn.Module):
    def __init__(self, dim, bug=None):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = 0.0 if bug == "rmsnorm_no_eps" else 1e-6
        self.dim = 1 if bug == "norm_over_time" else -1

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(self.dim, keepdim=True) + self.eps) * self.weight


def make_norm(cfg):
    return RMSNorm(cfg.n_embd, cfg.bug) if cfg.norm == "rms" else nn.LayerNorm(cfg.n_embd)


def rope_cache(hs, n, bug=None):
    inv = 1.0 / (10000 ** (torch.arange(0, hs, 2).float() / hs))
    ang = torch.outer(torch.arange(n).float(), inv)
    full = ang.repeat_interleave(2, dim=-1) if bug == "rope_pairing_mismatch" else torch.cat([ang, ang], dim=-1)
    return full.cos(), full.sin()


def apply_rope(x, cos, sin, bug=None):
    x1, x2 = x.chunk(2, dim=-1)
    if bug == "rope_sign_flip":
        c, s = cos[..., : x1.shape[-1]], sin[..., : x1.shape[-1]]
        return torch.cat([x1 * c + x2 * s, x1 * s - x2 * c], dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.attn_dropout = nn.Dropout(cfg.dropout)
        self.cfg = cfg
        if cfg.pos == "rope":
            cos, sin = rope_cache(cfg.n_embd // cfg.n_head, cfg.block_size, cfg.bug)
            self.register_buffer("cos", cos, persistent=False)
            self.register_buffer("sin", sin, persistent=False)
        self.register_buffer("mask", torch.tril(torch.ones(cfg.block_size, cfg.block_size)).view(
            1, 1, cfg.block_size, cfg.block_size), persistent=False)

    def forward(self, x):
        cfg, bug = self.cfg, self.cfg.bug
        B, T_, C = x.size()
        nh, hs = cfg.n_head, C // cfg.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        if bug == "heads_no_transpose":
            q, k, v = (t.reshape(B, nh, T_, hs) for t in (q, k, v))
        else:
            q, k, v = (t.view(B, T_, nh, hs).transpose(1, 2) for t in (q, k, v))
        if cfg.pos == "rope" and bug != "rope_not_applied":
            cos, sin = self.cos[:T_], self.sin[:T_]
            q = apply_rope(q, cos, sin, bug)
            if bug != "rope_q_only":
                k = apply_rope(k, cos, sin, bug)
            if bug == "rope_on_values":
                v = apply_rope(v, cos, sin, bug)
        scale = {"attn_scale_multiply": math.sqrt(hs), "no_scale": 1.0, "scale_d_model": 1 / math.sqrt(C)}.get(
            bug, 1 / math.sqrt(hs))
        if cfg.attn == "sdpa":
            p = cfg.dropout if (self.training or bug == "dropout_in_eval") else 0.0
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=bug != "causal_mask_open",
                                               scale=scale)
        else:
            att = (q @ k.transpose(-2, -1)) * scale
            if bug != "causal_mask_open":
                keep = torch.triu(torch.ones(T_, T_)) if bug == "mask_triu" else self.mask[:, :, :T_, :T_]
                att = att.masked_fill(keep == 0, 0.0 if bug == "mask_fill_zero" else float("-inf"))
            att = F.softmax(att, dim={"softmax_over_queries": -2, "softmax_over_heads": 1}.get(bug, -1))
            att = self.attn_dropout(att)
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T_, C)
        y = self.c_proj(y)
        return y.detach() if bug == "detached_attention" else y


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1, self.attn, self.ln_2, self.mlp = make_norm(cfg), CausalSelfAttention(cfg), make_norm(cfg), MLP(cfg)
        self.cfg = cfg

    def forward(self, x):
        bug = self.cfg.bug
        if self.cfg.placement == "post":
            x = self.ln_1(x + self.attn(x))
            return self.ln_2(x + self.mlp(x))
        a = self.attn(x if bug == "no_prenorm" else self.ln_1(x))
        x = a if bug == "no_attn_residual" else x + a
        m = self.mlp(x if bug == "no_prenorm" else self.ln_2(x))
        return m if bug == "no_mlp_residual" else x + m


class Output:
    """A Hugging Face style model output."""

    def __init__(self, logits, loss=None):
        self.logits, self.loss = logits, loss


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        parts = dict(wte=nn.Embedding(cfg.vocab_size, cfg.n_embd), drop=nn.Dropout(cfg.dropout),
                     h=nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)]))
        if cfg.pos == "learned":
            parts["wpe"] = nn.Embedding(cfg.block_size, cfg.n_embd)
        if cfg.placement == "pre":
            parts["ln_f"] = make_norm(cfg)
        self.transformer = nn.ModuleDict(parts)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        std = 2.0 if cfg.bug == "init_x100" else 0.02
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, std / math.sqrt(2 * cfg.n_layer) if name.endswith("c_proj.weight") else std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets=None, labels=None):
        cfg, bug = self.config, self.config.bug
        b, t = idx.size()
        if bug == "per_token_loop":
            x = torch.stack([torch.stack([self.transformer.wte(idx[i, j]) for j in range(t)]) for i in range(b)])
        else:
            x = self.transformer.wte(idx)
        if cfg.pos == "learned":
            pe = self.transformer.wpe(torch.arange(t, device=idx.device))
            if bug != "pos_not_added":
                x = x + pe
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x)
        if cfg.placement == "pre" and bug != "no_final_norm":
            x = self.transformer.ln_f(x)
        if cfg.output == "hf":
            logits = self.lm_head(x)
            loss = None
            if labels is not None:
                if bug == "labels_not_shifted":
                    lg, tg = logits, labels
                else:
                    lg, tg = logits[:, :-1], labels[:, 1:]
                loss = self._loss(lg, tg)
            return Output(logits, loss)
        if targets is None:
            return self.lm_head(x[:, [-1], :]), None
        logits = self.lm_head(x)
        return logits, self._loss(logits, targets)

    def _loss(self, logits, targets):
        bug = self.config.bug
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                               reduction="sum" if bug == "loss_summed" else "mean")
        return -loss if bug == "ce_sign_flip" else loss


class HandAdamW(torch.optim.Optimizer):
    """AdamW written out by hand (the answer key's optimizer.py)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, bug=None):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.bug = bug

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"], st["exp_avg"], st["exp_avg_sq"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                st["step"] += 1
                m, v = st["exp_avg"], st["exp_avg_sq"]
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                mh, vh = m / (1 - b1 ** st["step"]), v / (1 - b2 ** st["step"])
                p.addcdiv_(mh, vh.sqrt() + eps, value=-lr)
                if self.bug == "adamw_decay_on_moment":
                    m.add_(p, alpha=-lr * wd)
                else:
                    p.mul_(1 - lr * wd)


def param_groups(model, wd):
    ps = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in ps if p.dim() >= 2], "weight_decay": wd},
            {"params": [p for p in ps if p.dim() < 2], "weight_decay": 0.0}]


def make_batch(bug=None, seed=0, batch_size=8):
    rng = np.random.default_rng(seed)
    s = torch.from_numpy(rng.integers(2, V, size=(batch_size, T + 1)))
    x, y = s[:, :-1].clone(), s[:, 1:].clone()
    if bug == "bos_pad_misalignment":
        x = torch.cat([torch.zeros(batch_size, 1, dtype=x.dtype), x[:, :-1]], dim=1)
        y = torch.cat([y[:, 1:], torch.ones(batch_size, 1, dtype=y.dtype)], dim=1)
    elif bug == "targets_equal_inputs":
        y = x.clone()
    return x, y


def build(bug=None, **variant):
    need = BUGS[bug][1] if bug else {}
    cfg = Config(bug=bug, **{**variant, **need})
    torch.manual_seed(0)
    model = GPT(cfg)
    target = GPT(Config(**{**cfg.__dict__, "bug": None})) if bug == "optimizer_on_other_model" else model
    groups = target.parameters() if bug == "weight_decay_everywhere" else param_groups(target, 0.1)
    opt = HandAdamW(groups, lr=LR, weight_decay=0.1, bug=bug) if bug == "adamw_decay_on_moment" else \
        torch.optim.AdamW(groups, lr=LR, weight_decay=0.1)
    if bug == "no_warmup":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1000)
    elif bug == "lr_lambda_returns_lr":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: LR * min(1.0, (s + 1) / 20))
    else:
        warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.05, total_iters=20)
        cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=980)
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[20])
    x, y = make_batch(bug)
    if cfg.output == "hf":
        y = x.clone()  # labels = input ids: the model shifts them
    return dict(model=model, optimizer=opt, scheduler=sched, batch=(x, y), loss_fn=None)
