"""The one kind of error a command reports without a traceback."""

from __future__ import annotations


class CLIError(Exception):
    """A user error: printed as one line on stderr, exit code 2, no traceback."""


def one_line(e: BaseException) -> str:
    """An exception's message on one line (a KeyError's without its quotes)."""
    msg = str(e).strip()
    if isinstance(e, KeyError):
        msg = str(e.args[0]) if e.args else msg
    return " ".join(msg.split()) or type(e).__name__
