"""Sphinx configuration of pdekit's manual: MyST Markdown pages, the API reference generated from the
docstrings (autosummary), warnings as errors (``make docs`` passes ``-W``)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
project = "pdekit"
author = "pdekit developers"
release = version = re.search(r'^__version__ = "(.+)"', (ROOT / "pdekit" / "__init__.py").read_text(), re.M).group(1)
copyright = "2026, pdekit developers (MIT licence)"

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.autosummary", "sphinx.ext.napoleon",
              "sphinx.ext.mathjax", "sphinx.ext.viewcode"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "examples/*.md", "README.md"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports = ["the_well"]
autodoc_inherit_docstrings = False  # Lightning's own method docstrings are Lightning's to document
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# docstrings name torch, numpy, scipy and Lightning objects pdekit does not document itself
nitpicky = False
# ref.python: a name exported at two places (pdekit.Grid is pdekit.grid.Grid) is an ambiguous target
suppress_warnings = ["myst.header", "autosummary.import_cycle", "ref.python"]

html_theme = "alabaster"
html_title = f"pdekit {release}"
html_static_path = []
html_theme_options = {"description": "Neural PDE solvers, classical data, learned preconditioners",
                      "fixed_sidebar": True}
