"""mkdocs hook: an expected-output block reads as output, not as code to copy.

The pages keep pytest-codeblocks' syntax (a bare fence right after
``<!--pytest-codeblocks:expected-output-->``, which the tests compare with what the block above
prints). At build time the fence after each marker gets the attributes
``{ .text .no-copy .tl-output title="Output" }``: a title bar that says "Output", no copy button
(mkdocs-material's ``.no-copy``), and the ``tl-output`` class the stylesheet wraps long lines
with. The source stays as it is, so what the tests collect does not change.
"""

import re

# the marker, blank lines, then an opening fence with no info string (at any indentation)
_OUTPUT = re.compile(r"(<!--\s*pytest-codeblocks:expected-output(?:-ignore-whitespace)?\s*-->[ \t]*\n(?:[ \t]*\n)*)"
                     r"([ \t]*)(`{3,})[ \t]*\n")
ATTRS = '{ .text .no-copy .tl-output title="Output" }'


def on_page_markdown(markdown, page, config, files):
    return _OUTPUT.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)} {ATTRS}\n", markdown)
