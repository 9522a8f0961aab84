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
    "_stopping",
    "_distributed",
    "_placement",
    "_subspace",
    "_conditional",
]


@pytest.mark.parametrize("name", TORCH_LAYERS)
def test_torch_layers_do_not_import_sklearn_or_estimators(name):
    imported = list(_imported_modules(PACKAGE / f"{name}.py"))
    assert not [m for m in imported if m.split(".")[0] == "sklearn"]
    torch_layers = {
        "._modules",
        "._training",
        "._stopping",
        "._distributed",
        "._placement",
        "._conditional",
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
