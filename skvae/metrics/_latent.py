"""Continuity and coverage of a latent space."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_random_state

from ._common import _check_count, _check_fitted, _gaussian_draws, _rows, latent_gaussian


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
