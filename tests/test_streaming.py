"""partial_fit: streaming over chunks, as scikit-learn's incremental estimators do."""

import pickle
import re
import warnings

import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning

from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder

from .conftest import assert_at_pca

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.single_thread

X_DIGITS = load_digits().data
DEEP = (Autoencoder, VariationalAutoencoder)


def small(cls, **params):
    """A deep model small enough for a few passes in a test."""
    return cls(n_components=4, hidden_layer_sizes=(32,), random_state=0, **params)


def weights(est):
    return {k: v.clone() for k, v in est.module_.state_dict().items()}


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_array_equal(wa[key].numpy(), wb[key].numpy(), err_msg=key)


# ---------------------------------------------------------------- linear: exact
@pytest.mark.parametrize("n_chunks", [1, 7, 40])
def test_linear_stream_spans_pcas_subspace(n_chunks):
    """One pass over the chunks gives PCA's subspace of all the rows (< 0.01 deg),
    and its probabilistic model: noise variance and log-likelihood."""
    lin = LinearAutoencoder(n_components=6)
    for chunk in np.array_split(X_DIGITS, n_chunks):
        lin.partial_fit(chunk)
    pca = PCA(n_components=6).fit(X_DIGITS)
    angle = np.degrees(subspace_angles(lin.components_.T, pca.components_.T)).max()
    assert angle < 0.01
    np.testing.assert_allclose(lin.components_, pca.components_, atol=1e-8)
    np.testing.assert_allclose(lin.explained_variance_, pca.explained_variance_, rtol=1e-9)
    assert lin.noise_variance_ == pytest.approx(pca.noise_variance_, rel=1e-9)
    assert lin.score(X_DIGITS) == pytest.approx(pca.score(X_DIGITS), rel=1e-9)
    assert lin.n_samples_ == len(X_DIGITS)
    assert lin.n_iter_ == n_chunks and len(lin.loss_curve_) == n_chunks


def test_linear_partial_fit_after_fit_continues_from_fit():
    half = len(X_DIGITS) // 2
    lin = LinearAutoencoder(n_components=5).fit(X_DIGITS[:half]).partial_fit(X_DIGITS[half:])
    whole = LinearAutoencoder(n_components=5).fit(X_DIGITS)
    np.testing.assert_allclose(lin.components_, whole.components_, atol=1e-8)
    assert lin.n_samples_ == len(X_DIGITS)


def test_linear_stream_resolves_mle_on_all_rows_seen():
    rng = np.random.RandomState(0)
    X = rng.randn(600, 5) @ rng.randn(5, 20) + 0.3 * rng.randn(600, 20)
    lin = LinearAutoencoder(n_components="mle")
    for chunk in np.array_split(X, 6):
        lin.partial_fit(chunk)
    assert lin.n_components_ == PCA(n_components="mle").fit(X).n_components_ == 5


def test_linear_stream_refuses_more_components_than_rows_seen():
    with pytest.raises(ValueError, match="n_components=5 must be at most"):
        LinearAutoencoder(n_components=5).partial_fit(X_DIGITS[:3])


# ------------------------------------------------------------ deep: one pass each
@pytest.mark.parametrize("cls", DEEP)
def test_first_call_starts_at_pca_of_the_chunk(cls, one_thread):
    """With a learning rate of (almost) zero, one pass leaves PCA's start: the
    Autoencoder reconstructs as PCA of the first chunk does."""
    chunk = X_DIGITS[:300]
    est = small(cls, learning_rate=1e-12).partial_fit(chunk)
    assert_at_pca(est, PCA(n_components=4).fit(chunk), chunk, atol=1e-6, rel=1e-6)


@pytest.mark.parametrize("cls", DEEP)
def test_passes_keep_weights_and_optimiser_state(cls, one_thread):
    """Each call is one pass of Adam that continues the last one: the step count
    runs on, the history grows, and more passes fit the stream better."""
    chunks = np.array_split(X_DIGITS[:1200], 4)
    est = small(cls, batch_size=100)
    errors = []
    for _ in range(3):
        for chunk in chunks:
            est.partial_fit(chunk)
        recon = est.inverse_transform(est.transform(X_DIGITS[:1200]))
        errors.append(np.mean((recon - X_DIGITS[:1200]) ** 2))
    steps = {int(s["step"]) for s in est._optimizer_state["state"].values()}
    assert steps == {3 * 12}  # 3 passes over 4 chunks of 300 rows, batches of 100
    assert est.n_iter_ == 12 and len(est.loss_curve_) == 12
    assert est.validation_scores_ is None
    assert errors[-1] < errors[0]


@pytest.mark.parametrize("cls", DEEP)
def test_stream_survives_pickling_between_calls(cls, one_thread):
    """Dask hands the estimator from worker to worker: a pickle between calls
    must change nothing (weights and optimiser state both travel)."""
    chunks = np.array_split(X_DIGITS[:600], 3)
    straight = small(cls)
    for chunk in chunks:
        straight.partial_fit(chunk)
    travelled = small(cls)
    for chunk in chunks:
        travelled = pickle.loads(pickle.dumps(travelled.partial_fit(chunk)))
    assert_same_weights(straight, travelled)


@pytest.mark.parametrize("cls", DEEP)
def test_same_stream_same_model(cls, one_thread):
    a, b = small(cls), small(cls)
    for chunk in np.array_split(X_DIGITS[:400], 2):
        a.partial_fit(chunk)
        b.partial_fit(chunk)
    assert_same_weights(a, b)


@pytest.mark.parametrize("cls", DEEP)
def test_partial_fit_after_fit_continues(cls, one_thread):
    est = small(cls, max_iter=3, early_stopping=False)
    with pytest.warns(Warning):  # ConvergenceWarning: max_iter=3
        est.fit(X_DIGITS[:300])
    assert est._optimizer_state is None  # fit keeps no Adam state: pickles stay small
    before = weights(est)
    est.partial_fit(X_DIGITS[300:600])
    assert est._optimizer_state is not None  # a stream carries it
    assert est.n_iter_ == 4 and len(est.loss_curve_) == 4
    assert any(not np.array_equal(before[k], v) for k, v in weights(est).items())


@pytest.mark.parametrize("cls", (LinearAutoencoder, *DEEP))
@pytest.mark.parametrize("y", [None, (None,), np.arange(100), "anything"])
def test_y_is_ignored_whatever_it_is(cls, y, one_thread):
    """dask-ml passes y as a tuple when there is none."""
    est = cls(n_components=2) if cls is LinearAutoencoder else small(cls)
    est.partial_fit(X_DIGITS[:100], y).partial_fit(X_DIGITS[100:200], y)
    assert est.transform(X_DIGITS[:5]).shape == (5, est.n_components_)


@pytest.mark.parametrize("cls", (LinearAutoencoder, *DEEP))
def test_a_failed_call_changes_nothing(cls, one_thread):
    est = cls(n_components=2) if cls is LinearAutoencoder else small(cls)
    est.partial_fit(X_DIGITS[:200])
    before, n_iter = weights(est), est.n_iter_
    bad = X_DIGITS[200:300].copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.partial_fit(bad)
    with pytest.raises(ValueError, match="64 features"):
        est.partial_fit(X_DIGITS[200:300, :10])
    assert est.n_iter_ == n_iter
    for key, value in weights(est).items():
        np.testing.assert_array_equal(before[key].numpy(), value.numpy())


@pytest.mark.parametrize("cls", DEEP)
def test_later_chunks_take_the_models_dtype(cls, one_thread):
    est = small(cls).partial_fit(X_DIGITS[:200].astype(np.float32))
    est.partial_fit(X_DIGITS[200:400])  # float64 chunk into a float32 model
    assert next(est.module_.parameters()).dtype.is_floating_point
    assert str(next(est.module_.parameters()).dtype) == "torch.float32"
    assert est.transform(X_DIGITS[:3]).dtype == np.float64


# ------------------------------------------- parameters that fix the networks
NETWORK_CHANGES = [
    (Autoencoder, "n_components", 3, 4),
    (Autoencoder, "hidden_layer_sizes", [16], (32,)),
    (Autoencoder, "activation", "tanh", "relu"),
    (Autoencoder, "compute_dtype", "float32", "float64"),
    (VariationalAutoencoder, "n_components", 5, 4),
    (VariationalAutoencoder, "n_components", "auto", 4),
    (VariationalAutoencoder, "hidden_layer_sizes", (), (32,)),
    (VariationalAutoencoder, "likelihood", "bernoulli", "gaussian"),
    (VariationalAutoencoder, "decoder_variance", 0.5, "learned"),
    (LinearAutoencoder, "compute_dtype", "float32", "float64"),
]


@pytest.mark.parametrize(
    "cls, name, new, fitted", NETWORK_CHANGES, ids=lambda v: getattr(v, "__name__", repr(v))
)
@pytest.mark.parametrize("how", ["fit", "partial_fit"])
def test_partial_fit_refuses_parameters_that_describe_other_networks(
    cls, name, new, fitted, how, one_thread
):
    # As IncrementalPCA refuses a new n_components: training on would keep
    # the networks these parameters no longer describe, under their name.
    X = X_DIGITS[:100] / 16
    est = cls(n_components=4, random_state=0, compute_dtype="float64")
    if cls is not LinearAutoencoder:
        est.set_params(hidden_layer_sizes=(32,), max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        getattr(est, how)(X)
    before, n_iter = weights(est), est.n_iter_
    est.set_params(**{name: new})
    was, now = re.escape(repr(fitted)), re.escape(repr(new))
    message = rf"partial_fit cannot change {name}: .*{name}={was}, .* now {now}"
    if name == "compute_dtype":
        message = rf"cannot change compute_dtype: .* built in {fitted}, .* now {now}"
    with pytest.raises(ValueError, match=message):
        est.partial_fit(X)
    assert est.n_iter_ == n_iter
    assert_same_weights_as(est, before)
    est.set_params(**{name: fitted}).partial_fit(X)  # set back: it trains on
    assert est.n_iter_ == n_iter + 1


def assert_same_weights_as(est, state):
    for key, value in weights(est).items():
        np.testing.assert_array_equal(state[key].numpy(), value.numpy(), err_msg=key)


@pytest.mark.parametrize("cls", DEEP)
def test_partial_fit_takes_parameters_that_keep_the_networks(cls, one_thread):
    # the width the model has, as an int; hidden sizes as another sequence;
    # training parameters; compute_dtype=None (the model's dtype)
    est = small(cls, compute_dtype="float32").partial_fit(X_DIGITS[:100])
    est.set_params(
        n_components=np.int64(4),
        hidden_layer_sizes=[32],
        batch_size=16,
        weight_decay=0.1,
        compute_dtype=None,
    )
    est.partial_fit(X_DIGITS[100:200])
    assert est.n_iter_ == 2


def test_linear_partial_fit_follows_a_new_width():
    # LinearAutoencoder rebuilds its model from the moments of all the rows at
    # every call: a new n_components applies, as if the stream had used it
    est = LinearAutoencoder(n_components=2).partial_fit(X_DIGITS[:100])
    est.set_params(n_components=5, whiten=True).partial_fit(X_DIGITS[100:300])
    whole = LinearAutoencoder(n_components=5, whiten=True).partial_fit(X_DIGITS[:300])
    assert est.components_.shape == (5, 64)
    np.testing.assert_allclose(est.transform(X_DIGITS), whole.transform(X_DIGITS), atol=1e-8)


@pytest.mark.parametrize("cls", [Autoencoder, VariationalAutoencoder])
def test_partial_fit_uses_the_learning_rate_of_the_call(cls):
    """Adam's moments carry over between calls; its step size is the current one."""
    X = np.random.RandomState(0).normal(size=(200, 6))
    est = cls(n_components=2, hidden_layer_sizes=(8,), random_state=0).partial_fit(X)
    before = [p.detach().clone() for p in est.module_.parameters()]
    est.set_params(learning_rate=1e-300).partial_fit(X)
    after = list(est.module_.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    est.set_params(learning_rate=1e-2).partial_fit(X)
    assert not all(
        torch.equal(a, b) for a, b in zip(before, est.module_.parameters(), strict=True)
    )
