"""Attention maps: one self-contained HTML page of heatmaps, one per layer and head, for a prompt.

The weights come from one eval-mode forward of any tensorlite or torch model under
:class:`~tensorlite.debug.capture.Capture` (a softmax over ``(T, T)`` scores, an sdpa call, the
fused op), grouped by the blocks the model view finds. Rows are queries, columns keys, both
labelled with the prompt's tokens; hovering a cell shows its weight. Weight on a later key (the
upper triangle) is drawn in red on a tinted background, so a leaking causal mask shows at a
glance; in a causal language model that region is empty. Inline SVG and CSS, no script, nothing
loaded from the network.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np

from .._version import __version__
from .view import ModelView, model_view

__all__ = ["FUTURE_MASS", "attention_maps", "head_maps", "render_attention_maps"]

#: A head "looks ahead" when its mean weight on later keys (per query) exceeds this: a causal
#: mask gives exactly 0 (or ~1e-9 with a large finite fill), a leak gives percents.
FUTURE_MASS = 1e-3
#: Cells below this weight are left blank (they would be invisible anyway).
_MIN_DRAWN = 0.005
_PAST, _FUTURE = "#08519c", "#cb181d"


def head_maps(model, tokens, **view_options) -> list:
    """``[(layer name, (H, T, T) float64 weights)]`` of one forward of ``model`` on the int token
    ids ``tokens`` (a sequence of length T), layer by layer (the blocks the model view finds;
    without blocks, one entry per attention call)."""
    view = model if isinstance(model, ModelView) else model_view(model, **view_options)
    x = np.asarray(tokens, dtype=np.int64).reshape(1, -1)
    cap = view.capture(x)
    if not cap.attention:
        raise ValueError(f"attention maps: no attention seen in {type(view.model).__name__} (no softmax over "
                         "(T, T) scores, no scaled_dot_product_attention)")
    groups = []
    if view.blocks:
        for bname, _ in view.blocks:
            own = [a for a in cap.attention if bname in a.stack]
            if own:
                groups.append((bname, own))
    else:
        groups = [(a.module or f"attention {i}", [a]) for i, a in enumerate(cap.attention)]
    out = []
    for name, calls in groups:
        heads = [np.asarray(a.weights, dtype=np.float64).reshape(-1, x.shape[1], x.shape[1]) for a in calls]
        out.append((name, np.concatenate(heads, axis=0)))
    return out


def _label(text: str, width: int = 8) -> str:
    """A token as it reads on an axis: whitespace made visible, long tokens cut."""
    t = text.replace(" ", "\u2423").replace("\n", "\u23ce").replace("\t", "\u21e5").replace("\r", "\u240d")
    return t if len(t) <= width else t[: width - 1] + "\u2026"


def _future_mass(w: np.ndarray) -> float:
    """Mean over queries of the weight on later keys."""
    T = w.shape[-1]
    return float(np.triu(np.nan_to_num(w, nan=0.0), k=1).sum() / T) if T > 1 else 0.0


def _entropy(w: np.ndarray) -> float:
    p = np.clip(np.nan_to_num(w, nan=0.0), 1e-30, None)
    return float(-(w * np.log(p)).sum(-1).mean())


def _heatmap(w: np.ndarray, labels: list, cell: int) -> str:
    T = w.shape[0]
    lab_w = 7 * max(len(s) for s in labels) + 14
    left, top = lab_w, lab_w
    size = T * cell
    # the cells of later keys (k > q), tinted: any weight drawn there stands out
    stair = [(left + cell, top), (left + size, top), (left + size, top + size - cell)]
    for j in range(T - 1, 0, -1):
        stair += [(left + j * cell, top + j * cell), (left + j * cell, top + (j - 1) * cell)]
    points = " ".join(f"{a},{b}" for a, b in stair)
    parts = [f'<svg class="map" width="{left + size + 4}" height="{top + size + 4}" '
             f'viewBox="0 0 {left + size + 4} {top + size + 4}" role="img">',
             f'<polygon class="ahead" points="{points}" fill="#fdecea"/>',
             f'<rect x="{left}" y="{top}" width="{size}" height="{size}" fill="none" stroke="#bbb"/>']
    for i, s in enumerate(labels):
        c = top + i * cell + cell / 2
        parts.append(f'<text x="{left - 4}" y="{c:.1f}" class="q">{html.escape(s)}</text>')
        x = left + i * cell + cell / 2
        parts.append(f'<text transform="translate({x:.1f},{top - 4}) rotate(-90)" class="k">{html.escape(s)}</text>')
    for q in range(T):
        for k in range(T):
            v = float(w[q, k])
            if not (v >= _MIN_DRAWN) and not math.isnan(v):
                continue
            ahead = k > q
            shade = 1.0 if math.isnan(v) else math.sqrt(min(v, 1.0))
            tip = f"query {q} {labels[q]!r} \u2192 key {k} {labels[k]!r}: {'NaN' if math.isnan(v) else f'{v:.3f}'}"
            cls = ' class="f"' if ahead else ""
            fill = "#000" if math.isnan(v) else _FUTURE if ahead else _PAST
            parts.append(f'<rect{cls} x="{left + k * cell}" y="{top + q * cell}" width="{cell}" height="{cell}" '
                         f'fill="{fill}" fill-opacity="{shade:.2f}"><title>{html.escape(tip)}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:20px;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:18px 0 6px}
.meta,.legend,footer{color:#555;font-size:13px}
.prompt{font-family:ui-monospace,Menlo,Consolas,monospace;background:#f6f6f6;padding:6px 8px;border-radius:4px;
white-space:pre-wrap;margin:6px 0}
.verdict{padding:8px 12px;border-radius:4px;margin:10px 0;border-left:5px solid #2ca02c;background:#f0f8f0}
.verdict.leak{border-color:#cb181d;background:#fdecea}
.heads{display:flex;flex-wrap:wrap;gap:14px}
figure{margin:0;padding:6px;border:1px solid #ddd;border-radius:4px}
figure.leak{border:2px solid #cb181d}
figcaption{font-size:12px;color:#444;margin-bottom:2px}
svg text{font:10px ui-monospace,Menlo,Consolas,monospace;fill:#333}
svg text.q{text-anchor:end;dominant-baseline:middle}
svg text.k{text-anchor:start;dominant-baseline:middle}
.sw{display:inline-block;width:12px;height:12px;vertical-align:-2px;margin:0 3px 0 10px}
"""


def render_attention_maps(model, tokens, labels=None, *, title: str | None = None, causal: bool = True,
                          **view_options) -> str:
    """The attention maps page of ``model`` on ``tokens`` as an HTML string (see :func:`attention_maps`)."""
    tokens = [int(t) for t in np.asarray(tokens).reshape(-1)]
    if len(tokens) < 2:
        raise ValueError(f"attention maps: need a prompt of at least 2 tokens, got {len(tokens)}")
    labels = [str(t) for t in tokens] if labels is None else [str(s) for s in labels]
    if len(labels) != len(tokens):
        raise ValueError(f"attention maps: {len(labels)} labels for {len(tokens)} tokens")
    view = model if isinstance(model, ModelView) else model_view(model, **view_options)
    bad = [t for t in tokens if not 0 <= t < view.vocab_size]
    if bad:
        raise ValueError(f"attention maps: token id {bad[0]} is outside the model's vocabulary "
                         f"(0..{view.vocab_size - 1}); is the tokenizer the model's?")
    layers = head_maps(view, tokens)
    shown = [_label(s) for s in labels]
    T = len(tokens)
    cell = max(8, min(22, 420 // T))
    sections, n_heads, ahead = [], 0, 0
    for li, (name, heads) in enumerate(layers):
        figs = []
        for h, w in enumerate(heads):
            fm = _future_mass(w)
            leak = fm > FUTURE_MASS
            n_heads += 1
            ahead += leak
            style = ' style="color:#cb181d"' if leak else ""
            cap = f"head {h} · entropy {_entropy(w):.2f} nats · on later tokens <b{style}>{fm:.3f}</b>"
            figs.append(f'<figure class="head{" leak" if leak else ""}" data-layer="{li}" data-head="{h}" '
                        f'data-future="{fm:.6f}"><figcaption>{cap}</figcaption>{_heatmap(w, shown, cell)}</figure>')
        sections.append(f'<section class="layer"><h2>layer {li} <small>({html.escape(name)})</small></h2>'
                        f'<div class="heads">{"".join(figs)}</div></section>')
    if ahead:
        what = ("for a causal language model that is a leaking mask: each position sees the tokens it must "
                "predict" if causal else "expected for a model that is not causal")
        verdict = (f'<div class="verdict{" leak" if causal else ""}" id="verdict" data-ahead="{ahead}">'
                   f"<b>{ahead} of {n_heads} heads put weight on later tokens</b> (the red upper triangle): "
                   f"{html.escape(what)}.</div>")
    else:
        verdict = (f'<div class="verdict" id="verdict" data-ahead="0"><b>No head puts weight on a later token</b> '
                   f"({n_heads} heads): the upper triangle is empty, as a causal mask makes it.</div>")
    title = title or f"attention maps · {type(view.model).__name__}"
    prompt = "".join(labels) if all(len(s) <= 1 for s in labels) else " ".join(labels)
    legend = (f'<div class="legend">rows: queries, columns: keys; shade \u221d \u221aweight '
              f'<span class="sw" style="background:{_PAST}"></span>on earlier keys (and itself)'
              f'<span class="sw" style="background:{_FUTURE}"></span>on later keys (none, in a causal model); '
              f"blank: below {_MIN_DRAWN}; hover a cell for its weight.</div>")
    meta = f"{view.framework} model, {len(layers)} layers, {n_heads} heads, {T} tokens"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><header><h1>{html.escape(title)}</h1>"
        f"<div class=\"meta\">{html.escape(meta)}</div><div class=\"prompt\">{html.escape(prompt)}</div></header>"
        f"{verdict}{legend}<main>{''.join(sections)}</main>"
        f"<footer>tensorlite {__version__} · weights from one eval-mode forward, captured without the model's help"
        f"</footer></body></html>\n"
    )


def attention_maps(model, tokens, out, labels=None, *, title: str | None = None, causal: bool = True,
                   **view_options) -> Path:
    """Write the attention maps of ``model`` (tensorlite or torch) on the int ids ``tokens`` to
    ``out`` (one HTML file that opens offline); return its path. ``labels``: the tokens as text
    (default: the ids). ``causal=False`` for a model that may attend ahead (the page then does not
    call it a leak). ``view_options``: the model view's overrides (``blocks="h"`` ...)."""
    text = render_attention_maps(model, tokens, labels, title=title, causal=causal, **view_options)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out
