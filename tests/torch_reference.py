"""A reference GPT written directly in torch, for parity tests.

It shares no code with tensorlite: same architecture, same parameter names (so state dicts map
one to one), written the way a torch user would. RoPE uses the interleaved-pair convention
(dims 2i, 2i+1 rotate together), implemented here with complex numbers as in Meta's original LLaMA
code, an independent route to the same numbers.
"""

from __future__ import annotations

import math

import torch
import torch.nn as tnn
import torch.nn.functional as TF


def rope_tables(head_dim: int, max_seq_len: int, base: float = 10000.0) -> torch.Tensor:
    """Complex ``exp(i * m * theta_k)``, shape (max_seq_len, head_dim/2)."""
    theta = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.arange(max_seq_len, dtype=torch.float64)[:, None] * theta[None, :]
    return torch.polar(torch.ones_like(angles), angles)


def apply_rope(x: torch.Tensor, freqs: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """Rotate pairs (x[2i], x[2i+1]) of the last dim; x is (..., T, D)."""
    t = x.shape[-2]
    pairs = torch.view_as_complex(x.to(torch.float64).reshape(*x.shape[:-1], -1, 2).contiguous())
    rotated = pairs * freqs[offset : offset + t]
    return torch.view_as_real(rotated).reshape(x.shape).to(x.dtype)


def ternary_weight(w: torch.Tensor, latent_scale: bool = False) -> torch.Tensor:
    """BitLinear's effective weight with a straight-through gradient."""
    beta = w.abs().mean() + 1e-8
    wt = torch.round(torch.clamp(w / beta, -1, 1))
    source = w if latent_scale else wt
    gamma = 1.0 / torch.sqrt(w.shape[1] * (source * source).mean() + 1e-8)
    wq = wt * gamma
    return w + (wq - w).detach()


class RefBitLinear(tnn.Linear):
    def __init__(self, *args, latent_scale=False, **kw):
        super().__init__(*args, **kw)
        self.latent_scale = latent_scale

    def forward(self, x):
        return TF.linear(x, ternary_weight(self.weight, self.latent_scale), self.bias)


def make_linear(cfg, n_in, n_out):
    if cfg["linear"] == "bitlinear":
        return RefBitLinear(n_in, n_out, bias=cfg["bias"])
    return tnn.Linear(n_in, n_out, bias=cfg["bias"])


def make_norm(cfg):
    d = cfg["d_model"]
    if cfg["norm"] == "layernorm":
        eps = 1e-5 if cfg.get("norm_eps") is None else cfg["norm_eps"]
        return tnn.LayerNorm(d, eps=eps, bias=cfg["bias"])
    eps = 1e-6 if cfg.get("norm_eps") is None else cfg["norm_eps"]
    return tnn.RMSNorm(d, eps=eps)


class RefAttention(tnn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, self.h = cfg["d_model"], cfg["n_heads"]
        self.qkv = make_linear(cfg, d, 3 * d)
        self.proj = make_linear(cfg, d, d)
        self.rope = cfg["pos"] == "rope"
        if self.rope:
            self.register_buffer("freqs", rope_tables(d // self.h, cfg["seq_len"]), persistent=False)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.h, d // self.h).transpose(1, 2) for z in (q, k, v))
        if self.rope:
            q, k = apply_rope(q, self.freqs), apply_rope(k, self.freqs)
        hd = d // self.h
        scores = q @ k.transpose(-2, -1) / math.sqrt(hd)
        mask = torch.ones(t, t, dtype=torch.bool).tril()
        scores = scores.masked_fill(~mask, float("-inf"))
        y = torch.softmax(scores, dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class RefMLP(tnn.Module):
    def __init__(self, cfg, d_ff):
        super().__init__()
        self.fc = make_linear(cfg, cfg["d_model"], d_ff)
        self.proj = make_linear(cfg, d_ff, cfg["d_model"])

    def forward(self, x):
        return self.proj(TF.gelu(self.fc(x), approximate="tanh"))


class RefSwiGLU(tnn.Module):
    def __init__(self, cfg, d_ff):
        super().__init__()
        self.w_gate = make_linear(cfg, cfg["d_model"], d_ff)
        self.w_up = make_linear(cfg, cfg["d_model"], d_ff)
        self.proj = make_linear(cfg, d_ff, cfg["d_model"])

    def forward(self, x):
        return self.proj(TF.silu(self.w_gate(x)) * self.w_up(x))


class RefBlock(tnn.Module):
    def __init__(self, cfg, d_ff):
        super().__init__()
        self.norm1 = make_norm(cfg)
        self.attn = RefAttention(cfg)
        self.norm2 = make_norm(cfg)
        self.ffn = RefSwiGLU(cfg, d_ff) if cfg["ffn"] == "swiglu" else RefMLP(cfg, d_ff)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class RefGPT(tnn.Module):
    """``cfg`` is a ``GPTConfig.to_dict()``; ``d_ff`` the resolved feed-forward width."""

    def __init__(self, cfg: dict, d_ff: int):
        super().__init__()
        self.cfg = cfg
        v, d = cfg["vocab_size"], cfg["d_model"]
        self.tok_emb = tnn.Embedding(v, d)
        self.pos_emb = tnn.Embedding(cfg["seq_len"], d) if cfg["pos"] == "learned" else None
        self.blocks = tnn.ModuleList(RefBlock(cfg, d_ff) for _ in range(cfg["n_layers"]))
        self.norm_f = make_norm(cfg)
        self.lm_head = tnn.Linear(d, v, bias=False)
        if cfg["tie_weights"]:
            self.lm_head.weight = self.tok_emb.weight

    def forward(self, idx):
        x = self.tok_emb(idx)
        if self.pos_emb is not None:
            x = x + self.pos_emb.weight[: idx.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.norm_f(x))

    def loss(self, idx, targets):
        logits = self(idx)
        return TF.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
