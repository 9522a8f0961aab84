"""The optional packages stay optional: skvae imports without them, and says which
extra to install when a function needs one."""

import subprocess
import sys

import pytest

import skvae
from skvae import Autoencoder
from skvae.dask import transform_blocks
from skvae.onnx import export_decoder, export_encoder, register_converters

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.single_thread

OPTIONAL = ("safetensors", "onnx", "onnxruntime", "skl2onnx", "onnxscript")
DASK = ("dask", "dask.array", "distributed", "dask_ml")


def test_importing_skvae_imports_no_optional_package():
    modules = (*OPTIONAL, *DASK)
    code = (
        "import sys, skvae, skvae.onnx, skvae.dask; "
        f"print([m for m in {modules} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture
def without_optional_packages(monkeypatch):
    for name in (*OPTIONAL, *DASK, "safetensors.numpy"):
        monkeypatch.setitem(sys.modules, name, None)  # makes their import fail


@pytest.mark.parametrize(
    "call, extra",
    [
        (lambda path: skvae.save(Autoencoder(), path), "safetensors"),
        (lambda path: skvae.load(path), "safetensors"),
        (lambda path: register_converters(), "onnx"),
        (lambda path: export_encoder(Autoencoder()), "onnx"),
        (lambda path: export_decoder(Autoencoder(), path), "onnx"),
        (lambda path: transform_blocks(Autoencoder(), [[0.0]]), "dask"),
    ],
)
def test_a_missing_package_names_the_extra(call, extra, without_optional_packages, tmp_path):
    with pytest.raises(ImportError, match=rf'pip install "skvae\[{extra}\]"'):
        call(tmp_path / "model")
