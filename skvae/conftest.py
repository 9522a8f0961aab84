"""Doctests of the modules that need an optional package are skipped without it;
every doctest runs torch and BLAS on one thread, as the tests do (see
tests/conftest.py: on a loaded machine two torch threads slow small models
down tenfold)."""

import contextlib
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


@contextlib.contextmanager
def single_thread():
    """One torch thread and one BLAS thread: the models of the tests are small, so
    one thread is faster, and a busy machine cannot slow them down tenfold (on a
    loaded 2-core machine, two torch threads made one of scikit-learn's checks
    of a tiny VAE take 3 to 15 s instead of 0.6 s). tests/conftest.py uses it too."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _one_thread():
    with single_thread():
        yield
