"""A small decoder-only LM written on tensorlite's public API, as a user would write it (not
``nn.GPT``): its own names (``layers``, ``final_norm``, ``head``), separate q/k/v projections, a
hand-written RMSNorm, rotary embeddings with the half-split pairing, and a causal mask made with
``tril`` + ``masked_fill``.

``build(bug=None, **variant)`` returns the model, its optimizer, scheduler, a batch and a loss
function; ``bug`` names one line of :data:`BUGS` to get wrong. Variants: ``pos`` ("rope" or
"learned"), ``placement`` ("pre" or "post" norm), ``dropout``.
"""

from __future__ import annotations

import math

import numpy as np

import tensorlite as tl
from tensorlite import functional as F
from tensorlite import nn, optim

#: bug -> (what the one line gets wrong, the variant it needs)
BUGS = {
    # the answer key
    "attn_scale_multiply": ("scores multiplied by sqrt(d_head) instead of divided", {}),
    "softmax_over_queries": ("softmax over the query axis (dim=-2)", {}),
    "rope_on_values": ("the rotary embedding applied to v too", {"pos": "rope"}),
    "rmsnorm_no_eps": ("RMSNorm without eps", {}),
    "rope_sign_flip": ("the sin terms of the rotation with the wrong signs", {"pos": "rope"}),
    "no_mlp_residual": ("x = mlp(norm(x)) instead of x = x + mlp(norm(x))", {}),
    "ce_sign_flip": ("the loss is +mean(log p[target])", {}),
    "adamw_decay_on_moment": ("AdamW's decay added to the first moment", {}),
    # the course page
    "init_x100": ("weights initialised with std 2 instead of 0.02", {}),
    "no_warmup": ("the schedule starts at the peak LR", {}),
    "causal_mask_open": ("no causal mask", {}),
    # the sweep issue (BitLinear does not apply: this model has none)
    "no_attn_residual": ("x = attn(norm(x)) instead of x = x + attn(norm(x))", {}),
    "no_prenorm": ("the sublayers read the raw stream (norms built, never called)", {}),
    "rope_pairing_mismatch": ("cos/sin tables laid out for interleaved pairs, applied to halves", {"pos": "rope"}),
    "bos_pad_misalignment": ("a BOS prepended to x and a pad appended to y", {}),
    "per_token_loop": ("tokens embedded one at a time in a Python loop", {}),
    # more, as they happen
    "mask_triu": ("the mask built with triu instead of tril", {}),
    "mask_fill_zero": ("masked scores filled with 0 instead of -inf", {}),
    "no_scale": ("scores not divided by sqrt(d_head)", {}),
    "scale_d_model": ("scores divided by sqrt(d_model) instead of sqrt(d_head)", {}),
    "heads_no_transpose": ("heads split by a plain reshape, without the transpose", {}),
    "softmax_over_heads": ("softmax over dim=1 (the heads)", {}),
    "no_final_norm": ("the head reads the stream without the final norm", {}),
    "norm_over_time": ("RMSNorm's mean taken over the time axis", {}),
    "labels_not_shifted": ("y = x", {}),
    "pos_not_added": ("the position embedding computed but not added", {"pos": "learned"}),
    "rope_not_applied": ("the rotary tables built but never applied", {"pos": "rope"}),
    "rope_q_only": ("the rotation applied to q only", {"pos": "rope"}),
    "dropout_in_eval": ("F.dropout(x, p, True): dropout also in eval mode", {"dropout": 0.1}),
    "weight_decay_everywhere": ("AdamW(model.parameters(), weight_decay=0.1): norms and biases decayed", {}),
    "lr_lambda_returns_lr": ("the LambdaLR lambda returns an LR instead of a factor", {}),
    "detached_attention": ("the attention output .detach()ed", {}),
    "optimizer_on_other_model": ("the optimizer built on another instance of the model", {}),
}

V, T, D, H, L = 48, 16, 32, 4, 2
LR = 3e-3


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6, bug=None):
        super().__init__()
        self.weight = nn.Parameter(np.ones(dim, dtype=np.float32))
        self.eps = 0.0 if bug == "rmsnorm_no_eps" else eps
        self.axis = 1 if bug == "norm_over_time" else -1

    def forward(self, x):
        ms = (x * x).mean(self.axis, keepdim=True)
        return x * tl.rsqrt(ms + self.eps) * self.weight


def rope_tables(head_dim, max_len, bug=None):
    """cos and sin of position * theta, (max_len, head_dim), laid out for the pairs (i, i + d/2)."""
    half = head_dim // 2
    inv = 1.0 / (10000 ** (np.arange(half) / half))
    ang = np.arange(max_len)[:, None] * inv[None, :]
    if bug == "rope_pairing_mismatch":  # the layout for interleaved pairs (2i, 2i+1), used with halves
        full = np.repeat(ang, 2, axis=1)
    else:
        full = np.concatenate([ang, ang], axis=1)
    return tl.tensor(np.cos(full).astype(np.float32)), tl.tensor(np.sin(full).astype(np.float32))


def rotate_half(x):
    half = x.shape[-1] // 2
    return tl.cat([-x[..., half:], x[..., :half]], dim=-1)


def rotate(x, cos, sin, bug=None):
    """Rotate pairs (i, i + d/2) by position * theta_i."""
    if bug == "rope_sign_flip":  # the answer key's rows: [x1 cos + x2 sin, x1 sin - x2 cos]
        half = x.shape[-1] // 2
        x1, x2, c, s = x[..., :half], x[..., half:], cos[..., :half], sin[..., :half]
        return tl.cat([x1 * c + x2 * s, x1 * s - x2 * c], dim=-1)
    return x * cos + rotate_half(x) * sin


class SelfAttention(nn.Module):
    def __init__(self, bug=None, rope=True, dropout=0.0):
        super().__init__()
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(D, D, bias=False) for _ in range(4))
        self.bug, self.rope, self.p = bug, rope, dropout

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        hd = d // H
        if self.bug == "heads_no_transpose":
            q, k, v = (w(x).reshape(b, H, t, hd) for w in (self.wq, self.wk, self.wv))
        else:
            q, k, v = (w(x).reshape(b, t, H, hd).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        if self.rope and self.bug != "rope_not_applied":
            c, s = cos[:t], sin[:t]
            q = rotate(q, c, s, self.bug)
            if self.bug != "rope_q_only":
                k = rotate(k, c, s, self.bug)
            if self.bug == "rope_on_values":
                v = rotate(v, c, s, self.bug)
        scores = q @ k.transpose(-2, -1)
        if self.bug == "attn_scale_multiply":
            scores = scores * math.sqrt(hd)
        elif self.bug == "scale_d_model":
            scores = scores / math.sqrt(d)
        elif self.bug != "no_scale":
            scores = scores / math.sqrt(hd)
        if self.bug != "causal_mask_open":
            keep = tl.triu(tl.ones(t, t)) if self.bug == "mask_triu" else tl.tril(tl.ones(t, t))
            fill = 0.0 if self.bug == "mask_fill_zero" else float("-inf")
            scores = scores.masked_fill(keep == 0, fill)
        dim = {"softmax_over_queries": -2, "softmax_over_heads": 1}.get(self.bug, -1)
        att = F.softmax(scores, dim=dim)
        att = F.dropout(att, self.p, self.training or self.bug == "dropout_in_eval")
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        y = self.wo(y)
        return y.detach() if self.bug == "detached_attention" else y


class FeedForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(D, 4 * D)
        self.down = nn.Linear(4 * D, D)

    def forward(self, x):
        return self.down(F.gelu(self.up(x)))


class Layer(nn.Module):
    def __init__(self, bug=None, rope=True, placement="pre", dropout=0.0):
        super().__init__()
        self.attn_norm, self.mlp_norm = RMSNorm(D, bug=bug), RMSNorm(D, bug=bug)
        self.attn, self.mlp = SelfAttention(bug, rope, dropout), FeedForward()
        self.bug, self.placement = bug, placement

    def forward(self, x, cos, sin):
        bug = self.bug
        if self.placement == "post":
            x = self.attn_norm(x + self.attn(x, cos, sin))
            return self.mlp_norm(x + self.mlp(x))
        h = x if bug == "no_prenorm" else self.attn_norm(x)
        a = self.attn(h, cos, sin)
        x = a if bug == "no_attn_residual" else x + a
        h = x if bug == "no_prenorm" else self.mlp_norm(x)
        m = self.mlp(h)
        return m if bug == "no_mlp_residual" else x + m


class TinyLM(nn.Module):
    def __init__(self, bug=None, pos="rope", placement="pre", dropout=0.0):
        super().__init__()
        self.context_length, self.vocab_size = T, V
        self.embed = nn.Embedding(V, D)
        self.pos = nn.Embedding(T, D) if pos == "learned" else None
        self.layers = nn.ModuleList([Layer(bug, pos == "rope", placement, dropout) for _ in range(L)])
        self.final_norm = RMSNorm(D, bug=bug) if placement == "pre" else None
        self.head = nn.Linear(D, V, bias=False)
        self.cos, self.sin = rope_tables(D // H, T, bug)
        self.bug, self.placement = bug, placement
        std = 2.0 if bug == "init_x100" else 0.02
        for name, p in self.named_parameters():
            if p.ndim == 2:
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx):
        b, t = idx.shape
        if self.bug == "per_token_loop":
            x = tl.stack([tl.stack([self.embed(idx[i, j]) for j in range(t)]) for i in range(b)])
        else:
            x = self.embed(idx)
        if self.pos is not None:
            p = self.pos(tl.arange(t))
            if self.bug != "pos_not_added":
                x = x + p
        for layer in self.layers:
            x = layer(x, self.cos, self.sin)
        if self.final_norm is not None and self.bug != "no_final_norm":
            x = self.final_norm(x)
        return self.head(x)


class HandAdamW(optim.Optimizer):
    """AdamW written out by hand (the answer key's optimizer file)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, bug=None):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.bug = bug

    def step(self, closure=None):
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data
                st = self.state[p]
                if not st:
                    st["step"], st["m"], st["v"] = 0, np.zeros_like(p.data), np.zeros_like(p.data)
                st["step"] += 1
                st["m"] = b1 * st["m"] + (1 - b1) * g
                st["v"] = b2 * st["v"] + (1 - b2) * g * g
                mh, vh = st["m"] / (1 - b1 ** st["step"]), st["v"] / (1 - b2 ** st["step"])
                p.data = p.data - lr * mh / (np.sqrt(vh) + eps)
                if self.bug == "adamw_decay_on_moment":
                    st["m"] = st["m"] - lr * wd * p.data
                else:
                    p.data = p.data * (1 - lr * wd)


def param_groups(model, wd):
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    return [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]


def make_batch(bug=None, seed=0, batch_size=8):
    rng = np.random.default_rng(seed)
    stream = rng.integers(2, V, size=batch_size * (T + 1)).reshape(batch_size, T + 1)
    x, y = stream[:, :-1].copy(), stream[:, 1:].copy()
    if bug == "bos_pad_misalignment":
        x = np.concatenate([np.zeros((batch_size, 1), dtype=x.dtype), x[:, :-1]], axis=1)
        y = np.concatenate([y[:, 1:], np.ones((batch_size, 1), dtype=y.dtype)], axis=1)
    elif bug == "labels_not_shifted":
        y = x.copy()
    return x, y


def loss_fn_for(bug=None):
    def loss_fn(logits, targets):
        logp = F.log_softmax(logits, dim=-1)
        picked = F.gather(logp, 1, targets.reshape(-1, 1))
        return picked.mean() if bug == "ce_sign_flip" else -picked.mean()
    return loss_fn


def build(bug=None, **variant):
    """``dict(model, optimizer, scheduler, batch, loss_fn)`` with ``bug`` switched on."""
    need = BUGS[bug][1] if bug else {}
    arch = {**variant, **need}
    tl.manual_seed(0)
    model = TinyLM(bug, **arch)
    if bug == "optimizer_on_other_model":
        target = TinyLM(None, **arch)
    else:
        target = model
    groups = list(target.parameters()) if bug == "weight_decay_everywhere" else param_groups(target, 0.1)
    opt = HandAdamW(groups, lr=LR, weight_decay=0.1, bug=bug)
    if bug == "no_warmup":
        sched = optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    elif bug == "lr_lambda_returns_lr":
        sched = optim.lr_scheduler.LambdaLR(opt, lambda s: LR * min(1.0, (s + 1) / 20))
    else:
        sched = optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20))
    return dict(model=model, optimizer=opt, scheduler=sched, batch=make_batch(bug), loss_fn=loss_fn_for(bug))
