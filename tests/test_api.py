"""The estimators used the way people use PCA: pipelines, grid search, pandas, pickles."""

import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder

from .conftest import ESTIMATORS, small

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.single_thread


def test_public_names():
    import skvae

    assert set(skvae.__all__) >= {
        "LinearAutoencoder",
        "Autoencoder",
        "VariationalAutoencoder",
        "__version__",
    }
    assert isinstance(skvae.__version__, str) and skvae.__version__.count(".") >= 2


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_pipeline_on_digits_classifies_well(cls, digits):
    X, y = digits
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    pipe = make_pipeline(
        StandardScaler(),
        small(cls, n_components=16, max_iter=100),
        LogisticRegression(max_iter=500),
    )
    pipe.fit(X_train, y_train)
    # 16 codes keep enough of the digits for a linear classifier (chance: 0.1)
    assert pipe.score(X_test, y_test) > 0.8


def test_grid_search_over_latent_size_picks_more_components_for_ae(digits):
    X, _ = digits
    search = GridSearchCV(LinearAutoencoder(random_state=0), {"n_components": [2, 5, 10]}, cv=3)
    search.fit(X)
    # score is minus the reconstruction error: more components reconstruct better
    assert search.best_params_ == {"n_components": 10}
    means = search.cv_results_["mean_test_score"]
    assert np.all(np.diff(means) > 0)


def test_grid_search_over_latent_size_in_a_pipeline(digits):
    X, y = digits
    pipe = make_pipeline(StandardScaler(), small(Autoencoder), LogisticRegression(max_iter=300))
    search = GridSearchCV(pipe, {"autoencoder__n_components": [2, 12]}, cv=3)
    search.fit(X[:600], y[:600])
    assert search.best_params_ == {"autoencoder__n_components": 12}


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_set_output_pandas(cls, blobs):
    columns = [f"f{i}" for i in range(blobs.shape[1])]
    df = pd.DataFrame(blobs, columns=columns)
    est = small(cls, n_components=3).set_output(transform="pandas")
    Z = est.fit_transform(df)
    assert isinstance(Z, pd.DataFrame)
    prefix = cls.__name__.lower()
    assert list(Z.columns) == [f"{prefix}{i}" for i in range(3)]
    assert list(est.feature_names_in_) == columns
    np.testing.assert_allclose(Z.to_numpy(), est.set_output(transform="default").transform(df))


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("dumps, loads", [(pickle.dumps, pickle.loads), ("joblib", "joblib")])
def test_pickle_round_trip(cls, dumps, loads, blobs, tmp_path):
    est = small(cls, n_components=2).fit(blobs)
    if dumps == "joblib":
        path = tmp_path / "model.joblib"
        joblib.dump(est, path)
        restored = joblib.load(path)
    else:
        restored = loads(dumps(est))
    np.testing.assert_array_equal(restored.transform(blobs), est.transform(blobs))
    Z = est.transform(blobs)
    np.testing.assert_array_equal(restored.inverse_transform(Z), est.inverse_transform(Z))
    np.testing.assert_array_equal(
        restored.sample(3, random_state=1), est.sample(3, random_state=1)
    )


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_clone_is_unfitted_with_same_params(cls, blobs):
    est = small(cls, n_components=3).fit(blobs)
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    assert not hasattr(copy, "module_")


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(cls, dtype, blobs):
    X = blobs.astype(dtype)
    est = small(cls, n_components=2).fit(X)
    Z = est.transform(X)
    assert Z.dtype == dtype
    assert est.inverse_transform(Z).dtype == dtype
    assert est.sample(4).dtype == dtype
    # a float64 model keeps float32 data float32 on the way out, and vice versa
    other = np.float64 if dtype == np.float32 else np.float32
    assert est.transform(X.astype(other)).dtype == other


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_sample_shapes_and_seed(cls, blobs):
    est = small(cls, n_components=2).fit(blobs)
    S = est.sample(7, random_state=0)
    assert S.shape == (7, blobs.shape[1])
    assert np.all(np.isfinite(S))
    np.testing.assert_array_equal(S, est.sample(7, random_state=0))
    assert not np.allclose(S, est.sample(7, random_state=1))
    assert est.sample().shape == (1, blobs.shape[1])
    with pytest.raises(ValueError, match="n_samples"):
        est.sample(0)


@pytest.mark.parametrize("cls", [LinearAutoencoder, Autoencoder])
def test_point_autoencoders_sample_from_gaussian_of_codes(cls, blobs):
    est = small(cls, n_components=2, max_iter=200).fit(blobs)
    Z = est.transform(blobs)
    np.testing.assert_allclose(est.latent_mean_, Z.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(
        est.latent_covariance_, np.cov(Z, rowvar=False), rtol=1e-6, atol=1e-12
    )
    # decoded samples follow the spread of the reconstructions
    S = est.sample(4000, random_state=0)
    R = est.inverse_transform(Z)
    np.testing.assert_allclose(S.mean(axis=0), R.mean(axis=0), atol=0.25 * R.std())


def test_vae_samples_decode_prior_draws(blobs):
    vae = small(VariationalAutoencoder, n_components=2).fit(blobs)
    z = np.random.RandomState(3).standard_normal((5, 2))
    means = vae.sample(5, random_state=3, noise=False)
    np.testing.assert_allclose(means, vae.inverse_transform(z))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_fitted_attributes(cls, blobs):
    est = small(cls, n_components=2).fit(blobs)
    assert est.n_features_in_ == blobs.shape[1]
    assert est.n_iter_ == len(est.loss_curve_) >= 1
    if cls is LinearAutoencoder:  # ALS: no rows held out
        assert est.best_loss_ == pytest.approx(min(est.loss_curve_))
        assert est.validation_scores_ is None
    else:  # held-out rows decide, as in scikit-learn's MLPs
        assert est.best_loss_ is None
        # the start, then one score per epoch; the kept weights are the start's
        # or the best epoch's
        assert len(est.validation_scores_) == est.n_iter_ + 1
        kept = est.best_validation_score_
        assert kept in (est.validation_scores_[0], max(est.validation_scores_[1:]))
    assert list(est.get_feature_names_out()) == [f"{cls.__name__.lower()}{i}" for i in range(2)]
    # weights stay on the CPU between calls
    assert all(p.device.type == "cpu" for p in est.module_.parameters())


@pytest.mark.parametrize("cls", [Autoencoder, VariationalAutoencoder])
def test_early_stopping_records_validation_scores(cls, blobs):
    est = small(cls, early_stopping=True, max_iter=50, n_iter_no_change=3).fit(blobs)
    assert len(est.validation_scores_) == est.n_iter_ + 1  # the start, then each epoch
    assert np.all(np.isfinite(est.validation_scores_))
    off = small(cls, early_stopping=False, max_iter=5).fit(blobs)
    assert off.validation_scores_ is None and off.best_validation_score_ is None
    assert off.best_loss_ == pytest.approx(min(off.loss_curve_))


def test_autoencoder_score_is_minus_mse(blobs):
    ae = small(Autoencoder).fit(blobs)
    mse = np.mean((ae.inverse_transform(ae.transform(blobs)) - blobs) ** 2)
    assert ae.score(blobs) == pytest.approx(-mse)


def test_vae_score_is_mean_of_score_samples(blobs):
    vae = small(VariationalAutoencoder).fit(blobs)
    s = vae.score_samples(blobs)
    assert s.shape == (len(blobs),)
    assert vae.score(blobs) == pytest.approx(s.mean())


def test_hidden_layer_sizes_empty_makes_both_maps_linear(blobs):
    for cls in (Autoencoder, VariationalAutoencoder):
        est = cls(n_components=2, hidden_layer_sizes=(), max_iter=5, random_state=0).fit(blobs)
        linear = [m for m in est.module_.modules() if isinstance(m, __import__("torch").nn.Linear)]
        # Autoencoder: one layer each way; VAE: mean and variance heads plus decoder
        assert len(linear) == (2 if cls is Autoencoder else 3)


def test_device_cpu_and_unknown_device(blobs):
    est = small(Autoencoder, device="cpu").fit(blobs)
    assert est.transform(blobs).shape == (len(blobs), 2)
    with pytest.raises(ValueError, match="device"):
        small(Autoencoder, device="nonsense").fit(blobs)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_results_do_not_depend_on_where_the_data_sits(cls, blobs):
    """Like PCA, a constant offset shifts reconstructions and nothing else."""
    est = small(cls, n_components=2).fit(blobs)
    moved = small(cls, n_components=2).fit(blobs + 300.0)
    np.testing.assert_allclose(moved.transform(blobs + 300.0), est.transform(blobs), atol=1e-6)
    np.testing.assert_allclose(
        moved.inverse_transform(moved.transform(blobs + 300.0)) - 300.0,
        est.inverse_transform(est.transform(blobs)),
        atol=1e-6,
    )
    assert moved.score(blobs + 300.0) == pytest.approx(est.score(blobs), rel=1e-6)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_changing_parameters_after_fit_does_not_change_the_fitted_model(cls, blobs):
    est = small(cls, n_components=2).fit(blobs)
    Z, score = est.transform(blobs), est.score(blobs)
    est.set_params(n_components=3)
    if cls is VariationalAutoencoder:
        est.set_params(likelihood="bernoulli", beta=0.1)
    np.testing.assert_array_equal(est.transform(blobs), Z)
    assert est.score(blobs) == score
    assert len(est.get_feature_names_out()) == 2


def test_bernoulli_vae_has_no_noise_variance_even_after_a_gaussian_fit(digits):
    X, _ = digits
    vae = small(VariationalAutoencoder).fit(X)
    assert vae.noise_variance_ > 0
    vae.set_params(likelihood="bernoulli").fit(X)
    assert vae.noise_variance_ is None
    recon = vae.inverse_transform(vae.transform(X[:5]))
    assert np.all((recon >= 0) & (recon <= 1))
