"""Regenerate docs/assets/dashboard.png: the dashboard of the break-it lab's run with the causal mask
open, against its healthy reference run, rendered by headless Chromium.

    python examples/dashboard_screenshot.py [--out docs/assets/dashboard.png]

The site publishes the same dashboard, rendered at build time, as ``debug/dashboard-example.html``
(``docs/_hooks/lab_dashboards.py``): the screenshot on the dashboard page links to it. No training:
the runs are the committed ones in ``examples/break_it/`` (``examples/break_it/run.py`` retrains
them). Needs chromium, chromedriver and selenium.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from tensorlite.debug import dashboard

REPO = Path(__file__).resolve().parents[1]
LAB = REPO / "examples" / "break_it"


def screenshot(html: Path, png: Path, width: int = 1400, height: int = 1010) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    profile = tempfile.mkdtemp(prefix="tl-chrome-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
                 f"--window-size={width},{height}", "--hide-scrollbars"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        drv.get(html.resolve().as_uri())
        png.parent.mkdir(parents=True, exist_ok=True)
        drv.save_screenshot(str(png))
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO / "docs" / "assets" / "dashboard.png"))
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    os.chdir(REPO)  # the dashboard's footer shows the metrics path: a repository path, not this machine's
    lab = LAB.relative_to(REPO)
    with tempfile.TemporaryDirectory(prefix="tl-dash-") as tmp:
        html = dashboard(lab / "01", out=Path(tmp) / "dashboard.html", reference=lab / "reference",
                         title="causal mask open, against a healthy reference")
        screenshot(html, out)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
