"""Sphinx configuration: MyST Markdown pages, the API reference from the package's docstrings."""
import os
import sys

sys.path.insert(0, os.path.abspath(".."))  # the checkout's package, installed or not

import pipeline_models  # noqa: E402

project = "pipeline_models"
release = version = pipeline_models.__version__
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinxcontrib.mermaid"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3  # [the column reference](reference.md#column-reference) links resolve
myst_fence_as_directive = ["mermaid"]  # the state diagram is drawn, not shown as source
default_role = "literal"  # docstrings write `name` for code, as the Markdown pages do
autodoc_member_order = "bysource"
autodoc_typehints = "description"
html_theme = "furo"
html_title = f"pipeline_models {release}"
