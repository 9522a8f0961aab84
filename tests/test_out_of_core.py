"""Data larger than memory, the compute dtype, and inference that leaves the
fitted networks where they are."""

import threading

import numpy as np
import pytest
import torch

import skvae._placement
import skvae._subspace
import skvae._validation
from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder
from skvae._placement import on_device

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.single_thread

ALL = (LinearAutoencoder, Autoencoder, VariationalAutoencoder)


def make_data(n=3000, d=8, seed=0):
    rng = np.random.RandomState(seed)
    Z = rng.randn(n, 2)
    return np.c_[np.sin(Z), Z**2, Z, rng.randn(n, d - 6) * 0.1] @ rng.randn(d, d)


def model(cls, **params):
    if cls is LinearAutoencoder:
        return cls(n_components=2, random_state=0, **params)
    return cls(n_components=2, hidden_layer_sizes=(16,), max_iter=3, random_state=0, **params)


class SlicedOnly:
    """An array that can only be read in slices (like h5py or zarr), recording
    the most rows any one read returned; reading it whole is an error."""

    def __init__(self, X):
        self.X, self.shape, self.dtype, self.largest = X, X.shape, X.dtype, 0

    def __getitem__(self, key):
        rows = self.X[key]
        self.largest = max(self.largest, len(rows))
        return rows

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was read into memory")

    def __len__(self):
        return self.shape[0]


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 250 rows of 8 features, so that bounded reads are visible."""
    for module in (skvae._validation, skvae._placement, skvae._subspace):
        monkeypatch.setattr(module, "CHUNK_ELEMENTS", 250 * 8)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("cls", ALL)
def test_memmap_fits_like_the_array_it_maps(cls, tmp_path, one_thread):
    """A read-only float32 memmap trains the same model as its rows in memory."""
    X = make_data().astype(np.float32)
    path = tmp_path / "X.f32"
    X.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=X.shape)
    a, b = model(cls).fit(mapped), model(cls).fit(X)
    for key, value in a.module_.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), b.module_.state_dict()[key].numpy())
    Z = a.transform(mapped)
    assert Z.dtype == np.float32
    np.testing.assert_array_equal(Z, b.transform(X))
    np.testing.assert_array_equal(a.score_samples(mapped), b.score_samples(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("cls", ALL)
def test_sliceable_array_is_never_read_whole(cls, small_chunks, one_thread):
    """fit, transform and score read a sliceable array in bounded pieces: the
    rows of a chunk, a batch, or the few thousand rows the scaling reads."""
    X = make_data(n=5000)  # more rows than the 4096 the scaling reads
    data = SlicedOnly(X)
    # the VAE's 64 importance draws would make the small chunks one row each
    draws = {"n_importance": 8} if cls is VariationalAutoencoder else {}
    est = model(cls, batch_size=100, **draws).fit(data)
    Z = est.transform(data)
    scores = est.score_samples(data)
    assert data.largest <= 4096 < len(X)
    assert Z.shape == (len(X), 2) and np.isfinite(scores).all()
    np.testing.assert_allclose(Z, est.transform(X), rtol=1e-12, atol=1e-12)


def test_bad_rows_in_an_out_of_core_array_are_named(tmp_path):
    X = make_data()
    X[2000, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LinearAutoencoder().fit(SlicedOnly(X))
    est = LinearAutoencoder().fit(make_data())
    with pytest.raises(ValueError, match="NaN"):
        est.transform(SlicedOnly(X))
    with pytest.raises(ValueError, match="8 features"):
        est.transform(SlicedOnly(X[:, :5]))
    with pytest.raises(ValueError, match="0 sample"):
        LinearAutoencoder().fit(SlicedOnly(X[:0]))


def test_integer_memmap_trains_in_float64(tmp_path):
    X = np.rint(make_data() * 10).astype(np.int16)
    path = tmp_path / "X.i16"
    X.tofile(path)
    mapped = np.memmap(path, dtype=np.int16, mode="r", shape=X.shape)
    est = LinearAutoencoder(n_components=2).fit(mapped)
    assert est.transform(mapped).dtype == np.float64
    np.testing.assert_allclose(est.transform(mapped), est.transform(X.astype(float)))


# ----------------------------------------------------------------- compute dtype
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("cls", ALL)
def test_float32_compute_keeps_the_inputs_dtype_outside(cls, one_thread):
    X = make_data()
    est = model(cls, compute_dtype="float32").fit(X)
    assert all(p.dtype == torch.float32 for p in est.module_.parameters())
    assert est.transform(X).dtype == np.float64
    assert est.inverse_transform(est.transform(X)).dtype == np.float64
    assert est.sample(3, random_state=0).dtype == np.float64
    assert est.score_samples(X).dtype == np.float64
    exact = model(cls).fit(X)
    assert all(p.dtype == torch.float64 for p in exact.module_.parameters())
    # the same model up to float32 rounding, which steers a short training run
    # a little (measured: 0.8% after 3 epochs of the Autoencoder)
    rel = 1e-5 if cls is LinearAutoencoder else 0.03
    assert est.score(X) == pytest.approx(exact.score(X), rel=rel)


def test_float64_compute_trains_float32_data_in_float64():
    X = make_data().astype(np.float32)
    est = LinearAutoencoder(compute_dtype="float64").fit(X)
    assert est.module_.decoder.linear.weight.dtype == torch.float64
    assert est.transform(X).dtype == np.float32


def test_compute_dtype_is_validated():
    with pytest.raises(ValueError, match="compute_dtype"):
        Autoencoder(compute_dtype="float16").fit(make_data())


# ----------------------------------------------------------- inference placement
def test_a_device_copy_leaves_the_fitted_module_alone():
    est = LinearAutoencoder(n_components=2).fit(make_data())
    before = {k: v.clone() for k, v in est.module_.state_dict().items()}
    copy = on_device(est.module_, torch.device("meta"))
    assert copy is not est.module_
    assert all(p.device.type == "meta" for p in copy.parameters())
    assert all(p.device.type == "cpu" for p in est.module_.parameters())
    for key, value in est.module_.state_dict().items():
        assert torch.equal(value, before[key])
    assert on_device(est.module_, torch.device("cpu")) is est.module_  # no copy needed


def _concurrent_transforms(est, X, n_threads=4):
    results = [None] * n_threads

    def work(i):
        results[i] = est.transform(X)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_threads_share_a_fitted_model():
    X = make_data()
    est = model(Autoencoder).fit(X)
    expected = est.transform(X)
    for result in _concurrent_transforms(est, X):
        np.testing.assert_array_equal(result, expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_gpu_inference_races_no_thread_and_keeps_weights_on_the_cpu():
    X = make_data()
    est = model(Autoencoder, device="cuda").fit(X)
    expected = est.transform(X)
    for result in _concurrent_transforms(est, X, n_threads=8):
        np.testing.assert_allclose(result, expected, rtol=1e-12)
    assert all(p.device.type == "cpu" for p in est.module_.parameters())
