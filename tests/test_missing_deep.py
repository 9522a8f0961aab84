"""Autoencoder and VariationalAutoencoder with missing entries (NaN): trained,
encoded and scored on the observed entries only, started at pPCA's EM solution."""

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn.base import clone

import skvae._deep_missing as deep_missing
import skvae._vae_objective as vae_objective
from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder
from skvae._deep_missing import HIDDEN_SHARE, _fills_better, denoising_loss
from skvae._stopping import _significantly_better
from skvae._training import Trainer

from .test_missing import hide, low_rank

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.single_thread

DEEP = [Autoencoder, VariationalAutoencoder]


X_FULL = low_rank()
X_NAN = hide(X_FULL, 0.3)
X_NAN[0] = np.nan  # a row with nothing observed
X_NAN[2] = X_FULL[2]  # a complete row


def small(cls, **params):
    defaults = {"hidden_layer_sizes": (16,), "max_iter": 5, "random_state": 0}
    return cls(3, **{**defaults, **params})


def fitted(cls, X=X_NAN, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return small(cls, **params).fit(X)


@pytest.mark.parametrize("cls", DEEP)
def test_nan_is_accepted_and_inf_refused(cls):
    est = fitted(cls)
    assert est.__sklearn_tags__().input_tags.allow_nan
    assert np.isfinite(est.transform(X_NAN)).all()
    assert np.isfinite(est.score_samples(X_NAN)).all()
    assert np.isfinite(est.score(X_NAN))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(small(cls).fit_transform(X_NAN), est.transform(X_NAN))
    assert np.isfinite(est.latent_mean_).all() if cls is Autoencoder else True
    X_inf = np.where(np.isnan(X_NAN), np.inf, X_NAN)
    with pytest.raises(ValueError, match="inf"):
        clone(est).fit(X_inf)
    for method in (est.transform, est.score_samples):
        with pytest.raises(ValueError, match="inf"):
            method(X_inf)


@pytest.mark.parametrize("cls", DEEP)
def test_a_row_with_nothing_observed_scores_zero_and_encodes_as_the_mean(cls):
    est = fitted(cls)
    assert est.score_samples(X_NAN[:1])[0] == 0.0
    offset = est.module_.offset.numpy()[None]
    np.testing.assert_array_equal(est.transform(X_NAN[:1]), est.transform(offset))


def test_the_vae_posterior_of_a_holed_row_is_that_of_the_row_filled_at_the_mean():
    est = fitted(VariationalAutoencoder)
    filled = np.where(np.isnan(X_NAN), est.module_.offset.numpy(), X_NAN)
    for got, expected in zip(
        est.transform(X_NAN, return_std=True), est.transform(filled, return_std=True), strict=True
    ):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("cls", DEEP)
def test_complete_data_never_builds_a_mask(cls, monkeypatch):
    def refuse(*args):
        raise AssertionError("a mask was built for data without NaN")

    monkeypatch.setattr(deep_missing, "observed", refuse)
    monkeypatch.setattr(vae_objective, "observed", refuse)
    est = fitted(cls, X=X_FULL)
    est.transform(X_FULL), est.score_samples(X_FULL), est.score(X_FULL)


@pytest.mark.parametrize("cls", DEEP)
def test_an_all_true_mask_trains_as_the_complete_data_path(cls, monkeypatch):
    """The masked machinery, where every entry is observed (and the Autoencoder
    hides none from its encoder), trains and scores as the complete data's."""
    plain = fitted(cls, X=X_FULL, init="random", max_iter=3)
    monkeypatch.setattr(deep_missing, "has_nan", lambda X: True)
    monkeypatch.setattr(deep_missing, "HIDDEN_SHARE", 0.0)
    masked = fitted(cls, X=X_FULL, init="random", max_iter=3)
    weights = masked.module_.state_dict()
    for name, value in plain.module_.state_dict().items():
        np.testing.assert_allclose(value.numpy(), weights[name].numpy(), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(plain.loss_curve_, masked.loss_curve_, rtol=1e-7)
    np.testing.assert_allclose(masked.score_samples(X_FULL), plain.score_samples(X_FULL))


def test_the_autoencoder_loss_is_the_squared_error_of_the_observed_entries():
    """Training hides a share of the observed entries from the encoder too (at
    the offset, 0 once standardised, as missing ones) and scores them all."""
    module = fitted(Autoencoder).module_
    x = torch.as_tensor(X_NAN[:40])
    offset, scale = module.offset.numpy(), float(module.scale)
    xs = (X_NAN[:40] - offset) / scale
    o = ~np.isnan(xs)
    draw = torch.rand(x.shape, generator=torch.Generator().manual_seed(4), dtype=x.dtype)
    hidden = o & (draw.numpy() < HIDDEN_SHARE)
    assert 0.1 < hidden.sum() / o.sum() < 0.3
    read = np.where(o & ~hidden, xs, 0.0)
    with torch.no_grad():
        out = module.decoder(module.encoder(torch.as_tensor(read))).numpy()
    expected = np.mean((out - xs)[o] ** 2)
    loss = denoising_loss(torch.Generator().manual_seed(3))(module, x)
    np.testing.assert_allclose(float(loss.detach()), expected, rtol=1e-12)
    # score_samples: minus each row's mean squared error (data units) over its observed
    est = fitted(Autoencoder)
    recon = est.inverse_transform(est.transform(X_NAN[1:40]))
    sq = np.where(np.isnan(X_NAN[1:40]), np.nan, (recon - X_NAN[1:40]) ** 2)
    np.testing.assert_allclose(est.score_samples(X_NAN[1:40]), -np.nanmean(sq, axis=1))


@pytest.mark.parametrize("n_importance", [1, 16])
def test_the_vae_scores_the_iwae_of_the_observed_entries(n_importance):
    est = fitted(VariationalAutoencoder, n_importance=n_importance)
    module, rows = est.module_, X_NAN[1:30]
    o = ~np.isnan(rows)
    xs = torch.as_tensor(np.where(o, (rows - module.offset.numpy()) / float(module.scale), 0.0))
    log_c = float(module.family.log_noise_variance)
    with torch.no_grad():
        mean, logvar = module.encode_standardised(xs)
        if n_importance == 1:
            eps = module.score_eps[:, None, :]
        else:
            eps = module.importance_draws(n_importance)[:, None, :]
        z = mean + torch.exp(0.5 * logvar) * eps
        out = module.decoder(z).numpy()
    sq = np.where(o, (out - xs.numpy()) ** 2, 0.0).sum(-1)
    n_obs = o.sum(-1)
    log_lik = -0.5 * sq / math.exp(log_c) - 0.5 * n_obs * (math.log(2 * math.pi) + log_c)
    m, lv, e = mean.numpy(), logvar.numpy(), eps.numpy()
    if n_importance == 1:  # the ELBO over the fixed draws: E_q log p(x_o | z) - KL
        kl = 0.5 * np.sum(m**2 + np.exp(lv) - 1 - lv, axis=-1)
        score = log_lik.mean(0) - kl
    else:
        zz = z.numpy()
        log_w = log_lik + 0.5 * (np.sum(e * e, -1) - np.sum(zz * zz, -1) + lv.sum(-1))
        top = log_w.max(0)
        score = top + np.log(np.exp(log_w - top).mean(0))
    score = score - n_obs * math.log(float(module.scale))
    np.testing.assert_allclose(est.score_samples(rows), score, rtol=1e-10)


@pytest.mark.parametrize("hidden", [(), (16,)])
def test_the_vae_starts_at_the_em_solution_of_linear_autoencoder(hidden, monkeypatch):
    # no training at all: the model the VAE starts from
    monkeypatch.setattr(Trainer, "run_epoch", lambda self: None)
    vae = fitted(VariationalAutoencoder, hidden_layer_sizes=hidden, solver="adam")
    lae = LinearAutoencoder(3, random_state=0).fit(X_NAN)
    n = len(X_NAN)  # LinearAutoencoder reports variances with ddof=1, as PCA
    assert math.isclose(vae.noise_variance_, lae.noise_variance_ * (n - 1) / n, rel_tol=1e-9)
    np.testing.assert_allclose(vae.module_.offset.numpy(), lae.mean_, rtol=1e-12)
    # EM's model (maximum likelihood: ddof=0), the exact density of each row's
    # observed entries under it
    cov = lae.get_covariance() * (n - 1) / n

    def exact(x):
        o = ~np.isnan(x)
        return multivariate_normal(lae.mean_[o], cov[np.ix_(o, o)]).logpdf(x[o])

    # a complete row's posterior is the exact one: every importance weight is p(x)
    complete = ~np.isnan(X_NAN).any(axis=1)
    expected = [exact(x) for x in X_NAN[complete]]
    np.testing.assert_allclose(vae.score_samples(X_NAN[complete]), expected, rtol=1e-6)
    # a holed row's encoder reads the missing entries at the mean, not the exact
    # posterior given the observed: its IWAE is below the exact log-likelihood
    # and nears it as the draws grow
    holed = ~complete & ~np.isnan(X_NAN).all(axis=1)
    expected = np.array([exact(x) for x in X_NAN[holed]])
    gaps = []
    for K in (16, 1024):
        vae.set_params(n_importance=K)
        gaps.append(np.mean(expected - vae.score_samples(X_NAN[holed])))
    assert 0 < gaps[1] < gaps[0]
    # the conditional mean of each missing entry is probabilistic PCA's exactly:
    # the affine decoder's posterior proposes, and every importance weight is equal
    filled = X_NAN.copy()
    for x in filled:
        m = np.isnan(x)
        if m.any() and not m.all():
            o = ~m
            gain = cov[np.ix_(m, o)] @ np.linalg.inv(cov[np.ix_(o, o)])
            x[m] = lae.mean_[m] + gain @ (x[o] - lae.mean_[o])
    filled[0] = lae.mean_  # nothing observed: the prior's mean
    np.testing.assert_allclose(vae._conditional_mean(X_NAN), filled, rtol=1e-7, atol=1e-9)


def test_a_masked_history_is_in_the_data_units_of_the_observed_entries():
    # the same fit on X and on 10 X (the same standardised data): each row's
    # log-density of its observed entries is n_observed log(10) lower (the
    # share of all the rows, not exactly the training rows'; d log(10) was 5.5
    # nats too much)
    losses = [fitted(VariationalAutoencoder, X=c * X_NAN).loss_curve_ for c in (1.0, 10.0)]
    n_observed = np.mean((~np.isnan(X_NAN)).sum(axis=1))
    np.testing.assert_allclose(np.subtract(*losses[::-1]), n_observed * np.log(10), rtol=5e-3)


@pytest.mark.parametrize("cls", DEEP)
def test_refusals_are_clear(cls):
    with pytest.raises(ValueError, match="partial_fit takes no missing entries"):
        small(cls).partial_fit(X_NAN)
    X = X_NAN.copy()
    X[:, 4] = np.nan
    with pytest.raises(ValueError, match="column 4 has no observed entry"):
        small(cls).fit(X)
    with pytest.raises(ValueError, match="score_features takes no missing entries"):
        fitted(cls).score_features(X_NAN)


def test_the_vae_refuses_nan_where_it_cannot_take_it():
    counts = np.abs(np.round(X_NAN))
    poisson = small(VariationalAutoencoder, likelihood="poisson")
    assert not poisson.__sklearn_tags__().input_tags.allow_nan
    # the reason, not scikit-learn's advice to impute, which the Gaussian model needs not
    with pytest.raises(ValueError, match="likelihood='poisson'.*only likelihood='gaussian'"):
        poisson.fit(counts)
    complete = poisson.fit(np.abs(np.round(X_FULL)))
    with pytest.raises(ValueError, match="likelihood='poisson'.*NaN"):
        complete.score_samples(counts)
    with pytest.raises(ValueError, match="n_components='auto'.*shuffled.*Pass an int"):
        VariationalAutoencoder("auto", hidden_layer_sizes=(16,), max_iter=5).fit(X_NAN)


def test_a_refit_judges_nan_by_its_parameters_not_the_last_model():
    counts = np.abs(np.round(X_FULL))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ae = small(Autoencoder, loss="poisson").fit(counts)
        ae.set_params(loss="squared_error").fit(X_NAN)  # was refused by the count model
        vae = small(VariationalAutoencoder, likelihood="poisson").fit(counts)
        vae.set_params(likelihood="gaussian").fit(X_NAN)
    assert np.isfinite(ae.transform(X_NAN)).all() and np.isfinite(vae.score_samples(X_NAN)).all()
    # fitted, the model's own loss decides, and the message names it
    ae.set_params(loss="poisson")
    assert np.isfinite(ae.transform(X_NAN)).all()
    poisson = small(Autoencoder, loss="poisson").fit(counts).set_params(loss="squared_error")
    with pytest.raises(ValueError, match="loss='poisson'"):
        poisson.transform(X_NAN)


@pytest.mark.parametrize("cls", [*DEEP, LinearAutoencoder])
def test_nan_in_an_out_of_core_array_is_refused_with_what_to_do(cls, tmp_path):
    path = tmp_path / "rows.npy"
    np.save(path, X_NAN)
    rows = np.load(path, mmap_mode="r")
    make = (lambda: cls(3)) if cls is LinearAutoencoder else (lambda: small(cls))
    with pytest.raises(ValueError, match="out-of-core.*in-memory arrays only.*np.asarray"):
        make().fit(rows)
    est = make().fit(X_FULL)
    with pytest.raises(ValueError, match="out-of-core.*in-memory arrays only"):
        est.transform(rows)
    np.testing.assert_allclose(est.transform(np.asarray(rows)[2:3]), est.transform(X_FULL[2:3]))


def test_on_curved_data_the_deep_models_impute_better_than_the_linear_one():
    from benchmarks.impute import curved

    X = curved(400)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    hidden = np.random.RandomState(0).uniform(size=X.shape) < 0.2
    X_missing = np.where(hidden, np.nan, X)

    def rmse(filled):
        np.testing.assert_array_equal(filled[~hidden], X[~hidden])
        return np.sqrt(np.mean((filled[hidden] - X[hidden]) ** 2))

    linear = rmse(LinearAutoencoder(4, random_state=0).fit(X_missing)._conditional_mean(X_missing))
    for cls in DEEP:
        est = fitted(cls, X=X_missing, hidden_layer_sizes=(64,), max_iter=100)
        # measured 0.18 (Autoencoder) and 0.14 (VAE) against 0.31
        assert rmse(est._conditional_mean(X_missing)) < 0.75 * linear
        draws = [est._conditional_sample(X_missing, random_state=s) for s in range(2)]
        assert not np.array_equal(draws[0][hidden], draws[1][hidden])
        np.testing.assert_array_equal(draws[0][~hidden], X[~hidden])


def test_importance_sampled_conditional_mean_nears_quadrature():
    # a one-dimensional latent, a curved decoder: E[f(z) | x_o] by a grid
    from skvae._conditional import conditional_fill
    from skvae._modules import LinearPlusMLP, init_parameters

    decoder = LinearPlusMLP(1, 3, [8], "tanh", torch.float64)
    init_parameters(decoder, torch.Generator().manual_seed(0))
    noise = 0.05
    z_true = torch.tensor([[-1.5], [-0.3], [0.4], [1.2], [2.0]], dtype=torch.float64)
    with torch.no_grad():
        xs = decoder(z_true) + noise**0.5 * torch.randn(5, 3, generator=torch.Generator())
    mask = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 0, 1]], dtype=torch.bool)
    grid = torch.linspace(-8, 8, 16001, dtype=torch.float64)[:, None]
    with torch.no_grad():
        out = decoder(grid)  # (grid, 3)
        log_post = -0.5 * grid[:, 0] ** 2 - 0.5 * (
            (mask[:, None, :] * (xs[:, None, :] - out[None]) ** 2).sum(-1) / noise
        )
        w = torch.softmax(log_post, dim=1)  # (rows, grid)
        exact = w @ out
    prior = (torch.zeros(1, dtype=torch.float64), torch.eye(1, dtype=torch.float64))
    errors = []
    for K in (64, 1024):
        eps = torch.linspace(-3, 3, K, dtype=torch.float64)[:, None]
        eps = (eps - eps.mean()) / eps.std(correction=0)
        with torch.no_grad():
            fill = conditional_fill(decoder, xs * mask, mask, *prior, noise, eps, rounds=20)
        errors.append(float((fill - exact)[~mask].abs().max()))
    assert max(errors) < 0.02


def test_an_autoencoder_that_fills_holes_no_better_keeps_its_start_and_imputes_as_pca():
    """On linear data the trained networks can reconstruct the observed entries
    better than the start yet fill holes no better; the Autoencoder then keeps
    its probabilistic-PCA start with pPCA's own imputation model, and fills as
    LinearAutoencoder does. Its masked loss alone would have left the start."""
    X = hide(low_rank(n=400, seed=3), 0.2, seed=4)
    est = fitted(Autoencoder, X=X, max_iter=30)
    linear = LinearAutoencoder(3, random_state=0).fit(X)
    assert est.best_validation_score_ == est.validation_scores_[0]
    assert max(est.validation_scores_) > est.validation_scores_[0]  # the loss preferred training
    np.testing.assert_allclose(
        est._conditional_mean(X), linear._conditional_mean(X), rtol=1e-6, atol=1e-6
    )
    # the same EM noise: LinearAutoencoder reports it at PCA's ddof=1 scale
    np.testing.assert_allclose(est.noise_variance_ * 400 / 399, linear.noise_variance_, rtol=1e-6)


def test_filling_better_takes_a_clear_mean_or_most_rows_and_a_positive_mean():
    """A model that fills four rows in five better, but whose mean gain a few
    rows' large errors make uncertain, fills better; one that wins most rows
    but loses on average does not."""
    rng = np.random.RandomState(0)
    errors = torch.as_tensor(rng.uniform(0.0, 0.1, 80))
    start = errors + torch.as_tensor(np.where(np.arange(80) % 5, 0.02, -0.01))
    start[:2] += 4.0  # two rows the start fills very badly, the gain's spread wide
    assert not _significantly_better(errors, start)
    assert _fills_better(errors, start)
    start[2] -= 20.0  # a loss on one row larger than all the gains
    assert not _fills_better(errors, start)
    assert not _fills_better(errors, errors.clone())  # no row differs


def test_a_vae_that_fills_holes_no_better_keeps_its_start_and_imputes_as_pca(monkeypatch):
    """The same check for the VAE: on linear data with holes its held-out
    likelihood chose trained weights, which filled no better than the start;
    it keeps the start, and fills as LinearAutoencoder does."""
    checks = []
    check = deep_missing._MissingEntries._imputes_better

    def spy(self, *args):
        checks.append(check(self, *args))
        return checks[-1]

    monkeypatch.setattr(deep_missing._MissingEntries, "_imputes_better", spy)
    X = hide(low_rank(n=400, seed=3), 0.2, seed=4)
    est = fitted(VariationalAutoencoder, X=X, max_iter=30)
    assert checks == [False]  # the trained weights passed the likelihood's test
    assert est.best_validation_score_ == est.validation_scores_[0]
    linear = LinearAutoencoder(3, random_state=0).fit(X)
    np.testing.assert_allclose(
        est._conditional_mean(X), linear._conditional_mean(X), rtol=1e-6, atol=1e-6
    )


def test_lbfgs_on_rows_with_holes_minimises_one_function():
    """Full-batch L-BFGS reads the same masked loss at every evaluation (no
    entries hidden afresh), so each of its steps lowers it."""
    est = fitted(Autoencoder, solver="lbfgs", max_iter=40)
    assert est.n_iter_ > 20
    assert np.all(np.diff(est.loss_curve_) <= 1e-12)
