"""Comparing reductions with PCA: reconstruction error and subspace alignment."""

from __future__ import annotations

import numpy as np
from scipy.linalg import subspace_angles
from sklearn.metrics import mean_squared_error
from sklearn.utils.validation import check_array, check_is_fitted

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
