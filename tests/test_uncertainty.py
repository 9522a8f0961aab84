"""Honest likelihoods and posterior spread: the VAE's importance-weighted score
and ``transform(X, return_std=True)``, checked against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn.decomposition import PCA

from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder

from .conftest import small

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]


def _spiked(n=400, d=8, rank=3, seed=0):
    rng = np.random.RandomState(seed)
    basis, _ = np.linalg.qr(rng.randn(d, rank))
    signal = rng.randn(n, rank) * np.linspace(3.0, 1.5, rank)
    return signal @ basis.T + 0.4 * rng.randn(n, d) + 2.0


def _at_start(**params):
    """A VAE kept at its probabilistic-PCA start (no step can move it)."""
    defaults = {"solver": "adam", "learning_rate": 1e-300, "max_iter": 1, "random_state": 0}
    return VariationalAutoencoder(**{**defaults, **params})


@pytest.mark.parametrize("hidden", [(), (16,)])
def test_every_K_gives_pca_score_samples_where_the_posterior_is_exact(hidden):
    """At the pPCA start q(z|x) is the exact posterior: every importance weight is
    p(x), so every K (and the ELBO, K=1) gives PCA.score_samples."""
    X = _spiked()
    vae = _at_start(n_components=3, hidden_layer_sizes=hidden).fit(X)
    reference = PCA(n_components=3).fit(X).score_samples(X)
    for K in (1, 2, 7, 64):
        vae.set_params(n_importance=K)
        np.testing.assert_allclose(vae.score_samples(X), reference, rtol=1e-9, atol=1e-9)


def _exact_linear_log_likelihood(vae, X):
    """log N(x; b, W W' + c I) of a linear Gaussian VAE, in the data's units."""
    module = vae.module_
    scale, offset = float(module.scale), module.offset.double().numpy()
    W = module.decoder.linear.weight.detach().double().numpy() * scale
    b = module.decoder.linear.bias.detach().double().numpy() * scale + offset
    cov = W @ W.T + vae.noise_variance_ * np.eye(X.shape[1])
    return multivariate_normal(b, cov).logpdf(X)


def test_the_bound_tightens_towards_the_exact_likelihood_as_K_grows():
    """A linear VAE whose encoder is moved off the exact posterior: the ELBO is
    below log p(x), the importance-weighted score closes the gap as K grows."""
    X = _spiked()
    vae = _at_start(n_components=3, hidden_layer_sizes=()).fit(X)
    with torch.no_grad():  # a worse posterior: shifted means, too narrow
        vae.module_.mean_head.weight.mul_(0.8)
        vae.module_.logvar_head.bias.sub_(0.5)
    exact = _exact_linear_log_likelihood(vae, X).mean()
    scores = {}
    for K in (1, 8, 64, 2048):
        vae.set_params(n_importance=K)
        scores[K] = vae.score(X)
    assert scores[1] < scores[8] < scores[64] < scores[2048] <= exact + 0.01
    assert exact - scores[1] > 0.5  # the gap the bound has to close
    assert exact - scores[2048] < 0.1 * (exact - scores[1])


def _curved(n=400, seed=0):
    t = np.random.RandomState(seed).uniform(-3, 3, size=(n, 2))
    X = np.column_stack([np.sin(t[:, 0]), np.cos(t[:, 0]), t[:, 1], np.sin(t[:, 1] * t[:, 0])])
    return X + 0.05 * np.random.RandomState(seed + 1).randn(n, 4)


def test_importance_weighted_score_is_deterministic_and_rowwise():
    X = _curved()
    # from random weights: nowhere near an exact posterior
    vae = small(VariationalAutoencoder, n_components=2, n_importance=16, init="random").fit(X)
    first = vae.score_samples(X)
    np.testing.assert_array_equal(vae.score_samples(X), first)
    # a row scores the same alone as among the others
    np.testing.assert_array_equal(vae.score_samples(X[7:8]), first[7:8])
    # and the ELBO is below it on average, for a trained deep model
    assert vae.score(X) > vae.set_params(n_importance=1).score(X)


def test_far_away_rows_get_finite_scores():
    X = _spiked(n=300)
    vae = small(VariationalAutoencoder, n_components=2).fit(X)
    far = np.vstack([X[:5] * 1e6, np.full((1, X.shape[1]), -1e8)])
    scores = vae.score_samples(far)
    assert np.all(np.isfinite(scores)) and np.all(scores < vae.score_samples(X[:5]).min())


@pytest.mark.parametrize("likelihood", ["poisson", "negative_binomial", "bernoulli"])
def test_every_likelihood_has_an_importance_weighted_score(likelihood):
    rng = np.random.RandomState(0)
    rates = np.exp(rng.randn(300, 2) @ rng.randn(2, 10) * 0.5 + 1.0)
    X = rng.poisson(rates).astype(float)
    if likelihood == "bernoulli":
        X = (X > np.median(X)).astype(float)
    vae = small(VariationalAutoencoder, n_components=2, likelihood=likelihood).fit(X)
    elbo = vae.set_params(n_importance=1).score_samples(X)
    iwae = vae.set_params(n_importance=64).score_samples(X)
    assert np.all(np.isfinite(iwae)) and iwae.mean() > elbo.mean()


# ------------------------------------------------------------ posterior spread
@pytest.mark.parametrize("whiten", [False, True])
def test_linear_std_is_the_exact_ppca_posterior_in_the_codes_coordinates(whiten):
    """Tipping & Bishop: z | x ~ N(M^-1 W'(x - mean), s2 M^-1), M = W'W + s2 I.
    transform's codes are a linear map A of that mean; the spread is A's image
    of the covariance, diagonal, the same for every row."""
    X = _spiked()
    lae = LinearAutoencoder(n_components=3, whiten=whiten, random_state=0).fit(X)
    Z, Z_std = lae.transform(X, return_std=True)
    np.testing.assert_array_equal(Z, lae.transform(X))
    C, lam, s2 = lae.components_, lae.explained_variance_, lae.noise_variance_
    W = C.T * np.sqrt(lam - s2)
    M = W.T @ W + s2 * np.eye(3)
    posterior_mean = np.linalg.solve(M, W.T @ (X - lae.mean_).T).T
    A = np.linalg.lstsq(posterior_mean, Z, rcond=None)[0]
    np.testing.assert_allclose(posterior_mean @ A, Z, atol=1e-10)
    covariance = A.T @ (s2 * np.linalg.inv(M)) @ A
    np.testing.assert_allclose(covariance, np.diag(np.diag(covariance)), atol=1e-12)
    np.testing.assert_allclose(Z_std, np.tile(np.sqrt(np.diag(covariance)), (len(X), 1)))


def test_linear_std_is_zero_without_noise():
    X = _spiked(d=4)
    lae = LinearAutoencoder(n_components=4, random_state=0).fit(X)
    assert lae.noise_variance_ == 0.0
    np.testing.assert_array_equal(lae.transform(X[:3], return_std=True)[1], 0.0)


def test_vae_std_is_the_encoders_spread():
    X = _spiked(n=300)
    vae = small(VariationalAutoencoder, n_components=2).fit(X)
    Z, Z_std = vae.transform(X, return_std=True)
    with torch.no_grad():
        mean, logvar = vae.module_.encode(torch.as_tensor(X))
    np.testing.assert_allclose(Z, mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(Z_std, np.exp(0.5 * logvar.numpy()), rtol=1e-12)
    # at the start, pPCA's own spread sqrt(s2 / L) in the latent coordinates
    start = _at_start(n_components=2, hidden_layer_sizes=()).fit(X)
    pca = PCA(n_components=2).fit(X)
    L, s2 = pca.explained_variance_, pca.noise_variance_
    np.testing.assert_allclose(start.transform(X[:4], return_std=True)[1][0], np.sqrt(s2 / L))
    assert Z_std.dtype == X.dtype and math.isfinite(Z_std.max())


def test_autoencoder_has_no_posterior_to_report():
    ae = small(Autoencoder, n_components=2).fit(_spiked(n=100))
    with pytest.raises(ValueError, match="no posterior"):
        ae.transform(_spiked(n=5), return_std=True)


def test_std_comes_back_beside_a_dataframe_with_set_output():
    pytest.importorskip("pandas")
    X = _spiked(n=100)
    lae = LinearAutoencoder(n_components=2, random_state=0).set_output(transform="pandas")
    Z, Z_std = lae.fit(X).transform(X, return_std=True)
    assert list(Z.columns) == ["linearautoencoder0", "linearautoencoder1"]
    assert Z_std.shape == (100, 2)


# -------------------------------------------------------- per-feature scores
@pytest.mark.parametrize("cls", [LinearAutoencoder, Autoencoder, VariationalAutoencoder])
def test_feature_scores_add_up_and_point_at_the_broken_feature(cls):
    X = _spiked(n=400)
    est = small(cls, n_components=3).fit(X)
    broken = X[:20].copy()
    broken[:, 5] += 8.0 * X[:, 5].std()
    F = est.score_features(broken)
    assert F.shape == broken.shape
    np.testing.assert_allclose(F.sum(1), est.score_samples(broken), rtol=1e-10, atol=1e-8)
    assert np.all(F.argmin(1) == 5)


def test_linear_feature_scores_are_expected_log_densities_under_the_posterior():
    """pPCA's shares in closed form: E_q log N(x_j | w_j'z + mean_j, s2) with q the
    exact posterior N(M^-1 W'(x - mean), s2 M^-1), plus minus KL(q || p) / d."""
    X = _spiked(n=200)
    lae = LinearAutoencoder(n_components=3, random_state=0).fit(X)
    C, lam, s2, mu = lae.components_, lae.explained_variance_, lae.noise_variance_, lae.mean_
    W = C.T * np.sqrt(lam - s2)
    M = W.T @ W + s2 * np.eye(3)
    m = np.linalg.solve(M, W.T @ (X - mu).T).T
    S = s2 * np.linalg.inv(M)
    sq = (X - m @ W.T - mu) ** 2 + np.einsum("jk,kl,jl->j", W, S, W)
    expected = -0.5 * sq / s2 - 0.5 * np.log(2 * np.pi * s2)
    kl = 0.5 * (np.trace(S) + (m**2).sum(1) - 3 - np.linalg.slogdet(S)[1])
    np.testing.assert_allclose(lae.score_features(X), expected - (kl / X.shape[1])[:, None])


# ------------------------------------------------------ with missing entries
def test_linear_posterior_and_feature_scores_condition_on_the_observed_entries():
    """A row with holes: its code and spread are those of p(z | x_o), in
    transform's coordinates (Tipping & Bishop with W_o, M_o = W_o'W_o + s2 I);
    its feature scores sum to its observed log-likelihood, 0 where missing."""
    X = _spiked(n=300)
    lae = LinearAutoencoder(n_components=3, random_state=0).fit(X)
    holed = X[:20].copy()
    holed[np.arange(20), np.arange(20) % 8] = np.nan
    holed[3, :4] = np.nan
    Z, Z_std = lae.transform(holed, return_std=True)
    C, lam, s2, mu = lae.components_, lae.explained_variance_, lae.noise_variance_, lae.mean_
    W = C.T * np.sqrt(lam - s2)
    A = lam / np.sqrt(lam - s2)  # from T&B's z to transform's codes (complete rows)
    for x, z, sd in zip(holed, Z, Z_std, strict=True):
        o = ~np.isnan(x)
        M = W[o].T @ W[o] + s2 * np.eye(3)
        np.testing.assert_allclose(z, A * np.linalg.solve(M, W[o].T @ (x[o] - mu[o])))
        np.testing.assert_allclose(sd, A * np.sqrt(np.diag(s2 * np.linalg.inv(M))))
    F = lae.score_features(holed)
    np.testing.assert_allclose(F.sum(1), lae.score_samples(holed), rtol=1e-10)
    assert np.all(F[np.isnan(holed)] == 0) and np.all(np.isfinite(F))
    # a complete row beside them gets the complete rows' spread
    mixed = np.vstack([holed[:2], X[25:26]])
    np.testing.assert_allclose(
        lae.transform(mixed, return_std=True)[1][2], lae.transform(X[25:26], return_std=True)[1][0]
    )
