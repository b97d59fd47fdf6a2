"""mkdocs hook: the break-it lab's dashboards, drawn at build time from the committed runs.

The lab's runs live in ``examples/break_it/`` (``01``, ``02``, ``03``, ``reference``: each a
``config.json`` and a ``metrics.jsonl``). The site publishes each run's dashboard as
``labs/break-it/<run>.html``, rendered by the lab script's own ``dashboards()`` with the current
code, so no committed copy can drift from what the code draws. It also publishes run 01 with its
diagnosis, against the reference, as ``debug/dashboard-example.html``: the live page of the
screenshot on the dashboard page (``examples/dashboard_screenshot.py`` renders the same).
"""

import importlib.util
import os
from pathlib import Path

from mkdocs.structure.files import File

from tensorlite.debug import render_dashboard

EXAMPLE = ("01", "debug/dashboard-example.html", "causal mask open, against a healthy reference")


def _lab_script(lab: Path):
    spec = importlib.util.spec_from_file_location("break_it_run", lab / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def on_files(files, config):
    lab = Path(config.config_file_path).parent / "examples" / "break_it"
    shown = Path(os.path.relpath(lab))  # the path each dashboard's footer names
    script = _lab_script(lab)
    for run, html in script.dashboards(shown).items():
        files.append(File.generated(config, f"labs/break-it/{run}.html", content=html))
    run, uri, title = EXAMPLE
    html = render_dashboard(shown / run, reference=shown / script.REFERENCE, title=title)
    files.append(File.generated(config, uri, content=html))
    return files
