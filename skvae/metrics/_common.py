"""Helpers shared by the regularity metrics: checks, row subsets, Gaussian draws."""

from __future__ import annotations

import numpy as np
from scipy.stats import multivariate_normal
from sklearn.base import BaseEstimator
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from ._comparison import _FLOATS


def _check_fitted(estimator, *methods: str) -> None:
    """Raise unless ``estimator`` has ``methods`` and, if an sklearn estimator, is fitted."""
    missing = [name for name in methods if not callable(getattr(estimator, name, None))]
    if missing:
        raise TypeError(
            f"{type(estimator).__name__} has no {' or '.join(missing)} method; this "
            f"metric needs a fitted estimator with {', '.join(methods)}."
        )
    if isinstance(estimator, BaseEstimator):  # others: duck-typed, trusted to be fitted
        check_is_fitted(estimator)


def _check_count(value, name: str, minimum: int) -> int:
    """``value`` as an int, or a ValueError naming ``name`` if it is not one >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _rows(
    X, name: str, *, min_rows: int = 1, n_features: int | None = None, dtype=_FLOATS
) -> np.ndarray:
    """``X`` checked as a finite 2-D float array with enough rows and columns."""
    X = check_array(X, dtype=dtype, input_name=name)
    if len(X) < min_rows:
        raise ValueError(f"{name} has {len(X)} rows; this metric needs at least {min_rows}.")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"{name} has {X.shape[1]} features, but the data it is compared with has {n_features}."
        )
    return X


def _subsample(X: np.ndarray, n: int, rng: np.random.RandomState) -> np.ndarray:
    """``n`` random rows of ``X`` drawn without replacement (all of them if fewer)."""
    if len(X) <= n:
        return X
    return X[rng.choice(len(X), n, replace=False)]


def _gaussian_draws(
    mean: np.ndarray, cov: np.ndarray, n: int, rng: np.random.RandomState
) -> np.ndarray:
    """``n`` draws from N(mean, cov), shape (n, len(mean)); cov may be singular."""
    draws = multivariate_normal(mean, cov, allow_singular=True).rvs(size=n, random_state=rng)
    return np.asarray(draws, dtype=np.float64).reshape(n, len(mean))


def _median_nn_distance(queries: np.ndarray, reference: np.ndarray) -> float:
    """Median over ``queries`` of the Euclidean distance to the nearest reference row."""
    distances, _ = NearestNeighbors(n_neighbors=1).fit(reference).kneighbors(queries)
    return float(np.median(distances[:, 0]))


def generate_samples(estimator, n_samples: int, *, random_state=None) -> np.ndarray:
    """Draw new rows from a fitted model; PCA through probabilistic PCA.

    An estimator with a ``sample(n_samples, random_state=...)`` method, as
    every skvae estimator has, is asked for its samples. One without it but
    with a Gaussian model of the data, ``mean_`` and ``get_covariance()``
    (:class:`~sklearn.decomposition.PCA`, whose covariance is that of
    probabilistic PCA, or :class:`~sklearn.decomposition.FactorAnalysis`),
    gives draws from ``N(mean_, get_covariance())``.

    Parameters
    ----------
    estimator : fitted estimator
        A model with ``sample``, or with ``mean_`` and ``get_covariance``.
    n_samples : int
        Number of rows to draw.
    random_state : int, RandomState instance or None, default=None
        Seeds the draws.

    Returns
    -------
    samples : ndarray of shape (n_samples, n_features)

    Notes
    -----
    Both kinds of sample come from the full generative model: the skvae
    estimators' ``sample`` adds the decoder's noise (variance
    ``noise_variance_``, or Bernoulli draws) to the decoded latent draws, and
    probabilistic PCA's samples are its decoded latent draw plus isotropic
    noise. To compare decoded means instead, call
    ``estimator.sample(n, noise=False)`` (for PCA, ``pca.inverse_transform(z)``
    with ``z`` drawn by :func:`latent_gaussian`) and pass the result wherever
    a metric accepts samples.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from skvae.metrics import generate_samples
    >>> X = np.random.RandomState(0).normal(size=(200, 3))
    >>> generate_samples(PCA(n_components=1).fit(X), 5, random_state=0).shape
    (5, 3)
    """
    n_samples = _check_count(n_samples, "n_samples", 1)
    _check_fitted(estimator)
    if callable(getattr(estimator, "sample", None)):
        return np.asarray(estimator.sample(n_samples, random_state=random_state))
    if hasattr(estimator, "mean_") and callable(getattr(estimator, "get_covariance", None)):
        rng = check_random_state(random_state)
        return _gaussian_draws(estimator.mean_, estimator.get_covariance(), n_samples, rng)
    raise TypeError(
        f"{type(estimator).__name__} can neither sample nor give a Gaussian model of the "
        "data (mean_ and get_covariance); generate the samples yourself and pass the "
        "array instead."
    )


def latent_gaussian(estimator, X=None) -> tuple[np.ndarray, np.ndarray]:
    """The Gaussian a fitted model draws its latent points from.

    The rules, first match wins:

    1. :class:`~skvae.VariationalAutoencoder`: its prior, ``N(0, I)``.
    2. A model with ``latent_mean_`` and ``latent_covariance_``
       (:class:`~skvae.Autoencoder`, :class:`~skvae.LinearAutoencoder`): the
       Gaussian of the training codes that its ``sample`` draws from.
    3. A PCA-like model (``mean_``, ``components_`` and
       ``explained_variance_``): its codes are centred, so
       ``N(0, diag(explained_variance_))``, or ``N(0, I)`` with ``whiten=True``.
    4. Any other transformer: the mean and covariance of ``transform(X)``.

    Parameters
    ----------
    estimator : fitted transformer
    X : array-like of shape (n_samples, n_features), default=None
        Training data; needed only by rule 4.

    Returns
    -------
    mean : ndarray of shape (n_components,)
    covariance : ndarray of shape (n_components, n_components)

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from skvae.metrics import latent_gaussian
    >>> X = np.random.RandomState(0).normal(size=(100, 3)) * [3.0, 2.0, 1.0]
    >>> mean, cov = latent_gaussian(PCA(n_components=2).fit(X))
    >>> mean, cov.shape
    (array([0., 0.]), (2, 2))
    """
    _check_fitted(estimator, "transform")
    if getattr(estimator, "_prior_latent", False):  # a VAE: its prior
        k = estimator.n_components_
        return np.zeros(k), np.eye(k)
    if hasattr(estimator, "latent_mean_") and hasattr(estimator, "latent_covariance_"):
        mean = np.asarray(estimator.latent_mean_, dtype=np.float64)
        return mean, np.asarray(estimator.latent_covariance_, dtype=np.float64)
    if all(hasattr(estimator, a) for a in ("mean_", "components_", "explained_variance_")):
        variance = np.asarray(estimator.explained_variance_, dtype=np.float64)
        if getattr(estimator, "whiten", False):
            variance = np.ones_like(variance)
        return np.zeros(len(variance)), np.diag(variance)
    if X is None:
        raise ValueError(
            f"{type(estimator).__name__} has no latent distribution of its own; pass "
            "its training data X to fit a Gaussian to the codes."
        )
    _rows(X, "X", min_rows=2)  # checked, then passed as given (keeps feature names)
    Z = np.asarray(estimator.transform(X), dtype=np.float64)
    return Z.mean(axis=0), np.atleast_2d(np.cov(Z, rowvar=False))
