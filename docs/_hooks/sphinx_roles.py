"""mkdocs hook: render Sphinx roles left in docstrings (:class:`Tensor`) as plain code.

The code's docstrings use Sphinx-style roles; mkdocstrings renders docstrings as Markdown, where
``:class:`Tensor``` would show as ":class:" followed by the code span.
"""

import re

_ROLE = re.compile(r":(?:py:)?(?:class|mod|func|meth|attr|data|obj|exc|const):<code>~?")


def on_page_content(html, page, config, files):
    return _ROLE.sub("<code>", html)
