"""The GPT: token (+ learned position) embeddings, pre-norm blocks, a final norm and the LM head.

Each block is ``x = x + attn(norm1(x))`` then ``x = x + ffn(norm2(x))``. The bugs that break such a
model live apart, in :mod:`tensorlite.faults`, as transforms of the healthy modules built here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .. import functional as F
from ..backend import to_device
from ..options import check_choices, option
from ..tensor import Tensor
from . import init
from .attention import KVCache, MultiHeadAttention
from .bitlinear import BitLinear
from .checkpoint import checkpoint
from .layers import MLP, Dropout, Embedding, LayerNorm, Linear, RMSNorm, SwiGLU
from .module import Module, ModuleList

INIT_STD = 0.02


def swiglu_hidden(d_model: int) -> int:
    """SwiGLU width: ``8/3 * d_model`` rounded up to a multiple of 8, so three matrices cost about
    what GELU's two ``4 * d_model`` ones do (LLaMA rounds to 256; 8 keeps tiny models tiny)."""
    return 8 * math.ceil(8 * d_model / 3 / 8)


@dataclass
class GPTConfig:
    """Shape and switches of a :class:`GPT`. Invalid values raise ValueError naming the field.

    ``vocab_size=None`` is only for a training config, where the tokenizer sets it; a :class:`GPT`
    needs a number. ``d_ff=None`` means ``4 * d_model`` for ``ffn="gelu"`` and :func:`swiglu_hidden`
    for ``ffn="swiglu"``; ``norm_eps=None`` means 1e-5 for LayerNorm and 1e-6 for RMSNorm.
    ``gradient_checkpointing=True`` recomputes each block in backward instead of keeping its graph
    (training mode only; see :func:`tensorlite.nn.utils.checkpoint`).
    ``attention="tiled"`` computes attention over key blocks with an online softmax and recomputes
    it in backward (:func:`tensorlite.functional.tiled_attention`): the graph keeps no
    ``seq_len x seq_len`` weights, for some speed at short contexts; ``"fused"`` (the default) keeps
    the weights.
    """

    vocab_size: int | None = option(None, "vocabulary size (default: the tokenizer's)")
    seq_len: int = option(64, "context length in tokens")
    d_model: int = option(64, "width of the residual stream")
    n_layers: int = option(2, "number of transformer blocks")
    n_heads: int = option(2, "attention heads (must divide d_model)")
    d_ff: int | None = option(None, "hidden width of the feed-forward layer (default: 4 * d_model, "
                                    "or 8/3 * d_model rounded up to a multiple of 8 for swiglu)")
    dropout: float = option(0.0, "dropout probability")
    norm: Literal["layernorm", "rmsnorm"] = option("layernorm", "normalisation layer")
    ffn: Literal["gelu", "swiglu"] = option("gelu", "feed-forward layer")
    pos: Literal["learned", "rope"] = option("learned", "positions: learned embeddings or rotary")
    bias: bool = option(True, "biases in linear layers and norms")
    tie_weights: bool = option(False, "share the token embedding with the output layer")
    linear: Literal["dense", "bitlinear"] = option("dense", "linear layers of the blocks: dense or ternary")
    norm_eps: float | None = option(None, "epsilon of the norms (default: 1e-5 LayerNorm, 1e-6 RMSNorm)")
    gradient_checkpointing: bool = option(False, "recompute each block in backward instead of keeping its graph")
    attention: Literal["fused", "tiled"] = option(
        "fused", "attention kernel: fused (keeps the T x T weights) or tiled (online softmax, recomputed)")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field."""
        if self.vocab_size is not None and (not _is_int(self.vocab_size) or self.vocab_size < 1):
            raise ValueError(f"GPTConfig: vocab_size must be a positive integer, got {self.vocab_size!r}")
        for name in ("seq_len", "d_model", "n_layers", "n_heads"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"GPTConfig: {name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"GPTConfig: n_heads ({self.n_heads}) must divide d_model ({self.d_model})")
        if self.d_ff is not None and (not _is_int(self.d_ff) or self.d_ff < 1):
            raise ValueError(f"GPTConfig: d_ff must be a positive integer or None, got {self.d_ff!r}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig: dropout must be in [0, 1), got {self.dropout!r}")
        check_choices(self)
        for name in ("bias", "tie_weights", "gradient_checkpointing"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"GPTConfig: {name} must be True or False, got {getattr(self, name)!r}")
        if self.norm_eps is not None and (not isinstance(self.norm_eps, (int, float)) or not self.norm_eps >= 0):
            raise ValueError(f"GPTConfig: norm_eps must be a number >= 0 or None, got {self.norm_eps!r}")
        if self.pos == "rope" and self.head_dim % 2:
            raise ValueError(
                f"GPTConfig: pos='rope' needs an even head dimension, but d_model/n_heads = "
                f"{self.d_model}/{self.n_heads} = {self.head_dim}"
            )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def ffn_dim(self) -> int:
        """``d_ff`` with the default resolved."""
        if self.d_ff is not None:
            return self.d_ff
        return swiglu_hidden(self.d_model) if self.ffn == "swiglu" else 4 * self.d_model

    @property
    def eps(self) -> float:
        """``norm_eps`` with the default resolved."""
        if self.norm_eps is not None:
            return float(self.norm_eps)
        return 1e-5 if self.norm == "layernorm" else 1e-6

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        """The inverse of :meth:`to_dict`; unknown keys raise ValueError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(
                f"GPTConfig.from_dict: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
            )
        return cls(**d)


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _make_norm(config: GPTConfig) -> Module:
    if config.norm == "layernorm":
        return LayerNorm(config.d_model, eps=config.eps, bias=config.bias)
    return RMSNorm(config.d_model, eps=config.eps)


class Block(Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + ffn(norm2(x))``."""

    def __init__(self, config: GPTConfig, linear_cls=Linear) -> None:
        super().__init__()
        self.norm1 = _make_norm(config)
        self.attn = MultiHeadAttention(
            config.d_model,
            config.n_heads,
            config.bias,
            max_seq_len=config.seq_len,
            rope=config.pos == "rope",
            attention=config.attention,
            linear_cls=linear_cls,
        )
        self.norm2 = _make_norm(config)
        ffn_cls = SwiGLU if config.ffn == "swiglu" else MLP
        self.ffn = ffn_cls(config.d_model, config.ffn_dim, config.bias, linear_cls=linear_cls)
        self.drop = Dropout(config.dropout)

    def forward(self, x, cache=None):
        x = x + self.drop(self.attn(self.norm1(x), cache))
        return x + self.drop(self.ffn(self.norm2(x)))


class GPT(Module):
    """A decoder-only transformer language model.

    ``model(idx)`` maps token ids ``(B, T)`` to logits ``(B, T, vocab_size)``;
    ``model.loss(idx, targets)`` is the mean next-token cross-entropy;
    ``model(idx, cache=model.init_cache())`` decodes incrementally (see :class:`KVCache`).

    Initialisation follows GPT-2: N(0, 0.02) for Linear and Embedding weights, zero biases, and the
    residual projections (``attn.proj``, ``ffn.proj``) at ``0.02 / sqrt(2 * n_layers)`` so the
    residual stream's variance does not grow with depth. The loss at init is then close to
    ``ln(vocab_size)`` (a uniform guess).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        config.validate()
        if config.vocab_size is None:
            raise ValueError("GPT: GPTConfig.vocab_size must be set (a training run sets it from its tokenizer)")
        self.config = config
        linear_cls = BitLinear if config.linear == "bitlinear" else Linear
        self.tok_emb = Embedding(config.vocab_size, config.d_model)
        self.pos_emb = Embedding(config.seq_len, config.d_model) if config.pos == "learned" else None
        self.drop = Dropout(config.dropout)
        self.blocks = ModuleList(Block(config, linear_cls) for _ in range(config.n_layers))
        self.norm_f = _make_norm(config)
        self.lm_head = Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.tok_emb.weight
        self.reset_parameters()

    # ---- initialisation -------------------------------------------------------------------------
    def reset_parameters(self) -> None:
        """GPT-2 initialisation (see the class docstring)."""
        for m in self.modules():
            if isinstance(m, (Linear, BitLinear, Embedding)):
                init.normal_(m.weight, 0.0, INIT_STD)
                if getattr(m, "bias", None) is not None:
                    init.zeros_(m.bias)
            elif isinstance(m, (LayerNorm, RMSNorm)):
                init.ones_(m.weight)
                if getattr(m, "bias", None) is not None:
                    init.zeros_(m.bias)
        residual_std = INIT_STD / math.sqrt(2 * self.config.n_layers)
        for block in self.blocks:
            init.normal_(block.attn.proj.weight, 0.0, residual_std)
            init.normal_(block.ffn.proj.weight, 0.0, residual_std)

    # ---- forward --------------------------------------------------------------------------------
    @property
    def device(self):
        return self.tok_emb.weight.device

    def _as_index(self, idx) -> Tensor:
        if isinstance(idx, Tensor):
            if idx.dtype.kind not in "iu":
                raise TypeError(f"GPT: token ids must be integers, got dtype {idx.dtype}")
            if idx.device != self.device:
                idx = Tensor(to_device(idx.data, self.device), device=self.device)
        else:
            arr = np.asarray(idx)
            if arr.dtype.kind not in "iu":
                raise TypeError(f"GPT: token ids must be integers, got dtype {arr.dtype}")
            idx = Tensor(to_device(arr.astype(np.int64, copy=False), self.device), device=self.device)
        if idx.ndim != 2 or idx.shape[1] == 0:
            raise ValueError(f"GPT: token ids must have shape (batch, time) with time >= 1, got {tuple(idx.shape)}")
        return idx

    def forward(self, idx, cache: KVCache | None = None):
        """Logits ``(B, T, vocab_size)`` for token ids ``idx`` ``(B, T)``.

        With ``cache``, ``idx`` holds the positions after the ``cache.length`` cached ones, and
        their keys and values are appended. Learned position embeddings are added by slicing
        ``pos_emb.weight`` (hooks on ``pos_emb`` itself do not run).
        """
        idx = self._as_index(idx)
        t = idx.shape[1]
        offset = 0 if cache is None else cache.length
        if offset + t > self.config.seq_len:
            where = f" after {offset} cached positions" if offset else ""
            raise ValueError(
                f"GPT: {t} positions{where} exceed seq_len {self.config.seq_len}; crop the input "
                "to the last seq_len tokens (generate() does)"
            )
        x = self.tok_emb(idx)
        if self.pos_emb is not None:
            x = x + self.pos_emb.weight[offset : offset + t]
        x = self.drop(x)
        if cache is None:
            if self.config.gradient_checkpointing and self.training:
                for block in self.blocks:
                    x = checkpoint(block, x)
            else:
                for block in self.blocks:
                    x = block(x)
        else:
            if len(cache.layers) != len(self.blocks):
                raise ValueError(
                    f"GPT: the cache has {len(cache.layers)} layers, the model {len(self.blocks)}; "
                    "make it with model.init_cache()"
                )
            for block, layer in zip(self.blocks, cache.layers):
                x = block(x, layer)
            cache.length += t
        return self.lm_head(self.norm_f(x))

    def loss(self, idx, targets):
        """Mean cross-entropy of next-token ``targets`` ``(B, T)`` under ``self(idx)``."""
        logits = self(idx)
        if not isinstance(targets, Tensor):
            targets = Tensor(to_device(np.asarray(targets, dtype=np.int64), self.device), device=self.device)
        v = self.config.vocab_size
        return F.cross_entropy(F.reshape(logits, -1, v), F.reshape(targets, -1))

    def init_cache(self) -> KVCache:
        """An empty KV cache for incremental decoding (holds up to ``seq_len`` positions)."""
        return KVCache(self.config.n_layers, self.config.seq_len)
