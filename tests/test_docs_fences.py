"""Every Python block in the docs is one that ``pytest --codeblocks`` really runs, and every
skipped block says on the page why.

pytest-codeblocks (read in its source, ``pytest_codeblocks/main.py`` and ``plugin.py``, 0.18):
- a block opens with a line whose stripped text starts with three or more backticks; its
  "syntax" is the rest of that stripped line, verbatim (so `` ```python title="x"``, `` ``` python``,
  `` ```py``, `` ```python3``, `` ```{.python}`` and `` ```Python`` all have a syntax other than
  ``python``); ``~~~`` fences are not recognised at all;
- only syntax exactly ``python``, ``sh`` or ``bash`` is collected (the list in ``plugin.py``,
  read below from the installed source so an upgrade that changes it is noticed);
- a block right after ``<!--pytest-codeblocks:expected-output-->`` is the previous block's
  expected output and is never run, whatever its syntax;
- a block right after ``<!--pytest-codeblocks:cont-->`` is appended to the previous block;
- skip markers: ``<!--pytest-codeblocks:skip-->`` / ``skipif(...)`` (deprecated spellings) and
  ``<!--pytest.mark.skip...-->`` / ``<!--pytest.mark.skipif(...)-->`` apply to the next block.
The checker below scans fences itself and cross-checks with the plugin's own extractor.
"""

from __future__ import annotations

import inspect
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(p for p in (ROOT / "docs").rglob("*.md")) + [p for p in [ROOT / "README.md"] if p.exists()]

FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
MARKER = re.compile(r"<!--[-\s]*(pytest-codeblocks:.*?|pytest\.mark\..*?)-->")
SKIP = re.compile(r"pytest-codeblocks:\s*skip|pytest\.mark\.skip")
# words of a sentence that gives a reason
REASON = re.compile(
    r"\b(because|needs?|requires?|required|only|skip(ped|s)?|not run|isn't run|is not run|since|"
    r"GPU|CUDA|network|internet|download|slow|takes|minutes|display|browser|interactive|so that|as it)\b",
    re.IGNORECASE,
)
PYTHONISH = re.compile(r"(^|[^a-z])(py|python\d*|pycon|ipython\d*|python-repl)($|[^a-z])", re.IGNORECASE)
SHELLISH = re.compile(r"^\s*(sh|bash|shell|zsh)\b", re.IGNORECASE)


def collected_syntaxes() -> set[str]:
    """The syntaxes the installed plugin collects, read from its source."""
    from pytest_codeblocks import plugin

    src = inspect.getsource(plugin.MarkdownFile.collect)
    m = re.search(r"block\.syntax not in \[([^\]]*)\]", src)
    assert m, "pytest-codeblocks changed how it selects blocks; re-read its plugin.py and update this test"
    return set(re.findall(r"[\"']([^\"']+)[\"']", m.group(1)))


def fences(text: str):
    """(line number, fence characters, info string, first body line, closing line) of each fence."""
    lines = text.splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        ticks, info = m.group(2), m.group(3)
        j = i + 1
        while j < len(lines) and not lines[j].lstrip().startswith(ticks):
            j += 1
        out.append((i + 1, ticks, info, j + 1))
        i = j + 1
    return out


def _previous_marker(lines, lineno):
    """The pytest-codeblocks marker on the closest non-blank line above ``lineno``, if any."""
    k = lineno - 2
    while k >= 0 and not lines[k].strip():
        k -= 1
    if k >= 0:
        m = MARKER.search(lines[k])
        if m:
            return m.group(1)
    return None


def problems(text: str) -> list[str]:
    """Everything wrong with one page's fences and skip markers, as readable sentences."""
    from pytest_codeblocks.main import extract_from_buffer

    collected = collected_syntaxes()
    lines = text.splitlines()
    try:
        blocks = {b.lineno: b for b in extract_from_buffer(io.StringIO(text))}
    except RuntimeError as e:  # e.g. an unclosed fence or a stray marker
        return [f"pytest-codeblocks cannot parse the page: {e}"]
    found = []
    for lineno, ticks, info, _end in fences(text):
        syntax = info.rstrip()  # as the plugin: text after the backticks, leading spaces kept
        marker = _previous_marker(lines, lineno)
        pythonish = bool(PYTHONISH.search(syntax)) or syntax.lower() == "python"
        shellish = bool(SHELLISH.match(syntax)) and syntax not in ("sh", "bash")
        if ticks.startswith("~"):
            if pythonish or shellish or syntax in collected:
                found.append(f"line {lineno}: a ~~~{syntax} fence is never collected; use ```python")
            continue
        if marker and "expected-output" in marker:
            if pythonish and syntax:
                found.append(f"line {lineno}: expected output in a ```{syntax} fence; use a bare ``` fence "
                             "(it is compared as text, never run)")
            continue
        if pythonish and syntax != "python":
            found.append(f"line {lineno}: fence info '{info}' is not collected by pytest-codeblocks "
                         "(only exactly ```python is); this block would never run")
        elif shellish:
            found.append(f"line {lineno}: fence info '{info}' is not collected; use exactly ```bash or ```sh")
        elif syntax in collected and not (marker and "cont" in marker) and lineno not in blocks:
            found.append(f"line {lineno}: pytest-codeblocks does not see this ```{syntax} block")
    found += _skip_problems(lines)
    return found


def _skip_problems(lines) -> list[str]:
    found = []
    for i, line in enumerate(lines):
        if not SKIP.search(line) or not MARKER.search(line):
            continue
        # the block the marker skips, and the prose around it
        j = i + 1
        while j < len(lines) and not FENCE.match(lines[j]):
            j += 1
        end = j + 1
        if j < len(lines):
            ticks = FENCE.match(lines[j]).group(2)
            while end < len(lines) and not lines[end].lstrip().startswith(ticks):
                end += 1
        near = lines[max(0, i - 5) : i] + lines[i + 1 : j] + lines[end + 1 : end + 5]
        prose = [s for s in near if s.strip() and not MARKER.search(s) and not FENCE.match(s)]
        if not any(REASON.search(s) and len(s.split()) >= 4 for s in prose):
            found.append(f"line {i + 1}: skipped block without a sentence saying why (within a few lines)")
    return found


# ------------------------------------------------------------------------------------------------
# the real pages
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page_fences_are_collected_and_skips_explained(page):
    found = problems(page.read_text(encoding="utf-8"))
    assert not found, f"{page.relative_to(ROOT)}:\n" + "\n".join(found)


def test_pages_are_found():
    assert (ROOT / "docs").is_dir()
    assert all(p.suffix == ".md" for p in PAGES)


# ------------------------------------------------------------------------------------------------
# the checker itself, on pages made up here
# ------------------------------------------------------------------------------------------------
def test_collected_syntaxes_read_from_plugin_source():
    assert collected_syntaxes() == {"python", "sh", "bash"}


GOOD = """# Page

```python
print(1)
```
<!--pytest-codeblocks:expected-output-->
```
1
```

<!--pytest-codeblocks:cont-->
```python
x = 2
```

```bash
echo hi
```

```text
not code
```

The next block needs a GPU, so it is skipped here.
<!--pytest-codeblocks:skip-->
```python
import cupy
```

    ```python
    indented = True
    ```
"""


def test_checker_accepts_a_good_page():
    assert problems(GOOD) == []


@pytest.mark.parametrize(
    "info",
    ["py", "python3", 'python title="x.py"', "{.python}", "Python", " python", "pycon", "python linenums=1",
     "ipython"],
)
def test_checker_flags_uncollected_python_fences(info):
    page = f"# P\n\n```{info}\nprint(1)\n```\n"
    found = problems(page)
    assert len(found) == 1 and "line 3" in found[0], found


@pytest.mark.parametrize("page", [
    "# P\n\n~~~python\nx = 1\n~~~\n",
    "# P\n\n```shell\nls\n```\n",
    '# P\n\n```bash title="run"\nls\n```\n',
    "# P\n\n```python\nprint(1)\n```\n<!--pytest-codeblocks:expected-output-->\n```python\n1\n```\n",
])
def test_checker_flags_other_mistakes(page):
    assert problems(page), page


@pytest.mark.parametrize("marker", ["<!--pytest-codeblocks:skip-->", "<!--pytest.mark.skip-->",
                                    '<!--pytest.mark.skipif(True, reason="x")-->'])
def test_checker_wants_a_reason_for_skips(marker):
    bare = f"# P\n\nSome text here.\n\n{marker}\n```python\nx = 1\n```\n\nMore text follows.\n"
    assert any("without a sentence" in p for p in problems(bare))
    explained = f"# P\n\n{marker}\n```python\nx = 1\n```\nThis block is skipped because it downloads a file.\n"
    assert problems(explained) == []


def test_checker_reports_unparseable_page():
    assert "cannot parse" in problems("# P\n\n```python\nx = 1\n")[0]


# ------------------------------------------------------------------------------------------------
# collapsed reveals and output blocks
# ------------------------------------------------------------------------------------------------
def headings_in_collapsed_blocks(text: str) -> list[str]:
    """Headings inside a ``???`` (collapsed) block: the table of contents would list them, and a
    lab's answers would show in the sidebar before the reader opens the reveal."""
    found, inside = [], None
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^(\s*)\?\?\?\+?\s", line)
        if m:
            inside = len(m.group(1))
            continue
        if inside is not None and line.strip() and len(line) - len(line.lstrip()) <= inside:
            inside = None
        if inside is not None and re.match(r"^\s*#{1,6}\s", line):
            found.append(f"line {n}: heading inside a collapsed block: {line.strip()}")
    return found


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_no_heading_inside_a_collapsed_block(page):
    found = headings_in_collapsed_blocks(page.read_text(encoding="utf-8"))
    assert not found, f"{page.relative_to(ROOT)}:\n" + "\n".join(found)


def test_the_collapsed_block_checker():
    page = '# P\n\n??? note "Reveal"\n    text\n\n    ### The answer\n\n## After\n\n```python\n# a comment\n```\n'
    assert headings_in_collapsed_blocks(page) == ["line 6: heading inside a collapsed block: ### The answer"]


def test_output_blocks_get_a_label_and_lose_the_copy_button_at_build_time_only():
    import importlib.util

    spec = importlib.util.spec_from_file_location("output_blocks", ROOT / "docs" / "_hooks" / "output_blocks.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    page = ("```python\nprint(1)\n```\n\n<!--pytest-codeblocks:expected-output-->\n\n```\n1\n```\n\n"
            "=== \"tab\"\n\n    ```python\n    print(2)\n    ```\n\n    <!--pytest-codeblocks:expected-output-->\n"
            "    ```\n    2\n    ```\n\n```text\nnot an output\n```\n")
    built = hook.on_page_markdown(page, None, None, None)
    assert built.count(hook.ATTRS) == 2 and "    ``` " + hook.ATTRS in built
    assert "```python\nprint(1)" in built and "```text\nnot an output" in built
    assert problems(page) == []  # the source is what pytest-codeblocks collects, untouched
