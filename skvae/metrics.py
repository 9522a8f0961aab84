"""Metrics for fitted reductions, PCA and the skvae estimators alike.

Two groups: comparing reductions with PCA (reconstruction error and subspace
alignment), and the regularity of a latent space (are generated samples
realistic, does decoding change smoothly along latent paths, do the model's
latent draws land where training data was encoded). The regularity metrics
use only the public API, ``transform``, ``inverse_transform`` and ``sample``,
so they apply to any fitted transformer; see :func:`generate_samples` for
models without ``sample``, such as PCA.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import subspace_angles
from scipy.spatial.distance import pdist
from scipy.stats import multivariate_normal
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import mean_squared_error
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from . import VariationalAutoencoder

__all__ = [
    "generate_samples",
    "latent_continuity",
    "latent_coverage",
    "latent_gaussian",
    "linear_basis",
    "max_principal_angle",
    "maximum_mean_discrepancy",
    "nearest_neighbour_ratio",
    "principal_angles",
    "reconstruction_error",
    "sample_realism",
]

_FLOATS = [np.float64, np.float32]


def reconstruction_error(estimator, X) -> float:
    """Mean squared error of ``estimator.inverse_transform(estimator.transform(X))``.

    Works for any fitted transformer with an ``inverse_transform``: PCA and the
    skvae estimators alike.

    Parameters
    ----------
    estimator : fitted transformer
        Must implement ``transform`` and ``inverse_transform``.
    X : array-like of shape (n_samples, n_features)
        Data to reconstruct.

    Returns
    -------
    mse : float
        Mean over rows and features of the squared reconstruction error.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from skvae.metrics import reconstruction_error
    >>> X = np.random.RandomState(0).normal(size=(50, 4))
    >>> float(round(reconstruction_error(PCA(n_components=4).fit(X), X), 12))
    0.0
    """
    X = check_array(X, dtype=[np.float64, np.float32])
    X_hat = np.asarray(estimator.inverse_transform(estimator.transform(X)))
    return float(mean_squared_error(X, X_hat))


def linear_basis(obj) -> np.ndarray:
    """A basis of the subspace of a linear reduction, as rows (k, n_features).

    ``obj`` is an array of basis rows (as ``PCA.components_``), a fitted
    estimator with ``components_`` (PCA, ``LinearAutoencoder``), or a fitted
    skvae estimator whose decoder is a single linear map
    (``hidden_layer_sizes=()``), whose columns span its subspace.
    """
    if hasattr(obj, "components_"):
        return np.asarray(obj.components_)
    if hasattr(obj, "fit"):
        check_is_fitted(obj)
        decoder = getattr(obj.module_, "decoder", None)
        if decoder is None or decoder.correction is not None:
            raise ValueError(
                f"{type(obj).__name__} has a nonlinear decoder: its image is a curved "
                "manifold, not a subspace, so principal angles are undefined. Use "
                "hidden_layer_sizes=() for a linear decoder."
            )
        return decoder.linear.weight.detach().cpu().numpy().T
    return check_array(obj, input_name="basis")


def principal_angles(a, b, *, degrees: bool = True) -> np.ndarray:
    """Principal angles between the subspaces of two linear reductions.

    Built on :func:`scipy.linalg.subspace_angles`. Zero angles mean the same
    subspace, whatever basis each one uses.

    Parameters
    ----------
    a, b : fitted estimator or array of shape (k, n_features)
        See :func:`linear_basis`.
    degrees : bool, default=True
        Angles in degrees, else radians.

    Returns
    -------
    angles : ndarray of shape (min(k_a, k_b),)
        From the largest to the smallest.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae.metrics import principal_angles
    >>> principal_angles(np.eye(3)[:2], np.array([[1.0, 1.0, 0.0]]))
    array([0.])
    >>> principal_angles(np.eye(3)[:1], np.eye(3)[1:2])
    array([90.])
    """
    A, B = linear_basis(a), linear_basis(b)
    if A.shape[1] != B.shape[1]:
        raise ValueError(
            f"The two subspaces live in spaces of different dimension: {A.shape[1]} "
            f"and {B.shape[1]} features."
        )
    angles = subspace_angles(A.T, B.T)
    return np.degrees(angles) if degrees else angles


def max_principal_angle(a, b, *, degrees: bool = True) -> float:
    """The largest principal angle between two subspaces; see :func:`principal_angles`.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae.metrics import max_principal_angle
    >>> round(max_principal_angle(np.eye(2), [[1.0, 1.0]]), 6)
    0.0
    """
    return float(np.max(principal_angles(a, b, degrees=degrees)))


# ---------------------------------------------------------------------------
# Latent regularity: are samples realistic, and is the latent space continuous
# and covered? Only the public API of the estimators is used.
# ---------------------------------------------------------------------------


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


def _samples_of(
    estimator_or_samples, n_samples: int, n_features: int, rng: np.random.RandomState
) -> np.ndarray:
    """Generated rows: drawn from an estimator (anything with ``fit``), or as given."""
    if hasattr(estimator_or_samples, "fit"):
        samples = generate_samples(estimator_or_samples, n_samples, random_state=rng)
    else:
        samples = estimator_or_samples
    return _rows(samples, "samples", n_features=n_features)


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
    if isinstance(estimator, VariationalAutoencoder):
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


def sample_realism(
    estimator_or_samples, X_real, *, classifier=None, cv: int = 5, random_state=None
) -> float:
    """How well a classifier tells generated samples from real rows (lower is better).

    A classifier two-sample test (Lopez-Paz and Oquab, 2017): as many samples
    as real rows are labelled 0 and 1, and the score is the cross-validated
    accuracy of a classifier trained to tell them apart. If the samples come
    from the data's distribution no classifier can do better than chance. The
    real rows should be held out from training: a model that memorised its
    training rows would otherwise look perfect.

    The default classifier is a 5-nearest-neighbour vote in the data's units
    (:class:`~sklearn.neighbors.KNeighborsClassifier`). It needs no training,
    so it is fast, and it sees local differences of shape: samples collapsed
    onto a few points, blurred towards the mean, or spread where the data has
    none. A linear classifier would only see a shift of the mean. Standardise
    the data first if its features have different units.

    Parameters
    ----------
    estimator_or_samples : fitted estimator or array-like of shape (n_samples, n_features)
        An estimator (anything with ``fit``) is asked for ``len(X_real)``
        samples by :func:`generate_samples`; an array is used as it is.
    X_real : array-like of shape (n_real, n_features)
        Real rows, held out from training.
    classifier : scikit-learn classifier, default=None
        Cloned and cross-validated; None for the 5-nearest-neighbour vote.
    cv : int, default=5
        Number of stratified folds.
    random_state : int, RandomState instance or None, default=None
        Seeds the samples, the subsampling of the larger set to the size of
        the smaller and the folds.

    Returns
    -------
    accuracy : float
        In [0, 1]: about 0.5 when samples and real rows are indistinguishable
        (chance, a little below or above), 1.0 when they are trivially told
        apart. Closer to 0.5 is better.

    See Also
    --------
    maximum_mean_discrepancy : A kernel two-sample statistic.

    References
    ----------
    D. Lopez-Paz and M. Oquab, "Revisiting classifier two-sample tests", ICLR 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae.metrics import sample_realism
    >>> rng = np.random.RandomState(0)
    >>> real = rng.normal(size=(200, 4))
    >>> round(sample_realism(rng.normal(size=(200, 4)), real, random_state=0), 1)
    0.5
    >>> round(sample_realism(np.zeros((200, 4)), real, random_state=0), 2)  # collapsed
    0.99
    """
    cv = _check_count(cv, "cv", 2)
    rng = check_random_state(random_state)
    X_real = _rows(X_real, "X_real", min_rows=cv)
    samples = _samples_of(estimator_or_samples, len(X_real), X_real.shape[1], rng)
    n = min(len(samples), len(X_real))
    if n < cv:
        raise ValueError(f"samples has {n} rows; cv={cv} folds need at least {cv}.")
    X = np.vstack([_subsample(samples, n, rng), _subsample(X_real, n, rng)])
    y = np.repeat([0, 1], n)
    model = KNeighborsClassifier(n_neighbors=5) if classifier is None else clone(classifier)
    folds = StratifiedKFold(cv, shuffle=True, random_state=rng.randint(np.iinfo(np.int32).max))
    return float(np.mean(cross_val_score(model, X, y, cv=folds)))


def maximum_mean_discrepancy(
    A, B, *, bandwidth: float | None = None, max_samples: int = 1000, random_state=None
) -> float:
    """Squared maximum mean discrepancy between two samples, RBF kernel (lower is better).

    MMD² is the squared distance between the mean embeddings of the two
    distributions in the kernel's feature space (Gretton et al., 2012): zero
    if and only if the distributions are equal. The kernel is
    ``k(a, b) = exp(-||a - b||² / (2 bandwidth²))``. The returned value is the
    unbiased estimate, which averages the kernel over distinct pairs only.

    Parameters
    ----------
    A, B : array-like of shape (n_a, n_features), (n_b, n_features)
        The two samples, e.g. generated and held-out real rows.
    bandwidth : float, default=None
        The kernel's length scale. None: the median heuristic, the median of
        the Euclidean distances between all pairs of rows of A and B pooled.
    max_samples : int, default=1000
        Rows kept from each sample (drawn at random): the cost grows with the
        square of the number of rows.
    random_state : int, RandomState instance or None, default=None
        Seeds the choice of rows when a sample has more than ``max_samples``.

    Returns
    -------
    mmd2 : float
        The estimate of MMD², at most 2. Near 0 for equal distributions, where
        the unbiased estimate may come out slightly negative; larger means
        more different.

    See Also
    --------
    sample_realism : A classifier two-sample test.

    References
    ----------
    A. Gretton, K. M. Borgwardt, M. J. Rasch, B. Schölkopf and A. Smola,
    "A kernel two-sample test", JMLR 13, 2012.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae.metrics import maximum_mean_discrepancy
    >>> rng = np.random.RandomState(0)
    >>> A, B = rng.normal(size=(300, 2)), rng.normal(size=(300, 2))
    >>> abs(maximum_mean_discrepancy(A, B)) < 0.01
    True
    >>> maximum_mean_discrepancy(A, B + 3.0) > 0.5
    True
    """
    max_samples = _check_count(max_samples, "max_samples", 2)
    rng = check_random_state(random_state)
    A = _rows(A, "A", min_rows=2, dtype=np.float64)
    B = _rows(B, "B", min_rows=2, n_features=A.shape[1], dtype=np.float64)
    A, B = _subsample(A, max_samples, rng), _subsample(B, max_samples, rng)
    if bandwidth is None:
        bandwidth = float(np.median(pdist(np.vstack([A, B])))) or 1.0  # all rows equal: any
    elif not (np.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"bandwidth must be a positive number, got {bandwidth!r}.")
    gamma = 1.0 / (2.0 * bandwidth**2)

    def mean_off_diagonal(K: np.ndarray) -> float:
        return float((K.sum() - np.trace(K)) / (len(K) * (len(K) - 1)))

    within = mean_off_diagonal(rbf_kernel(A, gamma=gamma)) + mean_off_diagonal(
        rbf_kernel(B, gamma=gamma)
    )
    return within - 2.0 * float(rbf_kernel(A, B, gamma=gamma).mean())


def nearest_neighbour_ratio(
    estimator_or_samples,
    X_train,
    X_heldout,
    *,
    direction: str = "samples_to_data",
    random_state=None,
) -> float:
    """How close samples lie to the data, relative to how close new real data lies.

    With ``direction="samples_to_data"`` (the default), the median Euclidean
    distance from each sample to its nearest training row, divided by the
    median distance from each held-out row to its nearest training row. New
    real data sets the scale: a good generator's samples are as far from the
    training rows as unseen real rows are.

    ``direction="data_to_samples"`` asks the reverse question: the median
    distance from each held-out row to its nearest sample, divided by its
    median distance to the nearest of as many training rows (drawn at
    random) as there are samples. It is large when parts of the data have no
    sample nearby, e.g. when all samples collapse onto a few points.

    Parameters
    ----------
    estimator_or_samples : fitted estimator or array-like of shape (n_samples, n_features)
        An estimator (anything with ``fit``) is asked for ``len(X_heldout)``
        samples by :func:`generate_samples`; an array is used as it is.
    X_train : array-like of shape (n_train, n_features)
        The rows the model was trained on.
    X_heldout : array-like of shape (n_heldout, n_features)
        Real rows the model has not seen.
    direction : {"samples_to_data", "data_to_samples"}, default="samples_to_data"
        Which distances are measured, see above.
    random_state : int, RandomState instance or None, default=None
        Seeds the samples and the subsampling.

    Returns
    -------
    ratio : float
        Non-negative; about 1 is best. ``"samples_to_data"``: much above 1,
        the samples lie off the data; much below 1, they copy training rows
        (memorisation) or crowd onto a few of them. ``"data_to_samples"``:
        much above 1, the samples miss parts of the data.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae.metrics import nearest_neighbour_ratio
    >>> rng = np.random.RandomState(0)
    >>> train, heldout = rng.normal(size=(300, 3)), rng.normal(size=(100, 3))
    >>> round(nearest_neighbour_ratio(rng.normal(size=(100, 3)), train, heldout), 1)
    1.0
    >>> nearest_neighbour_ratio(train[:100], train, heldout)  # copies of training rows
    0.0
    """
    rng = check_random_state(random_state)
    X_train = _rows(X_train, "X_train")
    X_heldout = _rows(X_heldout, "X_heldout", n_features=X_train.shape[1])
    samples = _samples_of(estimator_or_samples, len(X_heldout), X_train.shape[1], rng)
    if direction == "samples_to_data":
        ratio = _median_nn_distance(samples, X_train), _median_nn_distance(X_heldout, X_train)
    elif direction == "data_to_samples":
        n = min(len(samples), len(X_train))
        ratio = (
            _median_nn_distance(X_heldout, _subsample(samples, n, rng)),
            _median_nn_distance(X_heldout, _subsample(X_train, n, rng)),
        )
    else:
        raise ValueError(
            f"direction must be 'samples_to_data' or 'data_to_samples', got {direction!r}."
        )
    if ratio[1] == 0:
        raise ValueError(
            "The median distance from X_heldout to the nearest training row is 0: most "
            "held-out rows duplicate training rows, so they cannot set the scale."
        )
    return ratio[0] / ratio[1]


def latent_continuity(
    estimator, X, *, n_pairs: int = 100, n_steps: int = 16, random_state=None
) -> float:
    """How unevenly the decoded output changes along straight latent paths (lower is better).

    Continuity asks that equal steps through the latent space change the
    decoded output by similar amounts: no jumps, where a small step changes
    the output a lot, and no dead zones, where steps change nothing. For
    ``n_pairs`` random pairs of rows of ``X``, the straight path between
    their codes is cut into ``n_steps`` equal steps and decoded, and
    ``d_1, ..., d_n_steps`` are the Euclidean distances between consecutive
    decoded points. The unevenness of one path is the coefficient of
    variation ``std(d) / mean(d)``; the score is its mean over the paths,
    divided by its largest possible value, ``sqrt(n_steps - 1)`` (all the
    change in one step).

    Each path is compared only with itself, so the score does not depend on
    the units of the latent space (codes multiplied by 100, with a decoder
    that divides by 100, score the same) or of the data. A path along which
    the output does not change at all (steps below 100 machine epsilons of
    the largest decoded value) counts as even, 0: a decoder that ignores its
    input is continuous, and fails :func:`sample_realism` instead.

    Parameters
    ----------
    estimator : fitted transformer
        Must implement ``transform`` and ``inverse_transform``.
    X : array-like of shape (n_samples, n_features)
        Rows whose codes are the ends of the paths; held-out rows are best.
    n_pairs : int, default=100
        Number of paths.
    n_steps : int, default=16
        Steps per path (at least 2).
    random_state : int, RandomState instance or None, default=None
        Seeds the choice of pairs.

    Returns
    -------
    unevenness : float
        In [0, 1]: 0 when the output changes at a constant rate along every
        path (any linear decoder), 1 when each path changes in a single jump.
        A path that is dead for half its length and even for the rest scores
        ``1 / sqrt(n_steps - 1)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from skvae.metrics import latent_continuity
    >>> X = np.random.RandomState(0).normal(size=(100, 5))
    >>> pca = PCA(n_components=2).fit(X)
    >>> round(latent_continuity(pca, X, random_state=0), 6)  # linear: perfectly even
    0.0
    """
    _check_fitted(estimator, "transform", "inverse_transform")
    n_pairs = _check_count(n_pairs, "n_pairs", 1)
    n_steps = _check_count(n_steps, "n_steps", 2)
    _rows(X, "X", min_rows=2)  # checked, then passed as given (keeps feature names)
    rng = check_random_state(random_state)
    Z = np.asarray(estimator.transform(X))
    first = rng.randint(len(Z), size=n_pairs)
    second = (first + rng.randint(1, len(Z), size=n_pairs)) % len(Z)  # never the same row
    t = np.linspace(0.0, 1.0, n_steps + 1)[None, :, None]
    paths = Z[first, None, :] + t * (Z[second] - Z[first])[:, None, :]
    paths = paths.reshape(-1, Z.shape[1]).astype(Z.dtype, copy=False)
    decoded = np.asarray(estimator.inverse_transform(paths))
    tolerance = 100 * np.finfo(decoded.dtype).eps * np.abs(decoded).max()
    decoded = decoded.reshape(n_pairs, n_steps + 1, -1).astype(np.float64)
    steps = np.linalg.norm(np.diff(decoded, axis=1), axis=2)
    mean_step = steps.mean(axis=1)
    moving = mean_step > tolerance
    unevenness = np.zeros(n_pairs)
    unevenness[moving] = steps[moving].std(axis=1) / mean_step[moving]
    return float(unevenness.mean() / np.sqrt(n_steps - 1))


def latent_coverage(
    estimator,
    X_train,
    *,
    samples_z=None,
    n_draws: int = 1000,
    quantile: float = 0.95,
    random_state=None,
) -> float:
    """The share of latent draws that land in holes between training codes (lower is better).

    Completeness asks that the latent points a model decodes when it
    generates lie where training data was encoded, since the decoder learned
    nothing elsewhere. The training rows are encoded, and the hole radius is
    the ``quantile`` (0.95) of the codes' distances to their nearest other
    code. A draw lands in a hole when its nearest training code is farther
    than that radius. Draws come from :func:`latent_gaussian`, the
    distribution the model's ``sample`` decodes (the prior of a
    :class:`~skvae.VariationalAutoencoder`), unless ``samples_z`` gives them.

    Distances are Euclidean in the latent space, radius and draws alike, so
    the score does not depend on the latent space's units.

    Parameters
    ----------
    estimator : fitted transformer
        Must implement ``transform``.
    X_train : array-like of shape (n_train, n_features)
        The rows the model was trained on.
    samples_z : array-like of shape (n_draws, n_components), default=None
        Latent draws to test instead of draws from :func:`latent_gaussian`.
    n_draws : int, default=1000
        Number of latent draws when ``samples_z`` is None.
    quantile : float, default=0.95
        Which quantile of the codes' nearest-neighbour distances is the hole
        radius, in (0, 1].
    random_state : int, RandomState instance or None, default=None
        Seeds the latent draws.

    Returns
    -------
    hole_share : float
        In [0, 1]: 0 when every draw has a training code nearby, 1 when all
        land in holes. Draws from the codes' own distribution land in a hole
        about ``1 - quantile`` of the time (0.05), so that is what full
        coverage looks like in practice.

    Notes
    -----
    Only the public API is used, so a :class:`~skvae.VariationalAutoencoder`'s
    training codes are its posterior means (``transform``), not draws from
    its posteriors. Its decoder was also trained on the noise around each
    mean, so a draw in a hole between the means is not necessarily a point
    the decoder never saw.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from skvae.metrics import latent_coverage
    >>> X = np.random.RandomState(0).normal(size=(500, 4))
    >>> pca = PCA(n_components=2).fit(X)
    >>> round(latent_coverage(pca, X, random_state=0), 2) <= 0.1
    True
    >>> latent_coverage(pca, X, samples_z=np.full((10, 2), 50.0))  # far from all codes
    1.0
    """
    _check_fitted(estimator, "transform")
    n_draws = _check_count(n_draws, "n_draws", 1)
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile!r}.")
    rng = check_random_state(random_state)
    _rows(X_train, "X_train", min_rows=2)  # checked, then passed as given
    Z = np.asarray(estimator.transform(X_train), dtype=np.float64)
    if samples_z is None:
        mean, cov = latent_gaussian(estimator, X_train)
        samples_z = _gaussian_draws(mean, cov, n_draws, rng)
    samples_z = _rows(samples_z, "samples_z", n_features=Z.shape[1])
    neighbours = NearestNeighbors(n_neighbors=1).fit(Z)
    own = neighbours.kneighbors()[0][:, 0]  # each code's nearest *other* code
    radius = np.quantile(own, quantile)
    distances = neighbours.kneighbors(samples_z)[0][:, 0]
    return float(np.mean(distances > radius))
