#!/usr/bin/env bash
# The whole test suite: unit + reference tests, every docs code block, and the strict site build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pytest -q -n 2 tests
python3 -m pytest -q --codeblocks docs/ README.md
python3 -m mkdocs build --strict --quiet --site-dir /tmp/tensorlite-site
