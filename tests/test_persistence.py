"""skvae.save / skvae.load: safetensors files that load without pickle, bit for bit."""

import copy
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError

import skvae
from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder
from skvae._persistence import _digest

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


# ------------------------------------------------------------------ refusals
def test_refuses_unfitted_and_unknown_estimators(fitted, tmp_path):
    with pytest.raises(NotFittedError):
        skvae.save(Autoencoder(), tmp_path / "m.safetensors")

    class Custom(Autoencoder):
        pass

    with pytest.raises(TypeError, match="stores LinearAutoencoder, Autoencoder"):
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
    _rewrite(saved, lambda header, arrays: header.update(format_version=2))
    with pytest.raises(ValueError, match="format version 2.*reads versions up to 1. Upgrade"):
        skvae.load(saved)


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
