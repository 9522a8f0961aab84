"""``LatentImputer``'s default model: factor analysis fitted by EM on the
observed entries, held as scikit-learn's ``FactorAnalysis``.

The EM is :mod:`skvae._missing`'s and the closed forms are
:mod:`skvae._missing_forms`' (a noise variance per feature); this module
fits the imputer's candidates, stopped on hidden entries, refines the
chosen one, and fills rows from a fitted model.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.decomposition import FactorAnalysis
from sklearn.utils import check_random_state

from ._missing import PPCA, fit_em, has_nan
from ._missing_forms import completed, conditional_mean, conditional_sample
from ._placement import resolve_device

#: EM steps past the hidden entries' best before a candidate stops
PATIENCE = 5

#: a candidate's EM stops when the hidden entries' log-likelihood has not
#: risen by this many nats per entry for PATIENCE steps; their error changes
#: by less than a percent after that (measured on the benchmark's sets)
TOL = 1e-3

#: the last EM steps, on every entry, from the chosen candidate's parameters
REFINE_STEPS = 3

#: the candidates are fitted and compared on at most this many rows, a random
#: subset of X's (a tall table's EM costs in proportion to its rows; on the
#: curved set at 20000 rows, the same k and fills within 4%); the chosen one
#: is then refined by EM steps on every row
SELECTION_ROWS = 5000


def ledermann_bound(d: int) -> int:
    """The most factors a factor analysis of d features can identify: the
    largest k with (d - k)^2 >= d + k, as many covariances as parameters
    (Ledermann 1937; d = 12: 7). Past it, the model is no longer determined by
    the covariance: its noise variances fall to their floor, and EM crawls
    (on the imputation benchmark's curved set, k = 11 took half the time of
    five candidates)."""
    return int((2 * d + 1 - math.sqrt(8 * d + 1)) // 2)


def selection_rows(X: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    """The rows the candidates are compared on: all of X's, or, past
    SELECTION_ROWS, that many at random, plus two rows observing each column
    the draw left with fewer than two observed entries (as many as it has, if
    fewer)."""
    if len(X) <= SELECTION_ROWS:
        return X
    picked = np.zeros(len(X), dtype=bool)
    picked[rng.choice(len(X), SELECTION_ROWS, replace=False)] = True
    seen = ~np.isnan(X)
    for j in np.flatnonzero(seen[picked].sum(axis=0) < 2):
        picked[np.flatnonzero(seen[:, j] & ~picked)[:2]] = True
    return X[picked]


def em_candidates(X: np.ndarray, X_train: np.ndarray, hidden: np.ndarray, seed: int):
    """``fit(k)`` runs EM for factor analysis of width k on the entries of X
    not ``hidden``, stopping where the hidden ones are likeliest, and gives
    those parameters and X_train (X less the hidden entries) with its rows
    that lost entries filled by their conditional means. One hold-out both
    stops EM and chooses k."""
    device = resolve_device("auto")
    data = torch.as_tensor(X, dtype=torch.float64, device=device)
    held = torch.as_tensor(hidden, dtype=torch.float64, device=device)
    which = np.flatnonzero(hidden.any(axis=1))
    generator = torch.Generator(device)

    def fit(k):
        generator.manual_seed(seed)
        model, history = fit_em(
            data,
            k,
            generator,
            held=held,
            tol=TOL,
            n_iter_no_change=PATIENCE,
            per_feature_noise=True,
        )
        if history.interrupted:  # Ctrl-C: no candidate is fully fitted
            raise KeyboardInterrupt
        filled = X_train.copy()  # only the rows that lost entries: the error reads no others
        filled[which] = completed(X_train[which], conditional_mean, model)
        return model, filled

    return fit


def fit_factor_analysis(X: np.ndarray, k: int, seed: int, start: PPCA | None) -> FactorAnalysis:
    """Factor analysis of width k on all the entries of X: from ``start``, the
    chosen candidate, refined by REFINE_STEPS EM steps on every observed
    entry; with no start, EM run to its maximum likelihood; with no entry
    missing, scikit-learn's own. As a ``FactorAnalysis``, whose
    ``transform``, ``score`` and ``get_covariance`` serve complete rows."""
    if not has_nan(X):
        return FactorAnalysis(k, svd_method="lapack", random_state=seed).fit(X)
    device = resolve_device("auto")
    generator = torch.Generator(device).manual_seed(seed)
    data = torch.as_tensor(X, dtype=torch.float64, device=device)
    steps = {} if start is None else {"max_iter": REFINE_STEPS, "start": start}
    model, history = fit_em(
        data, k, generator, validation_fraction=None, per_feature_noise=True, **steps
    )
    if history.interrupted:
        raise KeyboardInterrupt
    fa = FactorAnalysis(k, svd_method="lapack", random_state=seed)
    fa.components_ = model.weight.T.cpu().numpy()
    fa.noise_variance_ = model.noise.cpu().numpy()
    fa.mean_ = model.mean.cpu().numpy()
    fa.n_features_in_, fa.n_iter_ = X.shape[1], history.n_iter
    # the observed entries' log-likelihood before each EM step
    n_obs = int(np.isfinite(X).sum())
    fa.loglike_ = [-loss * n_obs for loss in history.loss_curve]
    return fa


def fill_candidate(candidate: PPCA, X: np.ndarray) -> np.ndarray:
    """X with its missing entries (NaN) at a candidate's conditional means."""
    return completed(X, conditional_mean, candidate)


def fill(fa: FactorAnalysis, X: np.ndarray, sample: bool, random_state=None) -> np.ndarray:
    """X with its missing entries (NaN) at their conditional means under the
    fitted ``fa``, or, with ``sample``, drawn from their conditional
    distribution (row i's draws do not depend on the rows after it)."""
    device = resolve_device("auto")

    def tensor(a):
        return torch.as_tensor(a, dtype=torch.float64, device=device)

    model = PPCA(tensor(fa.mean_), tensor(fa.components_.T), tensor(fa.noise_variance_))
    if not sample:
        return completed(X, conditional_mean, model)
    k = len(fa.components_)
    normal = check_random_state(random_state).standard_normal((len(X), k + X.shape[1]))
    return completed(X, conditional_sample, model, normal[:, :k], normal[:, k:])
