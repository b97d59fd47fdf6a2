"""What a training run depends on: ``TrainConfig(model, data, optim, run, faults)``.

Each field is declared once, in its section, with its help text (:func:`tensorlite.options.option`);
the command line (``tensorlite train --help``), validation, ``config.json`` and resume all read those
declarations. ``config.replace(steps=10, d_model=32)`` takes any field by its (unique) name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .. import faults as _faults
from ..nn import GPTConfig
from ..options import check_choices, option

__all__ = ["DataConfig", "OptimConfig", "RunConfig", "SECTIONS", "TrainConfig"]


@dataclass
class DataConfig:
    """The corpus, its tokenizer and the validation split."""

    corpus: str | None = option(None, "a text file or a folder of text files (default: the Python standard "
                                      "library's source on this machine)", metavar="PATH")
    corpus_max_chars: int | None = option(None, "use only the first N characters of the corpus", flag="--max-chars",
                                          metavar="N")
    tokenizer: Literal["char", "bpe"] = option("char", "characters or byte-level BPE")
    bpe_vocab_size: int = option(512, "vocabulary size the BPE tokenizer is trained to")
    val_fraction: float = option(0.1, "fraction of the tokens held out for validation (the tail)")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_choices(self)
        _positive(self, "bpe_vocab_size")
        if self.corpus_max_chars is not None:
            _positive(self, "corpus_max_chars")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be between 0 and 1, got {self.val_fraction}")


@dataclass
class OptimConfig:
    """The optimisation: steps, batches, AdamW, the warmup-cosine schedule, clipping."""

    steps: int = option(1000, "optimizer steps")
    batch_size: int = option(32, "sequences per micro-batch")
    grad_accum: int = option(1, "micro-batches per optimizer step")
    lr: float = option(3e-3, "peak learning rate")
    lr_min: float = option(3e-4, "learning rate at the end of the cosine decay")
    warmup: int = option(50, "linear warmup steps (0 = none)")
    weight_decay: float = option(0.1, "AdamW weight decay of the weight matrices and embeddings (not of biases and norm gains)")
    betas: tuple[float, float] = option((0.9, 0.95), "AdamW's beta1 and beta2", metavar=("BETA1", "BETA2"))
    clip: float = option(1.0, "clip the gradient norm to this (0 = no clipping; the norm is still logged)")

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        self.validate()

    def validate(self) -> None:
        for name in ("steps", "batch_size", "grad_accum"):
            _positive(self, name)
        _at_least_zero(self, "warmup")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.lr_min <= self.lr:
            raise ValueError(f"lr_min ({self.lr_min}) must be between 0 and lr ({self.lr})")
        if self.clip < 0:
            raise ValueError(f"clip must be >= 0 (0 = no clipping), got {self.clip}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")


@dataclass
class RunConfig:
    """Bookkeeping: evaluation, checkpoints, logs, probes, seed, device, where the run folder goes."""

    eval_interval: int = option(100, "steps between validation losses (0 = never)")
    eval_batches: int = option(10, "batches per validation loss")
    ckpt_interval: int = option(250, "steps between checkpoints (0 = only at the end)")
    log_interval: int = option(1, "steps between metrics lines")
    seed: int = option(0, "random seed (weights, batches, dropout)")
    device: Literal["cpu", "cuda"] = option("cpu", "where the arrays live")
    out_dir: str = option("runs", "parent folder of run directories", flag="--out", metavar="DIR")
    name: str | None = option(None, "run directory name (default: the date and time)")
    progress: bool = option(True, "show a progress bar")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_choices(self)
        for name in ("eval_batches", "log_interval"):
            _positive(self, name)
        for name in ("eval_interval", "ckpt_interval"):
            _at_least_zero(self, name)


#: The sections of a TrainConfig, in order: field name -> section class.
SECTIONS = {"model": GPTConfig, "data": DataConfig, "optim": OptimConfig, "run": RunConfig}


@dataclass
class TrainConfig:
    """Everything a training run depends on, in four sections and the faults switched on.

    ``model`` is a :class:`tensorlite.nn.GPTConfig` (its ``vocab_size`` None: the tokenizer's);
    ``faults`` names entries of the bug catalogue (:mod:`tensorlite.faults`), each injected into
    the part of the run it belongs to by :func:`tensorlite.train.build`. ``tensorlite train`` has
    one flag per field.
    """

    model: GPTConfig = option(default_factory=GPTConfig, help="the model")
    data: DataConfig = option(default_factory=DataConfig, help="the corpus and its tokenizer")
    optim: OptimConfig = option(default_factory=OptimConfig, help="the optimisation")
    run: RunConfig = option(default_factory=RunConfig, help="evaluation, checkpoints, logs, device")
    faults: tuple[str, ...] = option((), "fault names from the bug catalogue to switch on")

    def __post_init__(self) -> None:
        self.faults = _faults.as_names(self.faults or ())
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the field for values no run can use."""
        for section in SECTIONS:
            getattr(self, section).validate()
        need = _faults.requirements(self.faults)
        wrong = {k: v for k, v in need.items() if getattr(self.model, k) != v}
        if wrong:
            fault = next(f for f in self.faults if any(k in dict(_faults.get(f).requires) for k in wrong))
            k, v = next(iter(wrong.items()))
            raise ValueError(f"faults: {fault!r} needs {k}={v!r}, got {k}={getattr(self.model, k)!r}")

    # ---- fields by name ---------------------------------------------------------------------
    @staticmethod
    def section_of(name: str) -> str:
        """The section holding field ``name`` (``"faults"`` for the faults); ValueError otherwise."""
        if name == "faults":
            return "faults"
        for section, cls in SECTIONS.items():
            if name in {f.name for f in dataclasses.fields(cls)}:
                return section
        raise ValueError(f"TrainConfig: unknown field {name!r}; known: {', '.join(sorted(flat_field_names()))}")

    def get(self, name: str):
        """The value of field ``name``, whatever its section."""
        section = self.section_of(name)
        return self.faults if section == "faults" else getattr(getattr(self, section), name)

    def replace(self, **changes) -> TrainConfig:
        """A copy with fields changed by name (``replace(steps=10, d_model=32, faults=(...))``), or
        whole sections (``replace(model=GPTConfig(...))``)."""
        by_section: dict = {}
        top = {}
        for name, value in changes.items():
            if name in SECTIONS:
                top[name] = value
            else:
                section = self.section_of(name)
                if section == "faults":
                    top["faults"] = value
                else:
                    by_section.setdefault(section, {})[name] = value
        for section, fields in by_section.items():
            top[section] = dataclasses.replace(top.get(section, getattr(self, section)), **fields)
        return dataclasses.replace(self, **top)

    # ---- derived ----------------------------------------------------------------------------
    def gpt_config(self, vocab_size: int) -> GPTConfig:
        """The model's config with the tokenizer's vocabulary (ValueError when ``model.vocab_size``
        is set and too small for it)."""
        if self.model.vocab_size is not None:
            if self.model.vocab_size < vocab_size:
                raise ValueError(
                    f"model.vocab_size ({self.model.vocab_size}) is smaller than the tokenizer's vocabulary "
                    f"({vocab_size}); leave it unset to use the tokenizer's"
                )
            return self.model
        return dataclasses.replace(self.model, vocab_size=vocab_size)

    @property
    def tokens_per_step(self) -> int:
        return self.optim.batch_size * self.optim.grad_accum * self.model.seq_len

    def fixed_on_resume(self) -> dict:
        """The fields a resumed run must keep: everything that shapes the model, the token stream
        or the faults (a resume may change the optimisation and the bookkeeping)."""
        return {"model": self.model, "data": self.data, "faults": self.faults}

    # ---- (de)serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {section: dataclasses.asdict(getattr(self, section)) for section in SECTIONS}
        d["optim"]["betas"] = list(self.optim.betas)
        d["faults"] = list(self.faults)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """The inverse of :meth:`to_dict`; also reads the flat layout of older ``config.json``
        files. Unknown keys raise ValueError."""
        if not any(k in SECTIONS for k in d):
            return cls.from_flat(d)
        unknown = sorted(set(d) - set(SECTIONS) - {"faults"})
        if unknown:
            raise ValueError(f"TrainConfig: unknown section(s) {', '.join(unknown)}; known: "
                             f"{', '.join(SECTIONS)}, faults")
        sections = {}
        for section, section_cls in SECTIONS.items():
            fields = dict(d.get(section) or {})
            known = {f.name for f in dataclasses.fields(section_cls)}
            bad = sorted(set(fields) - known)
            if bad:
                raise ValueError(f"TrainConfig: unknown field(s) in {section}: {', '.join(bad)}")
            if section == "optim" and "betas" in fields:
                fields["betas"] = tuple(fields["betas"])
            sections[section] = section_cls(**fields)
        return cls(**sections, faults=tuple(d.get("faults") or ()))

    @classmethod
    def from_flat(cls, d: dict) -> TrainConfig:
        """A config from flat field names (``{"steps": 10, "d_model": 32}``); ``vocab_size`` is
        read as the BPE target, as in the flat ``config.json`` of tensorlite 0.1."""
        d = dict(d)
        if "vocab_size" in d:
            d["bpe_vocab_size"] = d.pop("vocab_size")
        d.pop("probe_interval", None)  # a setting of the probes callback now, not of the run
        return cls().replace(**d)


def flat_field_names() -> set:
    """Every field name of every section (they are unique), and ``faults``."""
    return {f.name for c in SECTIONS.values() for f in dataclasses.fields(c)} | {"faults"}


def _positive(obj, name: str) -> None:
    v = getattr(obj, name)
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")


def _at_least_zero(obj, name: str) -> None:
    v = getattr(obj, name)
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
