"""Headless Chromium for the tests that look at a page (the dashboard, the embedding map, the site).

``with chromium(width, height) as driver:`` skips the test when Chromium, chromedriver or selenium
is missing, or when the browser cannot start here (an environment problem, not a failure of ours).
The flags are the ones this machine needs: no sandbox (root), no GPU, and no background network
traffic (the network is closed).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

import pytest

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         "--disable-extensions")


def _find(*names):
    return next((p for p in map(shutil.which, names) if p), None)


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    browser = _find("chromium", "chromium-browser", "google-chrome")
    driver_path = _find("chromedriver")
    if not browser or not driver_path:
        pytest.skip("needs headless Chromium and chromedriver")
    profile = tempfile.mkdtemp(prefix="tl-chrome-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in (*FLAGS, f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager try to download a driver
    try:
        try:
            driver = webdriver.Chrome(options=opts, service=Service(executable_path=driver_path))
        except Exception as e:  # a browser that cannot start here is an environment problem
            pytest.skip(f"chromium did not start: {e}")
        driver.set_page_load_timeout(60)
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver) -> list:
    """The page's console messages of level SEVERE or ERROR."""
    return [e for e in driver.get_log("browser") if e.get("level") in ("SEVERE", "ERROR")]
