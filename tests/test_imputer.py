"""LatentImputer: conditional means of a fitted latent model, scikit-learn's imputer API."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import make_classification
from sklearn.decomposition import FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from skvae import LatentImputer, LinearAutoencoder, VariationalAutoencoder
from skvae._missing import fit_em
from skvae._missing_forms import log_likelihood

pytestmark = pytest.mark.usefixtures("one_thread")


def low_rank(n=300, d=8, k=2, noise=0.1, seed=0):
    """Rows of a k-factor Gaussian model, their covariance and mean."""
    rng = np.random.RandomState(seed)
    W = rng.normal(size=(d, k))
    mean = rng.normal(size=d)
    X = rng.normal(size=(n, k)) @ W.T + mean + noise * rng.normal(size=(n, d))
    return X, W @ W.T + noise**2 * np.eye(d), mean


def holes(X, rate=0.2, seed=1):
    hidden = np.random.RandomState(seed).uniform(size=X.shape) < rate
    return np.where(hidden, np.nan, X), hidden


def oracle(X_missing, cov, mean):
    """E[x_miss | x_obs] under the true Gaussian."""
    out = X_missing.copy()
    for row in out:
        m = np.isnan(row)
        if m.any():
            o = ~m
            row[m] = mean[m] + cov[np.ix_(m, o)] @ np.linalg.solve(
                cov[np.ix_(o, o)], row[o] - mean[o]
            )
    return out


def rmse(filled, X, hidden):
    return float(np.sqrt(np.mean((filled[hidden] - X[hidden]) ** 2)))


def standardised(X):
    """X's columns centred on their observed means, in units of their observed
    standard deviations: the units the imputer fits its model in."""
    return (X - np.nanmean(X, axis=0)) / np.nanstd(X, axis=0)


def conditional_means(imputer, X_missing, X_fit=None):
    """E[x_miss | x_obs] under the default imputer's fitted factor analysis,
    by NumPy from its covariance, in the units of ``X_fit`` (X_missing)'s columns."""
    X_fit = X_missing if X_fit is None else X_fit
    centre, spread = np.nanmean(X_fit, axis=0), np.nanstd(X_fit, axis=0)
    model = imputer.estimator_
    units = (X_missing - centre) / spread
    return oracle(units, model.get_covariance(), model.mean_) * spread + centre


@parametrize_with_checks([LatentImputer(), LatentImputer(n_components=1, add_indicator=True)])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_observed_entries_unchanged_and_fills_are_the_conditional_mean():
    X, _, _ = low_rank()
    X_missing, hidden = holes(X)
    imputer = LatentImputer(n_components=2, random_state=0).fit(X_missing)
    filled = imputer.transform(X_missing)
    np.testing.assert_array_equal(filled[~hidden], X[~hidden])
    assert not np.isnan(filled).any()
    np.testing.assert_allclose(filled, conditional_means(imputer, X_missing))
    assert isinstance(imputer.estimator_, FactorAnalysis)
    # transform reads the fitted model, whatever the parameter says since
    unfitted = LinearAutoencoder()
    np.testing.assert_array_equal(
        imputer.set_params(estimator=unfitted).transform(X_missing), filled
    )
    assert imputer.estimator_.components_.shape == (imputer.n_components_, 8)
    assert imputer.n_components_ == 2


def test_factor_analysis_fills_better_where_features_differ_in_noise():
    """Features whose noise variances differ 100-fold: the default model,
    factor analysis, learns each one's and leans on the clean ones;
    probabilistic PCA (a LinearAutoencoder), with one noise for all, fills worse."""
    rng = np.random.RandomState(0)
    W = rng.normal(size=(10, 2))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    noise = np.logspace(-1, 0, 10)
    X = rng.normal(size=(500, 2)) @ W.T + rng.normal(size=(500, 10)) * noise
    X_missing, hidden = holes(X, rate=0.3)
    imputer = LatentImputer(n_components=2, random_state=0).fit(X_missing)
    ppca = LatentImputer(LinearAutoencoder(), n_components=2, random_state=0)
    ours, theirs = (rmse(m.fit_transform(X_missing), X, hidden) for m in (imputer, ppca))
    # against the conditional mean under the true model: 1% more error, not 9%
    best = rmse(oracle(X_missing, W @ W.T + np.diag(noise**2), np.zeros(10)), X, hidden)
    assert ours - best < 0.2 * (theirs - best)
    # the noise it found, in each column's units, follows the truth's
    found = imputer.estimator_.noise_variance_ * imputer.scale_**2
    assert np.corrcoef(np.log(found), np.log(noise**2))[0, 1] > 0.95


def test_beats_the_column_means_and_nears_the_oracle():
    X, cov, mean = low_rank(n=500, d=10, k=3)
    X_missing, hidden = holes(X, rate=0.3)
    ours = rmse(LatentImputer(random_state=0).fit_transform(X_missing), X, hidden)
    means = rmse(SimpleImputer().fit_transform(X_missing), X, hidden)
    best = rmse(oracle(X_missing, cov, mean), X, hidden)
    assert ours < 0.5 * means
    assert ours < 1.15 * best


def test_fills_do_not_depend_on_the_columns_units():
    """Each column in other units (a scale and an offset of its own): the same
    fills, in those units. On columns of very different scales, a model fitted
    in the raw units would let the largest dominate its noise."""
    X, _, _ = low_rank(n=300, d=8, k=3, noise=0.3)
    X_missing, hidden = holes(X, rate=0.3)
    scale, offset = np.logspace(-4, 4, 8), np.linspace(-1e3, 1e3, 8)
    plain = LatentImputer(random_state=0).fit(X_missing)
    other = LatentImputer(random_state=0).fit(X_missing * scale + offset)
    assert other.n_components_ == plain.n_components_
    # compared in the first units: an offset of 1e3 would hide a column's errors
    back = (other.transform(X_missing * scale + offset) - offset) / scale
    np.testing.assert_allclose(back, plain.transform(X_missing), rtol=1e-6, atol=1e-8)


def test_auto_finds_the_true_rank():
    # every column's loadings of the same length: standardised, the columns'
    # noise is still the same in each, as probabilistic PCA models it
    rng = np.random.RandomState(0)
    W = rng.normal(size=(12, 4))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    X = rng.normal(size=(400, 4)) @ W.T + 0.05 * rng.normal(size=(400, 12))
    X_missing, _ = holes(X)
    imputer = LatentImputer(n_components=[1, 2, 3, 4, 6, 8], random_state=0).fit(X_missing)
    assert imputer.n_components_ == 4
    errors = imputer.validation_errors_
    assert set(errors) == {1, 2, 3, 4, 6, 8}
    assert errors[4] < 0.1 * errors[3]  # past the true rank, no gain
    # the default grid (1, 2, 4, ...) up to 7, the most factors that factor
    # analysis of 12 features can identify: past 4, it fits only noise
    auto = LatentImputer(random_state=0).fit(X_missing)
    assert auto.n_components_ == 4 and list(auto.validation_errors_) == [1, 2, 4, 7]


def test_columns_of_huge_magnitude_are_standardised_without_overflow():
    X, _, _ = low_rank(n=200, d=6, k=2, noise=0.1)
    X_missing, hidden = holes(X)
    plain = LatentImputer(random_state=0).fit_transform(X_missing)
    for scale, dtype in ((1e19, np.float32), (1e300, np.float64)):  # squares overflow
        huge = LatentImputer(random_state=0).fit_transform((X_missing * scale).astype(dtype))
        assert huge.dtype == dtype and np.isfinite(huge).all()
        np.testing.assert_allclose(huge[hidden] / scale, plain[hidden], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("d, grid", [(1, [1]), (3, [1]), (5, [1, 2]), (12, [1, 2, 4, 7])])
def test_auto_tries_no_more_factors_than_factor_analysis_identifies(d, grid):
    """Ledermann's bound caps "auto" with the default model (at least 1); a
    given model, or a k the user names, is not capped."""
    X_missing, _ = holes(low_rank(n=60, d=d, k=1)[0], rate=0.1)
    assert LatentImputer()._candidates(60, d) == grid
    if d == 12:
        given = LatentImputer(LinearAutoencoder())._candidates(60, d)
        assert given == [1, 2, 4, 8, 11]
        assert LatentImputer(n_components=[3, 11])._candidates(60, d) == [3, 11]
        assert LatentImputer(n_components=11, random_state=0).fit(X_missing).n_components_ == 11
    imputer = LatentImputer(random_state=0).fit(X_missing)
    assert imputer.n_components_ in grid and not np.isnan(imputer.transform(X_missing)).any()


def test_auto_looks_at_the_largest_k_after_a_pause():
    """Six informative columns among noise columns: the hidden entries' error
    pauses at k = 2, then falls at the largest k."""
    X = make_classification(400, 16, n_informative=6, n_redundant=0, random_state=0)[0]
    X_missing, hidden = holes(X)
    imputer = LatentImputer(n_neighbors=0, random_state=0).fit(X_missing)  # the model's fills
    errors = imputer.validation_errors_
    # 2 gains too little: then only the largest, 10 (Ledermann's bound for 16 features)
    assert list(errors) == [1, 2, 10]
    assert errors[2] > 0.99 * errors[1] and errors[10] < 0.97 * errors[1]
    assert imputer.n_components_ == 10
    paused = LatentImputer(n_components=1, n_neighbors=0, random_state=0).fit(X_missing)
    filled = [model.transform(X_missing) for model in (imputer, paused)]
    assert rmse(filled[0], X, hidden) < rmse(filled[1], X, hidden)


def test_the_chosen_parameters_are_refined_on_every_entry():
    X, _, _ = low_rank(n=300, d=8, k=3, noise=0.3)
    X_missing, _ = holes(X, rate=0.3)
    imputer = LatentImputer(n_components=[1, 3], random_state=0).fit(X_missing)
    model = imputer.estimator_
    assert model.n_iter_ == 3
    # the candidate: EM without the hidden entries, stopped where they were likeliest
    rng = np.random.RandomState(0)
    seed = rng.randint(np.iinfo(np.int32).max)
    seen = ~np.isnan(X_missing)
    hidden = seen & (rng.uniform(size=X.shape) < 0.1)
    hidden[:, (seen & ~hidden).sum(axis=0) < 2] = False
    data = torch.as_tensor(standardised(X_missing))
    generator = torch.Generator().manual_seed(int(seed))
    held = torch.as_tensor(hidden, dtype=torch.float64)
    factor_analysis = {"per_feature_noise": True}
    candidate, history = fit_em(
        data, 3, generator, held=held, tol=1e-3, n_iter_no_change=5, **factor_analysis
    )
    # stopped on the hidden entries, long before EM converged on the others
    assert history.converged and history.n_iter < 100
    # then three EM steps on every observed entry (none held out), from those parameters
    refined, _ = fit_em(
        data,
        3,
        generator,
        validation_fraction=None,
        start=candidate,
        max_iter=3,
        **factor_analysis,
    )
    covariance = refined.weight @ refined.weight.T + torch.diag(refined.noise)
    np.testing.assert_allclose(model.get_covariance(), covariance.numpy())
    # which raised the likelihood of the observed entries, as EM's steps do
    assert log_likelihood(data, refined).sum() > log_likelihood(data, candidate).sum()


def test_a_tall_table_chooses_k_on_a_subset_of_its_rows_and_refines_on_all(monkeypatch):
    from skvae import _factor_imputation, _imputer

    X, _, _ = low_rank(n=1200, d=8, k=3, noise=0.3)
    X_missing, hidden = holes(X, rate=0.3)
    every_row = LatentImputer(random_state=0).fit(X_missing)
    monkeypatch.setattr(_factor_imputation, "SELECTION_ROWS", 300)
    chosen_on, real = [], _imputer.em_candidates
    monkeypatch.setattr(
        _imputer, "em_candidates", lambda rows, *a: chosen_on.append(rows.shape) or real(rows, *a)
    )
    subset = LatentImputer(random_state=0).fit(X_missing)
    assert chosen_on == [(300, 8)]
    assert subset.n_components_ == every_row.n_components_
    # the chosen model is refined on every row: the log-likelihood of all the
    # observed entries, not of a quarter of them
    assert subset.estimator_.loglike_[-1] == pytest.approx(
        every_row.estimator_.loglike_[-1], rel=0.01
    )
    errors = [rmse(m.transform(X_missing), X, hidden) for m in (subset, every_row)]
    assert errors[0] < 1.02 * errors[1]


def test_the_subset_of_a_tall_table_keeps_every_sparse_column(monkeypatch):
    from skvae import _factor_imputation

    X, _, _ = low_rank(n=400, d=6, k=2, noise=0.3)
    X_missing, _ = holes(X, rate=0.2)
    X_missing[2:, 3] = np.nan  # column 3: two observed entries, rows 0 and 1
    X_missing[0, :3] = 1.0
    monkeypatch.setattr(_factor_imputation, "SELECTION_ROWS", 100)
    for seed in range(6):  # a draw of 100 rows misses both in 49 of 50 seeds
        imputer = LatentImputer(random_state=seed).fit(X_missing)
        filled = imputer.transform(X_missing)
        assert np.isfinite(filled).all() and filled.shape == X.shape
        rows = _factor_imputation.selection_rows(X_missing, np.random.RandomState(seed))
        assert np.isfinite(rows[:, 3]).sum() == 2 and len(rows) <= 102


def test_a_candidate_these_rows_cannot_give_is_refused_before_any_fit(monkeypatch):
    X_missing, _ = holes(low_rank(n=100, d=5)[0])
    fits = []
    monkeypatch.setattr("skvae._factor_imputation.fit_em", lambda *a, **k: fits.append(a) or 1 / 0)
    with pytest.raises(ValueError, match="n_components=50 must be at most"):
        LatentImputer(n_components=[1, 2, 50], random_state=0).fit(X_missing)
    assert not fits


def test_fitted_on_complete_rows_it_is_factor_analysis():
    """No entry missing in fit (rows with holes come later): the chosen k's
    model is scikit-learn's FactorAnalysis, not three EM steps from a candidate."""
    X, _, _ = low_rank(n=300, d=8, k=3, noise=0.3)
    imputer = LatentImputer(random_state=0).fit(X)
    k = imputer.n_components_
    exact = FactorAnalysis(k, svd_method="lapack").fit(standardised(X))
    np.testing.assert_allclose(imputer.estimator_.get_covariance(), exact.get_covariance())
    X_missing, _ = holes(X)
    filled = imputer.transform(X_missing)
    np.testing.assert_allclose(filled, conditional_means(imputer, X_missing, X_fit=X))


def test_a_given_models_convergence_warnings_reach_the_user():
    X_missing, _ = holes(low_rank()[0])
    model = LinearAutoencoder(max_iter=2, validation_fraction=0.0)
    with pytest.warns(ConvergenceWarning):
        LatentImputer(model, n_components=[1, 2], random_state=0).fit(X_missing)


def test_a_deep_model_imputes_through_the_same_api():
    X, _, _ = low_rank(n=200, d=6, k=2)
    X_missing, hidden = holes(X)
    vae = VariationalAutoencoder(hidden_layer_sizes=(8,), max_iter=10, random_state=0)
    imputer = LatentImputer(vae, n_components=2, random_state=0)
    filled = imputer.fit_transform(X_missing)
    np.testing.assert_array_equal(filled[~hidden], X[~hidden])
    assert isinstance(imputer.estimator_, VariationalAutoencoder)
    means = SimpleImputer().fit_transform(X_missing)
    assert rmse(filled, X, hidden) < 0.5 * rmse(means, X, hidden)
    drawn = imputer.set_params(sample_posterior=True).transform(X_missing)
    assert not np.allclose(drawn[hidden], filled[hidden])


def test_add_indicator_and_feature_names():
    X, _, _ = low_rank(d=5)
    X_missing, hidden = holes(X)
    X_missing[:, 3] = X[:, 3]  # column 3 always observed: no indicator column
    frame = pd.DataFrame(X_missing, columns=list("abcde"))
    imputer = LatentImputer(n_components=2, add_indicator=True, random_state=0)
    out = imputer.fit_transform(frame)
    assert out.shape == (len(X), 5 + 4)
    np.testing.assert_array_equal(out[:, 5:], np.isnan(X_missing[:, [0, 1, 2, 4]]))
    names = imputer.get_feature_names_out()
    assert list(names) == [*"abcde"] + [f"missingindicator_{c}" for c in "abce"]
    imputer.set_output(transform="pandas")
    assert list(imputer.transform(frame).columns) == list(names)


def test_sample_posterior_draws_vary_and_average_to_the_mean():
    X, _, _ = low_rank(n=100)
    X_missing, hidden = holes(X)
    sampler = LatentImputer(n_components=2, sample_posterior=True, random_state=0).fit(X_missing)
    first, second = sampler.transform(X_missing), sampler.transform(X_missing)
    np.testing.assert_array_equal(first, second)  # an int seed: the same draws
    np.testing.assert_array_equal(first[~hidden], X[~hidden])
    # the same fitted model, other seeds: other draws, whose mean nears the
    # conditional mean, by much less than their spread
    draws = np.stack(
        [sampler.set_params(random_state=s).transform(X_missing) for s in range(200)]
    )[:, hidden]
    assert draws.std(axis=0).min() > 0
    mean = conditional_means(sampler, X_missing)[hidden]
    gap = np.abs(draws.mean(axis=0) - mean).mean()
    assert gap < 0.2 * draws.std(axis=0).mean()


def test_missing_values_placeholder_and_empty_columns():
    X, _, _ = low_rank(d=6)
    X_missing, hidden = holes(X)
    coded = np.where(hidden, -999.0, X)
    coded[:, 2] = -999.0  # never observed
    dropped = LatentImputer(n_components=2, missing_values=-999.0, random_state=0).fit(coded)
    out = dropped.transform(coded)
    assert out.shape == (len(X), 5)
    keep = [0, 1, 3, 4, 5]
    np.testing.assert_array_equal(out[~hidden[:, keep]], X[:, keep][~hidden[:, keep]])
    assert list(dropped.get_feature_names_out()) == ["x0", "x1", "x3", "x4", "x5"]
    kept = LatentImputer(n_components=2, missing_values=-999.0, keep_empty_features=True)
    out = kept.set_params(random_state=0).fit_transform(coded)
    assert out.shape == X.shape and (out[:, 2] == 0).all()


def test_in_a_pipeline_before_a_regressor():
    X, _, _ = low_rank(n=200)
    y = X[:, 0] - X[:, 1]
    X_missing, _ = holes(X)
    pipe = make_pipeline(LatentImputer(random_state=0), Ridge()).fit(X_missing, y)
    assert pipe.score(X_missing, y) > 0.8


def test_clear_errors():
    X, _, _ = low_rank(n=50)
    with pytest.raises(ValueError, match="list of candidates"):
        LatentImputer(n_components=[0, 2]).fit(X)
    with pytest.raises(ValueError, match="n_components"):
        LatentImputer(n_components=0).fit(X)
    with pytest.raises(ValueError, match="at most"):
        LatentImputer(n_components=20).fit(X)
    with pytest.raises(ValueError, match="estimator"):
        LatentImputer(estimator=SimpleImputer()).fit(X)
    with pytest.raises(ValueError, match="infinity|NaN"):
        LatentImputer(missing_values=-1.0).fit(np.where(X > 1, np.nan, X))
    imputer = LatentImputer(n_components=2).fit(X)
    with pytest.raises(ValueError, match="features"):
        imputer.transform(X[:, :3])


def test_onnx_conversion_is_refused_clearly():
    skl2onnx = pytest.importorskip("skl2onnx")
    from skvae.onnx import register_converters

    register_converters()
    X, _, _ = low_rank(n=60)
    y = X[:, 0]
    X_missing, _ = holes(X)
    pipe = make_pipeline(LatentImputer(n_components=2), Ridge()).fit(X_missing, y)
    with pytest.raises(NotImplementedError, match="LatentImputer has no ONNX converter"):
        skl2onnx.to_onnx(pipe, X_missing[:1].astype(np.float32))


def test_it_fills_the_same_values_in_any_units():
    """EM stops on absolute changes of log-likelihoods per entry, which a change
    of units leaves as they are: the fills scale with the data."""
    X, _, _ = low_rank(n=300, d=8, k=3, noise=0.3)
    X_missing, hidden = holes(X, rate=0.3)
    filled = LatentImputer(random_state=0).fit_transform(X_missing)
    for scale in (1e-3, 1e3):
        scaled = LatentImputer(random_state=0).fit_transform(X_missing * scale)
        np.testing.assert_allclose(scaled[hidden] / scale, filled[hidden], rtol=1e-6, atol=1e-9)


# ------------------------------------------------- the neighbours' correction
def clusters(n=600, d=10, centres=6, seed=0):
    """Rows around a few well-separated centres: structure a single latent
    Gaussian misses and neighbouring rows share."""
    rng = np.random.RandomState(seed)
    means = 3.0 * rng.normal(size=(centres, d))
    return means[rng.randint(centres, size=n)] + 0.3 * rng.normal(size=(n, d))


def test_neighbours_correct_the_fills_where_rows_form_clusters():
    X = clusters()
    X_missing, hidden = holes(X, rate=0.2)
    corrected = LatentImputer(random_state=0).fit(X_missing)
    model_only = LatentImputer(n_neighbors=0, random_state=0).fit(X_missing)
    assert 0.3 < corrected.neighbor_weight_ <= 1 and model_only.neighbor_weight_ == 0
    errors = [rmse(m.transform(X_missing), X, hidden) for m in (corrected, model_only)]
    assert errors[0] < 0.8 * errors[1]
    # the donors are measured by every observed value, hidden ones included
    donors = corrected._donors
    seen = ~np.isnan(donors.values)
    np.testing.assert_allclose(donors.completed[seen], donors.values[seen], rtol=1e-6)


def test_one_neighbour_is_one_other_row_not_the_row_itself():
    X = clusters()
    X_missing, hidden = holes(X, rate=0.2)
    one = LatentImputer(n_neighbors=1, random_state=0).fit(X_missing)
    assert one.neighbor_weight_ > 0.3
    model_only = LatentImputer(n_neighbors=0, random_state=0).fit(X_missing)
    errors = [rmse(m.transform(X_missing), X, hidden) for m in (one, model_only)]
    assert errors[0] < 0.9 * errors[1]


def test_the_correction_survives_pickling_and_float32_rows():
    import pickle

    X_missing, _ = holes(clusters(n=300), rate=0.2)
    imputer = LatentImputer(random_state=0).fit(X_missing.astype(np.float32))
    assert imputer.neighbor_weight_ > 0
    filled = imputer.transform(X_missing.astype(np.float32))
    assert filled.dtype == np.float32 and np.isfinite(filled).all()
    again = pickle.loads(pickle.dumps(imputer)).transform(X_missing.astype(np.float32))
    np.testing.assert_array_equal(again, filled)


def test_on_one_gaussian_factor_model_the_neighbours_add_little():
    X, cov, mean = low_rank(n=600, d=8, k=2, noise=0.3)
    X_missing, hidden = holes(X, rate=0.2)
    imputer = LatentImputer(random_state=0).fit(X_missing)
    assert imputer.neighbor_weight_ < 0.3
    best = rmse(oracle(X_missing, cov, mean), X, hidden)
    assert rmse(imputer.transform(X_missing), X, hidden) < 1.03 * best


def test_a_draw_moves_by_the_same_correction_as_the_mean():
    X_missing, hidden = holes(clusters(n=300), rate=0.2)
    imputer = LatentImputer(random_state=0).fit(X_missing)
    assert imputer.neighbor_weight_ > 0
    corrected = {}
    for donors in (imputer._donors, None):
        imputer._donors = donors
        corrected[donors is None] = [
            imputer.set_params(sample_posterior=s).transform(X_missing) for s in (False, True)
        ]
    shift = corrected[False][0] - corrected[True][0]
    assert np.abs(shift[hidden]).max() > 0.1
    np.testing.assert_allclose(corrected[False][1] - corrected[True][1], shift, atol=1e-9)


def test_local_means_average_the_donors_nearest_over_the_rows_observed_entries():
    from skvae._neighbors import Donors

    rng = np.random.RandomState(0)
    completed = rng.normal(size=(40, 3))
    values = np.where(rng.uniform(size=(40, 3)) < 0.3, np.nan, completed)
    donors = Donors(completed, values, 3, rng)  # asks for 3 + 1 (a training row is its own)
    rows = np.where(rng.uniform(size=(12, 3)) < 0.3, np.nan, rng.normal(size=(12, 3)))
    rows[0] = np.nan  # nothing to measure by: the model's fills
    fills = rng.normal(size=(12, 3))
    local = donors.local_means(rows, fills)
    np.testing.assert_array_equal(local[0], fills[0])
    for row, query, fill in zip(local[1:], rows[1:], fills[1:], strict=True):
        seen = ~np.isnan(query)  # the row's own fills do not count
        distance = ((completed[:, seen] - query[seen]) ** 2).sum(axis=1)
        near = values[np.argsort(distance)[:4]]
        count = (~np.isnan(near)).sum(axis=0)
        mean = np.nansum(near, axis=0) / np.maximum(count, 1)
        expected = np.where(count > 0, mean, fill)
        np.testing.assert_allclose(row, expected)


def test_the_weight_is_the_least_squares_one_less_its_standard_error():
    from skvae._neighbors import one_se_weight

    rng = np.random.RandomState(0)
    step = rng.normal(size=2000)
    residual = 0.6 * step + 0.5 * rng.normal(size=2000)
    w = one_se_weight(step, residual)
    assert 0.55 < w < 0.6  # 0.6 less an error of about 0.011
    assert one_se_weight(step, rng.normal(size=2000)) < 0.01  # no signal: within an error
    assert one_se_weight(step, -0.5 * step) == 0.0  # away from the neighbours: none
    assert one_se_weight(step, step) == 1.0  # the neighbours exactly
    assert one_se_weight(np.zeros(5), np.ones(5)) == 0.0


def test_a_tall_table_lends_at_most_the_donor_limit_of_rows(monkeypatch):
    from skvae import _neighbors

    monkeypatch.setattr(_neighbors, "DONORS", 150)
    X_missing, hidden = holes(clusters(n=600), rate=0.2)
    imputer = LatentImputer(random_state=0).fit(X_missing)
    assert imputer._donors.completed.shape == (150, 10)
    assert imputer._donors.values.shape == (150, 10)
    filled = imputer.transform(X_missing)
    assert np.isfinite(filled).all()
