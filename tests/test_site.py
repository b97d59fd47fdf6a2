"""The docs site: a strict build (broken links fail it, and so does any notebook cell that raises),
then a headless browser that opens the built pages and checks they render without console errors.

Both tests share one build: under pytest-xdist the first worker to get here builds, the other waits
on a file lock and reuses it. Set TENSORLITE_SCREENSHOTS=DIR to keep the screenshots the browser
test takes (light and dark).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
from browser import chromium, console_errors

ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = 900
# content.code.copy: material >= 9.7 puts the copy button in .md-code__nav, older ones use .md-clipboard
COPY_BUTTONS = "return document.querySelectorAll('.md-code__button, .md-clipboard').length"


def _shared_dir(tmp_path_factory) -> Path:
    # Under xdist every worker has its own basetemp inside one per-run folder: share that folder.
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _build(site: Path) -> dict:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONUNBUFFERED="1")
    # The notebooks' models are tiny: a multi-threaded BLAS spends ~10x the CPU spinning on
    # matrices that small, and under `pytest -n 2` it competes with the other worker too.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
        )
        rc, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = -1, f"mkdocs build timed out after {BUILD_TIMEOUT_S} s\n{e.stdout or ''}{e.stderr or ''}"
    return {"rc": rc, "output": out[-20000:], "seconds": round(time.perf_counter() - start, 1)}


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    shared = _shared_dir(tmp_path_factory)
    site = shared / "tensorlite-site"
    result_file = shared / "tensorlite-site.json"
    with open(shared / "tensorlite-site.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build per test run, whichever worker comes first
        if not result_file.exists():
            result_file.write_text(json.dumps(_build(site)))
        result = json.loads(result_file.read_text())
    if result["rc"] != 0:
        lines = result["output"].splitlines()
        problems = [ln for ln in lines if ln.startswith(("WARNING", "ERROR"))]
        pytest.fail(
            f"mkdocs build --strict failed (exit {result['rc']}):\n" + "\n".join(problems)
            + "\n--- last lines of the build log ---\n" + "\n".join(lines[-40:]),
            pytrace=False,
        )
    return site


def _check_relative_links(site: Path, page: Path, html: str) -> None:
    # mkdocs validates Markdown links; a notebook's links are HTML by the time it sees them.
    for href in re.findall(r'<a[^>]+href="([^"#?]+)', html):
        if re.match(r"[a-z]+:|/", href):
            continue
        target = (page.parent / unquote(href)).resolve()
        if target.is_dir():
            target = target / "index.html"
        assert target.exists(), f"{page.relative_to(site)} links to missing {href}"


@pytest.mark.slow
def test_site_builds_strict(built_site):
    """Strict build: every nav page exists, every link and anchor resolves, every notebook runs."""
    index = built_site / "index.html"
    assert index.is_file()
    for nb in sorted((ROOT / "docs" / "notebooks").glob("*.ipynb")):
        page = built_site / "notebooks" / nb.stem / "index.html"
        assert page.is_file(), f"notebook {nb.name} was not rendered"
        html = page.read_text(encoding="utf-8")
        assert "jp-OutputArea-output" in html, f"{nb.name} has no outputs: was it executed?"
        assert "Traceback (most recent call last)" not in html, f"{nb.name} rendered a traceback"
        _check_relative_links(built_site, page, html)
    # The reference pages really rendered an API (not an empty page).
    ref = (built_site / "reference" / "tensor" / "index.html").read_text(encoding="utf-8")
    assert "doc-signature" in ref and "backward" in ref


def _jupyter_plugin_config() -> dict:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml names Python objects (!!python/name:...) for the emoji extension: not needed here
    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)
    for plugin in config["plugins"]:
        if isinstance(plugin, dict) and "mkdocs-jupyter" in plugin:
            return plugin["mkdocs-jupyter"]
    raise AssertionError("mkdocs.yml has no mkdocs-jupyter plugin")


def test_notebook_plugin_fails_on_errors_and_never_caches():
    """The plugin's defaults render a failing cell's traceback and pass the build, and its cache
    is keyed on the notebook alone (a change in tensorlite would not re-run it): ours must not."""
    cfg = _jupyter_plugin_config()
    assert cfg.get("execute") is True
    assert cfg.get("allow_errors") is False
    assert cfg.get("cache") is False


@pytest.mark.slow
def test_failing_notebook_fails_the_build(tmp_path):
    """A notebook cell that raises must fail `mkdocs build --strict` with our notebook settings."""
    import yaml

    docs = tmp_path / "docs"
    (docs / "notebooks").mkdir(parents=True)
    (docs / "index.md").write_text("# Home\n")
    nb = {
        "cells": [
            {"cell_type": "markdown", "id": "a", "metadata": {}, "source": "# Failing on purpose"},
            {"cell_type": "code", "id": "b", "metadata": {}, "execution_count": None, "outputs": [],
             "source": "print('before')\n1 / 0"},
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5,
    }
    (docs / "notebooks" / "failing.ipynb").write_text(json.dumps(nb))
    config = {
        "site_name": "failing notebook", "theme": {"name": "material", "font": False},
        "nav": ["index.md", "notebooks/failing.ipynb"],
        "plugins": [{"mkdocs-jupyter": _jupyter_plugin_config()}],
    }
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=tmp_path, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"), capture_output=True, text=True,
        timeout=300,
    )
    assert proc.returncode != 0, "a notebook cell raised and the build still passed"
    assert "ZeroDivisionError" in proc.stdout + proc.stderr


def test_notebooks_are_committed_without_outputs():
    """Notebooks run at build time; committed outputs would go stale and bloat diffs."""
    for nb in sorted((ROOT / "docs" / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        for i, cell in enumerate(cells):
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, (
                    f"{nb.name} cell {i} has outputs: clear them before committing"
                )


# ------------------------------------------------------------------------------------------------
# browser
# ------------------------------------------------------------------------------------------------
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _serve(directory: Path):
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # port 0: a free port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _severe(driver) -> list[str]:
    return [e["message"] for e in console_errors(driver)]


def _wait_for(driver, script: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script)
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def _screenshot(driver, name: str, tmp_path: Path) -> Path:
    out_dir = Path(os.environ.get("TENSORLITE_SCREENSHOTS") or tmp_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def _check_page(driver, url: str, *, code_selector: str) -> dict:
    driver.get(url)
    assert _wait_for(driver, "return document.readyState === 'complete'")
    info = driver.execute_script(
        """
        const q = (s) => document.querySelectorAll(s).length;
        return {
          title: document.title,
          tabs: q('.md-tabs__item'),
          nav: q('nav.md-nav--primary .md-nav__link'),
          code: Array.from(document.querySelectorAll(arguments[0])).filter(e => e.textContent.trim()).length,
          scheme: document.body.getAttribute('data-md-color-scheme'),
          toggle: q('form[data-md-component="palette"] input'),
          search: q('.md-search__input'),
        };
        """,
        code_selector,
    )
    assert "tensorlite" in info["title"], f"{url}: {info}"
    assert info["tabs"] >= 5, f"navigation tabs missing on {url}: {info}"
    assert info["nav"] >= 5, f"navigation missing on {url}: {info}"
    assert info["code"] >= 1, f"no code block rendered on {url}: {info}"
    assert info["toggle"] == 2, f"light/dark toggle missing on {url}: {info}"
    assert info["search"] == 1, f"search box missing on {url}: {info}"
    return info


@pytest.mark.slow
@pytest.mark.browser
def test_site_renders_in_browser(built_site, tmp_path):
    # any guide page the build produced (docs/guide/*.md are written by several hands)
    guides = sorted(p.parent.relative_to(built_site).as_posix() + "/" for p in built_site.glob("guide/*/index.html"))
    pages = {"home": ("", ".highlight pre code")}
    if guides:
        pages["guide"] = (guides[0], ".highlight pre code")
    elif (built_site / "guide" / "index.html").is_file():
        pages["guide"] = ("guide/", ".highlight pre code")
    pages["notebook"] = ("notebooks/attention-step-by-step/", ".jp-CodeCell .highlight-ipynb pre")

    with _serve(built_site) as base, chromium(1280, 900) as driver:
        for scheme in ("light", "dark"):
            # The palettes follow prefers-color-scheme on a first visit; emulate each in turn.
            driver.execute_cdp_cmd(
                "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
            )
            for name, (path, code) in pages.items():
                driver.delete_all_cookies()
                driver.get(base + "/")
                driver.execute_script("localStorage.clear()")
                info = _check_page(driver, f"{base}/{path}", code_selector=code)
                assert info["scheme"] == ("slate" if scheme == "dark" else "default"), info
                if name == "home":
                    assert _wait_for(driver, COPY_BUTTONS), "code copy buttons missing"
                    assert driver.execute_script("return document.querySelectorAll('.grid.cards li').length") >= 4
                if name == "notebook":
                    outputs = driver.execute_script("return document.querySelectorAll('.jp-OutputArea-output').length")
                    assert outputs >= 5, "notebook outputs missing: was it executed?"
                    assert _wait_for(driver, "return document.querySelectorAll('.katex').length"), \
                        "math was not rendered (vendored KaTeX)"
                    assert "Traceback" not in driver.find_element("tag name", "article").text
                _screenshot(driver, f"{name}-{scheme}", tmp_path)
                errors = _severe(driver)
                assert not errors, f"console errors on {path or 'home'} ({scheme}): {errors}"
