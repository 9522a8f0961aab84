"""Likelihood families: each density against scipy's, counts end to end, and a
family defined here, in the tests, plugged in by registration alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import special, stats
from sklearn.datasets import load_digits

from skvae import VariationalAutoencoder
from skvae._likelihoods import FAMILIES, Family
from skvae._likelihoods._negative_binomial import NegativeBinomial
from skvae._likelihoods._poisson import Poisson

COUNTS = ["poisson", "negative_binomial"]

# short fits on purpose: what is tested holds from the first epochs
pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.usefixtures("one_thread"),  # see conftest.single_thread
]


def _counts(n=600, d=20, k=2, theta=2.0, seed=0):
    """Negative binomial counts from a curved 2-D latent variable, libraries varying."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(-2, 2, size=(n, k))
    A = rng.normal(size=(2 * k, d))
    log_rate = np.c_[np.sin(t), np.cos(t)] @ A * 0.7 + 1.0
    library = rng.uniform(0.5, 2.0, size=(n, 1))
    mu = library * np.exp(log_rate)
    return rng.poisson(rng.gamma(theta, mu / theta)).astype(np.float64)


def _vae(likelihood, **params):
    defaults = dict(n_components=2, hidden_layer_sizes=(16,), max_iter=15, random_state=0)
    return VariationalAutoencoder(likelihood=likelihood, **{**defaults, **params})


def test_count_log_densities_are_scipys():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.poisson(3.0, size=(5, 4)).astype(np.float64))
    out = torch.from_numpy(rng.normal(1.0, 0.5, size=(5, 4)))
    mu = np.exp(out.numpy())
    poisson = Poisson(4, torch.float64)
    expected = stats.poisson.logpmf(x.numpy(), mu).sum(1)
    np.testing.assert_allclose(poisson.log_prob(x, out).numpy(), expected, rtol=1e-12)
    nb = NegativeBinomial(4, torch.float64)
    with torch.no_grad():
        nb.log_theta.copy_(torch.log(torch.tensor([0.5, 1.0, 4.0, 50.0])))
    theta = nb.theta().detach().numpy()
    expected = stats.nbinom.logpmf(x.numpy(), theta, theta / (theta + mu)).sum(1)
    np.testing.assert_allclose(nb.log_prob(x, out).detach().numpy(), expected, rtol=1e-10)
    # a mask keeps the observed entries only
    mask = torch.from_numpy(rng.uniform(size=(5, 4)) < 0.5)
    kept = (stats.poisson.logpmf(x.numpy(), mu) * mask.numpy()).sum(1)
    np.testing.assert_allclose(poisson.log_prob(x, out, mask).numpy(), kept, rtol=1e-12)


@pytest.mark.parametrize("likelihood", COUNTS)
def test_count_vae_scores_its_elbo_by_hand(likelihood):
    """score_samples is E_q log p(x|z) - KL over the fixed draws, with scipy's pmf."""
    X = _counts(n=300)
    vae = _vae(likelihood).fit(X)
    module, x = vae.module_, torch.from_numpy(X[:20])
    with torch.no_grad():
        mean, logvar = module.encode(x)
        z = mean + torch.exp(0.5 * logvar) * module.score_eps[:, None, :]
        mu = torch.exp(module.decoder(z)).numpy()
        kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(-1).numpy()
    if likelihood == "poisson":
        lp = stats.poisson.logpmf(X[:20], mu)
    else:
        theta = module.family.theta().detach().numpy()
        lp = stats.nbinom.logpmf(X[:20], theta, theta / (theta + mu))
    elbo = vae.set_params(n_importance=1).score_samples(X[:20])
    np.testing.assert_allclose(elbo, lp.sum(-1).mean(0) - kl, rtol=1e-8)
    # the importance-weighted estimate, by hand with scipy's densities
    with torch.no_grad():
        eps = module.importance_draws(50)[:, None, :]
        z = (mean + torch.exp(0.5 * logvar) * eps).numpy()
        mu = torch.exp(module.decoder(torch.from_numpy(z))).numpy()
    if likelihood == "poisson":
        lp = stats.poisson.logpmf(X[:20], mu)
    else:
        lp = stats.nbinom.logpmf(X[:20], theta, theta / (theta + mu))
    sd = np.exp(0.5 * logvar.numpy())
    log_w = lp.sum(-1) + (stats.norm.logpdf(z) - stats.norm.logpdf(z, mean.numpy(), sd)).sum(-1)
    iwae = special.logsumexp(log_w, axis=0) - np.log(50)
    np.testing.assert_allclose(vae.set_params(n_importance=50).score_samples(X[:20]), iwae)


@pytest.mark.parametrize("likelihood", COUNTS)
def test_count_vae_samples_counts_and_decodes_rates(likelihood):
    X = _counts(n=300)
    vae = _vae(likelihood).fit(X)
    draws = vae.sample(50, random_state=0)
    assert draws.dtype == X.dtype and draws.min() >= 0
    np.testing.assert_array_equal(draws, np.round(draws))
    rates = vae.inverse_transform(vae.transform(X[:10]))
    assert rates.min() > 0 and np.isfinite(rates).all()
    assert vae.noise_variance_ is None


@pytest.mark.parametrize("likelihood", COUNTS)
@pytest.mark.parametrize(
    "bad, match",
    [(-1.0, "negative"), (0.5, "non-integer"), (np.nan, "NaN")],
)
def test_count_vae_refuses_what_is_not_counts(likelihood, bad, match):
    X = _counts(n=60)
    X[3, 2] = bad
    pattern = f"{likelihood}.*{match}"  # NaN too: the likelihood is named, not an imputer
    with pytest.raises(ValueError, match=pattern):
        _vae(likelihood, max_iter=2).fit(X)
    fitted = _vae(likelihood, max_iter=2).fit(_counts(n=60))
    with pytest.raises(ValueError, match=pattern):
        fitted.score_samples(X)


def test_count_start_matches_each_features_total():
    """At the start the decoded rates sum, feature by feature, to the counts."""
    X = _counts(n=400)
    vae = _vae("poisson", max_iter=1, learning_rate=1e-12).fit(X)
    rates = vae.inverse_transform(vae.transform(X))
    with torch.no_grad():  # the start's rates, draw-averaged
        mean, logvar = vae.module_.encode(torch.from_numpy(X))
    assert np.isfinite(rates).all() and mean.isfinite().all()
    eta = vae.module_.decoder(mean).detach().numpy()
    np.testing.assert_allclose(np.exp(eta).sum(0), X.sum(0), rtol=1e-6)


def test_negative_binomial_learns_overdispersion_and_beats_poisson():
    X = _counts(n=1200, theta=1.5)
    train, test = X[:900], X[900:]
    nb = _vae("negative_binomial", max_iter=30).fit(train)
    poisson = _vae("poisson", max_iter=30).fit(train)
    theta = nb.module_.family.theta().detach().numpy()
    assert np.median(theta) < 10  # overdispersed, not Poisson-like
    assert nb.score(test) > poisson.score(test) + 1.0
    # held-out stopping keeps the start as a candidate: never below it
    assert nb.best_validation_score_ >= nb.validation_scores_[0]


def test_library_size_codes_describe_composition():
    X = _counts(n=400)
    vae = _vae("poisson", library_size=True).fit(X)
    np.testing.assert_allclose(vae.transform(2 * X[:10]), vae.transform(X[:10]), atol=1e-10)
    deep = _vae("poisson").fit(X)
    assert not np.allclose(deep.transform(2 * X[:10]), deep.transform(X[:10]))


def test_digits_are_counts():
    X = load_digits().data[:400]
    vae = _vae("poisson", max_iter=5).fit(X)
    assert np.isfinite(vae.score(X))


class _Laplace(Family):
    """A family written in a test: Laplace(out, 1) per feature, in the data's units."""

    name = "laplace"

    def log_prob_entries(self, x, out):
        return -torch.abs(x - out) - np.log(2.0)

    def mean(self, out):
        return out

    def sample(self, means, rng, scale):
        return means + rng.laplace(size=means.shape).astype(means.dtype)


def test_a_new_family_is_one_class_and_a_registration(monkeypatch):
    monkeypatch.setitem(FAMILIES, "laplace", _Laplace)
    X = np.random.default_rng(0).laplace(size=(200, 5)) @ np.diag([3, 1, 1, 1, 1.0])
    vae = _vae("laplace", max_iter=5).fit(X)
    assert np.isfinite(vae.score(X)) and vae.sample(3, random_state=0).shape == (3, 5)
    eps = vae.module_.score_eps[:, None, :]
    with torch.no_grad():
        x = torch.from_numpy(X[:5])
        elbo = vae.module_.elbo(x, eps).numpy()
    np.testing.assert_allclose(vae.set_params(n_importance=1).score_samples(X[:5]), elbo)
