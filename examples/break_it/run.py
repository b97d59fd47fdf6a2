"""Regenerate the break-it lab: three broken training runs in folders 01, 02, 03, and a healthy
reference run, each with its metrics, config and six-panel dashboard.

    python examples/break_it/run.py            # under a minute on 2 idle cores
    python examples/break_it/run.py --quick --out /tmp/lab   # a smoke test: a few steps each
    python examples/break_it/run.py --render-only    # redraw the dashboards and screenshots, no training

Each broken run is the healthy configuration (``BASE``) with one fault of the course page
switched on by name. The folder names say nothing about which: the dashboards of the mystery
runs hide the diagnosis and the config line (``dashboard(..., blind=True)``) and draw the healthy
reference in grey. ``solutions.md`` says which is which; so do ``config.json`` and the first line
of ``metrics.jsonl`` (``"faults"``), so leave those closed until you have written your diagnoses.
Checkpoints and the tokenizer are deleted after each run, to keep the folders small; the default
run also renders a screenshot of each dashboard into ``docs/labs/break-it/`` for the docs site
(``--no-screenshots`` skips them; they need chromium, chromedriver and selenium). The site serves
the dashboards themselves from this folder (``docs/_hooks/lab_dashboards.py``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from threadpoolctl import threadpool_limits

from tensorlite.debug import Probes, load_metrics, render_dashboard
from tensorlite.train import NonFiniteLossError, TrainConfig, train

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DOCS_COPY = REPO / "docs" / "labs" / "break-it"

# The healthy run: the course's scale (2 layers, about 110k parameters) with RoPE, which makes the
# open mask's copy-the-next-token trick cheap to learn (with learned positions it takes longer than
# the run), and an LR of 1e-2, high enough that skipping the warmup shows.
BASE = dict(seq_len=64, d_model=64, n_layers=2, n_heads=4, pos="rope", steps=300, batch_size=16, lr=1e-2,
            lr_min=1e-3, warmup=30, clip=1.0, eval_interval=25, eval_batches=4, ckpt_interval=0,
            corpus_max_chars=200_000, seed=0, progress=False)
QUICK = dict(steps=12, eval_interval=4, eval_batches=1, corpus_max_chars=20_000, warmup=4)
PROBE_INTERVAL = {False: 10, True: 4}  # full runs, quick runs

# Spoiler: the answer key of the lab (solutions.md explains it).
RUNS = {"01": "causal_mask_open", "02": "init_x100", "03": "no_warmup"}
REFERENCE = "reference"
KEEP = ("config.json", "metrics.jsonl", "dashboard.html")  # dashboard.html is not committed: see .gitignore


def _config(name: str, out: Path, quick: bool) -> TrainConfig:
    faults = () if name == REFERENCE else (RUNS[name],)
    return TrainConfig().replace(**{**BASE, **(QUICK if quick else {})}, faults=faults, out_dir=str(out), name=name)


def _train_one(name: str, out: str, quick: bool) -> tuple:
    """Train one run into ``out/name`` and strip it to :data:`KEEP`; returns (name, seconds, note)."""
    out_dir = Path(out)
    run_dir = out_dir / name
    for leftover in ("metrics.jsonl", "config.json", "dashboard.html", "tokenizer.json"):
        (run_dir / leftover).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)
    t0 = time.perf_counter()
    note = "finished"
    with threadpool_limits(1):  # tiny matrices: BLAS threads only add contention
        try:
            train(_config(name, out_dir, quick), callbacks=[Probes(interval=PROBE_INTERVAL[quick])])
        except NonFiniteLossError as e:
            note = f"stopped at step {e.step}: non-finite loss"
    for path in run_dir.iterdir():
        if path.name not in KEEP:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return name, time.perf_counter() - t0, note


def screenshot(html: Path, png: Path, width: int = 1400, height: int = 1010) -> None:
    """A PNG of ``html`` rendered by headless Chromium (selenium and chromedriver)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    profile = tempfile.mkdtemp(prefix="tl-chrome-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", f"--user-data-dir={profile}", f"--window-size={width},{height}",
                 "--hide-scrollbars"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        drv.get(html.resolve().as_uri())
        drv.save_screenshot(str(png))
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def dashboards(lab: Path) -> dict:
    """``{run: html}``: the reference's dashboard, and each broken run's drawn over the reference
    with the diagnosis and the config's switches hidden (the reader diagnoses it). The docs build
    serves exactly these (``docs/_hooks/lab_dashboards.py``), from the committed metrics."""
    ref = lab / REFERENCE
    out = {REFERENCE: render_dashboard(load_metrics(ref), title="break-it reference (healthy)")}
    for name in RUNS:
        out[name] = render_dashboard(load_metrics(lab / name), reference=load_metrics(ref),
                                     title=f"break-it run {name}", blind=True)
    return out


def regenerate(out: Path, *, quick: bool = False, jobs: int = 2, docs: Path | None = None,
               screenshots: bool = False, render_only: bool = False) -> dict:
    """Train the reference and the three broken runs (``jobs`` at a time; none with
    ``render_only``), write the dashboards, screenshot them into ``docs`` (when given). Returns
    ``{name: seconds}`` and prints progress."""
    out.mkdir(parents=True, exist_ok=True)
    names = [REFERENCE, *RUNS]
    times = {}
    t0 = time.perf_counter()
    if render_only:
        results = []
    elif jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(_train_one, names, [str(out)] * len(names), [quick] * len(names)))
    else:
        results = [_train_one(n, str(out), quick) for n in names]
    for name, secs, note in results:
        times[name] = secs
        print(f"{name:>9}: {secs:5.1f} s, {note}")
    for name, html in dashboards(out).items():
        path = out / name / "dashboard.html"
        path.write_text(html, encoding="utf-8")
        if docs is not None and screenshots and name != REFERENCE:
            docs.mkdir(parents=True, exist_ok=True)
            screenshot(path, docs / f"{name}.png")
    times["total"] = time.perf_counter() - t0
    print(f"    total: {times['total']:5.1f} s wall with {jobs} job(s)")
    return times


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="where the run folders go (default: this script's folder)")
    p.add_argument("--quick", action="store_true", help=f"a few steps per run ({QUICK['steps']}): a smoke test")
    p.add_argument("--jobs", type=int, default=2, help="runs trained at once (default 2: one per core)")
    p.add_argument("--no-docs", action="store_true", help="do not write screenshots of the dashboards to docs/labs/break-it/")
    p.add_argument("--no-screenshots", action="store_true", help="do not render the dashboards' PNGs for the docs")
    p.add_argument("--render-only", action="store_true",
                   help="no training: redraw the dashboards (and screenshots) from the runs' metrics")
    args = p.parse_args(argv)
    if args.out is None:
        if args.quick:
            p.error("--quick needs --out: the committed runs are the full ones")
        os.chdir(REPO)  # relative paths in config.json and the dashboards' footers
        out = Path(os.path.relpath(HERE, REPO))
        docs = None if args.no_docs else Path(os.path.relpath(DOCS_COPY, REPO))
    else:
        out, docs = Path(args.out), None
    shots = docs is not None and not args.no_screenshots and shutil.which("chromedriver") is not None
    return regenerate(out, quick=args.quick, jobs=max(1, args.jobs), docs=docs, screenshots=shots,
                      render_only=args.render_only)


if __name__ == "__main__":
    main(sys.argv[1:])
