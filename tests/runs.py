"""Tiny training runs made through the command line, for the tests of the commands that read one."""

from __future__ import annotations

from pathlib import Path

from tensorlite.cli import main

#: flags of a run that trains in about a second
TINY = ["--d-model", "32", "--n-layers", "1", "--n-heads", "2", "--seq-len", "16", "--batch-size", "8",
        "--eval-interval", "10", "--eval-batches", "2", "--warmup", "5", "--probe-interval", "0"]


def train_tiny(root: Path, corpus: str, steps: int = 8, name: str = "tiny") -> Path:
    """``tensorlite train`` on the text ``corpus`` for ``steps`` steps into ``root/name``."""
    path = Path(root) / f"{name}-corpus.txt"
    path.write_text(corpus)
    assert main(["train", *TINY, "--steps", str(steps), "--corpus", str(path), "--out", str(root),
                 "--name", name, "--quiet"]) == 0
    return Path(root) / name
