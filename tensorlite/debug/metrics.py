"""Reading a run's metrics log (``metrics.jsonl``) and the statistics the tools share.

A metrics log holds one JSON object per logged step. Lines with an ``"event"`` key are not
steps: ``{"event": "start", "config": ..., "vocab_size": V, "data_entropy": ...}`` (the header)
and ``{"event": "nan", "step": s}`` (a run stopped on a non-finite loss).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..backend import to_numpy
from ..runlog import read_jsonl

__all__ = ["Metrics", "load_metrics", "data_entropy", "unigram_entropy"]


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

    @property
    def data_entropy(self):
        """The data's entropy bound in nats per token (header, or the first row that holds one)."""
        v = self.header.get("unigram_entropy", self.header.get("data_entropy"))
        if v is None:
            for r in self.rows:
                if r.get("data_entropy") is not None:
                    v = r["data_entropy"]
                    break
        if isinstance(v, dict):  # {"unigram": h1, "bigram": h2}: the tighter (lower) bound
            v = min(x for x in v.values() if x is not None)
        return float(v) if v is not None else None

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


def unigram_entropy(tokens) -> float:
    """Entropy (nats) of the token frequencies of a stream of ids (an array, a memmap, a list or a
    tensor): the ``unigram_entropy`` of a run's header, the loss of a model that ignores context."""
    if hasattr(tokens, "detach"):  # a torch tensor
        tokens = tokens.detach().cpu().numpy()
    elif hasattr(tokens, "grad_fn"):  # a tensorlite Tensor
        tokens = tokens.data
    t = to_numpy(tokens).ravel()
    if t.size == 0:
        raise ValueError("unigram_entropy: no tokens")
    counts = np.bincount(t.astype(np.int64) - int(t.min()))
    p = counts[counts > 0] / t.size
    return float(-(p * np.log(p)).sum())


def data_entropy(tokens) -> dict:
    """Unigram entropy and bigram conditional entropy H(x_t | x_{t-1}) of a token stream, in nats.

    Both are plug-in estimates on the stream itself. A language model trained with a causal mask
    reaches the bigram figure only with real context to spare; a validation loss far *below* it
    in a short run of a small model is suspicious (see ``diagnose``: broken causal mask).
    """
    t = np.asarray(tokens).ravel()
    n = t.size
    if n < 2:
        raise ValueError(f"data_entropy: need at least 2 tokens, got {n}")
    counts = np.bincount(t - t.min()).astype(float)
    p = counts[counts > 0] / n
    h1 = float(-(p * np.log(p)).sum())
    pairs = Counter(zip(t[:-1].tolist(), t[1:].tolist()))
    prev = Counter(t[:-1].tolist())
    h2 = 0.0
    for (a, _b), c in pairs.items():
        h2 -= c / (n - 1) * math.log(c / prev[a])
    return {"unigram": round(h1, 4), "bigram": round(h2, 4)}
