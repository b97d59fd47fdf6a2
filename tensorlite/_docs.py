"""Where the documentation lives, for the links the tools print (hints, dashboard banners).

One address for the whole package, so a hint never points at a repository path that a user who
installed the wheel does not have. ``TENSORLITE_DOCS_URL`` overrides it (a local ``mkdocs serve``,
a mirror); ``mkdocs.yml``'s ``site_url`` is the same address (a test checks).
"""

from __future__ import annotations

import os

__all__ = ["DOCS_URL", "docs_url"]

DOCS_URL = "https://tensorlite.github.io/tensorlite/"


def docs_url(page: str, anchor: str | None = None) -> str:
    """The site URL of a docs page: ``docs_url("debug/diagnose.md", "divergence-to-nan")``
    -> ``https://.../debug/diagnose/#divergence-to-nan`` (mkdocs' directory URLs)."""
    base = os.environ.get("TENSORLITE_DOCS_URL") or DOCS_URL
    if not base.endswith("/"):
        base += "/"
    path = page.removesuffix(".md")
    path = "" if path == "index" else path.removesuffix("/index") + "/"
    return f"{base}{path}" + (f"#{anchor}" if anchor else "")
