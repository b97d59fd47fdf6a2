"""A nanoGPT-style GPT in PyTorch, written for tensorlite's docs: the model a practitioner brings to
the debugging tools (docs/debug/pytorch.md).

Laid out like nanoGPT's ``model.py``: a ``GPTConfig`` with ``block_size`` and ``vocab_size``, the
blocks in ``transformer.h``, a fused ``c_attn`` projection, ``scaled_dot_product_attention`` with
``is_causal=True``, the token embedding tied to the LM head, ``forward(idx, targets)`` returning
``(logits, loss)`` (only the last position's logits without targets), and
``configure_optimizers`` putting biases and norm gains in a group without weight decay. The
attention itself is one small method, ``attend``, so that the docs can show a bug as a one-line
override.

    python -m tensorlite doctor --model examples/torch_gpt.py:make --batch examples/torch_gpt.py:get_batch
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    block_size: int = 64
    vocab_size: int = 96
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.0
    bias: bool = True


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout

    def attend(self, q, k, v):
        """softmax(q k^T / sqrt(d_head) + causal mask) v, all heads at once."""
        p = self.dropout if self.training else 0.0
        return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = self.attend(q, k, v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of the residual projections
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx, targets=None):
        _, t = idx.size()
        pos = torch.arange(t, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is None:  # generation: only the last position is needed
            return self.lm_head(x[:, [-1], :]), None
        logits = self.lm_head(x)
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)

    def configure_optimizers(self, weight_decay: float, learning_rate: float, betas=(0.9, 0.95)):
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas)


def warmup_cosine(warmup: int, total: int):
    """The LR multiplier of step ``s``: linear warmup, then a cosine decay to 10%."""

    def factor(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        progress = min(1.0, (s - warmup) / max(1, total - warmup))
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def make(seed: int = 0, **config):
    """``(model, optimizer, scheduler)``: the factory ``tensorlite doctor --model`` calls."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**config))
    optimizer = model.configure_optimizers(weight_decay=0.1, learning_rate=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(100, 2000))
    return model, optimizer, scheduler


_DATA = {}


def _data():
    """Characters of a small text (the Python standard library's sources, always at hand)."""
    if "train" not in _DATA:
        from tensorlite.data import default_corpus

        text = default_corpus(max_chars=200_000)
        # printable ASCII as ids 0..94 (anything else as a space): a 95-character vocabulary
        ids = torch.tensor([ord(c) - 32 if 32 <= ord(c) < 127 else 0 for c in text])
        n = int(0.9 * len(ids))
        _DATA["train"], _DATA["val"] = ids[:n], ids[n:]
    return _DATA


def get_batch(split: str = "train", batch_size: int = 8, block_size: int = 64, seed: int = 0):
    """``(x, y)``: ``batch_size`` windows of the text and the same windows shifted by one."""
    data = _data()[split]
    g = torch.Generator().manual_seed(seed)
    ix = torch.randint(len(data) - block_size - 1, (batch_size,), generator=g)
    x = torch.stack([data[i:i + block_size] for i in ix])
    y = torch.stack([data[i + 1:i + 1 + block_size] for i in ix])
    return x, y
