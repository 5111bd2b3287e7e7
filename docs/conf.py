"""Sphinx configuration for the ledmus documentation site.

Build (from the repository root, after ``pip install -e ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Nothing here downloads at build time (no intersphinx); the gallery scripts in
``examples/gallery/`` run during the build (a few seconds each, CPU only).
"""

from __future__ import annotations

import os
import sys
import warnings
from importlib import metadata
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# the package is installed (editable) in the docs environment; the path entry lets a
# plain checkout build too, and the gallery scripts find the repository's files
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")

import ledmus  # noqa: E402

# sphinx-autodoc-typehints 3.x calls a Sphinx API deprecated in Sphinx 9 once per
# docstring; the Python warning is noise on stderr (not a Sphinx warning, so -W ignores it)
warnings.filterwarnings(
    "ignore", message=r".*_RstSnippetParser\.set_application.*", module="sphinx_autodoc_typehints"
)

# -- project ---------------------------------------------------------------------------
project = "ledmus"
author = "ledmus developers"
copyright = "ledmus developers"
try:
    release = metadata.version("ledmus")
except metadata.PackageNotFoundError:  # a plain checkout without pip install
    release = ledmus.__version__
version = ".".join(release.split(".")[:2])

# -- extensions ------------------------------------------------------------------------
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx_autodoc_typehints",  # after autodoc
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
]
# The docstrings are plain reST prose (no Google/NumPy sections), so no napoleon.

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "_templates",
    "Thumbs.db",
    ".DS_Store",
    "README.md",  # notes for editors of this site, not a page of it
    # sphinx-gallery writes these next to the generated pages; they are not pages
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.md5",
    "auto_examples/*.codeobj.json",
    "sg_execution_times.rst",
]
templates_path = ["_templates"]

# -- MyST ------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3  # "page.md#a-heading" links resolve to the generated anchors

# -- autodoc ---------------------------------------------------------------------------
autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
    "show-inheritance": True,
}
autodoc_typehints = "description"  # sphinx-autodoc-typehints renders them in the body
autodoc_preserve_defaults = True
autodoc_class_signature = "separated"
typehints_defaults = "comma"
always_document_param_types = False
# Many public signatures mention numpy/torch/third-party types with no target here (no
# intersphinx by design): a missing cross-reference target is not a documentation error.
nitpicky = False

# -- sphinx-gallery --------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples" / "gallery"),
    "gallery_dirs": str(DOCS / "auto_examples"),
    "filename_pattern": r"/plot_",  # run every plot_*.py
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "NumberOfCodeLinesSortKey",  # shortest (simplest) first
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "show_memory": False,
    # a failing example fails the build (with -W), rather than shipping a broken page
    "only_warn_on_example_error": False,
    "abort_on_example_error": True,
    "write_computation_times": False,  # no sg_execution_times.rst in the source tree
}

# -- HTML ------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"ledmus {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "header_links_before_dropdown": 4,  # long page titles: keep the bar on one line
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
# every page but the front page (whose body is the table of contents) shows the whole
# site in the left sidebar (docs/_templates/sidebar-nav-site.html)
html_sidebars = {"**": ["sidebar-nav-site"], "index": []}
html_show_sourcelink = True
html_last_updated_fmt = None


# -- generated tables ------------------------------------------------------------------
def _check_tables(app) -> None:
    """A warning (an error under -W) for every page whose generated tables differ from
    benchmarks/out/*.json: run ``python docs/tables.py`` to regenerate them."""
    from sphinx.util import logging

    sys.path.insert(0, str(DOCS))
    import tables

    changed, _ = tables.stale(tables.pages(ROOT), warn=lambda message: None)
    for path in changed:
        logging.getLogger(__name__).warning(
            "%s: tables differ from benchmarks/out; run python docs/tables.py",
            path.relative_to(ROOT),
        )


def setup(app) -> dict[str, bool]:
    app.connect("builder-inited", _check_tables)
    return {"parallel_read_safe": True}
