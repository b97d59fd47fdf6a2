"""The bug zoo's pages (docs/bugs/*.md) quote the code: every fault is shown as a diff of its
faulty line in tensorlite/faults/ against the healthy line it replaces, and these tests keep
those diffs copied from the real files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tensorlite import faults

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs" / "bugs").glob("*.md"))
DIFF = re.compile(r"^```diff\n(.*?)^```", re.S | re.M)


def diffs(text: str) -> list:
    """``[(first line number, [lines])]`` of the ```diff fences of a page."""
    return [(text[: m.start()].count("\n") + 1, m.group(1).splitlines()) for m in DIFF.finditer(text)]


def parse(lines: list) -> list:
    """``[(kind, file, text)]``: kind "-" (faulty file), "+" (healthy file) or " " (either)."""
    out, minus, plus = [], None, None
    for line in lines:
        if line.startswith("--- "):
            minus = line[4:].split()[0]
        elif line.startswith("+++ "):
            plus = line[4:].split()[0]
        elif line.startswith("@@"):
            continue
        elif line[:1] in "-+ " and line:
            if minus is None or plus is None:
                raise AssertionError(f"diff line before its '--- faulty' / '+++ healthy' header: {line!r}")
            out.append((line[0], minus if line[0] == "-" else plus if line[0] == "+" else (minus, plus), line[1:]))
        else:
            raise AssertionError(f"not a diff line: {line!r}")
    return out


def source_lines(path: str) -> set:
    return {line.strip() for line in (ROOT / path).read_text().splitlines()}


ALL_DIFFS = [(page, start, lines) for page in PAGES for start, lines in diffs(page.read_text())]


def test_the_pages_have_diffs():
    assert len(ALL_DIFFS) >= len(faults.names())


@pytest.mark.parametrize("page,start,lines", ALL_DIFFS,
                         ids=[f"{p.name}:{s}" for p, s, _ in ALL_DIFFS])
def test_every_diff_line_is_copied_from_the_file_it_names(page, start, lines):
    entries = parse(lines)
    assert any(kind == "-" for kind, _, _ in entries), "a fault's diff shows at least one faulty line"
    for kind, path, text in entries:
        if kind == " ":
            paths = path
            assert any(text.strip() in source_lines(p) for p in paths), (
                f"{page.name}:{start}: context line {text.strip()!r} is in neither {paths[0]} nor {paths[1]}")
            continue
        if kind == "-":
            assert path.startswith("tensorlite/faults/"), f"{page.name}:{start}: '---' is the faulty file, got {path}"
        else:
            assert path.startswith("tensorlite/") and not path.startswith("tensorlite/faults/"), (
                f"{page.name}:{start}: '+++' is the healthy file it replaces, got {path}")
        assert (ROOT / path).is_file(), f"{page.name}:{start}: no file {path}"
        assert text.strip() in source_lines(path), (
            f"{page.name}:{start}: {text.strip()!r} is not a line of {path} (the page drifted from the code)")


@pytest.mark.parametrize("name", faults.names())
def test_every_fault_section_shows_its_diff(name):
    page, anchor = faults.get(name).page.split("#")
    text = (ROOT / "docs" / page).read_text()
    heading = re.search(rf"^##+ .*\{{#{anchor}\}}$", text, re.M)
    assert heading, f"{page} has no section {{#{anchor}}}"
    rest = text[heading.end():]
    section = rest[: m.start()] if (m := re.search(r"^## ", rest, re.M)) else rest
    assert "```diff\n--- tensorlite/faults/" in section, f"{page}#{anchor} shows no diff of the faulty code"


def test_the_check_notices_a_drifted_line():
    lines = ["--- tensorlite/faults/attention.py", "+++ tensorlite/nn/attention.py",
             "-attn.scale = math.sqrt(attn.head_dim) * 2", "+self.scale = 1.0 / math.sqrt(self.head_dim)"]
    (kind, path, text), healthy = parse(lines)
    assert text.strip() not in source_lines(path)
    assert healthy[2].strip() in source_lines(healthy[1])
