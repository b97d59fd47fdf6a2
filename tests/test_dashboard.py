"""The dashboard: one self-contained HTML file, six panels with data, the diagnosis on top."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from browser import chromium, console_errors

from tensorlite import cli
from tensorlite._docs import DOCS_URL
from tensorlite.debug import Probes, WriteDashboard, dashboard, render_dashboard
from tensorlite.train import TrainConfig, train

PANELS = ["loss", "lr", "grad_norm", "act_rms", "spectral_norm", "dead"]
RUN = dict(seq_len=16, d_model=32, n_layers=2, n_heads=4, steps=30, batch_size=4, lr=3e-3, warmup=5,
           eval_interval=10, eval_batches=1, ckpt_interval=0, corpus_max_chars=30_000, progress=False)


def probed(config):
    """Train with the callbacks ``tensorlite train`` adds: probes (every 5 steps) and the dashboard."""
    return train(config, callbacks=[Probes(interval=5), WriteDashboard()])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("dash")
    healthy = probed(TrainConfig().replace(**RUN, out_dir=str(out), name="healthy")).run_dir
    broken = probed(TrainConfig().replace(**RUN, faults=("init_x100",), out_dir=str(out), name="broken")).run_dir
    return healthy, broken


def _panel_points(html: str) -> dict:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r'data-panel="(\w+)" data-points="(\d+)"', html)}


def _synthetic(n=40, nan_at=None):
    rows = [{"event": "start", "vocab_size": 50, "data_entropy": 3.0, "config": {"clip": 1.0}}]
    for s in range(n):
        loss = float("nan") if nan_at is not None and s >= nan_at else 3.9 - s * 0.03
        r = {"step": s, "loss": loss, "lr": 1e-3 * min(1, (s + 1) / 5), "grad_norm": 1.2, "grad_norm_clipped": 1.0,
             "clipped": True, "tokens_per_s": 1000.0}
        if s % 10 == 0:
            r.update(val_loss=loss + 0.1, act_rms={"blocks.0": 0.5, "norm_f": 1.0}, spectral_norm={"w": 2.0 + s / 100},
                     dead_units=0.0, dead_heads=1, n_heads_total=4)
        rows.append(r)
    if nan_at is not None:
        rows.append({"event": "nan", "step": nan_at})
    return rows


def test_dashboard_from_a_run_dir_is_written_beside_the_metrics(runs):
    healthy, _ = runs
    path = dashboard(healthy)
    assert path == healthy / "dashboard.html"
    html = path.read_text()
    points = _panel_points(html)
    assert list(points) == PANELS and all(v > 0 for v in points.values()), points
    assert 'id="diagnosis" data-name="healthy"' in html


def test_train_writes_the_dashboard_at_the_end(runs):
    healthy, broken = runs
    for run in runs:
        assert (run / "dashboard.html").is_file()
    assert 'data-name="bad_init"' in (broken / "dashboard.html").read_text()


def test_self_contained_no_network(runs):
    html = dashboard(runs[1], reference=runs[0]).read_text()
    # nothing is loaded from anywhere; the only addresses are the docs links the reader may follow
    assert not re.search(r"""src\s*=\s*["']?(https?:)?//""", html)
    links = re.findall(r"""<a href="([^"]*)">""", html)
    assert links and all(u.startswith(DOCS_URL + "debug/diagnose/#") for u in links), links
    assert not re.search(r"""href\s*=\s*["']?(https?:)?//""", re.sub(r'<a href="[^"]*">', "", html))
    assert "<link" not in html and "<script src" not in html and "@import" not in html
    assert "url(" not in html
    assert html.count("<svg") == 6


def test_reference_run_draws_grey_lines_and_a_band(runs):
    healthy, broken = runs
    html = dashboard(broken, out=broken / "vs.html", reference=healthy).read_text()
    assert html.count('class="ref"') >= 6
    assert html.count('class="band"') == 3  # panels 4-6: the reference's range at each step
    assert "reference: " in html


def test_list_of_dicts_needs_out(tmp_path):
    with pytest.raises(ValueError, match="pass out="):
        dashboard(_synthetic())
    path = dashboard(_synthetic(), out=tmp_path / "sub" / "d.html", title="synthetic")
    html = path.read_text()
    assert "<title>synthetic" in html and list(_panel_points(html)) == PANELS


def test_nan_run_marks_the_step_and_keeps_finite_points(tmp_path):
    html = render_dashboard(_synthetic(nan_at=25))
    assert "NaN @ 25" in html
    assert _panel_points(html)["loss"] > 0
    assert "divergence" in html


def test_run_without_probes_says_so(tmp_path):
    rows = [{k: v for k, v in r.items() if k not in ("act_rms", "spectral_norm", "dead_units", "dead_heads")}
            for r in _synthetic()]
    html = render_dashboard(rows)
    pts = _panel_points(html)
    assert pts["act_rms"] == pts["spectral_norm"] == pts["dead"] == 0
    assert html.count("no data in this run (probes off?)") == 3


def test_log_axes_skip_non_positive_values():
    rows = _synthetic()
    for r in rows[1:]:
        r["grad_norm"] = 0.0
    html = render_dashboard(rows)
    assert _panel_points(html)["grad_norm"] == 40  # the 40 post-clip points; the zeros are left out


def test_hover_data_is_valid_json():
    html = render_dashboard(_synthetic())
    data = json.loads(re.search(r'<script type="application/json" id="panel-data">(.*?)</script>', html).group(1))
    assert set(data) == set(PANELS)
    assert data["loss"]["train"][0] == [0.0, 3.9]


def test_cli_dashboard(runs, tmp_path, capsys):
    healthy, broken = runs
    out = tmp_path / "b.html"
    assert cli.main(["dashboard", str(broken), "--out", str(out), "--reference", str(healthy)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "diagnosis: bad_init" in printed
    assert out.is_file()
    assert cli.main(["dashboard", str(tmp_path / "missing")]) == 2
    assert "no metrics log" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# a real browser
# ------------------------------------------------------------------------------------------------
@pytest.mark.browser
def test_dashboard_renders_in_headless_chromium(runs):
    healthy, broken = runs
    path = dashboard(broken, out=broken / "browser.html", reference=healthy)
    with chromium() as drv:
        drv.get(Path(path).as_uri())
        panels = drv.find_elements("css selector", "section.panel")
        assert [p.get_attribute("data-panel") for p in panels] == PANELS
        for p in panels:
            paths = p.find_elements("css selector", "svg path.series")
            assert paths, p.get_attribute("data-panel")
            box = p.find_element("css selector", "svg").rect
            assert box["width"] > 200 and box["height"] > 100  # laid out, not collapsed
            lengths = [drv.execute_script("return arguments[0].getTotalLength()", el) for el in paths]
            assert max(lengths) > 0 or p.find_elements("css selector", "circle")
        banner = drv.find_element("id", "diagnosis")
        assert banner.get_attribute("data-name") == "bad_init" and "Bad initialisation" in banner.text
        # the hover readout (inline JS) answers a mouse move
        from selenium.webdriver.common.action_chains import ActionChains

        svg = panels[0].find_element("css selector", "svg")
        ActionChains(drv).move_to_element(svg).perform()
        readout = panels[0].find_element("css selector", ".readout").text
        assert "train=" in readout
        assert console_errors(drv) == []


def test_screenshot_tool_exists():
    tool = Path(__file__).parents[1] / "examples" / "dashboard_screenshot.py"
    assert tool.is_file() and "docs/assets/dashboard.png" in tool.read_text()
    assert math.isfinite(1.0)
