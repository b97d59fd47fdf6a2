"""The training dashboard: one self-contained HTML file (inline SVG, a few lines of inline JS).

Six panels, as the course page lays them out: 1 loss (train and val, log axis), 2 learning rate,
3 gradient norm before and after clipping, 4 activation RMS per layer, 5 spectral norm per weight,
6 dead FFN units and dead attention heads. The diagnosis from :func:`diagnose` sits on top. A
reference run (``reference=RUN_DIR``) is drawn in grey behind every panel, and its range shaded
as the healthy band on panels 4-6. Nothing is loaded from the network: the file opens offline.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np

from .._version import __version__
from .diagnose import Thresholds, diagnose
from .metrics import Metrics, load_metrics

__all__ = ["dashboard", "render_dashboard"]

_W, _H = 470, 250
_ML, _MR, _MT, _MB = 58, 14, 12, 32
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
            "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd"]


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
    s = name.replace("blocks.", "").replace(".weight", "")
    return s


def _panels(m: Metrics) -> list:
    """[(key, title, log_y, [(label, steps, values)], extra)] for the six panels."""
    th = Thresholds()
    loss = [("train", *m.series("loss")), ("val", *m.series("val_loss"))]
    hl_loss = []
    if m.vocab_size:
        hl_loss.append(("ln V (ceiling)", math.log(m.vocab_size), "#d62728"))
    if m.data_entropy:
        hl_loss.append(("data entropy", m.data_entropy, "#2ca02c"))
    clipped = [bool(r["clipped"]) for r in m.rows if r.get("clipped") is not None]
    clip_txt = f" (clipped on {100 * sum(clipped) / len(clipped):.0f}% of steps)" if clipped else ""
    cfg = m.config
    hl_grad = [("clip", float(cfg["clip"]), "#7f7f7f")] if isinstance(cfg.get("clip"), (int, float)) and cfg["clip"] else []
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


# ------------------------------------------------------------------------------------------------
# SVG
# ------------------------------------------------------------------------------------------------
def _nice_ticks(lo, hi, n=5):
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw), default=10 * mag)
    start = math.ceil(lo / step) * step
    ticks, t = [], start
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _log_ticks(lo, hi):
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mult = (1,) if b - a > 2 else (1, 2, 5)
    out = [m * 10.0**e for e in range(a, b + 1) for m in mult]
    return [t for t in out if lo * 0.999 <= t <= hi * 1.001] or [lo, hi]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e4 or a < 1e-3:
        return f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-")
    return f"{v:.4g}"


class _Axes:
    def __init__(self, xlo, xhi, ylo, yhi, log):
        self.log = log
        if log:
            ylo, yhi = math.log10(ylo), math.log10(yhi)
        if yhi - ylo < 1e-12:
            pad = 0.5 if log else max(abs(yhi) * 0.1, 1e-12)
            ylo, yhi = ylo - pad, yhi + pad
        if xhi <= xlo:
            xhi = xlo + 1
        self.xlo, self.xhi, self.ylo, self.yhi = xlo, xhi, ylo, yhi

    def x(self, s):
        return _ML + (s - self.xlo) / (self.xhi - self.xlo) * (_W - _ML - _MR)

    def y(self, v):
        if self.log:
            v = math.log10(v)
        return _MT + (self.yhi - v) / (self.yhi - self.ylo) * (_H - _MT - _MB)


def _path(ax: _Axes, xs, ys) -> tuple:
    """SVG path data, broken at NaN (and at values <= 0 on a log axis); and the number of points."""
    parts, pen, n = [], False, 0
    for s, v in zip(xs, ys):
        if not math.isfinite(v) or (ax.log and v <= 0):
            pen = False
            continue
        parts.append(f"{'L' if pen else 'M'}{ax.x(s):.1f},{ax.y(v):.1f}")
        pen = True
        n += 1
    return " ".join(parts), n


def _finite(vals, log):
    v = np.asarray(vals, float)
    v = v[np.isfinite(v)]
    return v[v > 0] if log else v


def _svg_panel(key, log, series, ref_series, extra, nan_step):
    allv = [_finite(v, log) for _, _, v in series] + [_finite(v, log) for _, _, v in ref_series]
    allv = [a for a in allv if a.size]
    allx = [np.asarray(s, float) for _, s, _ in series + ref_series if len(s)]
    if not allv or not allx:
        return (f'<svg viewBox="0 0 {_W} {_H}" class="chart empty"><text x="{_W / 2}" y="{_H / 2}" '
                'class="nodata">no data in this run (probes off?)</text></svg>'), 0
    vals = np.concatenate(allv)
    hl = [h for h in extra.get("hlines", []) if (h[1] > 0 or not log)]
    lo, hi = float(vals.min()), float(vals.max())
    if "ylim" in extra:
        lo, hi = extra["ylim"]
    else:
        for _, y, _ in hl:  # show a threshold line when it is within 10x (log) of the data
            if (log and lo / 10 <= y <= hi * 10) or (not log and lo - (hi - lo) <= y <= hi + (hi - lo)):
                lo, hi = min(lo, y), max(hi, y)
        if log:
            lo, hi = lo / 1.15, hi * 1.15
        else:
            pad = 0.05 * (hi - lo) if hi > lo else max(abs(hi) * 0.1, 1e-9)
            lo, hi = (0.0 if lo >= 0 and lo - pad < 0 else lo - pad), hi + pad
    xs = np.concatenate(allx)
    ax = _Axes(float(xs.min()), float(xs.max()), lo, hi, log)
    out = [f'<svg viewBox="0 0 {_W} {_H}" class="chart" data-key="{key}" data-log="{int(log)}" '
           f'data-xlo="{ax.xlo}" data-xhi="{ax.xhi}">']
    # axes and grid
    ticks = _log_ticks(10**ax.ylo, 10**ax.yhi) if log else _nice_ticks(ax.ylo, ax.yhi)
    for t in ticks:
        y = ax.y(t)
        out.append(f'<line x1="{_ML}" x2="{_W - _MR}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{_ML - 5}" y="{y + 3:.1f}" class="tick" text-anchor="end">{_fmt(t)}</text>')
    for t in _nice_ticks(ax.xlo, ax.xhi, 6):
        x = ax.x(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_MT}" y2="{_H - _MB}" class="grid"/>'
                   f'<text x="{x:.1f}" y="{_H - _MB + 14}" class="tick" text-anchor="middle">{_fmt(t)}</text>')
    out.append(f'<rect x="{_ML}" y="{_MT}" width="{_W - _ML - _MR}" height="{_H - _MT - _MB}" class="frame"/>')
    out.append(f'<text x="{(_W + _ML) / 2}" y="{_H - 4}" class="axlabel" text-anchor="middle">step</text>')
    # healthy band: the reference run's envelope (min .. max over its series at each step)
    band = extra.get("band")
    if band is not None and len(band[0]):
        bs, blo, bhi = band
        keep = np.isfinite(blo) & np.isfinite(bhi) & ((blo > 0) if log else True)
        bs, blo, bhi = bs[keep], blo[keep], bhi[keep]
        ylo_v, yhi_v = (10**ax.ylo, 10**ax.yhi) if log else (ax.ylo, ax.yhi)
        blo, bhi = np.clip(blo, ylo_v, yhi_v), np.clip(bhi, ylo_v, yhi_v)
        if bs.size:
            if bs.size == 1:  # a single probe step: a thin box
                bs = np.array([bs[0] - 0.5, bs[0] + 0.5])
                blo, bhi = np.repeat(blo, 2), np.repeat(bhi, 2)
            pts = [f"{ax.x(x):.1f},{ax.y(v):.1f}" for x, v in zip(bs, bhi)]
            pts += [f"{ax.x(x):.1f},{ax.y(v):.1f}" for x, v in zip(bs[::-1], blo[::-1])]
            out.append(f'<polygon points="{" ".join(pts)}" class="band"><title>healthy band: the reference '
                       f"run's range at each step</title></polygon>")
    for label, y, color in hl:
        yv = y if not log else max(y, 1e-300)
        if (10**ax.ylo if log else ax.ylo) <= yv <= (10**ax.yhi if log else ax.yhi):
            py = ax.y(yv)
            out.append(f'<line x1="{_ML}" x2="{_W - _MR}" y1="{py:.1f}" y2="{py:.1f}" class="hline" stroke="{color}"/>'
                       f'<text x="{_W - _MR - 3}" y="{py - 3:.1f}" class="hlabel" fill="{color}" text-anchor="end">'
                       f"{html.escape(label)} {_fmt(y)}</text>")
    for _label, s, v in ref_series:
        d, _ = _path(ax, s, v)
        if d:
            out.append(f'<path d="{d}" class="ref"/>')
    npts = 0
    for i, (label, s, v) in enumerate(series):
        d, n = _path(ax, s, v)
        npts += n
        color = _PALETTE[i % len(_PALETTE)]
        if d:
            out.append(f'<path d="{d}" class="series" stroke="{color}" data-label="{html.escape(label)}" '
                       f'data-n="{n}"><title>{html.escape(label)}</title></path>')
            if n == 1 or len(s) < 40:  # sparse series (val loss, probe steps): show the points
                for sx, sv in zip(s, v):
                    if math.isfinite(sv) and (not log or sv > 0):
                        out.append(f'<circle cx="{ax.x(sx):.1f}" cy="{ax.y(sv):.1f}" r="2.2" fill="{color}"/>')
    if nan_step is not None and ax.xlo <= nan_step <= ax.xhi:
        x = ax.x(nan_step)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_MT}" y2="{_H - _MB}" class="nan"/>'
                   f'<text x="{x + 3:.1f}" y="{_MT + 11}" class="nanlabel">NaN @ {nan_step}</text>')
    out.append(f'<line class="cursor" x1="0" x2="0" y1="{_MT}" y2="{_H - _MB}" visibility="hidden"/></svg>')
    return "".join(out), npts


def _legend(series, ref):
    items = []
    for i, (label, s, _v) in enumerate(series):
        if len(s):
            items.append(f'<span><i style="background:{_PALETTE[i % len(_PALETTE)]}"></i>{html.escape(label)}</span>')
    if ref:
        items.append('<span><i class="refsw"></i>reference run</span>')
    return f'<div class="legend">{"".join(items)}</div>'


def _hover_data(series):
    """Per-series values for the hover readout (rounded, so the file stays small)."""
    return {label: [[float(x), (round(float(v), 6) if math.isfinite(v) else None)] for x, v in zip(s, vals)]
            for label, s, vals in series if len(s)}


# ------------------------------------------------------------------------------------------------
# page
# ------------------------------------------------------------------------------------------------
_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#fafafa;color:#222}
header{padding:14px 22px;background:#fff;border-bottom:1px solid #ddd}
h1{font-size:19px;margin:0 0 4px}
.meta{color:#666;font-size:12.5px}
.diag{margin:12px 22px;padding:10px 14px;border-radius:6px;border-left:6px solid}
.diag.healthy{background:#e8f5e9;border-color:#2e7d32}
.diag.error{background:#fdecea;border-color:#c62828}
.diag.warning{background:#fff8e1;border-color:#f9a825}
.diag h2{font-size:16px;margin:0 0 4px}
.diag ul{margin:4px 0 0;padding-left:20px}.diag li{margin:3px 0}
.diag .hint{color:#555;font-size:12.5px}
.grid6{display:grid;grid-template-columns:repeat(auto-fill,minmax(430px,1fr));gap:14px;padding:0 22px 22px}
.panel{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 10px}
.panel h3{font-size:14px;margin:0 0 4px}
.chart{width:100%;height:auto;display:block}
.chart .grid{stroke:#eee;stroke-width:1}
.chart .frame{fill:none;stroke:#bbb}
.chart .tick{font-size:10px;fill:#666}
.chart .axlabel{font-size:10.5px;fill:#888}
.chart .series{fill:none;stroke-width:1.6}
.chart .ref{fill:none;stroke:#9e9e9e;stroke-width:1.2;stroke-dasharray:4 3;opacity:.8}
.chart .band{fill:#43a047;opacity:.10}
.chart .hline{stroke-width:1;stroke-dasharray:6 4}
.chart .hlabel{font-size:10px}
.chart .nan{stroke:#c62828;stroke-width:1.5}
.chart .nanlabel{font-size:10.5px;fill:#c62828;font-weight:600}
.chart .nodata{font-size:13px;fill:#999;text-anchor:middle}
.chart .cursor{stroke:#444;stroke-width:.8}
.legend{font-size:11.5px;color:#444;display:flex;flex-wrap:wrap;gap:4px 12px;margin-top:2px}
.legend i{display:inline-block;width:12px;height:3px;margin-right:4px;vertical-align:middle}
.legend i.refsw{background:repeating-linear-gradient(90deg,#9e9e9e 0 4px,transparent 4px 7px)}
.readout{font:11.5px ui-monospace,Menlo,monospace;color:#333;min-height:1.4em;white-space:pre-wrap}
footer{color:#888;font-size:11.5px;padding:0 22px 16px}
"""

# Hover readout: the nearest logged step's values under the cursor. Plain DOM, no libraries.
_JS = """
(function(){
  var data = JSON.parse(document.getElementById('panel-data').textContent);
  document.querySelectorAll('section.panel').forEach(function(sec){
    var svg = sec.querySelector('svg.chart'), out = sec.querySelector('.readout');
    var series = data[sec.dataset.panel] || {};
    if (!svg || svg.classList.contains('empty')) return;
    var xlo = parseFloat(svg.dataset.xlo), xhi = parseFloat(svg.dataset.xhi), cur = svg.querySelector('.cursor');
    svg.addEventListener('mousemove', function(ev){
      var r = svg.getBoundingClientRect(), vb = svg.viewBox.baseVal;
      var px = (ev.clientX - r.left) * vb.width / r.width;
      var step = xlo + (px - __ML__) / (vb.width - __ML__ - __MR__) * (xhi - xlo);
      var parts = [];
      Object.keys(series).forEach(function(k){
        var pts = series[k], best = null;
        for (var i = 0; i < pts.length; i++) { if (best === null || Math.abs(pts[i][0] - step) < Math.abs(best[0] - step)) best = pts[i]; }
        if (best) parts.push(k + '=' + (best[1] === null ? 'NaN' : Number(best[1]).toPrecision(4)) + ' @' + best[0]);
      });
      out.textContent = parts.join('  ');
      cur.setAttribute('x1', px); cur.setAttribute('x2', px); cur.setAttribute('visibility', 'visible');
    });
    svg.addEventListener('mouseleave', function(){ cur.setAttribute('visibility', 'hidden'); });
  });
})();
""".replace("__ML__", str(_ML)).replace("__MR__", str(_MR))


def _ref_band(ref_series):
    """(steps, low, high): the reference run's min and max over its series at each step."""
    per_step: dict = {}
    for _, steps, vals in ref_series:
        for x, v in zip(steps, vals):
            if math.isfinite(v):
                per_step.setdefault(float(x), []).append(float(v))
    xs = sorted(per_step)
    return (np.asarray(xs), np.asarray([min(per_step[x]) for x in xs]), np.asarray([max(per_step[x]) for x in xs]))


def render_dashboard(metrics, reference=None, title: str | None = None, blind: bool = False) -> str:
    """The dashboard's HTML as a string (see :func:`dashboard`)."""
    m = load_metrics(metrics)
    ref = load_metrics(reference) if reference is not None else None
    diag = diagnose(m)
    if title is None:
        title = m.path.parent.name if m.path is not None else "run"
    panels = _panels(m)
    ref_panels = _panels(ref) if ref is not None else [None] * 6
    nan_step = m.nan_step
    sections, hover = [], {}
    for (key, ptitle, log, series, extra), rp in zip(panels, ref_panels):
        ref_series = rp[3] if rp is not None else []
        if rp is not None and key in ("act_rms", "spectral_norm", "dead"):
            extra = {**extra, "band": _ref_band(ref_series)}
        svg, npts = _svg_panel(key, log, series, ref_series, extra, nan_step)
        hover[key] = _hover_data(series)
        sections.append(
            f'<section class="panel" data-panel="{key}" data-points="{npts}"><h3>{html.escape(ptitle)}'
            f"{' <small>(log)</small>' if log else ''}</h3>{svg}{_legend(series, bool(ref_series))}"
            f'<div class="readout"></div></section>'
        )
    # diagnosis banner
    if blind:  # a lab run: the reader diagnoses it, so neither the verdict nor the switches show
        banner = ('<div class="diag" id="diagnosis" data-name="hidden"><h2>Diagnosis: hidden</h2>'
                  "what went wrong is for you to find from the six panels</div>")
    elif diag.healthy:
        banner = (f'<div class="diag healthy" id="diagnosis" data-name="healthy"><h2>Diagnosis: healthy</h2>'
                  f"{html.escape(diag.summary)}</div>")
    else:
        sev = "error" if any(f.severity == "error" for f in diag.findings) else "warning"
        items = "".join(
            f"<li><b>{html.escape(f.title)}</b> <code>{f.name}</code>: {html.escape(f.evidence)}"
            f'<div class="hint">{html.escape(f.hint)} (<a href="{html.escape(f.doc_url)}">docs</a>)</div></li>'
            for f in diag.findings
        )
        banner = (f'<div class="diag {sev}" id="diagnosis" data-name="{diag.name}"><h2>Diagnosis: '
                  f"{html.escape(diag.findings[0].title)}</h2>{html.escape(diag.summary)}<ul>{items}</ul></div>")
    cfg = m.config
    if m.vocab_size:
        cfg["vocab_size"] = m.vocab_size  # the tokenizer's, not the BPE setting in the config
    keys = ("vocab_size", "d_model", "n_layers", "n_heads", "seq_len", "lr", "warmup", "steps", "batch_size", "clip", "faults")
    if blind:
        keys = tuple(k for k in keys if k not in ("warmup", "faults"))
    meta = ", ".join(f"{k}={cfg[k]}" for k in keys if cfg.get(k) not in (None, (), []))
    if ref is not None:
        meta += f" · reference: {ref.path.parent.name if ref.path else 'given'}"
    src = html.escape(str(m.path)) if m.path is not None else "metrics passed in memory"
    # the attention maps of the run (`tensorlite attention RUN_DIR`), when its folder has them
    maps = m.path is not None and (m.path.parent / "attention.html").is_file()
    maps_link = ' <a class="maps" href="attention.html">attention maps</a>' if maps else ""
    # The JSON sits in a script element; "</" must not appear in it.
    data_json = json.dumps(hover, separators=(",", ":")).replace("</", "<\\/")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{html.escape(title)} · tensorlite dashboard</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><div class=\"meta\">{html.escape(meta) if meta else ''}{maps_link}</div></header>"
        f"{banner}<main class=\"grid6\">{''.join(sections)}</main>"
        f"<footer>tensorlite {__version__} · {src} · {len(m.rows)} logged steps</footer>"
        f"<script type=\"application/json\" id=\"panel-data\">{data_json}</script>"
        f"<script>{_JS}</script></body></html>\n"
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
    src = run_dir_or_metrics_path
    m = load_metrics(src)
    if out is None:
        if m.path is None:
            raise ValueError("dashboard: pass out=... when the metrics are not read from a file")
        out = m.path.parent / "dashboard.html"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = render_dashboard(m, reference=reference, title=title, blind=blind)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out
