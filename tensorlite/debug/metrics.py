"""Reading a run's metrics log (``metrics.jsonl``) and the statistics the tools share.

A metrics log holds one JSON object per logged step. Lines with an ``"event"`` key are not
steps: ``{"event": "start", "config": ..., "vocab_size": V, "unigram_entropy": ...,
"bigram_entropy": ...}`` (the header; logs written before the rename hold ``data_entropy``)
and ``{"event": "nan", "step": s}`` (a run stopped on a non-finite loss).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.entropy import bigram_entropy, unigram_entropy
from ..runlog import read_jsonl

__all__ = ["Metrics", "load_metrics", "data_entropy"]


@dataclass
class Metrics:
    """A parsed metrics log: ``rows`` (step dicts, in step order), ``header`` (the start event or
    ``{}``), ``events`` (the other event lines), ``path`` (where it was read from, if a file)."""

    rows: list = field(default_factory=list)
    header: dict = field(default_factory=dict)
    events: list = field(default_factory=list)
    path: Path | None = None

    # ---- series -----------------------------------------------------------------------------
    def series(self, key: str):
        """(steps, values) as float arrays for every row holding ``key`` (NaN kept, None skipped)."""
        steps, vals = [], []
        for r in self.rows:
            v = r.get(key)
            if v is None or isinstance(v, (dict, list)):
                continue
            steps.append(r["step"])
            vals.append(_float(v))
        return np.asarray(steps, dtype=float), np.asarray(vals, dtype=float)

    def dict_series(self, key: str) -> dict:
        """{name: (steps, values)} for a key whose value is a ``{name: float}`` dict."""
        out: dict = {}
        for r in self.rows:
            d = r.get(key)
            if not isinstance(d, dict):
                continue
            for name, v in d.items():
                s, vs = out.setdefault(name, ([], []))
                s.append(r["step"])
                vs.append(_float(v))
        return {k: (np.asarray(s, float), np.asarray(v, float)) for k, (s, v) in out.items()}

    @property
    def config(self) -> dict:
        """The run's config from the header as one flat ``{field: value}`` dict (the sections of a
        nested TrainConfig merged; a flat tensorlite 0.1 config as it is)."""
        cfg = dict(self.header.get("config") or {})
        for section in ("model", "data", "optim", "run"):
            if isinstance(cfg.get(section), dict):
                cfg.update(cfg.pop(section))
        return cfg

    @property
    def vocab_size(self):
        """The model's vocabulary size: the header's (a run's config may hold only the tokenizer's
        target size, which is not it)."""
        v = self.header.get("vocab_size")
        if v is None:
            for r in self.rows:
                if "vocab_size" in r:
                    return int(r["vocab_size"])
        return int(v) if v is not None else None

    def _header_or_row(self, key):
        v = self.header.get(key)
        if v is None:
            v = next((r[key] for r in self.rows if r.get(key) is not None), None)
        return v

    @property
    def unigram_entropy(self):
        """Entropy of the data's token frequencies, nats per token (an upper bound on the data's
        entropy rate: the loss of a model that ignores context); None if the log holds none.

        Read from the header's ``unigram_entropy``, or from ``data_entropy``, the name logs written
        before it was renamed used (a number, or a ``{"unigram": h1, "bigram": h2}`` dict).
        """
        v = self._header_or_row("unigram_entropy")
        if v is None:
            v = self._header_or_row("data_entropy")
            if isinstance(v, dict):
                v = v.get("unigram")
        return float(v) if v is not None else None

    @property
    def bigram_entropy(self):
        """H(x_t | x_{t-1}) of the data in nats per token, when the log holds it (else None)."""
        v = self._header_or_row("bigram_entropy")
        if v is None:
            old = self._header_or_row("data_entropy")
            v = old.get("bigram") if isinstance(old, dict) else None
        return float(v) if v is not None else None

    @property
    def data_entropy(self):
        """Old name of :attr:`unigram_entropy` (it is a bound on the data's entropy, not the entropy)."""
        return self.unigram_entropy

    @property
    def nan_step(self):
        """First step whose loss is NaN/Inf, or the step of a ``nan`` event; None if the run stayed finite."""
        for r in self.rows:
            loss = r.get("loss")
            if loss is not None and not math.isfinite(_float(loss)):
                return int(r["step"])
        for e in self.events:
            if e.get("event") == "nan":
                return int(e.get("step", -1))
        return None


def _float(v) -> float:
    if v is None:
        return float("nan")
    if isinstance(v, str):  # "NaN", "Infinity" written by a non-standard encoder
        return float(v.replace("Infinity", "inf"))
    return float(v)


def resolve_metrics_path(source) -> Path:
    """``metrics.jsonl`` itself, or the one inside a run directory."""
    p = Path(source)
    if p.is_dir():
        p = p / "metrics.jsonl"
    if not p.exists():
        raise FileNotFoundError(f"no metrics log at {p}")
    return p


def load_metrics(source) -> Metrics:
    """Read metrics from a run directory, a ``metrics.jsonl`` path, a list of dicts, or a Metrics."""
    if isinstance(source, Metrics):
        return source
    path = None
    if isinstance(source, (str, Path)):
        path = resolve_metrics_path(source)
        lines = read_jsonl(path)
    else:
        lines = list(source)
    m = Metrics(path=path)
    for d in lines:
        if "event" in d:
            if d["event"] == "start" and not m.header:
                m.header = d
            else:
                m.events.append(d)
        elif "step" in d:
            m.rows.append(d)
    m.rows.sort(key=lambda r: r["step"])
    return m


def data_entropy(tokens) -> dict:
    """Unigram entropy and bigram conditional entropy H(x_t | x_{t-1}) of a token stream, in nats.

    Both are plug-in estimates on the stream itself (:mod:`tensorlite.data.entropy`) and both are
    upper bounds on the data's entropy rate, not the rate itself: a model that ignores context
    reaches the unigram figure, one that sees only the previous token the bigram figure, and a
    good model of real text goes well below both on held-out data.
    """
    t = np.asarray(tokens).ravel()
    if t.size < 2:
        raise ValueError(f"data_entropy: need at least 2 tokens, got {t.size}")
    return {"unigram": round(unigram_entropy(t), 4), "bigram": round(bigram_entropy(t), 4)}
