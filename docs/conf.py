"""Sphinx configuration for the skvae documentation.

Build from the repository root with::

    python -m sphinx -W -b html docs docs/_build/html
"""

import os
import sys
import warnings
from pathlib import Path

# The repository root, so that ``import benchmarks`` works in the gallery.
# tests/test_docs.py builds a copy of docs/ elsewhere and passes the root here.
ROOT = Path(os.environ.get("SKVAE_REPO_ROOT", Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(ROOT.resolve()))

import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import skvae  # noqa: E402

# The gallery runs small models in this process. On a busy CPU, several
# threads per kernel (torch's, and BLAS's in numpy, scipy and scikit-learn)
# can be ten times slower than one on problems this small, so the build uses
# one of each.
torch.set_num_threads(1)
threadpool_limits(1)

# -- Project -----------------------------------------------------------------
project = "skvae"
author = "The skvae developers"
copyright = "The skvae developers"
release = skvae.__version__
version = release

# -- General -----------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    # MathJax from a pip package, copied into _static: the maths renders
    # offline (sphinx.ext.mathjax alone loads it from a CDN)
    "sphinx-mathjax-offline",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "README.md", "examples", "**.ipynb_checkpoints"]
default_role = "literal"
pygments_style = "sphinx"

# -- API reference: autosummary + numpydoc ------------------------------------
# Generated stub pages go to gen_modules/, which .gitignore already ignores.
autosummary_generate = True
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# -- Gallery -----------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("skvae",),
    "backreferences_dir": "gen_modules/backreferences",
    "reference_url": {"skvae": None},
    "remove_config_comments": True,
    "download_all_examples": False,
    "matplotlib_animations": False,
    "show_memory": False,
    "min_reported_time": 1,
}

# Matplotlib's Agg backend for the gallery, without a display.
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings(
    "ignore",
    category=UserWarning,
    message="Matplotlib is currently using agg, which is a non-GUI backend",
)

# -- HTML --------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skvae {release}"
html_theme_options = {
    "navbar_end": ["navbar-icon-links"],
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
html_static_path = []
html_show_sourcelink = False


def setup(app):
    # MathJax's SVG output draws every glyph itself, so no web font has to
    # load (browsers may refuse fonts to pages opened from disk). Set here
    # because sphinx-mathjax-offline sets its CHTML file when it loads, after
    # the values above; this runs after the extensions.
    app.config.mathjax_path = "mathjax/tex-svg.js"
