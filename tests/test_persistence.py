"""skvae.save / skvae.load: safetensors files that load without pickle, bit for bit."""

import copy
import json
import pickle
import re

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError

import skvae
from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder
from skvae._persistence import FORMAT_VERSION, _digest

from ._deploy import tiny
from .conftest import ESTIMATORS, single_thread

safetensors_numpy = pytest.importorskip("safetensors.numpy")
safe_open = pytest.importorskip("safetensors").safe_open

DTYPES = [np.float32, np.float64]


# the models train for a few epochs on purpose
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with single_thread():
        yield


@pytest.fixture(scope="module")
def X():
    return load_digits().data[:200] / 16


@pytest.fixture(scope="module")
def fitted(X):
    """One fitted model per estimator and dtype, shared by the tests of this file."""
    return {(cls, dtype): tiny(cls).fit(X.astype(dtype)) for cls in ESTIMATORS for dtype in DTYPES}


def _outputs(est, X):
    """Everything a fitted model computes, each output once."""
    Z = est.transform(X)
    scores = est.score_samples(X) if hasattr(est, "score_samples") else est.score(X)
    return {
        "transform": Z,
        "inverse_transform": est.inverse_transform(Z),
        "scores": scores,
        "sample": est.sample(7, random_state=1),
    }


def _fitted_attributes(est):
    return {k: v for k, v in vars(est).items() if k.endswith("_") and k != "module_"}


def _rewrite(path, edit):
    """Apply ``edit(header, arrays)`` to a saved file and give it a valid checksum."""
    with safe_open(str(path), framework="np") as f:
        header = json.loads(f.metadata()["skvae"])
        arrays = {k: f.get_tensor(k) for k in f.keys()}
    edit(header, arrays)
    payload = json.dumps(header)
    metadata = {"skvae": payload, "skvae_sha256": _digest(payload, arrays)}
    safetensors_numpy.save_file(arrays, str(path), metadata=metadata)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_round_trip_is_bit_identical(cls, dtype, fitted, X, tmp_path):
    est = fitted[cls, dtype]
    path = tmp_path / "model.safetensors"
    skvae.save(est, path)
    loaded = skvae.load(path)

    assert type(loaded) is cls
    assert loaded.get_params() == est.get_params()
    attributes, expected = _fitted_attributes(loaded), _fitted_attributes(est)
    assert attributes.keys() == expected.keys()
    for name, value in expected.items():
        assert type(attributes[name]) is type(value), name
        np.testing.assert_array_equal(attributes[name], value, err_msg=name)
    original, restored = est.module_.state_dict(), loaded.module_.state_dict()
    assert original.keys() == restored.keys()
    for name, tensor in original.items():
        assert restored[name].device.type == "cpu"
        assert restored[name].dtype == tensor.dtype
        assert torch.equal(restored[name], tensor), name
    assert loaded.module_.training == est.module_.training

    data = X.astype(dtype)
    got, want = _outputs(loaded, data), _outputs(est, data)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        assert np.asarray(got[name]).dtype == np.asarray(want[name]).dtype


def test_feature_names_and_extra_attributes_round_trip(X, tmp_path):
    frame = pd.DataFrame(X[:, :6], columns=[f"pixel{i}" for i in range(6)])
    est = tiny(VariationalAutoencoder, device=torch.device("cpu")).fit(frame)
    # kinds the networks of a later version may add: a scalar, a tensor, nested values
    est.scale_ = np.float32(1.5)
    est.buffer_ = torch.arange(3)
    est.notes_ = {"sizes": (1, 2), "ok": [True, None]}
    est.fortran_ = np.asfortranarray(np.arange(6.0).reshape(2, 3))  # a transposed view's order
    path = tmp_path / "model.safetensors"
    skvae.save(est, path)
    loaded = skvae.load(path)
    assert loaded.get_params()["device"] == torch.device("cpu")
    np.testing.assert_array_equal(loaded.feature_names_in_, est.feature_names_in_)
    assert loaded.feature_names_in_.dtype == object
    assert type(loaded.scale_) is np.float32 and loaded.scale_ == est.scale_
    assert torch.equal(loaded.buffer_, est.buffer_)
    assert loaded.notes_ == est.notes_
    np.testing.assert_array_equal(loaded.fortran_, est.fortran_)
    np.testing.assert_array_equal(loaded.transform(frame), est.transform(frame))


def test_set_output_round_trips(fitted, X, tmp_path):
    est = copy.deepcopy(fitted[Autoencoder, np.float64]).set_output(transform="pandas")
    path = tmp_path / "model.safetensors"
    skvae.save(est, path)
    codes = skvae.load(path).transform(X)
    assert isinstance(codes, pd.DataFrame)
    pd.testing.assert_frame_equal(codes, est.transform(X))


def test_device_can_be_replaced_on_load(fitted, tmp_path):
    path = tmp_path / "model.safetensors"
    skvae.save(fitted[Autoencoder, np.float32], path)
    assert skvae.load(path, device="cpu").device == "cpu"


# ------------------------------------------------- the whole model, as pickle
def _every_output(est, X):
    """Every public method's output on ``X`` (fit_transform aside)."""
    Z = est.transform(X)
    out = {
        "transform": Z,
        "inverse_transform": est.inverse_transform(Z),
        "score": est.score(X),
        "score_samples": est.score_samples(X),
        "sample": est.sample(5, random_state=1),
        "sample_mean": est.sample(5, random_state=1, noise=False),
        "get_feature_names_out": est.get_feature_names_out(),
    }
    if isinstance(est, LinearAutoencoder):
        out.update(get_covariance=est.get_covariance(), get_precision=est.get_precision())
    return out


def _assert_same_model(got, want, X):
    attributes, expected = _fitted_attributes(got), _fitted_attributes(want)
    assert attributes.keys() == expected.keys()
    for name, value in expected.items():
        assert type(attributes[name]) is type(value), name
        np.testing.assert_array_equal(attributes[name], value, err_msg=name)
        assert np.asarray(attributes[name]).dtype == np.asarray(value).dtype, name
    outputs, expected = _every_output(got, X), _every_output(want, X)
    for name, value in expected.items():
        np.testing.assert_array_equal(outputs[name], value, err_msg=name)
        assert np.asarray(outputs[name]).dtype == np.asarray(value).dtype, name


@pytest.mark.parametrize("how", ["fit", "partial_fit"])
@pytest.mark.parametrize("compute_dtype", [None, "float32"])
@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_a_loaded_model_is_a_pickled_model(cls, compute_dtype, how, X, tmp_path):
    # float64 data, trained in float64 or float32; fitted, or streamed in two
    # chunks (Adam's state, LinearAutoencoder's running moments)
    est = tiny(cls, compute_dtype=compute_dtype)
    if how == "fit":
        est.fit(X[:120])
    else:
        est.partial_fit(X[:60]).partial_fit(X[60:120])
    path = tmp_path / "model.safetensors"
    skvae.save(est, path)
    loaded, pickled = skvae.load(path), pickle.loads(pickle.dumps(est))
    _assert_same_model(loaded, pickled, X)
    # and both train on alike
    loaded.partial_fit(X[120:])
    pickled.partial_fit(X[120:])
    _assert_same_model(loaded, pickled, X)
    for name, tensor in pickled.module_.state_dict().items():
        assert torch.equal(loaded.module_.state_dict()[name], tensor), name


@pytest.mark.parametrize("cls", [Autoencoder, VariationalAutoencoder])
def test_a_loaded_model_has_the_networks_it_was_fitted_with(cls, X, tmp_path):
    # parameters changed after fit describe other networks; the file keeps the
    # networks the model has, as a pickle does, and their parameters
    est = tiny(cls).fit(X).set_params(activation="tanh", hidden_layer_sizes=(5,))
    path = tmp_path / "model.safetensors"
    skvae.save(est, path)
    loaded = skvae.load(path)
    assert loaded.get_params() == est.get_params()
    _assert_same_model(loaded, pickle.loads(pickle.dumps(est)), X)
    with pytest.raises(ValueError, match="cannot change hidden_layer_sizes"):
        loaded.partial_fit(X)
    loaded.set_params(activation="relu", hidden_layer_sizes=(8,)).partial_fit(X)


# ------------------------------------------------------------------ refusals
def test_refuses_unfitted_and_unknown_estimators(fitted, tmp_path):
    with pytest.raises(NotFittedError):
        skvae.save(Autoencoder(), tmp_path / "m.safetensors")

    class Custom(Autoencoder):
        pass

    with pytest.raises(
        TypeError, match="stores Autoencoder, LinearAutoencoder, VariationalAutoencoder only"
    ):
        skvae.save(Custom(), tmp_path / "m.safetensors")


def test_refuses_values_a_file_cannot_hold(fitted, tmp_path):
    est = copy.deepcopy(fitted[LinearAutoencoder, np.float64])
    path = tmp_path / "m.safetensors"
    with pytest.raises(TypeError, match=r"random_state is a RandomState.*set_params"):
        skvae.save(est.set_params(random_state=np.random.RandomState(0)), path)
    est.set_params(random_state=0)
    est.callback_ = print
    with pytest.raises(TypeError, match="fitted attribute callback_ is a builtin_function"):
        skvae.save(est, path)
    est.callback_ = None
    est.codes_ = np.array([object()])
    with pytest.raises(TypeError, match="fitted attribute codes_ is a ndarray"):
        skvae.save(est, path)
    assert not path.exists()


@pytest.fixture
def saved(fitted, tmp_path):
    path = tmp_path / "model.safetensors"
    skvae.save(fitted[VariationalAutoencoder, np.float32], path)
    return path


def _a_tensor(arrays):
    """The name of one of the network's tensors in a file (whatever the networks are)."""
    return max(k for k in arrays if k.startswith("module."))


def _drop_a_tensor(header, arrays):
    del arrays[_a_tensor(arrays)]


def _add_a_tensor(header, arrays):
    arrays["module.extra"] = np.zeros(3, dtype=np.float32)


def _reshape_a_tensor(header, arrays):
    arrays[_a_tensor(arrays)] = np.zeros(12345, dtype=np.float32)


def _retype_a_tensor(header, arrays):
    name = _a_tensor(arrays)
    arrays[name] = arrays[name].astype(np.float64)


def _rename_the_class(header, arrays):
    header["class"] = "os.system"


def _unknown_parameter(header, arrays):
    header["params"]["n_layers"] = 3


def _attribute_named_like_a_method(header, arrays):
    header["attributes"]["transform"] = 1


def _undeclared_attribute_tensor(header, arrays):
    arrays["attribute.secret_"] = np.zeros(2)


@pytest.mark.parametrize(
    "edit, message",
    [
        (_drop_a_tensor, r"network tensors missing \['{name}'\], unexpected \[\]"),
        (_add_a_tensor, r"network tensors missing \[\], unexpected \['extra'\]"),
        (_reshape_a_tensor, r"'{name}' is torch.float32 of shape \(12345,\), but the network"),
        (_retype_a_tensor, r"'{name}' is torch.float64 .* expects torch.float32"),
        (_rename_the_class, "holds a 'os.system'; skvae.load knows only"),
        (_unknown_parameter, "stored parameters do not fit this VariationalAutoencoder"),
        (_attribute_named_like_a_method, r"\['transform'\] are not names of fitted attributes"),
        (_undeclared_attribute_tensor, r"missing \[\], unexpected \['secret_'\]"),
    ],
)
def test_refuses_files_that_do_not_match(saved, edit, message):
    with safe_open(str(saved), framework="np") as f:
        name = re.escape(_a_tensor(f.keys())[len("module.") :])
    _rewrite(saved, edit)
    with pytest.raises(ValueError, match=message.format(name=name)):
        skvae.load(saved)


def test_refuses_a_newer_format(saved):
    _rewrite(saved, lambda header, arrays: header.update(format_version=FORMAT_VERSION + 1))
    newer, current = FORMAT_VERSION + 1, FORMAT_VERSION
    with pytest.raises(ValueError, match=f"version {newer}.*up to {current}. Upgrade"):
        skvae.load(saved)


def _as_format_1(header, arrays):
    """What skvae wrote before files held the training state."""
    header["format_version"] = 1
    del header["state"]
    for name in [name for name in arrays if name.startswith("state.")]:
        del arrays[name]


def _as_format_2(header, arrays):
    """What skvae wrote before a LinearAutoencoder's module held its probabilistic PCA."""
    header["format_version"] = 2
    for name in [name for name in arrays if name.startswith("module.ppca_")]:
        del arrays[name]


@pytest.mark.parametrize("whiten", [False, True])
def test_a_linear_model_of_format_2_rebuilds_its_ppca_from_its_attributes(X, whiten, tmp_path):
    est = LinearAutoencoder(n_components=2, whiten=whiten, random_state=0).fit(X)
    path = tmp_path / "model.safetensors"
    skvae.save(est, path)
    _rewrite(path, _as_format_2)
    loaded = skvae.load(path)
    holed = X.copy()
    holed[::3, 1] = np.nan
    for rows in (X, holed):
        np.testing.assert_array_equal(loaded.score_samples(rows), est.score_samples(rows))
        np.testing.assert_array_equal(loaded.score_features(rows), est.score_features(rows))
        for got, expected in zip(
            loaded.transform(rows, return_std=True),
            est.transform(rows, return_std=True),
            strict=True,
        ):
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_reads_format_1_files(cls, fitted, X, tmp_path):
    est = fitted[cls, np.float64]
    path = tmp_path / "model.safetensors"
    skvae.save(est, path)
    _rewrite(path, _as_format_1)
    loaded = skvae.load(path)
    for name, value in _outputs(est, X).items():
        np.testing.assert_array_equal(_outputs(loaded, X)[name], value, err_msg=name)
    if cls is LinearAutoencoder:  # it cannot continue, and says why
        with pytest.raises(ValueError, match="no running moments.*format version 1"):
            loaded.partial_fit(X)
    else:  # from the weights, with a fresh Adam, as after fit
        assert loaded.partial_fit(X).n_iter_ == est.n_iter_ + 1


def test_refuses_an_edited_header(saved):
    with safe_open(str(saved), framework="np") as f:
        metadata = f.metadata()
        arrays = {k: f.get_tensor(k) for k in f.keys()}
    metadata["skvae"] = metadata["skvae"].replace('"n_components": 3', '"n_components": 2')
    safetensors_numpy.save_file(arrays, str(saved), metadata=metadata)
    with pytest.raises(ValueError, match="fails its checksum"):
        skvae.load(saved)


def test_refuses_edited_bytes(saved):
    data = bytearray(saved.read_bytes())
    data[-3] ^= 0xFF  # inside the last tensor
    saved.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="fails its checksum"):
        skvae.load(saved)


def test_refuses_files_that_are_not_skvae_files(tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        skvae.load(garbage)
    plain = tmp_path / "plain.safetensors"
    safetensors_numpy.save_file({"w": np.zeros(2)}, str(plain))
    with pytest.raises(ValueError, match="not one written by skvae.save"):
        skvae.load(plain)
    with pytest.raises(FileNotFoundError):
        skvae.load(tmp_path / "absent.safetensors")
