"""``n_components="auto"`` for the VAE: how many latent units are active.

A unit is *active* when it carries information about the rows: its posterior
q(z_u|x) differs from the prior, so its average KL to the prior,
E_x KL(q(z_u|x) || N(0, 1)), is above zero (Burda et al.'s "active units").
A fixed threshold on that KL cannot choose the latent width of a VAE that
starts at probabilistic PCA's optimum, as skvae's do: there a unit's average
KL is 1/2 log(L_u / s2), its principal variance against the mean variance s2
of the discarded directions. Sample eigenvalues spread around the noise
level, s2 is the mean of the smallest ones, so every unit kept beyond the
data's rank has L_u > s2 and a KL well above zero (0.12 to 0.23 nats on
scikit-learn's rank-5 example), and so does Burda's activity
Cov_x E_q[z_u] (0.21 to 0.37 against his 0.01).

The threshold is calibrated instead (parallel analysis, Horn 1965): the
same model, with the same upper bound on its width, is also fitted to the
data with each column shuffled on its own. That keeps every feature's
distribution and destroys what the features share, so whatever KL a unit
reaches there is what fitting noise gives. A unit of the real fit is active
when its average KL exceeds the largest of those. The estimator is then
fitted again with as many units as are active, an ordinary fit of that width
(its PCA start makes the refit cheap for linear decoders).

Nothing here imports an estimator; it works through the estimator it is given.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from ._stopping import TrainingInterrupted

#: From active_units to the caller of fit: active_units, the estimator's
#: _resolve_n_components, _fit, fit, scikit-learn's _fit_context wrapper, the caller.
_STACKLEVEL = 6


def upper_bound(n_samples: int, n_features: int) -> int:
    """The width fitted first: half of ``min(n_samples, n_features)``, at least 1.

    Probabilistic PCA estimates the noise from the directions it leaves out;
    with at least as many left out as kept, that estimate (and with it every
    unit's KL) does not rest on the few smallest eigenvalues.
    """
    return max(1, min(n_samples, n_features) // 2)


def shuffled_columns(X, rng: np.random.RandomState) -> np.ndarray:
    """``X`` with each column permuted on its own: same marginals, no dependence.

    A new array in memory, read one column at a time from ``X`` (an array, or
    one on disk that slices like it); a sparse ``X`` stays sparse, its entries
    moved to new rows column by column.
    """
    if sp.issparse(X):
        X = sp.csc_matrix(X, copy=True)
        for j in range(X.shape[1]):
            column = slice(X.indptr[j], X.indptr[j + 1])
            X.indices[column] = rng.permutation(X.shape[0])[X.indices[column]]
        X.has_sorted_indices = False
        X.sort_indices()
        return X.tocsr()
    out = np.empty(X.shape, dtype=X.dtype)
    for j in range(X.shape[1]):
        out[:, j] = np.asarray(X[:, j])[rng.permutation(X.shape[0])]
    return out


def unit_kl(estimator, X) -> np.ndarray:
    """Average KL(q(z_u|x) || N(0, 1)) over the rows of ``X`` of each latent unit
    of a fitted VAE, in nats, decreasing."""

    def kl(module, x):
        mean, logvar = module.encode(x)
        return 0.5 * (mean**2 + logvar.exp() - 1.0 - logvar)

    with torch.no_grad():
        per_row = estimator._map_rows(kl, X, estimator.n_components_)
    return np.sort(per_row.mean(axis=0, dtype=np.float64))[::-1].copy()


def _fit_reporting(estimator, X) -> bool:
    """Fit ``estimator`` on ``X``; True if it stopped at ``max_iter``.

    Its warnings come back to the caller of fit, except the ConvergenceWarning,
    which :func:`active_units` turns into one of its own. A Ctrl-C that stopped
    training stops ``"auto"`` altogether: a KeyboardInterrupt, and fit leaves
    the estimator as it was, since no width has been chosen yet.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator.fit(X)
    unconverged = False
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            unconverged = True
        elif issubclass(w.category, TrainingInterrupted):
            raise KeyboardInterrupt
        else:
            warnings.warn(w.message, w.category, stacklevel=_STACKLEVEL + 1)
    return unconverged


def active_units(estimator, X) -> tuple[int, dict]:
    """The number of active units of ``estimator`` (a VAE, unfitted) on ``X``.

    Fits two clones of ``estimator`` with ``upper_bound`` units, one on ``X``
    and one on ``X`` with shuffled columns, seeded from its ``random_state``.
    Returns the count (at least 1) and the fitted attributes that report it:
    ``latent_kl_`` and ``null_kl_`` (each unit's average KL, decreasing) and
    ``kl_threshold_`` (the largest of ``null_kl_``).
    """
    k = upper_bound(*X.shape)
    rng = check_random_state(estimator.random_state)
    fit_seed, shuffle_seed = (int(s) for s in rng.randint(np.iinfo(np.int32).max, size=2))
    params = {"n_components": k, "random_state": fit_seed}
    bound, null = clone(estimator).set_params(**params), clone(estimator).set_params(**params)
    X_null = shuffled_columns(X, np.random.RandomState(shuffle_seed))
    unconverged = _fit_reporting(bound, X) | _fit_reporting(null, X_null)
    if unconverged:
        warnings.warn(
            f"The fits with n_components={k} that choose the number of active units "
            f"stopped at max_iter={bound._max_iter()} before converging; the count "
            "may change with more training. Consider raising max_iter.",
            ConvergenceWarning,
            stacklevel=_STACKLEVEL,
        )
    latent_kl, null_kl = unit_kl(bound, X), unit_kl(null, X_null)
    threshold = float(null_kl[0])
    n_active = max(1, int(np.sum(latent_kl > threshold)))
    if estimator.verbose:
        print(
            f"n_components='auto': {n_active} of {k} units have an average KL above "
            f"{threshold:.4g} nats, the largest on shuffled columns"
        )
    return n_active, {"latent_kl_": latent_kl, "null_kl_": null_kl, "kl_threshold_": threshold}
