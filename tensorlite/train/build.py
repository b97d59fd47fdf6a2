"""``build(config)``: the parts of a training run (tokenizer, model, optimizer, scheduler, batcher,
loss), with the config's faults injected. The loop, the doctor and the lab all start here."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .. import data as _data
from .. import faults as _faults
from .. import functional as F
from .. import nn, optim
from ..backend import get_device
from ..random import manual_seed
from .config import DataConfig, TrainConfig

__all__ = ["Parts", "build", "build_tokenizer", "language_model_loss", "load_text", "unigram_entropy"]


@dataclass
class Parts:
    """What :func:`build` makes. ``loss_fn(logits (N, V), targets (N,))`` is the training loss."""

    config: TrainConfig
    device: object
    tokenizer: object
    tokens: np.ndarray
    model: object
    optimizer: object
    scheduler: object
    batcher: object
    loss_fn: object

    @property
    def unigram_entropy(self) -> float:
        return unigram_entropy(self.tokens)

    @property
    def bigram_entropy(self) -> float | None:
        """H(x_t | x_{t-1}) of the tokens (tensorlite.data.entropy); None for a single token."""
        return _data.bigram_entropy(self.tokens) if self.tokens.size > 1 else None

    @property
    def data_sha256(self) -> str:
        return hashlib.sha256(self.tokens.tobytes()).hexdigest()


def language_model_loss(logits, targets):
    """Mean next-token cross-entropy of logits ``(N, V)`` and targets ``(N,)``."""
    return F.cross_entropy(logits, targets)


def load_text(data: DataConfig) -> str:
    """The corpus of a run: a file or folder, or the default corpus (the stdlib's source)."""
    if data.corpus is None:
        if data.corpus_max_chars is not None:
            return _data.default_corpus(max_chars=data.corpus_max_chars)
        return _data.default_corpus()
    text = _data.load_corpus(data.corpus)
    if data.corpus_max_chars is not None:
        text = text[: data.corpus_max_chars]
    return text


def build_tokenizer(data: DataConfig, text: str):
    if data.tokenizer == "char":
        return _data.CharTokenizer.from_text(text)
    return _data.BPETokenizer.train(text, data.bpe_vocab_size)


def unigram_entropy(tokens: np.ndarray) -> float:
    """Entropy (nats) of the token frequencies: the loss of a model that ignores context, and an
    upper bound on the entropy rate of the data (:func:`tensorlite.data.unigram_entropy`)."""
    return _data.unigram_entropy(tokens)


def build(config: TrainConfig, *, tokenizer=None, text: str | None = None) -> Parts:
    """The parts ``train(config)`` trains, built from ``config`` without training or writing
    anything: the corpus read (or ``text``) and tokenized (by ``tokenizer``, when resuming), the
    model initialised from ``config.run.seed``, AdamW with decay groups, the warmup-cosine
    schedule, the batcher and the loss; then each fault of ``config.faults`` injected into its part.
    """
    device = get_device(config.run.device)
    if text is None:
        text = load_text(config.data)
    if not text:
        raise ValueError("the corpus is empty")
    if tokenizer is None:
        tokenizer = build_tokenizer(config.data, text)
    encode_array = getattr(tokenizer, "encode_array", None)
    tokens = np.asarray(encode_array(text) if encode_array else tokenizer.encode(text), dtype=np.int64)

    manual_seed(config.run.seed)
    model = nn.GPT(config.gpt_config(vocab_size=tokenizer.vocab_size))
    if device.type != "cpu":
        model.to(device)
    o = config.optim
    optimizer = optim.AdamW(optim.param_groups_for_decay(model, o.weight_decay), lr=o.lr,
                            betas=tuple(o.betas), weight_decay=o.weight_decay)
    # a warmup longer than the run is cut to the run (`--steps 20` with the default warmup)
    scheduler = optim.lr_scheduler.WarmupCosine(optimizer, warmup_steps=min(o.warmup, o.steps),
                                                total_steps=o.steps, lr_min=o.lr_min)
    batcher = _data.TokenBatcher(tokens, config.model.seq_len, o.batch_size, val_fraction=config.data.val_fraction,
                                 seed=config.run.seed, device=device)
    parts = Parts(config, device, tokenizer, tokens, model, optimizer, scheduler, batcher, language_model_loss)
    for name in config.faults:
        part = "loss_fn" if _faults.get(name).target == "loss" else _faults.get(name).target
        setattr(parts, part, _faults.inject(getattr(parts, part), name))
    return parts
