"""The training dashboard: one self-contained HTML file (inline SVG, a few lines of inline JS).

Six panels, as the course page lays them out: 1 loss (train and val, log axis), 2 learning rate,
3 gradient norm before and after clipping, 4 activation RMS per layer, 5 spectral norm per weight,
6 dead FFN units and dead attention heads. The diagnosis from :func:`diagnose` sits on top. A
reference run (``reference=RUN_DIR``) is drawn in grey behind every panel, and its range shaded
as the healthy band on panels 4-6. Nothing is loaded from the network: the file opens offline.

This module picks the data; :mod:`.svgplot` draws the charts; the page (CSS, the hover script)
is the template ``templates/dashboard.html``.
"""

from __future__ import annotations

import html
import json
import math
from functools import cache
from importlib import resources
from pathlib import Path
from string import Template

import numpy as np

from .._version import __version__
from ..checkpoint import atomic_write_text
from . import svgplot
from .diagnose import Thresholds, diagnose
from .metrics import Metrics, load_metrics

__all__ = ["dashboard", "render_dashboard"]

# panels whose reference run is also shaded as a band (its min..max over layers at each step)
_BANDED = ("act_rms", "spectral_norm", "dead")
_CONFIG_KEYS = ("vocab_size", "d_model", "n_layers", "n_heads", "seq_len", "lr", "warmup", "steps", "batch_size",
                "clip", "faults")


@cache
def _template() -> Template:
    return Template(resources.files(__package__).joinpath("templates/dashboard.html").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------------
# panel data
# ------------------------------------------------------------------------------------------------
def _dead_fraction(m: Metrics, key: str):
    steps, vals = [], []
    for r in m.rows:
        if key == "dead_heads":
            if r.get("dead_heads") is None or not r.get("n_heads_total"):
                continue
            v = float(r["dead_heads"]) / float(r["n_heads_total"])
        else:
            if r.get(key) is None:
                continue
            v = float(r[key])
        steps.append(r["step"])
        vals.append(v)
    return np.asarray(steps, float), np.asarray(vals, float)


def _short(name: str) -> str:
    # "blocks.0.attn.qkv.weight" -> "0.attn.qkv": legends stay one line
    return name.replace("blocks.", "").replace(".weight", "")


def _panels(m: Metrics) -> list:
    """[(key, title, log_y, [(label, steps, values)], options)] for the six panels."""
    th = Thresholds()
    loss = [("train", *m.series("loss")), ("val", *m.series("val_loss"))]
    hl_loss = []
    if m.vocab_size:
        hl_loss.append(("ln V (uniform guess)", math.log(m.vocab_size), "#d62728"))
    if m.unigram_entropy:
        hl_loss.append(("unigram entropy", m.unigram_entropy, "#2ca02c"))
    clipped = [bool(r["clipped"]) for r in m.rows if r.get("clipped") is not None]
    clip_txt = f" (clipped on {100 * sum(clipped) / len(clipped):.0f}% of steps)" if clipped else ""
    cfg = m.config
    clip = cfg.get("clip")
    hl_grad = [("clip", float(clip), "#7f7f7f")] if isinstance(clip, (int, float)) and clip else []
    acts = [(k, *v) for k, v in m.dict_series("act_rms").items()]
    spec = [(_short(k), *v) for k, v in m.dict_series("spectral_norm").items()]
    dead = [("dead FFN units", *_dead_fraction(m, "dead_units")),
            ("dead heads", *_dead_fraction(m, "dead_heads"))]
    return [
        ("loss", "1 · Loss (train, val)", True, loss, {"hlines": hl_loss}),
        ("lr", "2 · Learning rate", False, [("lr", *m.series("lr"))], {}),
        ("grad_norm", "3 · Gradient norm" + clip_txt, True,
         [("pre-clip", *m.series("grad_norm")), ("post-clip", *m.series("grad_norm_clipped"))], {"hlines": hl_grad}),
        ("act_rms", "4 · Activation RMS per layer", True, acts,
         {"hlines": [("bad-init threshold", th.act_rms_bad, "#d62728")]}),
        ("spectral_norm", "5 · Spectral norm per weight", True, spec, {}),
        ("dead", "6 · Dead FFN units / dead heads (fraction)", False, dead,
         {"hlines": [("dead-head alarm", th.dead_heads_frac, "#d62728")], "ylim": (0.0, 1.0)}),
    ]


def _ref_band(ref_series):
    """(steps, low, high): the reference run's min and max over its series at each step."""
    per_step: dict = {}
    for _, steps, vals in ref_series:
        for x, v in zip(steps, vals):
            if math.isfinite(v):
                per_step.setdefault(float(x), []).append(float(v))
    xs = sorted(per_step)
    return (np.asarray(xs), np.asarray([min(per_step[x]) for x in xs]), np.asarray([max(per_step[x]) for x in xs]))


def _hover_data(series):
    """Per-series values for the hover readout (rounded, so the file stays small)."""
    return {label: [[float(x), (round(float(v), 6) if math.isfinite(v) else None)] for x, v in zip(s, vals)]
            for label, s, vals in series if len(s)}


# ------------------------------------------------------------------------------------------------
# page parts
# ------------------------------------------------------------------------------------------------
def _banner(diag, blind: bool) -> str:
    if blind:  # a lab run: the reader diagnoses it, so neither the verdict nor the switches show
        return ('<div class="diag" id="diagnosis" data-name="hidden"><h2>Diagnosis: hidden</h2>'
                "what went wrong is for you to find from the six panels</div>")
    if diag.healthy:
        return (f'<div class="diag healthy" id="diagnosis" data-name="healthy"><h2>Diagnosis: healthy</h2>'
                f"{html.escape(diag.summary)}</div>")
    sev = "error" if any(f.severity == "error" for f in diag.findings) else "warning"
    items = "".join(
        f"<li><b>{html.escape(f.title)}</b> <code>{f.name}</code>: {html.escape(f.evidence)}"
        f'<div class="hint">{html.escape(f.hint)} (<a href="{html.escape(f.doc_url)}">docs</a>)</div></li>'
        for f in diag.findings
    )
    return (f'<div class="diag {sev}" id="diagnosis" data-name="{diag.name}"><h2>Diagnosis: '
            f"{html.escape(diag.findings[0].title)}</h2>{html.escape(diag.summary)}<ul>{items}</ul></div>")


def _meta(m: Metrics, ref: Metrics | None, blind: bool) -> str:
    cfg = m.config
    if m.vocab_size:
        cfg["vocab_size"] = m.vocab_size  # the tokenizer's, not the BPE setting in the config
    keys = tuple(k for k in _CONFIG_KEYS if not (blind and k in ("warmup", "faults")))
    meta = ", ".join(f"{k}={cfg[k]}" for k in keys if cfg.get(k) not in (None, (), []))
    if ref is not None:
        meta += f" · reference: {ref.path.parent.name if ref.path else 'given'}"
    return meta


def render_dashboard(metrics, reference=None, title: str | None = None, blind: bool = False) -> str:
    """The dashboard's HTML as a string (see :func:`dashboard`)."""
    m = load_metrics(metrics)
    ref = load_metrics(reference) if reference is not None else None
    if title is None:
        title = m.path.parent.name if m.path is not None else "run"
    ref_panels = _panels(ref) if ref is not None else [None] * 6
    sections, hover = [], {}
    for (key, ptitle, log, series, opts), rp in zip(_panels(m), ref_panels):
        ref_series = rp[3] if rp is not None else []
        band = _ref_band(ref_series) if rp is not None and key in _BANDED else None
        svg, npts = svgplot.line_chart(key, series, log=log, reference=ref_series, hlines=opts.get("hlines", ()),
                                       band=band, ylim=opts.get("ylim"), nan_step=m.nan_step)
        hover[key] = _hover_data(series)
        sections.append(
            f'<section class="panel" data-panel="{key}" data-points="{npts}"><h3>{html.escape(ptitle)}'
            f"{' <small>(log)</small>' if log else ''}</h3>{svg}{svgplot.legend(series, bool(ref_series))}"
            f'<div class="readout"></div></section>'
        )
    src = html.escape(str(m.path)) if m.path is not None else "metrics passed in memory"
    # the attention maps of the run (`tensorlite attention RUN_DIR`), when its folder has them
    maps = m.path is not None and (m.path.parent / "attention.html").is_file()
    return _template().substitute(
        title=html.escape(title),
        meta=html.escape(_meta(m, ref, blind)) + (' · <a class="maps" href="attention.html">attention maps</a>'
                                                  if maps else ""),
        banner=_banner(diagnose(m), blind),
        panels="".join(sections),
        footer=f"tensorlite {__version__} · {src} · {len(m.rows)} logged steps",
        # The JSON sits in a script element: "</" must not appear in it.
        panel_data=json.dumps(hover, separators=(",", ":")).replace("</", "<\\/"),
    )


def dashboard(run_dir_or_metrics_path, out=None, reference=None, title: str | None = None,
              blind: bool = False) -> Path:
    """Write the six-panel dashboard of a run as one self-contained HTML file; return its path.

    ``run_dir_or_metrics_path``: a run directory, its ``metrics.jsonl``, or a list of metric dicts
    (then ``out`` is required). ``out`` defaults to ``dashboard.html`` beside the metrics log.
    ``reference``: another run (dir or metrics path) drawn in grey as the healthy reference.
    ``blind=True`` leaves out the diagnosis and the config's ``warmup`` and ``faults`` (for labs
    where the reader names the failure).
    """
    m = load_metrics(run_dir_or_metrics_path)
    if out is None:
        if m.path is None:
            raise ValueError("dashboard: pass out=... when the metrics are not read from a file")
        out = m.path.parent / "dashboard.html"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, render_dashboard(m, reference=reference, title=title, blind=blind))
    return out
