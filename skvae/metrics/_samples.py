"""Completeness: can samples be told from real rows?"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import pdist
from sklearn.base import clone
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.utils import check_random_state

from ._common import _check_count, _median_nn_distance, _rows, _subsample, generate_samples


def _samples_of(
    estimator_or_samples, n_samples: int, n_features: int, rng: np.random.RandomState
) -> np.ndarray:
    """Generated rows: drawn from an estimator (anything with ``fit``), or as given."""
    if hasattr(estimator_or_samples, "fit"):
        samples = generate_samples(estimator_or_samples, n_samples, random_state=rng)
    else:
        samples = estimator_or_samples
    return _rows(samples, "samples", n_features=n_features)


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
