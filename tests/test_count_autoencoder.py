"""Autoencoder(loss="poisson"): counts trained on the Poisson family's likelihood."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from scipy import stats
from sklearn.base import clone

from skvae import Autoencoder, LinearAutoencoder

# short fits on purpose: what is tested holds from the first epochs
pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.usefixtures("one_thread"),  # see conftest.single_thread
]

K = 3


def low_rank_counts(n=1000, d=30, k=K, seed=0):
    """Counts from a low-rank Poisson model: log-rates Z W + b, Z ~ N(0, I_k)."""
    rng = np.random.RandomState(seed)
    Z = rng.standard_normal((n, k))
    W = 0.6 * rng.standard_normal((k, d))
    b = rng.uniform(0.0, 2.0, d)
    return rng.poisson(np.exp(Z @ W + b)).astype(np.float64)


def _ae(**params):
    defaults = dict(n_components=K, hidden_layer_sizes=(16,), random_state=0, max_iter=60)
    return Autoencoder(**{**defaults, **params})


def _poisson_loglik(X, rates):
    return stats.poisson.logpmf(X, np.maximum(rates, 1e-10)).sum(axis=1)


@pytest.fixture(scope="module")
def split():
    X = low_rank_counts()
    return X[:750], X[750:]


@pytest.fixture(scope="module")
def fitted(split):
    return _ae(loss="poisson").fit(split[0])


def test_beats_its_start_and_the_squared_error_autoencoder(split, fitted):
    """Held out, the Poisson loss's rates are likelier than its PCA start's and
    than the squared-error Autoencoder's (both scored as Poisson rates)."""
    train, test = split
    start = _ae(loss="poisson", max_iter=1, learning_rate=1e-12).fit(train)
    squared = _ae().fit(train)
    rates = squared.inverse_transform(squared.transform(test))
    trained, at_start = fitted.score(test), start.score(test)
    assert fitted.best_validation_score_ >= fitted.validation_scores_[0]
    assert trained > at_start + 1.0
    assert trained > _poisson_loglik(test, rates).mean() + 1.0


def test_scores_are_the_poisson_log_likelihood_of_the_decoded_rates(split, fitted):
    test = split[1][:50]
    rates = fitted.inverse_transform(fitted.transform(test))
    assert rates.min() > 0 and np.isfinite(rates).all()
    expected = _poisson_loglik(test, rates)
    np.testing.assert_allclose(fitted.score_samples(test), expected, rtol=1e-10)
    assert fitted.score(test) == pytest.approx(expected.mean(), rel=1e-10)
    np.testing.assert_allclose(fitted.score_features(test).sum(1), expected, rtol=1e-10)
    # what the validation held out is scored alike: nats per row, as score
    assert fitted.best_validation_score_ == pytest.approx(max(fitted.validation_scores_))


def test_the_start_is_pca_of_log1p_with_each_features_total(split):
    """At the start the encoder is PCA of the log1p counts, and the decoded
    rates sum, feature by feature, to the training counts."""
    from sklearn.decomposition import PCA

    train = split[0]
    start = _ae(loss="poisson", max_iter=1, learning_rate=1e-12, early_stopping=False)
    start.fit(train)
    rates = start.inverse_transform(start.transform(train))
    np.testing.assert_allclose(rates.sum(0), train.sum(0), rtol=1e-3)
    pca = PCA(K).fit(np.log1p(train))
    codes = start.transform(train)
    # the same subspace: PCA's scores are a linear map of the codes
    coef, *_ = np.linalg.lstsq(codes, pca.transform(np.log1p(train)), rcond=None)
    np.testing.assert_allclose(codes @ coef, pca.transform(np.log1p(train)), atol=1e-4)


def test_sample_draws_counts(fitted):
    draws = fitted.sample(200, random_state=0)
    assert draws.min() >= 0
    np.testing.assert_array_equal(draws, np.round(draws))
    means = fitted.sample(200, random_state=0, noise=False)
    assert means.min() > 0 and not np.array_equal(means, np.round(means))
    assert fitted.noise_variance_ is None


@pytest.mark.parametrize("bad, match", [(-1.0, "negative"), (0.5, "non-integer"), (np.nan, "NaN")])
def test_refuses_what_is_not_counts(split, fitted, bad, match):
    X = split[1][:60].copy()
    X[3, 2] = bad
    pattern = f"loss='poisson'.*{match}"  # NaN too: the loss is named, not an imputer
    with pytest.raises(ValueError, match=pattern):
        _ae(loss="poisson", max_iter=2).fit(X)
    with pytest.raises(ValueError, match=pattern):
        fitted.score_samples(X)
    with pytest.raises(ValueError, match=pattern):
        clone(fitted).set_params(max_iter=1).partial_fit(X)


def test_missing_entries_stay_with_squared_error(fitted):
    assert Autoencoder().__sklearn_tags__().input_tags.allow_nan
    assert not Autoencoder(loss="poisson").__sklearn_tags__().input_tags.allow_nan
    assert not fitted.__sklearn_tags__().input_tags.allow_nan


def test_loss_is_a_network_parameter(split, fitted):
    est = pickle.loads(pickle.dumps(fitted))
    with pytest.raises(ValueError, match="partial_fit cannot change loss"):
        est.set_params(loss="squared_error").partial_fit(split[0])
    with pytest.raises(ValueError, match="loss"):
        Autoencoder(loss="gaussian").fit(split[0])
    assert "loss" not in LinearAutoencoder().get_params()


def test_squared_error_is_the_default_and_unchanged(split):
    X = split[0] / 10
    default = _ae(max_iter=3).fit(X)
    named = _ae(max_iter=3, loss="squared_error").fit(X)
    np.testing.assert_array_equal(default.transform(X), named.transform(X))
    assert default.noise_variance_ > 0


def test_save_load_round_trip(split, fitted, tmp_path):
    pytest.importorskip("safetensors")
    import skvae

    test = split[1]
    path = tmp_path / "ae.safetensors"
    skvae.save(fitted, path)
    loaded = skvae.load(path)
    assert loaded.loss == "poisson" and loaded.noise_variance_ is None
    np.testing.assert_array_equal(loaded.transform(test), fitted.transform(test))
    np.testing.assert_array_equal(loaded.score_samples(test), fitted.score_samples(test))
    np.testing.assert_array_equal(
        loaded.sample(5, random_state=1), fitted.sample(5, random_state=1)
    )
    with pytest.raises(ValueError, match="loss='poisson'.*negative"):
        loaded.score_samples(-test)


def test_files_from_before_the_loss_load_as_squared_error(split, tmp_path):
    """A file written before ``loss`` existed (no such parameter) loads as the
    squared-error model it holds."""
    safe_open = pytest.importorskip("safetensors").safe_open
    save_file = pytest.importorskip("safetensors.numpy").save_file
    import skvae
    from skvae._persistence import _digest

    X = split[0] / 10
    est = _ae(max_iter=3).fit(X)
    path = tmp_path / "ae.safetensors"
    skvae.save(est, path)
    with safe_open(str(path), framework="np") as f:
        header = json.loads(f.metadata()["skvae"])
        arrays = {k: f.get_tensor(k) for k in f.keys()}
    del header["params"]["loss"]
    del header["state"]["network_params"]["__dict__"]["loss"]  # a JSON-encoded dict
    payload = json.dumps(header)
    metadata = {"skvae": payload, "skvae_sha256": _digest(payload, arrays)}
    save_file(arrays, str(path), metadata=metadata)
    loaded = skvae.load(path)
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))
    assert loaded.partial_fit(X).n_iter_ == est.n_iter_ + 1


def test_onnx_exports_codes_and_rates(split, fitted):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from skvae.onnx import export_decoder, export_encoder

    test = split[1][:40]

    def run(model, inputs):
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        return session.run(None, {session.get_inputs()[0].name: inputs})[0]

    codes = run(export_encoder(fitted, dtype=np.float64), test)
    np.testing.assert_allclose(codes, fitted.transform(test), rtol=0, atol=1e-8)
    rates = run(export_decoder(fitted, dtype=np.float64), codes)
    assert rates.min() > 0
    np.testing.assert_allclose(rates, fitted.inverse_transform(codes), rtol=1e-8)
