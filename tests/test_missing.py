"""LinearAutoencoder with missing entries (NaN): probabilistic PCA conditioned on
what each row observed, checked against closed forms computed here in NumPy."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import multivariate_normal, norm
from sklearn.base import clone
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

import skvae
from skvae import LinearAutoencoder
from skvae._missing import PPCA, _Patterns, _sweep, fit_em, group_rows
from skvae._missing_forms import conditional_mean, conditional_sample, log_likelihood

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.single_thread


def low_rank(n=300, d=8, k=3, noise=0.3, seed=0):
    rng = np.random.RandomState(seed)
    W = rng.normal(size=(d, k)) * np.linspace(3, 1, k)
    return rng.normal(size=(n, k)) @ W.T + 2.0 + noise * rng.normal(size=(n, d))


def hide(X, rate, seed=1):
    X = X.copy()
    X[np.random.RandomState(seed).uniform(size=X.shape) < rate] = np.nan
    return X


X_FULL = low_rank()
X_NAN = hide(X_FULL, 0.3)
X_NAN[0] = np.nan  # a row with nothing observed
X_NAN[1, :-1] = np.nan  # one observed entry
X_NAN[2] = X_FULL[2]  # a complete row


def closed_form(est, X):
    """Each row's log-density of its observed entries and its conditional mean,
    from get_covariance() by NumPy's linear algebra."""
    C, mu = est.get_covariance().astype(np.float64), est.mean_.astype(np.float64)
    scores, filled = np.zeros(len(X)), X.astype(np.float64).copy()
    for i, x in enumerate(X.astype(np.float64)):
        o = ~np.isnan(x)
        if not o.any():
            filled[i] = mu
            continue
        C_oo = C[np.ix_(o, o)]
        scores[i] = multivariate_normal(mu[o], C_oo).logpdf(x[o])
        filled[i, ~o] = mu[~o] + C[np.ix_(~o, o)] @ np.linalg.solve(C_oo, x[o] - mu[o])
    return scores, filled


@pytest.mark.parametrize(
    "fitted_on, k", [("nan", 3), ("complete", 3), ("complete", 8)], ids=["em", "pca", "noise-0"]
)
def test_scores_and_conditional_means_are_the_gaussian_closed_forms(fitted_on, k):
    X = X_NAN if fitted_on == "nan" else X_FULL
    est = LinearAutoencoder(k, random_state=0).fit(X)
    if k == X.shape[1]:
        assert est.noise_variance_ == 0  # the covariance is full rank without noise
    scores, filled = closed_form(est, X_NAN)
    np.testing.assert_allclose(est.score_samples(X_NAN), scores, rtol=1e-10, atol=1e-10)
    assert est.score_samples(X_NAN)[0] == 0  # nothing observed: log-likelihood of nothing
    np.testing.assert_allclose(est.score(X_NAN), scores.mean(), rtol=1e-10)
    completed = est._conditional_mean(X_NAN)
    np.testing.assert_allclose(completed, filled, rtol=1e-10, atol=1e-10)
    seen = ~np.isnan(X_NAN)
    np.testing.assert_array_equal(completed[seen], X_NAN[seen])  # untouched
    np.testing.assert_allclose(completed[0], est.mean_)


@pytest.mark.parametrize("whiten", [False, True])
def test_transform_is_the_expected_code_given_the_observed_entries(whiten):
    est = LinearAutoencoder(3, whiten=whiten, random_state=0).fit(X_NAN)
    _, filled = closed_form(est, X_NAN)
    # transform is affine, so E[transform(x) | x_obs] = transform(E[x | x_obs])
    codes = (filled - est.mean_) @ est.components_.T
    if whiten:
        codes /= np.sqrt(est.explained_variance_)
    Z = est.transform(X_NAN)
    np.testing.assert_allclose(Z, codes, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(Z[0], 0, atol=1e-12)  # nothing observed: the prior mean
    np.testing.assert_allclose(est.fit_transform(X_NAN), Z, rtol=1e-12, atol=1e-12)
    # the posterior mean of z (W = components' * sqrt(variance - noise)), whitened or not
    W = est.components_.T * np.sqrt(est.explained_variance_ - est.noise_variance_)
    x = X_NAN[5]
    o = ~np.isnan(x)
    M = W[o].T @ W[o] + est.noise_variance_ * np.eye(3)
    z = np.linalg.solve(M, W[o].T @ (x[o] - est.mean_[o]))
    np.testing.assert_allclose(filled[5, ~o], (est.mean_ + W @ z)[~o], rtol=1e-9)


def test_complete_rows_score_and_encode_as_without_missing_entries():
    est = LinearAutoencoder(3, random_state=0).fit(X_FULL)
    complete = ~np.isnan(X_NAN).any(axis=1)
    np.testing.assert_array_equal(
        est.score_samples(X_NAN)[complete], est.score_samples(X_NAN[complete])
    )
    np.testing.assert_allclose(
        est.transform(X_NAN)[complete], est.transform(X_NAN[complete]), rtol=0, atol=0
    )


def test_complete_data_is_fitted_as_pca_without_em():
    est = LinearAutoencoder(3, random_state=0).fit(X_FULL)
    pca = PCA(3).fit(X_FULL)
    assert est.validation_scores_ is None  # no entries held out: not EM
    np.testing.assert_allclose(est.explained_variance_, pca.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(est.noise_variance_, pca.noise_variance_, rtol=1e-10)
    np.testing.assert_allclose(est.score_samples(X_FULL), pca.score_samples(X_FULL), rtol=1e-10)


def observed_loglik(X, model):
    mu, W, s2 = model.mean.numpy(), model.weight.numpy(), model.noise
    C = W @ W.T + s2 * np.eye(len(mu))
    total = 0.0
    for x in X:
        o = ~np.isnan(x)
        total += multivariate_normal(mu[o], C[np.ix_(o, o)]).logpdf(x[o]) if o.any() else 0.0
    return total


def test_em_raises_the_observed_likelihood_at_every_step():
    X = hide(low_rank(n=150, d=6, k=2), 0.4)
    model, history = fit_em(
        torch.from_numpy(X), 2, torch.Generator().manual_seed(0), validation_fraction=None, tol=0
    )
    losses = np.array(history.loss_curve)  # minus the log-likelihood per observed entry
    assert len(losses) == 1000 or history.converged
    assert np.all(np.diff(losses) <= 1e-12 * np.abs(losses[1:]))
    assert losses[-1] < losses[0]
    # the monitored figure is the observed-data log-likelihood, in closed form
    seen = np.isfinite(X).sum()
    final = observed_loglik(X, model) / seen
    assert -final <= losses[-1] + 1e-12


def test_rows_with_the_same_holes_share_one_e_step_factorisation():
    # 130 columns: a pattern spans three 62-bit words; patterns that differ
    # in one word only (the first, second or third), or in two
    rng = np.random.RandomState(0)
    base = rng.uniform(size=130) > 0.3
    patterns = np.repeat(base[None], 6, axis=0)
    for p, columns in enumerate([[], [5], [70], [125], [5, 125], [70, 129]]):
        patterns[p, columns] = ~patterns[p, columns]
    seen = patterns[rng.randint(6, size=500)]
    masks, index, counts = group_rows(torch.as_tensor(seen, dtype=torch.float64))
    distinct, expected_counts = np.unique(seen, axis=0, return_counts=True)
    assert len(masks) == len(distinct) == 6
    np.testing.assert_array_equal(masks[index].numpy(), seen)
    np.testing.assert_array_equal(np.sort(counts.numpy()), np.sort(expected_counts))
    # the E-step by pattern is the E-step row by row
    X = hide(low_rank(n=400, d=6), 0.3)
    rows = torch.as_tensor(np.nan_to_num(X))
    train = torch.as_tensor(np.isfinite(X), dtype=torch.float64)
    held = train * torch.as_tensor(rng.uniform(size=X.shape) < 0.1, dtype=torch.float64)
    train = train - held
    noise = torch.as_tensor(rng.uniform(0.5, 1.5, size=6))
    model = PPCA(rows.mean(0), torch.as_tensor(rng.normal(size=(6, 2))), noise)
    assert len(group_rows(train)[0]) == len(np.unique(train.numpy(), axis=0)) < len(X)
    one_per_row = [_Patterns(0, len(X), train, torch.arange(len(X)), train)]
    grouped = _sweep(rows, train, held, model)
    by_row = _sweep(rows, train, held, model, one_per_row)
    for name in ("A", "B", "loglik", "held_out"):
        np.testing.assert_allclose(getattr(grouped, name), getattr(by_row, name), rtol=1e-12)


def test_squarem_keeps_em_steps_and_climbs_faster_where_em_crawls():
    """The accelerated path yields plain EM's first steps, and where half the
    entries are missing it converges, higher, in a fraction of the E-steps
    that plain EM has not converged in; it takes the same steps in any units."""
    X = torch.from_numpy(hide(low_rank(n=300, d=8, k=3, noise=0.1), 0.5))

    def run(data, accelerate):
        generator = torch.Generator().manual_seed(0)
        return fit_em(
            data, 3, generator, validation_fraction=None, tol=1e-9, accelerate=accelerate
        )[1]

    plain, fast = run(X, False), run(X, True)
    np.testing.assert_array_equal(fast.loss_curve[:3], plain.loss_curve[:3])
    assert not plain.converged and plain.n_iter == 1000  # EM's linear crawl
    assert fast.converged and fast.n_iter < 400
    assert fast.loss_curve[-1] < plain.loss_curve[-1] - 1e-3  # per observed entry
    assert np.all(np.diff(fast.loss_curve) <= 1e-12)  # the jumps never lose
    # a log-density per entry moves by the log of the scale: the same jumps
    # (until rounding, near the top, moves the last few)
    scaled = run(1000 * X, True).loss_curve[:100]
    np.testing.assert_allclose(np.subtract(scaled, fast.loss_curve[:100]), np.log(1000))


def test_em_without_missing_entries_reaches_pca_maximum_likelihood():
    X = low_rank(n=200, d=6, k=2, noise=1.0)
    model, _ = fit_em(
        torch.from_numpy(X), 2, torch.Generator().manual_seed(0), validation_fraction=None, tol=0
    )
    n = len(X)
    pca = PCA(2).fit(X)  # Tipping & Bishop: ML noise = mean discarded eigenvalue (ddof=0)
    np.testing.assert_allclose(model.noise, pca.noise_variance_ * (n - 1) / n, rtol=1e-10)
    ml = pca.get_covariance() * (n - 1) / n
    W = model.weight.numpy()
    np.testing.assert_allclose(W @ W.T + model.noise * np.eye(6), ml, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.mean.numpy(), X.mean(axis=0), rtol=1e-8)


def heteroscedastic(n=400, d=8, k=2, seed=0):
    """Rows of a k-factor model whose loadings have the same length in every
    feature and whose noise variances differ 25-fold (0.04 to 1)."""
    rng = np.random.RandomState(seed)
    W = rng.normal(size=(d, k))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    return rng.normal(size=(n, k)) @ W.T + rng.normal(size=(n, d)) * np.linspace(0.2, 1, d)


def factor_em(rows, tol):
    """EM for factor analysis of width 2 to its maximum likelihood."""
    generator = torch.Generator().manual_seed(0)
    return fit_em(rows, 2, generator, validation_fraction=None, tol=tol, per_feature_noise=True)


def factors(fa):
    return PPCA(*(torch.from_numpy(a) for a in (fa.mean_, fa.components_.T, fa.noise_variance_)))


def test_per_feature_noise_is_factor_analysis():
    """On complete rows, EM with a noise variance per feature reaches
    scikit-learn's FactorAnalysis (by SVD-based EM), whose densities the
    per-feature log-likelihood gives, and whose conditionals it fills with."""
    X = heteroscedastic()
    fa = FactorAnalysis(2, svd_method="lapack", tol=1e-10, max_iter=10000).fit(X)
    rows = torch.from_numpy(X)
    np.testing.assert_allclose(log_likelihood(rows, factors(fa)).numpy(), fa.score_samples(X))
    model, history = factor_em(rows, tol=1e-12)
    assert history.converged
    np.testing.assert_allclose(model.noise.numpy(), fa.noise_variance_, rtol=1e-4)
    W = model.weight.numpy()
    np.testing.assert_allclose(W @ W.T, fa.components_.T @ fa.components_, rtol=1e-4, atol=1e-6)
    # with holes: the Gaussian conditional of N(mean, W W' + diag(noise)), and
    # the marginal density of the observed entries
    holed = hide(X[:50], 0.3)
    scores, filled = closed_form(fa, holed)
    holed_rows = torch.from_numpy(holed)
    np.testing.assert_allclose(conditional_mean(holed_rows, factors(fa)).numpy(), filled)
    np.testing.assert_allclose(log_likelihood(holed_rows, factors(fa)).numpy(), scores)


def test_per_feature_noise_scores_held_out_entries_by_their_conditionals():
    """What stops EM on held-out entries: each one's log-density given its
    row's training entries, under N(mean, W W' + diag(noise))."""
    X = hide(heteroscedastic(n=40), 0.2)
    fa = FactorAnalysis(2, svd_method="lapack").fit(heteroscedastic())
    seen = np.isfinite(X)
    held = seen & (np.random.RandomState(2).uniform(size=X.shape) < 0.2)
    C, mu = fa.get_covariance(), fa.mean_
    expected = 0.0
    for x, h, o in zip(X, held, seen & ~held, strict=True):
        for j in np.flatnonzero(h):
            gain = C[j, o] @ np.linalg.inv(C[np.ix_(o, o)])
            mean, var = mu[j] + gain @ (x[o] - mu[o]), C[j, j] - gain @ C[o, j]
            expected += norm(mean, np.sqrt(var)).logpdf(x[j])
    as_tensor = torch.from_numpy
    train = as_tensor((seen & ~held).astype(float))
    sweep = _sweep(as_tensor(np.nan_to_num(X)), train, as_tensor(held.astype(float)), factors(fa))
    np.testing.assert_allclose(sweep.held_out, expected)
    # and the training entries' log-likelihood, the observed-data one
    observed = np.where(held, np.nan, X)
    np.testing.assert_allclose(sweep.loglik, closed_form(fa, observed)[0].sum())


def test_equal_per_feature_noises_are_the_isotropic_model():
    """Every closed form reads a noise vector of equal entries as the one
    noise variance: factor analysis contains probabilistic PCA."""
    from skvae import _missing_forms

    rows = torch.from_numpy(X_NAN)
    model, _ = fit_em(rows, 3, torch.Generator().manual_seed(0), validation_fraction=None)
    vector = PPCA(model.mean, model.weight, torch.full((8,), model.noise, dtype=torch.float64))
    for name in (
        "posterior_mean",
        "posterior_variance",
        "expected_entry_log_density",
        "log_likelihood",
        "conditional_mean",
    ):
        fn = getattr(_missing_forms, name)
        np.testing.assert_allclose(fn(rows, vector), fn(rows, model), rtol=1e-10, err_msg=name)


def test_per_feature_noise_em_climbs_with_holes_and_draws_its_conditionals():
    X = hide(heteroscedastic(n=300), 0.3)
    rows = torch.from_numpy(X)
    model, history = factor_em(rows, tol=1e-9)
    losses = np.array(history.loss_curve)
    assert np.all(np.diff(losses) <= 1e-12) and history.converged  # SQUAREM's jumps included
    assert -float(log_likelihood(rows, model).sum()) / np.isfinite(X).sum() <= losses[-1]
    # the noise found per feature follows the truth's 25-fold spread
    assert model.noise[-1] > 10 * model.noise[0]
    # one row's draws: the conditional mean and covariance
    x = rows[5:6].repeat(20000, 1)
    o = ~torch.isnan(rows[5])
    generator = torch.Generator().manual_seed(0)
    normal = torch.randn(20000, 2 + X.shape[1], generator=generator, dtype=torch.float64)
    draws = conditional_sample(x, model, normal[:, :2], normal[:, 2:]).numpy()
    np.testing.assert_array_equal(draws[:, o.numpy()], x[:, o].numpy())
    W = model.weight.numpy()
    C = W @ W.T + np.diag(model.noise.numpy())
    m, ob = ~o.numpy(), o.numpy()
    cov = C[np.ix_(m, m)] - C[np.ix_(m, ob)] @ np.linalg.solve(C[np.ix_(ob, ob)], C[np.ix_(ob, m)])
    mean = conditional_mean(rows[5:6], model).numpy()[0, m]
    spread = np.sqrt(np.diag(cov))
    assert np.all(np.abs(draws[:, m].mean(axis=0) - mean) < 4 * spread / np.sqrt(20000))
    np.testing.assert_allclose(np.cov(draws[:, m], rowvar=False), cov, rtol=0.05, atol=0.02)


def test_held_out_entries_pick_the_iteration():
    est = LinearAutoencoder(3, random_state=0).fit(X_NAN)
    scores = est.validation_scores_
    assert len(scores) == est.n_iter_ and est.best_validation_score_ == max(scores)
    # the default holds out validation_fraction of the observed entries; the
    # kept model is never worse on them than the start (scores[0])
    assert est.best_validation_score_ >= scores[0]
    repeat = LinearAutoencoder(3, random_state=0).fit(X_NAN)
    np.testing.assert_array_equal(repeat.components_, est.components_)


def test_validation_fraction_zero_holds_nothing_out():
    # EM on every observed entry, to max_iter steps: the plain maximum-likelihood EM
    est = LinearAutoencoder(3, validation_fraction=0.0, max_iter=7, tol=0, random_state=0)
    with pytest.warns(ConvergenceWarning):
        est.fit(X_NAN)
    assert est.n_iter_ == 7 and est.validation_scores_ is None
    model, _ = fit_em(
        torch.from_numpy(X_NAN), 3, torch.Generator(), validation_fraction=None, max_iter=7, tol=0
    )
    ml = (model.weight @ model.weight.T + model.noise * torch.eye(8)).numpy()
    n = len(X_NAN)  # get_covariance reports the unbiased (ddof=1) scale, as PCA's
    np.testing.assert_allclose(est.get_covariance(), ml * n / (n - 1), rtol=1e-9, atol=1e-12)
    # run to convergence on every entry, it fits them better than the
    # default, which stops where its held-out entries were likeliest
    full = LinearAutoencoder(3, validation_fraction=0.0, random_state=0).fit(X_NAN)
    stopped = LinearAutoencoder(3, random_state=0).fit(X_NAN)
    assert closed_form(full, X_NAN)[0].sum() > closed_form(stopped, X_NAN)[0].sum()


def test_fitted_attributes_describe_the_em_model():
    est = LinearAutoencoder(3, random_state=0).fit(X_NAN)
    C = est.components_
    np.testing.assert_allclose(C @ C.T, np.eye(3), atol=1e-12)
    assert np.all(np.diff(est.explained_variance_) <= 0)
    assert np.all(est.explained_variance_ >= est.noise_variance_) and est.noise_variance_ > 0
    total = est.explained_variance_.sum() + (8 - 3) * est.noise_variance_
    np.testing.assert_allclose(est.explained_variance_ratio_, est.explained_variance_ / total)
    np.testing.assert_allclose(np.trace(est.get_covariance()), total, rtol=1e-12)
    # the data's own structure is found: PCA's subspace of the complete data
    angles = np.linalg.svd(C @ PCA(3).fit(X_FULL).components_.T, compute_uv=False)
    assert angles.min() > 0.99


def test_float32_rows_are_fitted_in_float64_and_answer_in_float32():
    est32 = LinearAutoencoder(3, random_state=0).fit(X_NAN.astype(np.float32))
    est64 = LinearAutoencoder(3, random_state=0).fit(X_NAN.astype(np.float32).astype(np.float64))
    assert est32.components_.dtype == np.float32 and est32.mean_.dtype == np.float32
    X32 = X_NAN.astype(np.float32)
    for method in ("transform", "score_samples", "_conditional_mean"):
        out32, out64 = getattr(est32, method)(X32), getattr(est64, method)(X32)
        assert out32.dtype == np.float32
        np.testing.assert_allclose(out32, out64, rtol=1e-5, atol=1e-5)
    seen = ~np.isnan(X32)
    np.testing.assert_array_equal(est32._conditional_mean(X32)[seen], X32[seen])


def test_conditional_draws_have_the_conditional_mean_and_covariance():
    est = LinearAutoencoder(3, random_state=0).fit(X_NAN)
    x = X_NAN[5:6]
    o = ~np.isnan(x[0])
    draws = est._conditional_sample(np.repeat(x, 20000, axis=0), random_state=0)
    np.testing.assert_array_equal(draws[:, o], np.repeat(x[:, o], 20000, axis=0))
    C = est.get_covariance()
    cov = C[np.ix_(~o, ~o)] - C[np.ix_(~o, o)] @ np.linalg.solve(C[np.ix_(o, o)], C[np.ix_(o, ~o)])
    mean = est._conditional_mean(x)[0, ~o]
    spread = np.sqrt(np.diag(cov))
    assert np.all(np.abs(draws[:, ~o].mean(axis=0) - mean) < 4 * spread / np.sqrt(20000))
    np.testing.assert_allclose(np.cov(draws[:, ~o], rowvar=False), cov, rtol=0.05, atol=0.02)
    again = est._conditional_sample(np.repeat(x, 3, axis=0), random_state=0)
    np.testing.assert_array_equal(again, draws[:3])


def test_nan_is_accepted_and_inf_refused_as_sklearn_checks_it():
    # check_estimators_nan_inf's data; with allow_nan, NaN is fitted and encoded
    rng = np.random.RandomState(0)
    X_nan, X_inf, X_ok = (rng.uniform(size=(10, 3)) for _ in range(3))
    X_nan[0, 0], X_inf[0, 0] = np.nan, np.inf
    est = LinearAutoencoder(random_state=1)
    assert est.__sklearn_tags__().input_tags.allow_nan
    assert np.isfinite(est.fit(X_nan).transform(X_nan)).all()
    assert np.isfinite(est.score_samples(X_nan)).all()
    with pytest.raises(ValueError, match="inf"):
        clone(est).fit(X_inf)
    est = clone(est).fit(X_ok)
    for method in (est.transform, est.score_samples, est.score, est._conditional_mean):
        with pytest.raises(ValueError, match="inf"):
            method(X_inf)


def test_a_column_with_nothing_observed_is_named():
    X = X_NAN.copy()
    X[:, 4] = np.nan
    with pytest.raises(ValueError, match="column 4 has no observed entry"):
        LinearAutoencoder(2).fit(X)
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(8)])
    with pytest.raises(ValueError, match=r"column 4 \('f4'\)"):
        LinearAutoencoder(2).fit(frame)


@pytest.mark.parametrize("k", ["mle", 0.9])
def test_a_width_read_off_the_spectrum_needs_complete_data(k):
    with pytest.raises(ValueError, match="missing entries"):
        LinearAutoencoder(k).fit(X_NAN)
    assert LinearAutoencoder(k).fit(X_FULL).n_components_ >= 1


def test_partial_fit_refuses_missing_entries_and_an_em_model():
    with pytest.raises(ValueError, match="partial_fit takes no missing entries"):
        LinearAutoencoder(2).partial_fit(X_NAN)
    est = LinearAutoencoder(2, random_state=0).fit(X_NAN)
    with pytest.raises(ValueError, match="with missing entries, by EM"):
        est.partial_fit(X_FULL)
    assert est.n_samples_ == len(X_NAN)


def test_an_em_model_saves_pickles_and_grid_searches(tmp_path):
    est = LinearAutoencoder(3, random_state=0).fit(X_NAN)
    Z = est.transform(X_NAN)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).transform(X_NAN), Z)
    skvae.save(est, tmp_path / "em.skvae")
    np.testing.assert_array_equal(skvae.load(tmp_path / "em.skvae").transform(X_NAN), Z)
    search = GridSearchCV(LinearAutoencoder(random_state=0), {"n_components": [1, 2, 3]}, cv=3)
    assert search.fit(X_NAN).best_params_ == {"n_components": 3}  # the data's rank


def test_an_offset_moves_only_the_mean():
    # the noise update sums squares of entries centred on their column means
    est = LinearAutoencoder(3, random_state=0).fit(X_NAN)
    far = LinearAutoencoder(3, random_state=0).fit(X_NAN + 1e6)
    np.testing.assert_allclose(far.mean_, est.mean_ + 1e6, rtol=1e-15)
    np.testing.assert_allclose(far.noise_variance_, est.noise_variance_, rtol=1e-8)
    np.testing.assert_allclose(far.components_, est.components_, atol=1e-8)
