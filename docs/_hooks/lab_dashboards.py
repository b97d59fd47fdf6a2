"""mkdocs hook: serve the break-it lab's dashboards straight from ``examples/break_it/``.

The lab's runs live in the examples folder (``01``, ``02``, ``03``, ``reference``); the site
publishes each ``dashboard.html`` as ``labs/break-it/<run>.html`` so the docs never hold a copy
that can drift from the runs the page diagnoses.
"""

from pathlib import Path

from mkdocs.structure.files import File

RUNS = ("01", "02", "03", "reference")


def on_files(files, config):
    lab = Path(config.config_file_path).parent / "examples" / "break_it"
    for run in RUNS:
        src = lab / run / "dashboard.html"
        files.append(File.generated(config, f"labs/break-it/{run}.html", abs_src_path=str(src)))
    return files
