"""Doctests of the modules that need an optional package are skipped without it."""

from importlib.util import find_spec

import pytest

#: module of the doctests -> the optional packages its examples import
_NEEDS = {
    "skvae._persistence": ("safetensors",),
    "skvae.onnx": ("onnx", "onnxruntime", "skl2onnx", "onnxscript"),
    "skvae.dask": ("dask",),
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for module, packages in _NEEDS.items():
            missing = [p for p in packages if find_spec(p) is None]
            if item.name.startswith(module + ".") and missing:
                item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(missing)}"))
