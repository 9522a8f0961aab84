"""Latent-regularity columns for the PCA comparison.

:func:`regularity_columns` measures one fitted model (PCA or an skvae
estimator) with the latent-regularity metrics of :mod:`skvae.metrics`: are its
samples realistic, is its latent space continuous and covered.
:func:`benchmarks.plots.plot_regularity` draws the columns of a results table.
This module draws nothing and imports no matplotlib, so that
:mod:`benchmarks.compare` (which imports it) runs without the ``bench`` extra.

The metrics run on a few hundred rows, samples and latent paths, so that one
model takes a fraction of a second on digits-sized data.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

from skvae.metrics import (
    generate_samples,
    latent_continuity,
    latent_coverage,
    maximum_mean_discrepancy,
    nearest_neighbour_ratio,
    sample_realism,
)

__all__ = ["COLUMNS", "IDEAL", "regularity_columns"]

#: The columns of :func:`regularity_columns`, with the label of their panel.
COLUMNS: dict[str, str] = {
    "sample_realism": "sample realism\n(kNN two-sample accuracy)",
    "mmd2": "MMD² of samples\n(RBF, median bandwidth)",
    "nn_ratio_samples_to_data": "nearest-neighbour ratio,\nsamples to data",
    "nn_ratio_data_to_samples": "nearest-neighbour ratio,\ndata to samples",
    "latent_continuity": "latent unevenness\n(along straight paths)",
    "latent_coverage": "latent draws in holes\n(share)",
}

#: The best value of each column, drawn as a dashed line in the figure.
IDEAL: dict[str, float] = {
    "sample_realism": 0.5,
    "mmd2": 0.0,
    "nn_ratio_samples_to_data": 1.0,
    "nn_ratio_data_to_samples": 1.0,
    "latent_continuity": 0.0,
    "latent_coverage": 0.05,  # 1 - quantile: what draws from the codes' own law give
}

#: Most rows used: training rows (reference of the distances, training codes)
#: and test rows (real rows compared with as many samples, path ends).
_MAX_TRAIN, _MAX_TEST = 2000, 500
_N_PAIRS, _N_STEPS, _N_DRAWS = 100, 16, 500


def regularity_columns(model, data_train, data_test, random_state=0) -> dict[str, float]:
    """The latent-regularity metrics of one fitted model, as table columns.

    Up to 500 test rows and 2000 training rows (drawn at random) are used:
    as many samples as test rows are drawn (PCA through probabilistic PCA,
    see :func:`skvae.metrics.generate_samples`) and compared with the test
    rows; 100 latent paths of 16 steps join codes of test rows; 500 latent
    draws are checked against the training codes.

    Parameters
    ----------
    model : fitted estimator
        PCA or an skvae estimator, fitted on ``data_train``.
    data_train : array-like of shape (n_train, n_features)
        The training rows.
    data_test : array-like of shape (n_test, n_features)
        Held-out rows.
    random_state : int, default=0
        Seeds the subsampling, the samples, the paths and the latent draws.

    Returns
    -------
    columns : dict of str to float
        One value per key of :data:`COLUMNS`: ``sample_realism``
        (:func:`~skvae.metrics.sample_realism`, 0.5 best), ``mmd2``
        (:func:`~skvae.metrics.maximum_mean_discrepancy`, 0 best),
        ``nn_ratio_samples_to_data`` and ``nn_ratio_data_to_samples``
        (:func:`~skvae.metrics.nearest_neighbour_ratio`, 1 best),
        ``latent_continuity`` (:func:`~skvae.metrics.latent_continuity`, 0
        best) and ``latent_coverage`` (:func:`~skvae.metrics.latent_coverage`,
        about 0.05 best).
    """
    rng = check_random_state(random_state)
    X_train = np.asarray(data_train)
    X_test = np.asarray(data_test)
    X_train = X_train[rng.permutation(len(X_train))[:_MAX_TRAIN]]
    X_test = X_test[rng.permutation(len(X_test))[:_MAX_TEST]]
    samples = generate_samples(model, len(X_test), random_state=random_state)
    return {
        "sample_realism": sample_realism(samples, X_test, random_state=random_state),
        "mmd2": maximum_mean_discrepancy(samples, X_test, random_state=random_state),
        "nn_ratio_samples_to_data": nearest_neighbour_ratio(samples, X_train, X_test),
        "nn_ratio_data_to_samples": nearest_neighbour_ratio(
            samples, X_train, X_test, direction="data_to_samples", random_state=random_state
        ),
        "latent_continuity": latent_continuity(
            model, X_test, n_pairs=_N_PAIRS, n_steps=_N_STEPS, random_state=random_state
        ),
        "latent_coverage": latent_coverage(
            model, X_train, n_draws=_N_DRAWS, random_state=random_state
        ),
    }
