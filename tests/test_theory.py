"""The theory the estimators must honour, checked numerically on data.

- A linear autoencoder spans PCA's subspace (Baldi & Hornik 1989); rotating it
  gives ordered principal directions (Plaut 2018).
- A linear VAE with a learned decoder variance reaches the probabilistic-PCA
  maximum likelihood (Tipping & Bishop 1999; Lucas et al. 2019).
- The VAE's held-out ELBO picks the latent size, as PCA.score does.
- A deep autoencoder beats PCA on curved data.
"""

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_s_curve, make_swiss_roll
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.preprocessing import StandardScaler

from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder
from skvae.metrics import max_principal_angle, principal_angles, reconstruction_error

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.single_thread


def _pca(X, k):
    # the exact solution; PCA's default may pick an approximate randomized solver
    return PCA(n_components=k, svd_solver="full").fit(X)


def _spiked(n=500, d=25, rank=5, sigma=1.0, seed=42):
    """scikit-learn's PCA-vs-FactorAnalysis example data: rank 5, homoscedastic noise."""
    rng = np.random.RandomState(seed)
    U, _, _ = np.linalg.svd(rng.randn(d, d))
    X = rng.randn(n, rank) @ U[:, :rank].T
    return X + sigma * rng.randn(n, d)


def _datasets():
    digits = load_digits().data
    rng = np.random.RandomState(0)
    return {
        "digits": digits,
        "digits-wide": digits[:40],  # more features than samples
        "digits-transposed": digits.T[:, :400].copy(),  # 64 x 400, wide
        "low-rank+noise": rng.randn(150, 6) @ rng.randn(6, 90) + 0.1 * rng.randn(150, 90),
        "spiked": _spiked(),
    }


@pytest.mark.parametrize("name, X", list(_datasets().items()))
@pytest.mark.parametrize("k", [1, 3, 10])
def test_linear_autoencoder_reaches_pca(name, X, k):
    lae = LinearAutoencoder(n_components=k, random_state=0).fit(X)
    pca = _pca(X, k)
    assert max_principal_angle(lae, pca) < 1.0  # degrees
    assert reconstruction_error(lae, X) <= 1.001 * reconstruction_error(pca, X)
    # an orthonormal basis, rotated to ordered principal directions with PCA's signs
    np.testing.assert_allclose(lae.components_ @ lae.components_.T, np.eye(k), atol=1e-10)
    assert np.all(np.diff(lae.explained_variance_) <= 0)
    np.testing.assert_allclose(lae.explained_variance_, pca.explained_variance_, rtol=1e-3)
    np.testing.assert_allclose(
        lae.explained_variance_ratio_, pca.explained_variance_ratio_, rtol=1e-3
    )
    np.testing.assert_allclose(lae.components_, pca.components_, atol=1e-3)
    np.testing.assert_allclose(lae.mean_, pca.mean_, atol=1e-10)
    # and its codes are PCA's codes
    np.testing.assert_allclose(lae.transform(X), pca.transform(X), atol=1e-6 * np.abs(X).max())


def test_linear_autoencoder_float32_reaches_pca():
    X = load_digits().data.astype(np.float32)
    lae = LinearAutoencoder(n_components=5, random_state=0).fit(X)
    assert lae.components_.dtype == np.float32
    assert max_principal_angle(lae, _pca(X.astype(np.float64), 5)) < 1.0


def test_linear_autoencoder_is_reproducible_and_seed_independent():
    X = load_digits().data
    a = LinearAutoencoder(n_components=4, random_state=0).fit(X)
    b = LinearAutoencoder(n_components=4, random_state=0).fit(X)
    c = LinearAutoencoder(n_components=4, random_state=1).fit(X)
    np.testing.assert_array_equal(a.components_, b.components_)
    # a different start reaches the same (unique) optimum
    np.testing.assert_allclose(a.components_, c.components_, atol=1e-6)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_gradient_training_approaches_pca(solver):
    """The same loss trained by gradient, with the deep models' engine."""
    X = StandardScaler().fit_transform(load_digits().data[:600])
    pca = _pca(X, 3)
    if solver == "adam":  # full batch: minibatch noise at a fixed step size stalls short
        params = {"batch_size": len(X), "learning_rate": 1e-2, "max_iter": 1000, "tol": 0}
    else:
        params = {"max_iter": 500, "tol": 1e-8}
    lae = LinearAutoencoder(n_components=3, solver=solver, random_state=0, **params)
    lae.fit(X)
    assert lae.loss_curve_[-1] < lae.loss_curve_[0]
    assert max_principal_angle(lae, pca) < 1.0
    assert reconstruction_error(lae, X) < 1.001 * reconstruction_error(pca, X)


def test_raw_linear_basis_spans_pca_subspace_but_is_not_pca_basis():
    """Baldi & Hornik: a linear decoder trained by gradient is *a* basis of PCA's span."""
    X = StandardScaler().fit_transform(_spiked())
    ae = Autoencoder(
        n_components=3,
        hidden_layer_sizes=(),
        init="random",  # a PCA start would hand it PCA's basis
        solver="lbfgs",
        max_iter=500,
        tol=1e-8,
        random_state=0,
    ).fit(X)
    pca = _pca(X, 3)
    W = ae.module_.decoder.linear.weight.detach().numpy()  # (n_features, k)
    assert max_principal_angle(W.T, pca) < 2.0
    gram = W.T @ W
    # not orthonormal, so not PCA's components...
    assert np.abs(gram - np.diag(np.diag(gram))).max() > 1e-2 or not np.allclose(
        np.diag(gram), 1, atol=1e-2
    )
    # ...but an SVD of it gives back PCA's span exactly
    U = np.linalg.svd(W, full_matrices=False)[0]
    assert np.allclose(principal_angles(U.T, W.T), 0, atol=1e-6)


@pytest.mark.parametrize(
    "X, k",
    [
        (StandardScaler().fit_transform(_spiked()), 3),
        (StandardScaler().fit_transform(_spiked()), 5),
        (StandardScaler().fit_transform(_spiked()), 8),
        (StandardScaler().fit_transform(load_digits().data[:500]), 5),
    ],
)
def test_linear_vae_reaches_probabilistic_pca(X, k):
    """Trained from a random start, so the optimum is found, not handed over."""
    pca = _pca(X, k)
    vae = VariationalAutoencoder(
        n_components=k, hidden_layer_sizes=(), init="random", random_state=0
    )
    vae.fit(X)
    assert abs(vae.score(X) / pca.score(X) - 1) < 1e-3
    assert abs(vae.noise_variance_ / pca.noise_variance_ - 1) < 1e-2
    # its decoder spans PCA's subspace where the spectrum separates it (a wide
    # gap after the 5th eigenvalue; the first five are close to each other)
    if k == 5:
        assert max_principal_angle(vae, pca) < 2.0


def test_linear_vae_exact_expectation_agrees_with_monte_carlo():
    """The closed-form E_q||x - f(z)||^2 is the reparameterised estimate's limit."""
    import torch

    from skvae._likelihoods._family import reparameterize

    X = StandardScaler().fit_transform(_spiked(n=200))
    vae = VariationalAutoencoder(n_components=3, hidden_layer_sizes=(), random_state=0).fit(X)
    module, x = vae.module_, torch.from_numpy(X)
    with torch.no_grad():
        xs = module.scale_in(x)
        mean, logvar = module.encode_standardised(xs)
        exact = module.family.expected_sq_error(module.decoder, xs, mean, logvar, None)
        eps = torch.randn(4000, 1, 3, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
        z = reparameterize(mean, logvar, eps)
        mc = torch.sum((xs - module.decoder(z)) ** 2, dim=-1).mean(0)
    np.testing.assert_allclose(mc.numpy(), exact.numpy(), rtol=2e-2)
    np.testing.assert_allclose(mc.mean().item(), exact.mean().item(), rtol=2e-3)


def test_fixed_decoder_variance_weights_reconstruction():
    """C = 1/(2c): a smaller decoder variance weights reconstruction more."""
    X = StandardScaler().fit_transform(_spiked(n=300))
    errors = []
    for c in (10.0, 0.1):
        vae = VariationalAutoencoder(
            n_components=5, hidden_layer_sizes=(), decoder_variance=c, random_state=0
        ).fit(X)
        assert vae.noise_variance_ == c
        errors.append(reconstruction_error(vae, X))
    assert errors[1] < 0.8 * errors[0]


def test_grid_search_on_elbo_finds_the_true_rank():
    X = _spiked()  # rank 5, homoscedastic noise sigma = 1, seed 42
    search = GridSearchCV(
        VariationalAutoencoder(hidden_layer_sizes=(), random_state=0),
        {"n_components": list(range(2, 11))},
    )
    search.fit(X)
    assert search.best_params_["n_components"] == 5
    pca_search = GridSearchCV(PCA(), {"n_components": list(range(2, 11))}).fit(X)
    assert pca_search.best_params_["n_components"] == 5


def test_autoencoder_beats_pca_on_digits(digits_split, default_digits_autoencoder):
    X_train, X_test = digits_split
    ae, _ = default_digits_autoencoder
    pca = _pca(X_train, 10)
    assert reconstruction_error(ae, X_test) <= 0.55 * reconstruction_error(pca, X_test)


@pytest.mark.parametrize(
    "X, k",
    [
        (make_s_curve(1000, noise=0.05, random_state=0)[0], 1),
        (make_s_curve(1000, noise=0.05, random_state=0)[0], 2),
        (make_swiss_roll(1000, noise=0.1, random_state=0)[0], 2),
    ],
)
def test_autoencoder_beats_pca_on_curved_held_out_data(X, k):
    X_train, X_test = train_test_split(X, random_state=0)
    ae = Autoencoder(n_components=k, random_state=0).fit(X_train)
    pca = PCA(n_components=k).fit(X_train)
    assert reconstruction_error(ae, X_test) < reconstruction_error(pca, X_test)


def test_linear_autoencoder_converges_above_the_rank_and_on_constant_data():
    """Directions of zero variance turn freely; that must not stall ALS to max_iter."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    rng = np.random.RandomState(0)
    X = rng.randn(100, 3) @ rng.randn(3, 20)  # rank 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        lae = LinearAutoencoder(n_components=5, random_state=0).fit(X)
        flat = LinearAutoencoder(n_components=2, random_state=0).fit(np.ones((10, 3)))
    assert max_principal_angle(lae.components_[:3], _pca(X, 3)) < 1e-6
    np.testing.assert_allclose(lae.explained_variance_[3:], 0, atol=1e-10)
    assert lae.n_iter_ < 100 and flat.n_iter_ < 100
    np.testing.assert_allclose(flat.inverse_transform(flat.transform(np.ones((2, 3)))), 1)


def test_beta_weights_training_but_score_stays_a_lower_bound():
    """score is the ELBO (beta = 1) whatever beta trained the model: it stays
    below the probabilistic-PCA maximum likelihood, which bounds every linear
    Gaussian model's log-likelihood."""
    X = StandardScaler().fit_transform(_spiked(n=300))
    # the maximum likelihood: PCA's closed form with ddof=0 variances (PCA's own
    # score, with ddof=1, is a hair below it on the training data)
    ml = _pca(X, 3)
    ml.explained_variance_ *= (len(X) - 1) / len(X)
    ml.noise_variance_ *= (len(X) - 1) / len(X)
    best = ml.score(X)
    assert best >= _pca(X, 3).score(X)
    scores = {}
    for beta in (0.25, 1.0, 4.0):
        vae = VariationalAutoencoder(
            n_components=3, hidden_layer_sizes=(), beta=beta, random_state=0
        ).fit(X)
        scores[beta] = vae.score(X)
        assert scores[beta] <= best + 1e-6
    assert scores[1.0] == pytest.approx(best, rel=1e-3)
    assert scores[0.25] < scores[1.0] and scores[4.0] < scores[1.0]
