"""The ``tensorlite`` command starts: ``--help`` and ``--version`` in a subprocess."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

import tensorlite as tl

ENTRY_POINTS = [[sys.executable, "-m", "tensorlite"]]
if shutil.which("tensorlite"):
    ENTRY_POINTS.append([shutil.which("tensorlite")])


def _run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=lambda e: " ".join(e[-2:]))
def test_help(entry):
    res = _run(entry + ["--help"])
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: tensorlite")
    assert "--version" in res.stdout
    assert res.stderr == ""


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=lambda e: " ".join(e[-2:]))
def test_version(entry):
    res = _run(entry + ["--version"])
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"tensorlite {tl.__version__}"


def test_unknown_command_is_a_usage_error():
    res = _run(ENTRY_POINTS[0] + ["no-such-command"])
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "invalid choice" in res.stderr
