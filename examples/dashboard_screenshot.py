"""Regenerate docs/assets/dashboard.png: the dashboard of a broken-causal-mask run, with a
healthy run as the reference, rendered by headless Chromium.

    python examples/dashboard_screenshot.py [--out docs/assets/dashboard.png] [--runs DIR]

Two short runs of a tiny model (the break-it configuration of tests/test_diagnose.py, about
10 s each on a laptop), then one screenshot. Needs chromium, chromedriver and selenium.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from tensorlite.debug import Probes, dashboard
from tensorlite.train import TrainConfig, train

BASE = dict(seq_len=32, d_model=32, n_layers=2, n_heads=4, pos="rope", steps=200, batch_size=16, lr=2e-2,
            lr_min=1e-3, warmup=20, clip=1.0, eval_interval=50, eval_batches=2, ckpt_interval=0,
            corpus_max_chars=200_000, progress=False)
PROBE_INTERVAL = 10


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
    p.add_argument("--out", default="docs/assets/dashboard.png")
    p.add_argument("--runs", default=None, help="where to keep the two runs (default: a temporary folder)")
    args = p.parse_args(argv)
    runs = Path(args.runs or tempfile.mkdtemp(prefix="tl-dash-"))
    for name, change in (("healthy", {}), ("causal_mask_open", {"faults": ("causal_mask_open",)})):
        if not (runs / name / "metrics.jsonl").exists():
            train(TrainConfig().replace(**{**BASE, **change, "out_dir": str(runs), "name": name}),
                  callbacks=[Probes(interval=PROBE_INTERVAL)])
    html = dashboard(runs / "causal_mask_open", reference=runs / "healthy")
    out = Path(args.out)
    screenshot(html, out)
    print(f"wrote {out} from {html}")
    return out


if __name__ == "__main__":
    main()
