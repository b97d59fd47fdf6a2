"""Text corpora: your own files, or the Python standard library's source as a built-in default."""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import sysconfig
from pathlib import Path

DEFAULT_EXTENSIONS = (".txt", ".py", ".md")
# Folders left out of the default corpus: test suites (huge, repetitive) and installed packages
# (they differ from machine to machine).
_EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"})


def _read(path: Path, errors: str) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        raise ValueError(
            f"load_corpus: {os.fspath(path)!r} is not valid UTF-8 (byte 0x{data[e.start]:02x} at offset "
            f"{e.start}); convert the file to UTF-8, or pass errors='replace' to load it anyway"
        ) from None


def corpus_files(path, extensions=DEFAULT_EXTENSIONS) -> list[Path]:
    """The files :func:`load_corpus` reads for ``path``, in the order it reads them."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"corpus path not found: {os.fspath(path)!r}")
    if p.is_file():
        return [p]
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    files = []
    for root, dirs, names in os.walk(p):
        # Hidden folders (.git, .venv, ...) are skipped; sorted in place so the walk is stable.
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            if not name.startswith(".") and name.lower().endswith(exts):
                files.append(Path(root) / name)
    return sorted(files, key=lambda f: f.relative_to(p).as_posix())


def load_corpus(path, extensions=DEFAULT_EXTENSIONS, errors: str = "strict") -> str:
    """The text of a file, or of every ``extensions`` file under a folder (recursively, hidden
    folders skipped, sorted by relative path, each file ending in a newline).

    Files are read as UTF-8; a file that is not raises ValueError naming it and the offending
    byte (``errors="replace"`` loads it with U+FFFD instead). A missing path raises
    FileNotFoundError; no text at all raises ValueError.
    """
    files = corpus_files(path, extensions)
    parts = []
    for f in files:
        text = _read(f, errors)
        if text and not text.endswith("\n") and len(files) > 1:
            text += "\n"
        parts.append(text)
    text = "".join(parts)
    if not text:
        what = (f"the file {os.fspath(path)!r} is empty" if Path(path).is_file()
                else f"no non-empty {'/'.join('*' + e for e in extensions)} files under {os.fspath(path)!r}")
        raise ValueError(f"load_corpus: {what}")
    return text


@functools.lru_cache(maxsize=1)
def _stdlib_files() -> tuple[Path, ...]:
    root = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _EXCLUDED_DIRS and not d.startswith("."))
        found.extend(Path(dirpath) / n for n in names if n.endswith(".py"))
    return tuple(sorted(found, key=lambda f: f.relative_to(root).as_posix()))


def _default_parts(max_chars: int):
    """(files used, their texts), the last text cut so the total is exactly ``max_chars``."""
    if max_chars <= 0:
        raise ValueError(f"default_corpus: max_chars must be > 0, got {max_chars}")
    used, texts, total = [], [], 0
    for f in _stdlib_files():
        text = f.read_bytes().decode("utf-8", errors="replace")
        if not text:
            continue
        if not text.endswith("\n"):
            text += "\n"
        text = text[: max_chars - total]
        used.append(f)
        texts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    if not texts:
        raise ValueError(
            f"default_corpus: found no .py files under {sysconfig.get_paths()['stdlib']!r}; pass your "
            "own text with load_corpus(path)"
        )
    return used, texts


def default_corpus(max_chars: int = 1_000_000) -> str:
    """A ready-made training text that needs no download: the source of the Python standard
    library installed on this machine (``sysconfig.get_paths()["stdlib"]``), ``*.py`` files in
    sorted relative-path order, without test suites and site-packages, cut at ``max_chars``
    characters. The same Python version gives the same text; :func:`describe_default_corpus`
    says exactly which files it holds."""
    return "".join(_default_parts(max_chars)[1])


def describe_default_corpus(max_chars: int = 1_000_000) -> dict:
    """Where :func:`default_corpus` comes from: the Python version, the stdlib folder, how many
    files (first and last), how many characters, and a SHA-256 of the text to compare machines."""
    used, texts = _default_parts(max_chars)
    root = Path(sysconfig.get_paths()["stdlib"])
    text = "".join(texts)
    first, last = used[0].relative_to(root).as_posix(), used[-1].relative_to(root).as_posix()
    python = ".".join(map(str, sys.version_info[:3]))
    return {
        "summary": f"{len(text):,} characters of Python {python} standard library source: {len(used)} "
                   f"*.py files in sorted order, {first} .. {last} (test/ and site-packages/ excluded)",
        "source": "Python standard library (*.py, excluding test/ and site-packages/)",
        "python": python,
        "stdlib": os.fspath(root),
        "files": len(used),
        "first_file": first,
        "last_file": last,
        "chars": len(text),
        "sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
    }
