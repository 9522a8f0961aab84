"""skvae.load on malformed files, fuzzed: every one is refused with a ValueError."""

import copy
import json

import numpy as np
import pytest
from sklearn.datasets import load_digits

import skvae
from skvae import Autoencoder, VariationalAutoencoder
from skvae._persistence import _digest

from ._deploy import tiny
from .conftest import ESTIMATORS, single_thread

safetensors_numpy = pytest.importorskip("safetensors.numpy")
safe_open = pytest.importorskip("safetensors").safe_open
from .test_persistence import _rewrite  # noqa: E402 - after the importorskip

# the models train for a few epochs on purpose
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with single_thread():
        yield


def _paths(value, path=()):
    """Every place in a JSON document: (path, value) for each node."""
    yield path, value
    if isinstance(value, dict | list):
        for key, child in value.items() if isinstance(value, dict) else enumerate(value):
            yield from _paths(child, (*path, key))


def _replaced(document, path, new):
    document = copy.deepcopy(document)
    *parents, last = path
    node = document
    for key in parents:
        node = node[key]
    node[last] = new
    return document


def _loads_or_refuses(path):
    """load either succeeds or raises ValueError, as it documents; True if refused."""
    try:
        skvae.load(path)
    except ValueError:
        return True
    return False


# wrong types, and the tags JSON values use, holding what they must not
MISTYPED = [None, True, -1, 2.5, 10**6, "x", [], {}, [[1]], {"a": 1},
            {"__tuple__": 5}, {"__dict__": [1]}, {"__device__": "nowhere"},
            {"__device__": 3}, {"__str_array__": ["a"], "dtype": "nonsense", "shape": [1]},
            {"__str_array__": [1, 2], "dtype": "|O", "shape": [2]},
            {"__str_array__": ["a"], "dtype": "<U1", "shape": [5]},
            {"__tuple__": [], "extra": 1}]  # fmt: skip


@pytest.fixture(scope="module")
def small_files(tmp_path_factory):
    """A saved file of each estimator, float32, streamed (so with Adam's state)."""
    folder = tmp_path_factory.mktemp("fuzz")
    X = (load_digits().data[:200] / 16).astype(np.float32)
    paths = {}
    for cls in ESTIMATORS:
        est = tiny(cls).fit(X).partial_fit(X[:40])
        paths[cls] = folder / f"{cls.__name__}.safetensors"
        skvae.save(est, paths[cls])
    return paths


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_every_mistyped_value_is_a_value_error(cls, small_files, tmp_path):
    with safe_open(str(small_files[cls]), framework="np") as f:
        header = json.loads(f.metadata()["skvae"])
        arrays = {k: f.get_tensor(k) for k in f.keys()}
    path = tmp_path / "m.safetensors"
    places = [p for p, _ in _paths(header) if p]
    rng = np.random.RandomState(0)
    refused = 0
    for place in places:  # two mistypes, drawn from MISTYPED, at every place
        for new in [MISTYPED[i] for i in rng.choice(len(MISTYPED), 2, replace=False)]:
            payload = json.dumps(_replaced(header, place, new))
            metadata = {"skvae": payload, "skvae_sha256": _digest(payload, arrays)}
            safetensors_numpy.save_file(arrays, str(path), metadata=metadata)
            refused += _loads_or_refuses(path)
    assert refused > 0.8 * 2 * len(places)  # the rest are values a model may hold


_HUGE = {"__dict__": {"n_components": 3, "hidden_layer_sizes": {"__tuple__": [10**9]},
                     "activation": "relu"}}  # fmt: skip


@pytest.mark.parametrize(
    "where, new, message",
    [
        (("params", "device"), {"__device__": "nowhere"}, "'nowhere' is not a torch device"),
        (("params", "device"), {"__device__": 3}, "a __device__ tag holds 3"),
        (("params", "hidden_layer_sizes"), {"__tuple__": 5}, "a __tuple__ tag holds 5"),
        (
            ("attributes", "feature_names_in_"),
            {"__str_array__": ["a"], "dtype": "nonsense", "shape": [1]},
            "string array of dtype 'nonsense'",
        ),  # fmt: skip
        (("attributes", "n_iter_"), "3", "n_iter_='3' is not valid"),
        (("attributes", "loss_curve_"), 5, "loss_curve_=5 is not valid"),
        (("attributes", "n_components_"), 10**9, r"latent_\w+ is .*n_components_=1000000000"),
        (("arrays", "latent_mean_"), ["ndarray"], "unknown attribute kinds"),
        (("state", "optimizer", "param_groups"), {"__tuple__": 1}, "a __tuple__ tag holds 1"),
        (("state", "optimizer", "state", "0"), ["step", "x"], "state for parameter '0'"),
        (("state", "input_dtype"), "int8", "unknown input dtype 'int8'"),
        (("state", "network_params"), {"__dict__": {"activation": "relu"}}, "networks' param"),
        (("state", "network_params"), _HUGE, r"expects torch.float32 of shape \(1000000000, "),
    ],
    ids=str,
)
def test_named_malformations_are_value_errors(where, new, message, small_files, tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(small_files[Autoencoder].read_bytes())
    with safe_open(str(path), framework="np") as f:
        header = json.loads(f.metadata()["skvae"])
    header = _replaced(header, where, new)
    _rewrite(path, lambda h, a: h.update(header))
    with pytest.raises(ValueError, match=message):
        skvae.load(path)


def test_truncated_and_bit_flipped_files_are_value_errors(small_files, tmp_path):
    data = small_files[VariationalAutoencoder].read_bytes()
    rng = np.random.RandomState(0)
    path = tmp_path / "m.safetensors"
    for length in [0, 7, 8, 9, 100, *rng.randint(9, len(data) - 1, size=20)]:
        path.write_bytes(data[:length])
        with pytest.raises(ValueError):
            skvae.load(path)
    for position in rng.randint(0, len(data), size=60):
        flipped = bytearray(data)
        flipped[position] ^= 1 << rng.randint(8)
        path.write_bytes(bytes(flipped))
        with pytest.raises(ValueError):
            skvae.load(path)


@pytest.mark.parametrize("depth", [100, 100_000])
def test_deeply_nested_metadata_is_refused_before_parsing(depth, small_files, tmp_path):
    path = tmp_path / "m.safetensors"
    with safe_open(str(small_files[Autoencoder]), framework="np") as f:
        arrays = {k: f.get_tensor(k) for k in f.keys()}
    nested = "[" * depth + "]" * depth
    wrapped = '{"format_version": 2, "attributes": {"x_": ' + nested + "}}"
    for payload, deep in [(nested, depth), (wrapped, depth + 2)]:
        metadata = {"skvae": payload, "skvae_sha256": _digest(payload, arrays)}
        safetensors_numpy.save_file(arrays, str(path), metadata=metadata)
        with pytest.raises(ValueError, match=f"nested {deep} deep; .* at most 32"):
            skvae.load(path)


def test_oversized_metadata_is_refused_before_parsing(small_files, monkeypatch):
    monkeypatch.setattr(skvae._persistence, "MAX_METADATA_CHARS", 100)
    with pytest.raises(ValueError, match=r"metadata of \d+ characters.* at most 100"):
        skvae.load(small_files[VariationalAutoencoder])
