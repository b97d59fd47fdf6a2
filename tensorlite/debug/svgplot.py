"""Line charts as inline SVG strings: axes and ticks (linear or log), series broken at NaN, threshold
lines, a shaded band, a NaN marker. No plotting library: the dashboard must open offline as one file.

``line_chart(...)`` returns ``(svg, n_points)``; the hover readout of the dashboard page reads the
plot area's left and right margins from the ``data-plot-left`` / ``data-plot-right`` attributes.
"""

from __future__ import annotations

import html
import math

import numpy as np

__all__ = ["PALETTE", "WIDTH", "HEIGHT", "Axes", "line_chart", "legend", "fmt"]

WIDTH, HEIGHT = 470, 250
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 58, 14, 12, 32
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd"]
_PLOT_BOTTOM = HEIGHT - MARGIN_BOTTOM


def nice_ticks(lo, hi, n=5):
    """Round tick values (1, 2, 2.5, 5 x a power of ten apart) covering [lo, hi]."""
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


def log_ticks(lo, hi):
    """Powers of ten in [lo, hi] (with 2 and 5 between them when the range is short)."""
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mult = (1,) if b - a > 2 else (1, 2, 5)
    out = [m * 10.0**e for e in range(a, b + 1) for m in mult]
    return [t for t in out if lo * 0.999 <= t <= hi * 1.001] or [lo, hi]


def fmt(v: float) -> str:
    """A tick or threshold label: short, exponent form for very large or small values."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e4 or a < 1e-3:
        return f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-")
    return f"{v:.4g}"


class Axes:
    """Data coordinates -> SVG coordinates of the plot area (y optionally log10)."""

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

    @property
    def ylim(self):
        """The y range in data units."""
        return (10**self.ylo, 10**self.yhi) if self.log else (self.ylo, self.yhi)

    def x(self, s):
        return MARGIN_LEFT + (s - self.xlo) / (self.xhi - self.xlo) * (WIDTH - MARGIN_LEFT - MARGIN_RIGHT)

    def y(self, v):
        if self.log:
            v = math.log10(v)
        return MARGIN_TOP + (self.yhi - v) / (self.yhi - self.ylo) * (_PLOT_BOTTOM - MARGIN_TOP)


def _plottable(v, log) -> bool:
    return math.isfinite(v) and (not log or v > 0)


def _path(ax: Axes, xs, ys) -> tuple:
    """SVG path data, broken at NaN (and at values <= 0 on a log axis); and the number of points."""
    parts, pen, n = [], False, 0
    for s, v in zip(xs, ys):
        if not _plottable(v, ax.log):
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


def _y_range(vals, hlines, log, ylim):
    if ylim is not None:
        return ylim
    lo, hi = float(vals.min()), float(vals.max())
    for _, y, _ in hlines:  # show a threshold line when it is within 10x (log) of the data
        if (log and lo / 10 <= y <= hi * 10) or (not log and lo - (hi - lo) <= y <= hi + (hi - lo)):
            lo, hi = min(lo, y), max(hi, y)
    if log:
        return lo / 1.15, hi * 1.15
    pad = 0.05 * (hi - lo) if hi > lo else max(abs(hi) * 0.1, 1e-9)
    return (0.0 if lo >= 0 and lo - pad < 0 else lo - pad), hi + pad


def _grid(ax: Axes) -> list:
    out = []
    ticks = log_ticks(*ax.ylim) if ax.log else nice_ticks(ax.ylo, ax.yhi)
    for t in ticks:
        y = ax.y(t)
        out.append(f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{MARGIN_LEFT - 5}" y="{y + 3:.1f}" class="tick" text-anchor="end">{fmt(t)}</text>')
    for t in nice_ticks(ax.xlo, ax.xhi, 6):
        x = ax.x(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{MARGIN_TOP}" y2="{_PLOT_BOTTOM}" class="grid"/>'
                   f'<text x="{x:.1f}" y="{_PLOT_BOTTOM + 14}" class="tick" text-anchor="middle">{fmt(t)}</text>')
    out.append(f'<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{WIDTH - MARGIN_LEFT - MARGIN_RIGHT}" '
               f'height="{_PLOT_BOTTOM - MARGIN_TOP}" class="frame"/>')
    out.append(f'<text x="{(WIDTH + MARGIN_LEFT) / 2}" y="{HEIGHT - 4}" class="axlabel" text-anchor="middle">step</text>')
    return out


def _band(ax: Axes, band) -> list:
    """A shaded polygon between two curves (steps, low, high), clipped to the plot."""
    bs, blo, bhi = band
    keep = np.isfinite(blo) & np.isfinite(bhi) & ((blo > 0) if ax.log else True)
    bs, blo, bhi = bs[keep], blo[keep], bhi[keep]
    if not bs.size:
        return []
    blo, bhi = np.clip(blo, *ax.ylim), np.clip(bhi, *ax.ylim)
    if bs.size == 1:  # a single step: a thin box
        bs = np.array([bs[0] - 0.5, bs[0] + 0.5])
        blo, bhi = np.repeat(blo, 2), np.repeat(bhi, 2)
    pts = [f"{ax.x(x):.1f},{ax.y(v):.1f}" for x, v in zip(bs, bhi)]
    pts += [f"{ax.x(x):.1f},{ax.y(v):.1f}" for x, v in zip(bs[::-1], blo[::-1])]
    return [f'<polygon points="{" ".join(pts)}" class="band"><title>healthy band: the reference '
            f"run's range at each step</title></polygon>"]


def _hlines(ax: Axes, hlines) -> list:
    out = []
    lo, hi = ax.ylim
    for label, y, color in hlines:
        if lo <= y <= hi:
            py = ax.y(y)
            out.append(f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{py:.1f}" y2="{py:.1f}" '
                       f'class="hline" stroke="{color}"/><text x="{WIDTH - MARGIN_RIGHT - 3}" y="{py - 3:.1f}" '
                       f'class="hlabel" fill="{color}" text-anchor="end">{html.escape(label)} {fmt(y)}</text>')
    return out


def line_chart(key: str, series, *, log: bool = False, reference=(), hlines=(), band=None, ylim=None,
               nan_step=None) -> tuple:
    """One chart: ``series`` and ``reference`` are ``[(label, steps, values)]`` (the reference drawn in
    grey dashes behind), ``hlines`` ``[(label, y, colour)]``, ``band`` ``(steps, low, high)``.
    Returns ``(svg, number of points drawn)``; a chart with no finite data says so."""
    allv = [a for a in (_finite(v, log) for _, _, v in [*series, *reference]) if a.size]
    allx = [np.asarray(s, float) for _, s, _ in [*series, *reference] if len(s)]
    if not allv or not allx:
        return (f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" class="chart empty"><text x="{WIDTH / 2}" y="{HEIGHT / 2}" '
                'class="nodata">no data in this run (probes off?)</text></svg>'), 0
    hlines = [h for h in hlines if h[1] > 0 or not log]
    xs = np.concatenate(allx)
    ax = Axes(float(xs.min()), float(xs.max()), *_y_range(np.concatenate(allv), hlines, log, ylim), log)
    out = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" class="chart" data-key="{key}" data-log="{int(log)}" '
           f'data-xlo="{ax.xlo}" data-xhi="{ax.xhi}" data-plot-left="{MARGIN_LEFT}" data-plot-right="{MARGIN_RIGHT}">']
    out += _grid(ax)
    if band is not None and len(band[0]):
        out += _band(ax, band)
    out += _hlines(ax, hlines)
    for _label, s, v in reference:
        d, _ = _path(ax, s, v)
        if d:
            out.append(f'<path d="{d}" class="ref"/>')
    npts = 0
    for i, (label, s, v) in enumerate(series):
        d, n = _path(ax, s, v)
        npts += n
        color = PALETTE[i % len(PALETTE)]
        if d:
            out.append(f'<path d="{d}" class="series" stroke="{color}" data-label="{html.escape(label)}" '
                       f'data-n="{n}"><title>{html.escape(label)}</title></path>')
            if n == 1 or len(s) < 40:  # sparse series (val loss, probe steps): show the points
                out += [f'<circle cx="{ax.x(sx):.1f}" cy="{ax.y(sv):.1f}" r="2.2" fill="{color}"/>'
                        for sx, sv in zip(s, v) if _plottable(sv, log)]
    if nan_step is not None and ax.xlo <= nan_step <= ax.xhi:
        x = ax.x(nan_step)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{MARGIN_TOP}" y2="{_PLOT_BOTTOM}" class="nan"/>'
                   f'<text x="{x + 3:.1f}" y="{MARGIN_TOP + 11}" class="nanlabel">NaN @ {nan_step}</text>')
    out.append(f'<line class="cursor" x1="0" x2="0" y1="{MARGIN_TOP}" y2="{_PLOT_BOTTOM}" visibility="hidden"/></svg>')
    return "".join(out), npts


def legend(series, reference: bool) -> str:
    """The colour key of a chart's series (and of the reference run's grey dashes)."""
    items = [f'<span><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{html.escape(label)}</span>'
             for i, (label, s, _v) in enumerate(series) if len(s)]
    if reference:
        items.append('<span><i class="refsw"></i>reference run</span>')
    return f'<div class="legend">{"".join(items)}</div>'
