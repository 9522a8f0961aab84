"""LinearAutoencoder offers PCA's whole interface, with PCA's figures (issue 12).

A port of the relevant parts of scikit-learn's
``sklearn/decomposition/tests/test_pca.py``, against
``PCA(svd_solver="full")``. Tolerances: every figure matches PCA's to 1e-6
relative, measured on an array as ``max |a - b| <= 1e-6 * max |b|`` (an
entrywise relative test would fail on entries that are zero up to rounding).
LinearAutoencoder works from float64 moments, so on float32 data it matches
PCA run on the same data cast to float64; PCA's float32 arithmetic is the
looser of the two on ill-conditioned data.
"""

import warnings

import numpy as np
import pytest
from scipy import linalg
from sklearn.datasets import load_digits, load_iris, make_classification
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV, cross_val_score

from skvae import LinearAutoencoder

RTOL = 1e-6


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest


IRIS = load_iris().data
DIGITS = load_digits().data


def _close(actual, desired, rtol=RTOL, scale=None):
    """``max |actual - desired| <= rtol * scale``, by default ``max |desired|``.

    Pass the scale of the data for figures that are zero up to rounding.
    """
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape
    error = np.max(np.abs(actual - desired), initial=0.0)
    if scale is None:
        scale = np.max(np.abs(desired), initial=0.0)
    assert error <= rtol * scale, f"max error {error:.3g} vs scale {scale:.3g}"


def _both(X, n_components, **params):
    lae = LinearAutoencoder(n_components=n_components, random_state=0, **params).fit(X)
    pca = PCA(n_components=n_components, svd_solver="full", **params).fit(X)
    return lae, pca


def _tall(seed=0):
    rng = np.random.RandomState(seed)
    return rng.randn(300, 10) @ rng.randn(10, 10) + rng.randn(10)


def _wide(seed=0):
    rng = np.random.RandomState(seed)
    return rng.randn(30, 8) @ rng.randn(8, 60) + 0.1 * rng.randn(30, 60)


def _spiked(n_samples=500, n_features=25, rank=5, sigma=1.0, seed=42):
    """scikit-learn's PCA-vs-FA example: rank-5 data plus homoscedastic noise."""
    rng = np.random.RandomState(seed)
    U, _, _ = linalg.svd(rng.randn(n_features, n_features))
    X = rng.randn(n_samples, rank) @ U[:, :rank].T
    return X + sigma * rng.randn(n_samples, n_features)


DATA = {"tall": _tall(), "wide": _wide(), "spiked": _spiked(), "digits": DIGITS}


@pytest.mark.parametrize(
    "name, n_components",
    [
        ("tall", 1),
        ("tall", 4),
        ("tall", None),
        ("tall", 0.9),
        ("tall", "mle"),
        ("wide", 3),
        ("wide", 0.8),
        ("wide", 20),
        ("spiked", 5),
        ("spiked", "mle"),
        ("digits", 10),
        ("digits", 0.5),
    ],
)
def test_figures_match_pca(name, n_components):
    X = DATA[name]
    lae, pca = _both(X, n_components)
    assert lae.n_components_ == pca.n_components_
    assert lae.n_samples_ == pca.n_samples_ == len(X)
    for attribute in (
        "explained_variance_",
        "explained_variance_ratio_",
        "singular_values_",
        "noise_variance_",
        "mean_",
        "components_",
    ):
        _close(getattr(lae, attribute), getattr(pca, attribute))
    _close(lae.get_covariance(), pca.get_covariance())
    _close(lae.get_precision(), pca.get_precision())
    _close(lae.score_samples(X), pca.score_samples(X))
    assert lae.score(X) == pytest.approx(pca.score(X), rel=RTOL)
    X_new = X + 0.5 * np.random.RandomState(1).randn(*X.shape)  # rows the fit did not see
    assert lae.score(X_new) == pytest.approx(pca.score(X_new), rel=RTOL)


def test_float32_scores_match_pca():
    X = (np.random.RandomState(0).randn(400, 6) * [5, 4, 3, 2, 1, 1]).astype(np.float32)
    lae, pca = _both(X, 3)
    s = lae.score_samples(X)
    assert s.dtype == np.float32
    assert lae.get_covariance().dtype == lae.get_precision().dtype == np.float32
    _close(s, pca.score_samples(X))
    assert lae.score(X) == pytest.approx(pca.score(X), rel=RTOL)
    # ill-conditioned float32 data (standard deviations from 1 to 1e-3): PCA's
    # float32 score is off by 5e-4 relative; LinearAutoencoder's matches PCA's
    # on the data cast to float64 to 2e-9 (its mean_ is float32)
    rng = np.random.RandomState(0)
    rotation = np.linalg.qr(rng.randn(10, 10))[0]
    X = ((rng.randn(300, 10) * np.logspace(0, -3, 10)) @ rotation + 5).astype(np.float32)
    lae = LinearAutoencoder(n_components=9, random_state=0).fit(X)
    exact = PCA(n_components=9, svd_solver="full").fit(X.astype(np.float64))
    assert lae.score(X) == pytest.approx(exact.score(X.astype(np.float64)), rel=1e-7)
    _close(lae.noise_variance_, exact.noise_variance_)


def test_precision_is_the_inverse_of_the_covariance():
    for k in (1, 5, 25):  # 25: no discarded direction, the covariance inverted outright
        lae = LinearAutoencoder(n_components=k, random_state=0).fit(DATA["spiked"])
        _close(lae.get_covariance() @ lae.get_precision(), np.eye(25), rtol=1e-10)


def test_pca_score():
    # test_pca_score: the log-likelihood of Gaussian data is its entropy
    n, p = 1000, 3
    rng = np.random.RandomState(0)
    X = rng.randn(n, p) * 0.1 + np.array([3, 4, 5])
    lae = LinearAutoencoder(n_components=2, random_state=0).fit(X)
    ll1 = lae.score(X)
    h = -0.5 * np.log(2 * np.pi * np.exp(1) * 0.1**2) * p
    np.testing.assert_allclose(ll1 / h, 1, rtol=5e-2)
    assert ll1 > lae.score(rng.randn(n, p) * 0.2 + np.array([3, 4, 5]))


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_held_out_score_selects_the_true_rank(rank):
    # test_pca_score3, for ranks 1 to 3: rank-r data plus unit noise in 6 features
    n, p = 200, 6
    rng = np.random.RandomState(rank)
    spread = rng.randn(rank, p) * 4
    Xl, Xt = (rng.randn(n, p) + rng.randn(n, rank) @ spread + np.arange(p) for _ in range(2))
    ll = {}
    for k in range(1, p):
        lae, pca = _both(Xl, k)
        ll[k] = lae.score(Xt)
        assert ll[k] == pytest.approx(pca.score(Xt), rel=RTOL)
    assert max(ll, key=ll.get) == rank


def test_grid_search_picks_pcas_rank():
    # scikit-learn's PCA-vs-FA model selection example: rank 5, homoscedastic noise
    X = _spiked()
    grid = {"n_components": [1, 3, 4, 5, 6, 8, 12, 20]}
    lae = GridSearchCV(LinearAutoencoder(random_state=0), grid, cv=3).fit(X)
    pca = GridSearchCV(PCA(svd_solver="full"), grid, cv=3).fit(X)
    assert lae.best_params_ == pca.best_params_ == {"n_components": 5}
    _close(lae.cv_results_["mean_test_score"], pca.cv_results_["mean_test_score"])
    # the same rank as Minka's MLE, and as PCA's cross-validated score
    assert LinearAutoencoder(n_components="mle").fit(X).n_components_ == 5
    k_best = max(grid["n_components"], key=lambda k: np.mean(cross_val_score(PCA(k), X, cv=3)))
    assert k_best == 5


def test_whitening():
    # test_whitening: low-rank data with correlated features of very unequal scales
    rng = np.random.RandomState(0)
    n_samples, n_features, n_components, rank = 100, 80, 30, 50
    X = rng.randn(n_samples, rank) @ (
        np.diag(np.linspace(10.0, 1.0, rank)) @ rng.randn(rank, n_features)
    )
    X[:, :50] *= 3
    lae, pca = _both(X, n_components, whiten=True)
    Z = lae.transform(X)
    np.testing.assert_allclose(Z.std(ddof=1, axis=0), np.ones(n_components))
    np.testing.assert_allclose(Z.mean(axis=0), np.zeros(n_components), atol=1e-12)
    _close(np.cov(Z, rowvar=False), np.eye(n_components), rtol=1e-10)  # uncorrelated
    _close(Z, pca.transform(X))
    _close(lae.inverse_transform(Z), pca.inverse_transform(pca.transform(X)))
    np.testing.assert_array_equal(lae.latent_covariance_, np.eye(n_components))
    # the subspace, the variances and the probabilistic model do not change
    plain = LinearAutoencoder(n_components=n_components, random_state=0).fit(X)
    np.testing.assert_array_equal(lae.components_, plain.components_)
    np.testing.assert_array_equal(lae.explained_variance_, plain.explained_variance_)
    np.testing.assert_array_equal(lae.get_covariance(), plain.get_covariance())
    unwhitened = PCA(n_components=n_components, svd_solver="full").fit(X)
    assert lae.score(X) == pytest.approx(unwhitened.score(X), rel=RTOL)
    # reconstructions are the same as without whitening, and samples lie on the plane
    _close(lae.inverse_transform(Z), plain.inverse_transform(plain.transform(X)))
    S = lae.sample(5, random_state=0, noise=False)
    _close(plain.inverse_transform(plain.transform(S)), S)


@pytest.mark.parametrize(
    "X, n_components, expected",
    [
        (IRIS, 0.95, 2),  # test_infer_dim_by_explained_variance
        (IRIS, 0.01, 1),
        (np.random.RandomState(0).rand(5, 20), 0.5, 2),  # wide
        (IRIS, np.cumsum(PCA().fit(IRIS).explained_variance_ratio_)[-2], 4),  # #15669
        (DIGITS, 0.8, None),  # None: whatever PCA picks
        (DIGITS, 0.9, None),
        (DIGITS, 0.99, None),
        (_wide(), 0.99, None),
    ],
)
def test_n_components_as_a_fraction_of_variance(X, n_components, expected):
    lae, pca = _both(X, n_components)
    assert lae.n_components == n_components
    assert lae.n_components_ == pca.n_components_
    if expected is not None:
        assert lae.n_components_ == expected
    _close(lae.explained_variance_ratio_, pca.explained_variance_ratio_)


def _mle_data():
    rng = np.random.RandomState(0)
    white = rng.randn(600, 10)  # test_n_components_mle
    one_cluster = rng.randn(100, 5) * 0.1  # test_pca_dim
    one_cluster[:10] += np.array([3, 4, 5, 1, 2])
    three = rng.randn(100, 5) * 0.1  # test_infer_dim_3
    three[:10] += np.array([3, 4, 5, 1, 2])
    three[10:20] += np.array([6, 0, 7, 2, -1])
    three[30:40] += 2 * np.array([-1, 1, -1, 1, -1])
    dependent = rng.randn(1000, 10)  # test_mle_simple_case
    dependent[:, -1] = np.mean(dependent[:, :-1], axis=-1)
    redundant, _ = make_classification(  # test_mle_redundant_data
        n_features=20,
        n_informative=1,
        n_repeated=18,
        n_redundant=1,
        n_clusters_per_class=1,
        random_state=42,
    )
    return [(white, 1), (one_cluster, 1), (three, 3), (dependent, 9), (redundant, 1)]


@pytest.mark.parametrize("X, expected", _mle_data())
def test_n_components_mle(X, expected):
    lae, pca = _both(X, "mle")
    assert lae.n_components == "mle"
    assert lae.n_components_ == pca.n_components_ == expected
    # on the data's scale: in two of the sets it is zero up to rounding
    _close(lae.noise_variance_, pca.noise_variance_, scale=pca.explained_variance_[0])


@pytest.mark.parametrize("X", [IRIS, IRIS.T])
def test_n_components_none(X):
    lae, pca = _both(X, None)
    assert lae.n_components_ == pca.n_components_ == min(X.shape)
    assert lae.noise_variance_ == pca.noise_variance_ == 0.0


def test_zero_noise_variance_edge_cases():
    # test_pca_zero_noise_variance_edge_cases: k == min(n_samples, n_features)
    X = np.random.RandomState(0).randn(100, 3) * 0.1 + np.array([3, 4, 5])
    for data in (X, X.T):
        lae = LinearAutoencoder(n_components=3, random_state=0).fit(data)
        assert lae.noise_variance_ == 0
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            lae.score(data)  # no division by zero
    lae, pca = _both(X, 3)  # k == n_features: a full-rank Gaussian, PCA's score
    assert lae.score(X) == pytest.approx(pca.score(X), rel=RTOL)


def test_noise_variance_is_at_most_the_kept_variances():
    # test_pca_sanity_noise_variance
    lae = LinearAutoencoder(n_components=30, random_state=0).fit(DIGITS)
    assert np.all(lae.explained_variance_ - lae.noise_variance_ >= 0)


def test_sample_with_noise_follows_the_model_covariance():
    X = DATA["spiked"]
    lae = LinearAutoencoder(n_components=5, random_state=0).fit(X)
    S = lae.sample(20000, random_state=0)
    model = lae.get_covariance()
    error = np.linalg.norm(np.cov(S, rowvar=False) - model) / np.linalg.norm(model)
    assert error < 0.05
    np.testing.assert_allclose(S.mean(axis=0), lae.mean_, atol=0.05 * np.sqrt(model.max()))
    # the same latent draws either way: the noise lies off the plane
    on_plane = lae.sample(20000, random_state=0, noise=False)
    np.testing.assert_allclose((S - on_plane) @ lae.components_.T, 0, atol=1e-10)


def test_sample_without_noise_lies_on_the_plane():
    lae = LinearAutoencoder(n_components=3, random_state=0).fit(DATA["tall"])
    S = lae.sample(200, random_state=0, noise=False)
    singular = np.linalg.svd(S - S.mean(axis=0), compute_uv=False)
    assert singular[3] < 1e-10 * singular[0]  # rank 3 after centring
    np.testing.assert_allclose(lae.inverse_transform(lae.transform(S)), S, atol=1e-10)
    assert lae.sample(3, random_state=0, noise=True).shape == (3, 10)


@pytest.mark.parametrize("bad", [1.5, 1.0, 0, -1, "foo", True])
def test_bad_n_components_name_themselves(bad):
    with pytest.raises(ValueError, match="n_components"):
        LinearAutoencoder(n_components=bad).fit(IRIS)


def test_mle_needs_as_many_samples_as_features():
    # test_fit_mle_too_few_samples: PCA refuses too
    X, _ = make_classification(n_samples=20, n_features=21, random_state=42)
    with pytest.raises(ValueError, match="n_components='mle' is only supported"):
        LinearAutoencoder(n_components="mle").fit(X)
    with pytest.raises(ValueError, match="n_components='mle' is only supported"):
        PCA(n_components="mle", svd_solver="full").fit(X)


def test_bad_whiten_names_itself():
    with pytest.raises(ValueError, match="whiten"):
        LinearAutoencoder(whiten="yes").fit(IRIS)


@pytest.mark.parametrize("how", ["fit", "partial_fit"])
@pytest.mark.parametrize("whiten", [False, True])
def test_fitted_arrays_keep_the_inputs_dtype_whatever_the_compute_dtype(how, whiten):
    # trained in float32 on float64 data: every array the model hands out is
    # float64, as its outputs are, and equal to a float64 fit's to float32 rounding
    X = IRIS.astype(np.float64)
    fast = LinearAutoencoder(n_components=2, whiten=whiten, compute_dtype="float32")
    full = LinearAutoencoder(n_components=2, whiten=whiten)
    getattr(fast, how)(X)
    getattr(full, how)(X)
    arrays = {
        name: value
        for name, value in vars(fast).items()
        if name.endswith("_") and isinstance(value, np.ndarray)
    }
    arrays.update(get_covariance=fast.get_covariance(), get_precision=fast.get_precision())
    assert {"components_", "explained_variance_", "mean_", "singular_values_"} <= arrays.keys()
    for name, value in arrays.items():
        assert value.dtype == np.float64, name
        want = getattr(full, name)() if name.startswith("get_") else getattr(full, name)
        _close(value, want, rtol=1e-4)
    assert isinstance(fast.noise_variance_, float)
    assert fast.sample(3, random_state=0).dtype == np.float64


def test_a_constant_feature_has_no_share_in_the_axes():
    """Digits' blank pixels vary not at all: every axis has exactly zero there,
    not the rounding noise of the order of the sums (which made a fit on two
    processes drift from one process's)."""
    X = load_digits().data
    constant = X.std(axis=0) == 0
    lae = LinearAutoencoder(5, random_state=0).fit(X)
    assert constant.any() and np.all(lae.components_[:, constant] == 0)
    assert np.allclose(lae.components_ @ lae.components_.T, np.eye(5))


def test_a_feature_in_tiny_units_keeps_its_share_in_the_axes():
    """A feature that varies 1e-9 as much as the others is not a constant one:
    its entries in the axes are PCA's, so it is reconstructed as PCA does."""
    rng = np.random.RandomState(0)
    X = rng.randn(300, 6) @ rng.randn(6, 6)
    X = np.c_[X, 1e-9 * X[:, 0] + 1e-12 * rng.randn(300)]
    lae = LinearAutoencoder(3, random_state=0).fit(X)
    pca = PCA(3, svd_solver="full").fit(X)
    np.testing.assert_allclose(
        np.abs(lae.components_[:, -1]), np.abs(pca.components_[:, -1]), rtol=1e-6
    )
