"""The data sets of the PCA comparison, embedded or generated with fixed seeds.

Three kinds of structure, each with a split into training and test rows
(75/25, ``random_state=0``):

``digits``
    scikit-learn's 8x8 handwritten digits, scaled to [0, 1] (``X / 16``).
``spiked``
    A spiked-covariance model of known rank: a few strong directions plus
    isotropic noise. PCA is the right model here; the autoencoders should
    match it, not beat it.
``s_curve``
    scikit-learn's S curve, a 2-D manifold bent in 3-D, lifted into 12
    dimensions by a random orthogonal map plus a little noise. A nonlinear
    decoder can unroll it with 2 codes; a subspace cannot.
``planar``
    scikit-learn's two moons, a planar data set, lifted into 10 dimensions
    plus isotropic noise: PCA's home ground at k=2, where the deep models
    must match PCA, not lose to it.
``curved``
    A generated curved data set: a 3-D latent variable mapped into 40
    features by random smooth (sinusoidal) functions, plus noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits, make_moons, make_s_curve
from sklearn.model_selection import train_test_split

__all__ = [
    "DATASETS",
    "Dataset",
    "curved",
    "digits",
    "load",
    "planar",
    "s_curve",
    "spiked",
]

#: Share of rows held out for testing, and the seed of the split.
TEST_SIZE = 0.25
SPLIT_RANDOM_STATE = 0


@dataclass(frozen=True)
class Dataset:
    """A data set split into training and test rows.

    Attributes
    ----------
    name : str
        Short name, as passed to ``--datasets``.
    description : str
        One line saying what the data is.
    X_train, X_test : ndarray of shape (n_train, n_features), (n_test, n_features)
        Training and test rows.
    y_train, y_test : ndarray of shape (n_train,), (n_test,) or None
        A value to colour points by (the digit's class, the position along
        the S curve); None when the data has none.
    image_shape : tuple of int or None
        The shape of one row seen as an image (digits: ``(8, 8)``).
    """

    name: str
    description: str
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray | None = None
    y_test: np.ndarray | None = None
    image_shape: tuple[int, int] | None = None

    @property
    def n_features(self) -> int:
        """Number of columns of the data."""
        return self.X_train.shape[1]


def _split(
    name: str,
    description: str,
    X: np.ndarray,
    y: np.ndarray | None,
    n_samples: int | None,
    image_shape: tuple[int, int] | None = None,
) -> Dataset:
    """Optionally keep a random subset of ``n_samples`` rows, then split 75/25."""
    if n_samples is not None and n_samples < len(X):
        rows = np.random.RandomState(SPLIT_RANDOM_STATE).choice(len(X), n_samples, replace=False)
        rows.sort()
        X, y = X[rows], (None if y is None else y[rows])
    arrays = [X] if y is None else [X, y]
    parts = train_test_split(*arrays, test_size=TEST_SIZE, random_state=SPLIT_RANDOM_STATE)
    X_train, X_test = parts[0], parts[1]
    y_train, y_test = (parts[2], parts[3]) if y is not None else (None, None)
    return Dataset(name, description, X_train, X_test, y_train, y_test, image_shape)


def digits(n_samples: int | None = None) -> Dataset:
    """scikit-learn's handwritten digits, 1797 rows of 8x8 pixels scaled to [0, 1].

    Parameters
    ----------
    n_samples : int or None, default=None
        Keep a random subset of this many rows (seeded) before splitting.

    Returns
    -------
    dataset : Dataset
        ``y`` is the digit's class; ``image_shape`` is ``(8, 8)``.
    """
    data = load_digits()
    return _split(
        "digits",
        "8x8 handwritten digits, pixels / 16",
        data.data / 16.0,
        data.target,
        n_samples,
        image_shape=(8, 8),
    )


def spiked(
    n_samples: int | None = None,
    *,
    n_features: int = 50,
    rank: int = 5,
    noise: float = 0.5,
    random_state: int = 0,
) -> Dataset:
    """Spiked covariance: ``rank`` strong directions plus isotropic Gaussian noise.

    Rows are ``x = W (s * z) + noise * e`` with ``z, e`` standard normal,
    ``W`` a random orthonormal basis of ``rank`` columns and spike standard
    deviations ``s`` from 5 down to 1.5. The population covariance is
    ``W diag(s^2) W' + noise^2 I``: PCA's first ``rank`` directions are the
    true ones and ``PCA(rank).noise_variance_`` estimates ``noise ** 2``.

    Parameters
    ----------
    n_samples : int or None, default=None
        Number of rows generated (None: 1000).
    n_features : int, default=50
        Number of columns.
    rank : int, default=5
        Number of spikes.
    noise : float, default=0.5
        Standard deviation of the isotropic noise.
    random_state : int, default=0
        Seed of the generator.

    Returns
    -------
    dataset : Dataset
        No labels (``y`` is None).

    Examples
    --------
    >>> import numpy as np
    >>> from benchmarks.datasets import spiked
    >>> data = spiked()
    >>> eigenvalues = np.linalg.eigvalsh(np.cov(data.X_train, rowvar=False))[::-1]
    >>> bool(eigenvalues[4] > 4 * eigenvalues[5])  # five spikes above the noise
    True
    """
    n_samples = 1000 if n_samples is None else n_samples
    rng = np.random.RandomState(random_state)
    basis, _ = np.linalg.qr(rng.standard_normal((n_features, rank)))
    spikes = np.linspace(5.0, 1.5, rank)
    X = (rng.standard_normal((n_samples, rank)) * spikes) @ basis.T
    X += noise * rng.standard_normal((n_samples, n_features))
    return _split(
        "spiked",
        f"rank-{rank} spiked covariance in {n_features} dims, noise sd {noise}",
        X,
        None,
        None,
    )


def s_curve(
    n_samples: int | None = None,
    *,
    n_features: int = 12,
    noise: float = 0.05,
    random_state: int = 0,
) -> Dataset:
    """The S curve (a bent 2-D sheet in 3-D) lifted into ``n_features`` dimensions.

    The 3-D points of :func:`sklearn.datasets.make_s_curve` are mapped by a
    random matrix with orthonormal columns, then isotropic noise of standard
    deviation ``noise`` is added in every dimension. The data spans 3
    directions, but it lies near a 2-D manifold.

    Parameters
    ----------
    n_samples : int or None, default=None
        Number of rows generated (None: 1000).
    n_features : int, default=12
        Number of columns after lifting (at least 3).
    noise : float, default=0.05
        Standard deviation of the noise added after lifting.
    random_state : int, default=0
        Seed of the curve, the map and the noise.

    Returns
    -------
    dataset : Dataset
        ``y`` is the position along the curve.
    """
    n_samples = 1000 if n_samples is None else n_samples
    rng = np.random.RandomState(random_state)
    X3, t = make_s_curve(n_samples, random_state=rng)
    lift, _ = np.linalg.qr(rng.standard_normal((n_features, 3)))
    X = X3 @ lift.T + noise * rng.standard_normal((n_samples, n_features))
    return _split(
        "s_curve",
        f"S curve (2-D manifold) lifted into {n_features} dims, noise sd {noise}",
        X,
        t,
        None,
    )


def planar(
    n_samples: int | None = None,
    *,
    n_features: int = 10,
    noise: float = 0.05,
    random_state: int = 0,
) -> Dataset:
    """Two moons (planar data) lifted into ``n_features`` dimensions plus noise.

    The 2-D points of :func:`sklearn.datasets.make_moons` are mapped by a
    random matrix with orthonormal columns, then isotropic noise of standard
    deviation ``noise`` is added in every dimension. At k=2 PCA finds the
    plane, and nothing reconstructs held-out rows better than projecting on it.

    Parameters
    ----------
    n_samples : int or None, default=None
        Number of rows generated (None: 1000).
    n_features : int, default=10
        Number of columns after lifting (at least 2).
    noise : float, default=0.05
        Standard deviation of the noise added after lifting.
    random_state : int, default=0
        Seed of the moons, the map and the noise.

    Returns
    -------
    dataset : Dataset
        ``y`` is the moon each point belongs to.
    """
    n_samples = 1000 if n_samples is None else n_samples
    rng = np.random.RandomState(random_state)
    X2, moon = make_moons(n_samples, noise=0.1, random_state=rng)
    lift, _ = np.linalg.qr(rng.standard_normal((n_features, 2)))
    X = X2 @ lift.T + noise * rng.standard_normal((n_samples, n_features))
    return _split(
        "planar",
        f"two moons (planar) lifted into {n_features} dims, noise sd {noise}",
        X,
        moon.astype(float),
        None,
    )


def curved(
    n_samples: int | None = None,
    *,
    n_features: int = 40,
    n_latent: int = 3,
    noise: float = 0.05,
    random_state: int = 0,
) -> Dataset:
    """A ``n_latent``-D manifold curved through ``n_features`` dimensions.

    Each feature is ``sin(a . t + b)`` of a latent point ``t`` uniform on
    [-1, 1]^n_latent, with random frequencies ``a`` (standard normal) and
    phases ``b``, plus Gaussian noise of standard deviation ``noise``.

    Parameters
    ----------
    n_samples : int or None, default=None
        Number of rows generated (None: 1000).
    n_features : int, default=40
        Number of columns.
    n_latent : int, default=3
        Dimension of the manifold.
    noise : float, default=0.05
        Standard deviation of the noise.
    random_state : int, default=0
        Seed of the latent points, the functions and the noise.

    Returns
    -------
    dataset : Dataset
        ``y`` is the first latent coordinate.
    """
    n_samples = 1000 if n_samples is None else n_samples
    rng = np.random.RandomState(random_state)
    t = rng.uniform(-1, 1, size=(n_samples, n_latent))
    freq = rng.standard_normal((n_latent, n_features))
    phase = rng.uniform(0, 2 * np.pi, size=n_features)
    X = np.sin(t @ freq + phase) + noise * rng.standard_normal((n_samples, n_features))
    return _split(
        "curved",
        f"{n_latent}-D manifold curved through {n_features} dims, noise sd {noise}",
        X,
        t[:, 0],
        None,
    )


#: Every data set of the benchmark, by name, in the order of the table.
DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": digits,
    "spiked": spiked,
    "s_curve": s_curve,
    "planar": planar,
    "curved": curved,
}


def load(name: str, n_samples: int | None = None) -> Dataset:
    """Load or generate the data set called ``name``.

    Parameters
    ----------
    name : str
        One of ``DATASETS``: ``"digits"``, ``"spiked"``, ``"s_curve"``,
        ``"planar"``, ``"curved"``.
    n_samples : int or None, default=None
        Number of rows before the split (None: the data set's full size).

    Returns
    -------
    dataset : Dataset
    """
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ValueError(
            f"Unknown data set {name!r}; choose among {', '.join(DATASETS)}."
        ) from None
    return loader(n_samples)
