"""The documentation: every snippet of its pages runs, and it builds without warnings.

The build test needs the ``docs`` extra (``pip install -e ".[docs]"``) and is
skipped without it. It builds a fresh copy of ``docs/`` in a temporary
directory, so every gallery example runs (sphinx-gallery would skip the ones
an earlier build in ``docs/`` already ran) and nothing is written into the
source tree.
"""

import ast
import doctest
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest
from sklearn.exceptions import ConvergenceWarning

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = sorted(p.stem for p in (DOCS / "examples").glob("plot_*.py"))
ESTIMATORS = ["LinearAutoencoder", "Autoencoder", "VariationalAutoencoder", "LatentImputer"]
METRICS = [
    "reconstruction_error",
    "principal_angles",
    "max_principal_angle",
    "linear_basis",
    "sample_realism",
    "maximum_mean_discrepancy",
    "nearest_neighbour_ratio",
    "latent_continuity",
    "latent_coverage",
    "latent_gaussian",
    "generate_samples",
]
DEPLOYING = ["save", "load", "register_onnx_converters"]
ONNX = ["register_converters", "export_encoder", "export_decoder"]
DASK = ["transform_blocks"]
USER_GUIDE = [
    "index",
    "dimensionality_reduction",
    "linear_autoencoder",
    "autoencoder",
    "variational_autoencoder",
    "probabilistic_pca",
    "model_selection",
    "latent_regularity",
    "missing_data",
    "deploying",
    "scaling",
]
GENERATED = ("_build", "auto_examples", "gen_modules", "sg_execution_times.rst")
# the hand-written pages (a local build leaves sg_execution_times.rst beside them)
RST_PAGES = [
    p
    for p in sorted(DOCS.glob("*.rst")) + sorted((DOCS / "user_guide").glob("*.rst"))
    if p.name not in GENERATED
]


def _python_code_blocks(text: str) -> list[str]:
    """The bodies of the ``.. code-block:: python`` directives of an rst page."""
    blocks = []
    for match in re.finditer(r"^( *)\.\. code-block:: python\n((?:\1 +:.*\n)*)\n", text, re.M):
        indent = len(match.group(1))
        lines = []
        for line in text[match.end() :].splitlines():
            if line.strip() and len(line) - len(line.lstrip()) <= indent:
                break
            lines.append(line)
        body = "\n".join(lines)
        width = min(len(x) - len(x.lstrip()) for x in lines if x.strip())
        blocks.append("\n".join(x[width:] for x in body.splitlines()))
    return blocks


@pytest.mark.parametrize("page", RST_PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_snippets_of_the_page_run(page, one_thread):
    text = page.read_text()
    with warnings.catch_warnings():
        # the snippets train for a few epochs on purpose
        warnings.simplefilter("ignore", ConvergenceWarning)
        for block in _python_code_blocks(text):
            exec(compile(block, f"{page} (code-block)", "exec"), {"__name__": "__docs__"})
        parser = doctest.DocTestParser()
        test = parser.get_doctest(text, {}, page.name, str(page), 0)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        report: list[str] = []
        result = runner.run(test, out=report.append)
    if ">>> " in text:
        assert test.examples, f"no doctest examples found in {page}"
    assert result.failed == 0, "".join(report)


def test_every_page_with_code_has_some():
    # guards the snippet test against a parser that silently finds nothing
    pages = {p.stem for p in RST_PAGES if ">>> " in p.read_text()}
    assert set(USER_GUIDE) - {"index"} <= pages
    assert _python_code_blocks((DOCS / "index.rst").read_text())


#: A build of the docs made (with -W) by the caller, e.g. .ci/run's README docs
#: command: the page tests read it instead of building the docs a second time.
PREBUILT = os.environ.get("SKVAE_DOCS_HTML")


_DOCS_MODULES = (
    "sphinx",
    "numpydoc",
    "sphinx_gallery",
    "pydata_sphinx_theme",
    "matplotlib",
    "sphinx-mathjax-offline",
)


class DocsBuild:
    """``sphinx -W`` on a fresh copy of docs/, run in a subprocess.

    ``tests/conftest.py`` starts it as soon as the session has collected a
    test that needs it, so the gallery's examples run on the core the
    (single-threaded) tests leave free; :meth:`result` waits for it.
    """

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="skvae-docs-"))
        source, self.html = self.tmp / "docs", self.tmp / "html"
        shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns(*GENERATED))
        env = {**os.environ, "SKVAE_REPO_ROOT": str(ROOT), "MPLBACKEND": "Agg"}
        command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
        self.log = open(self.tmp / "stderr.txt", "w+")  # noqa: SIM115 - closed in stop
        self.proc = subprocess.Popen(
            [*command, str(source), str(self.html)],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            env=env,
            cwd=ROOT,
        )

    @staticmethod
    def possible() -> bool:
        return all(importlib.util.find_spec(name) for name in _DOCS_MODULES)

    def result(self, timeout: float = 900) -> subprocess.CompletedProcess:
        returncode = self.proc.wait(timeout=timeout)
        self.log.seek(0)
        return subprocess.CompletedProcess(self.proc.args, returncode, "", self.log.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def built_docs(request):
    if PREBUILT:
        return None, Path(PREBUILT)
    for module in _DOCS_MODULES:
        pytest.importorskip(module)
    build = getattr(request.config, "skvae_docs_build", None)
    if build is None:  # not started by conftest (e.g. a test selected by hand)
        build = request.config.skvae_docs_build = DocsBuild()
    return build.result(), build.html


def test_docs_build_without_warnings(built_docs):
    proc, _ = built_docs
    if proc is None:
        pytest.skip(f"built with -W by the caller: {PREBUILT}")
    assert proc.returncode == 0, f"sphinx failed:\n{proc.stderr[-5000:]}"
    assert "WARNING" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr


def test_docs_have_the_expected_pages(built_docs):
    _, html = built_docs
    pages = ["index", "api", "benchmarks", "developer", "auto_examples/index"]
    pages += [f"user_guide/{name}" for name in USER_GUIDE]
    pages += [f"gen_modules/skvae.{name}" for name in ESTIMATORS]
    pages += [f"gen_modules/skvae.metrics.{name}" for name in METRICS]
    pages += [f"gen_modules/skvae.{name}" for name in DEPLOYING]
    pages += [f"gen_modules/skvae.onnx.{name}" for name in ONNX]
    pages += [f"gen_modules/skvae.dask.{name}" for name in DASK]
    pages += [f"auto_examples/{name}" for name in EXAMPLES]
    missing = [page for page in pages if not (html / f"{page}.html").is_file()]
    assert not missing, f"pages not built: {missing}"
    assert len(EXAMPLES) >= 5
    api = (html / "gen_modules/skvae.VariationalAutoencoder.html").read_text()
    for method in ("fit", "transform", "inverse_transform", "score", "sample"):
        assert f"VariationalAutoencoder.{method}" in api


def test_gallery_renders_its_figures(built_docs):
    _, html = built_docs
    figures = [p for p in (html / "_images").glob("sphx_glr_plot_*.png") if "_thumb" not in p.name]
    assert len(figures) >= 4, sorted(p.name for p in figures)
    assert all(p.stat().st_size > 1000 for p in figures)
    # every example produced at least one figure
    for name in EXAMPLES:
        assert any(p.name.startswith(f"sphx_glr_{name}_") for p in figures), name


def test_maths_renders_offline(built_docs):
    """The pages load MathJax from _static, not from a CDN: opened without a
    network they would show raw ``\\(\\mathcal{N}(0, I)\\)``."""
    _, html = built_docs
    pages = [p for p in html.rglob("*.html") if 'class="math' in p.read_text()]
    assert len(pages) >= 5, "no maths found: the check below would pass vacuously"
    for page in pages:
        scripts = re.findall(r'<script[^>]*\bsrc="([^"]*)"', page.read_text())
        maths = [src for src in scripts if "mathjax" in src.lower()]
        assert maths, f"{page.name} has maths but loads no MathJax"
        for src in maths:
            assert not re.match(r"(https?:)?//", src), f"{page.name} loads {src}"
            assert (page.parent / src.split("?")[0]).resolve().is_file(), (page.name, src)
    # the whole TeX-to-SVG component (2 MB), not a stub that fetches the rest
    assert (html / "_static" / "mathjax" / "tex-svg.js").stat().st_size > 1_000_000


def _extras(pyproject: dict) -> dict[str, set[str]]:
    """Each extra of skvae, with the extras it includes (``skvae[a,b]``) expanded."""
    direct = pyproject["project"]["optional-dependencies"]

    def expand(name, seen):
        seen.add(name)
        for requirement in direct[name]:
            match = re.fullmatch(r"skvae\[([\w,\s-]+)\]", requirement.strip())
            for other in match.group(1).split(",") if match else []:
                if other.strip() not in seen:
                    expand(other.strip(), seen)
        return seen

    return {name: expand(name, set()) for name in direct}


def _optional_features() -> tuple[dict[str, str], dict[str, str]]:
    """From skvae's ``import_optional`` calls: the extra of each optional module
    (top level), and of each public function named as its purpose."""
    modules, functions = {}, {}
    for path in (ROOT / "skvae").rglob("*.py"):
        tree = ast.parse(path.read_text())
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call) and getattr(node.func, "id", None) == "import_optional"
            ):
                continue
            name, extra, purpose = node.args
            extra = extra.value if isinstance(extra, ast.Constant) else constants[extra.id]
            modules[name.value.split(".")[0]] = extra
            if isinstance(purpose, ast.Constant) and purpose.value.startswith("skvae."):
                functions[purpose.value] = extra
    return modules, functions


def test_the_docs_extra_installs_what_the_gallery_needs():
    """``pip install -e ".[docs]"`` alone must build the docs: every optional
    module a gallery example imports, or that a skvae function it calls needs
    (``skvae.save`` needs safetensors), comes with the docs extra."""
    tomllib = pytest.importorskip("tomllib")
    extras = _extras(tomllib.loads((ROOT / "pyproject.toml").read_text()))
    modules, functions = _optional_features()
    assert functions["skvae.save"] == "safetensors"  # the scan finds them
    for path in sorted((DOCS / "examples").glob("*.py")) + [DOCS / "conf.py"]:
        source = path.read_text()
        imported = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
        needed = {modules[m] for m in imported if m in modules}
        needed |= {extra for name, extra in functions.items() if f"{name}(" in source}
        assert needed <= extras["docs"], f"{path.name} needs skvae{sorted(needed)}"


def test_the_patience_floor_quoted_in_the_docs_is_the_codes():
    from skvae._stopping import MIN_PATIENCE_STEPS

    sources = [*DOCS.rglob("*.rst"), *(ROOT / "skvae").rglob("*.py"), ROOT / "README.md"]
    quoted = {}
    for path in sources:
        if not any(part in GENERATED for part in path.relative_to(ROOT).parts):
            text = " ".join(path.read_text().split())  # phrases broken across lines
            for number in re.findall(r"at least (\d+) optimiser steps", text):
                quoted.setdefault(int(number), []).append(path.name)
    assert len(sum(quoted.values(), [])) >= 3, quoted  # the user guide and two docstrings
    assert set(quoted) == {MIN_PATIENCE_STEPS}, quoted
