"""The layers of docs/developer.rst: who may import whom, and where training loops live."""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.single_thread

PACKAGE = Path(__file__).resolve().parents[1] / "skvae"


def _imported_modules(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield ("." * node.level) + (node.module or "")


TORCH_LAYERS = [
    "_modules",
    "_training",
    "_lbfgs",
    "_stopping",
    "_distributed",
    "_placement",
    "_subspace",
    "_conditional",
    "_missing",
    "_missing_forms",
]


@pytest.mark.parametrize("name", TORCH_LAYERS)
def test_torch_layers_do_not_import_sklearn_or_estimators(name):
    imported = list(_imported_modules(PACKAGE / f"{name}.py"))
    assert not [m for m in imported if m.split(".")[0] == "sklearn"]
    torch_layers = {
        "._modules",
        "._training",
        "._lbfgs",
        "._stopping",
        "._distributed",
        "._placement",
        "._conditional",
        "._subspace",
        "._missing",
    }
    assert not [m for m in imported if m.startswith(".") and m not in torch_layers]


@pytest.mark.parametrize(
    "name",
    [
        "_base.py",
        "_inference.py",
        "_validation.py",
        "_active_units.py",
        "_linear.py",
        "_autoencoder.py",
        "_variational.py",
    ],
)
def test_estimators_write_no_training_loop(name):
    source = (PACKAGE / name).read_text()
    for marker in (".backward(", ".step(", "torch.optim"):
        assert marker not in source, f"{name} contains {marker!r}"


def test_no_source_file_is_over_500_lines():
    """The model-protocol issue's bound: a file a reader can hold in mind."""
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 500
    }
    assert not long


@pytest.mark.parametrize("name", ["_poisson.py", "_negative_binomial.py", "_bernoulli.py"])
def test_an_added_likelihood_family_is_one_short_file(name):
    """Adding a likelihood is one file of at most 150 lines plus its registration."""
    path = PACKAGE / "_likelihoods" / name
    assert len(path.read_text().splitlines()) <= 150
    registry = (PACKAGE / "_likelihoods" / "__init__.py").read_text()
    assert f"from .{path.stem} import" in registry
