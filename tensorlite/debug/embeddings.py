"""A map of a model's token embeddings: each token a point in 2-D, projected by PCA (NumPy's
SVD) or t-SNE (scikit-learn, when installed), drawn as one self-contained HTML page with the
token under the pointer shown on hover.

Works on any model whose token embedding it can find (tensorlite's GPT, a nanoGPT-style
``transformer.wte``, a Hugging Face model's ``get_input_embeddings()``), in either framework.
"""

from __future__ import annotations

import html
import importlib.util
import unicodedata
from pathlib import Path

import numpy as np

__all__ = ["embedding_map", "embedding_map_html", "project", "token_embedding", "token_labels"]

METHODS = ("pca", "tsne")


def _as_numpy(t) -> np.ndarray:
    """A weight (tensorlite or torch tensor, or array) as a float64 NumPy array."""
    if hasattr(t, "detach"):  # torch, or tensorlite (whose detach shares memory)
        t = t.detach()
    if hasattr(t, "cpu") and not isinstance(t, np.ndarray):
        t = t.cpu()
    if hasattr(t, "numpy"):
        t = t.numpy()
    return np.asarray(t, dtype=np.float64)


def token_embedding(model, vocab_size: int | None = None) -> np.ndarray:
    """The ``(vocab, dim)`` token embedding matrix of ``model`` (or ``model`` itself when it is a
    matrix). Looks for ``get_input_embeddings()``, then for a module named like a token embedding
    (``tok_emb``, ``wte``, ``embed_tokens``, ``token_embedding...``), then for the only module
    of class ``Embedding`` with ``vocab_size`` rows."""
    if not hasattr(model, "named_modules"):
        w = _as_numpy(model)
        if w.ndim != 2:
            raise ValueError(f"token_embedding: expected a (vocab, dim) matrix, got shape {w.shape}")
        return w
    if vocab_size is None:
        vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
    if hasattr(model, "get_input_embeddings"):
        return _as_numpy(model.get_input_embeddings().weight)
    embeddings = [(name, m) for name, m in model.named_modules()
                  if type(m).__name__ == "Embedding" and hasattr(m, "weight")]
    if vocab_size is not None:
        embeddings = [(n, m) for n, m in embeddings if m.weight.shape[0] == vocab_size]
    for hint in ("tok_emb", "wte", "embed_tokens", "token_embedding", "tok_embeddings"):
        for name, m in embeddings:
            if name.split(".")[-1].startswith(hint):
                return _as_numpy(m.weight)
    if len(embeddings) == 1:
        return _as_numpy(embeddings[0][1].weight)
    names = ", ".join(n for n, _ in embeddings) or "none"
    raise ValueError(
        f"token_embedding: cannot tell which embedding holds the tokens (Embedding modules with "
        f"{vocab_size} rows: {names}); pass the weight matrix itself"
    )


def project(weights, method: str = "pca", seed: int = 0, perplexity: float | None = None):
    """``(coords (V, 2), info)``: the rows of ``weights`` projected to 2-D.

    ``"pca"``: the rows centred, then their coordinates along the two leading right singular
    vectors (NumPy's SVD); each axis is signed so its largest coordinate is positive, so the map
    does not flip between runs. ``info["explained"]`` is the fraction of the variance the two
    axes hold. ``"tsne"``: scikit-learn's t-SNE (PCA start, ``seed``), ``perplexity`` defaulting
    to ``min(30, (V - 1) / 3)``; it keeps neighbours together but its distances and axes mean
    nothing. Raises ImportError naming the package when scikit-learn is missing.
    """
    if method not in METHODS:
        raise ValueError(f"project: method must be one of {', '.join(METHODS)}, got {method!r}")
    x = _as_numpy(weights)
    if x.ndim != 2 or x.shape[0] < 3 or x.shape[1] < 2:
        raise ValueError(f"project: need a (vocab >= 3, dim >= 2) matrix, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("project: the embeddings hold inf or nan (a diverged run?); nothing to draw")
    if method == "pca":
        centred = x - x.mean(axis=0)
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        coords = u[:, :2] * s[:2]
        for j in range(2):
            if coords[np.argmax(np.abs(coords[:, j])), j] < 0:
                coords[:, j] *= -1
        total = float((s**2).sum())
        explained = float((s[:2] ** 2).sum() / total) if total > 0 else 0.0
        return coords, {"method": "pca", "explained": explained}
    if importlib.util.find_spec("sklearn") is None:
        raise ImportError("t-SNE needs scikit-learn: pip install scikit-learn, or use PCA (method='pca', --method pca)")
    from sklearn.manifold import TSNE  # noqa: PLC0415  (optional dependency)

    if perplexity is None:
        perplexity = min(30.0, (x.shape[0] - 1) / 3)
    if not 0 < perplexity < x.shape[0]:
        raise ValueError(f"project: perplexity must be in (0, {x.shape[0]}) for {x.shape[0]} tokens, got {perplexity}")
    coords = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    return np.asarray(coords, dtype=np.float64), {"method": "tsne", "perplexity": float(perplexity)}


_VISIBLE = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍"}


def _label(text: str) -> str:
    """A token's text made visible: whitespace as symbols, other control characters as escapes."""
    out = []
    for ch in text:
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif unicodedata.category(ch).startswith("C"):
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out) or "∅"


def token_labels(tokenizer, vocab_size: int | None = None) -> list[str]:
    """The visible text of every token id (``tokenizer.decode([i])``)."""
    n = vocab_size if vocab_size is not None else tokenizer.vocab_size
    return [_label(tokenizer.decode([i])) for i in range(n)]


def _kind(text: str) -> str:
    if len(text) != 1:
        return "several characters"
    if text.isalpha():
        return "letter"
    if text.isdigit():
        return "digit"
    if text in "␣⏎⇥␍":
        return "whitespace"
    return "punctuation / other"


_COLOURS = {"letter": "#5b4fc4", "digit": "#e08a00", "whitespace": "#2a9d8f",
            "punctuation / other": "#d1495b", "several characters": "#577590"}


def embedding_map_html(coords, labels, title: str = "Token embeddings", subtitle: str = "") -> str:
    """The page: an inline SVG scatter (one circle per token, its text beside it when there are
    few), a hover box with the token's id and text, and a legend of token kinds. No script,
    style sheet, font or image is fetched: it opens offline. Every label is HTML-escaped."""
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 2 or coords.shape[0] != len(labels):
        raise ValueError(f"embedding_map_html: coords {coords.shape} do not match {len(labels)} labels")
    width, height, pad = 900, 640, 40
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    scale = min((width - 2 * pad) / span[0], (height - 2 * pad) / span[1])
    px = pad + (coords[:, 0] - lo[0]) * scale
    py = height - pad - (coords[:, 1] - lo[1]) * scale
    show_text = len(labels) <= 300
    points = []
    for i, (x, y, label) in enumerate(zip(px, py, labels)):
        kind = _kind(label)
        tip = html.escape(f"{i}: {label}", quote=True)
        points.append(
            f'<g class="pt" data-tip="{tip}"><title>{tip}</title>'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{_COLOURS[kind]}"/>'
            + (f'<text x="{x + 6:.1f}" y="{y + 4:.1f}">{html.escape(label)}</text>' if show_text else "")
            + "</g>"
        )
    kinds = sorted({_kind(label) for label in labels}, key=list(_COLOURS).index)
    legend = "".join(
        f'<span class="key"><svg width="12" height="12"><circle cx="6" cy="6" r="5" fill="{_COLOURS[k]}"/>'
        f"</svg> {html.escape(k)}</span>" for k in kinds
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }} p {{ margin: 0 0 12px; color: #555; }}
svg.map {{ border: 1px solid #ddd; background: #fcfcfd; }}
svg.map text {{ font: 11px monospace; fill: #333; pointer-events: none; }}
g.pt:hover circle {{ r: 7; stroke: #000; }}
.key {{ margin-right: 16px; font-size: 13px; }}
#tip {{ position: fixed; display: none; background: #222; color: #fff; padding: 3px 7px;
        border-radius: 4px; font: 13px monospace; pointer-events: none; white-space: pre; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(subtitle)}</p>
<div>{legend}</div>
<svg class="map" width="{width}" height="{height}" viewBox="0 0 {width} {height}">
{"".join(points)}
</svg>
<div id="tip"></div>
<script>
// the hover box: the token's id and text, next to the pointer (the SVG title is the fallback)
const tip = document.getElementById("tip");
for (const g of document.querySelectorAll("g.pt")) {{
  g.addEventListener("mouseenter", () => {{ tip.textContent = g.dataset.tip; tip.style.display = "block"; }});
  g.addEventListener("mousemove", (e) => {{ tip.style.left = (e.clientX + 12) + "px"; tip.style.top = (e.clientY + 12) + "px"; }});
  g.addEventListener("mouseleave", () => {{ tip.style.display = "none"; }});
}}
</script>
</body></html>
"""


def embedding_map(model, tokenizer, out, method: str = "pca", seed: int = 0, perplexity: float | None = None,
                  title: str | None = None) -> dict:
    """Write the embedding map of ``model`` (labels from ``tokenizer``) to ``out``; returns
    ``{"path", "tokens", "method", ...}`` (with ``"explained"`` for PCA)."""
    weights = token_embedding(model, tokenizer.vocab_size)
    labels = token_labels(tokenizer, weights.shape[0])
    coords, info = project(weights, method, seed=seed, perplexity=perplexity)
    if info["method"] == "pca":
        sub = (f"{len(labels)} tokens, {weights.shape[1]}-dimensional embeddings, PCA: the two axes hold "
               f"{info['explained']:.0%} of the variance")
    else:
        sub = (f"{len(labels)} tokens, {weights.shape[1]}-dimensional embeddings, t-SNE (perplexity "
               f"{info['perplexity']:g}): neighbours are meaningful, distances and axes are not")
    out = Path(out)
    out.write_text(embedding_map_html(coords, labels, title or "Token embeddings", sub), encoding="utf-8")
    return {"path": out, "tokens": len(labels), **info}
