"""Dask arrays through fitted estimators, block by block, with the right output shape.

Training on a dask array needs nothing from here: ``partial_fit`` makes
:class:`dask_ml.wrappers.Incremental` work (see :doc:`/user_guide/scaling`).
For inference, :class:`dask_ml.wrappers.ParallelPostFit` maps ``transform``
over the blocks but declares the output as wide as the input, so the lazy
array's ``shape`` and ``chunks`` are wrong until computed, and it has no
``inverse_transform`` or ``score_samples``. :func:`transform_blocks` does all
three with the output's true width, dtype and chunks.

It needs the ``dask`` extra (``pip install "skvae[dask]"``). Importing this
module imports no dask.
"""

from __future__ import annotations

import numpy as np

from ._optional import import_optional

__all__ = ["transform_blocks"]

_METHODS = ("transform", "inverse_transform", "score_samples")


def _apply(block, estimator, method):
    # np.asarray: a DataFrame from set_output(transform="pandas") becomes a block.
    return np.asarray(getattr(estimator, method)(block))


def transform_blocks(estimator, X, method="transform"):
    """Apply a fitted estimator's row-wise method to each block of rows of a dask array.

    Parameters
    ----------
    estimator : estimator
        A fitted estimator with ``method``: a skvae estimator, or e.g. a
        :class:`~sklearn.pipeline.Pipeline` that ends in one. For a model
        trained with :class:`dask_ml.wrappers.Incremental`, pass its fitted
        ``estimator_``.
    X : dask.array.Array of shape (n_samples, n_width)
        The input, chunked along the rows; chunks along the columns are
        merged first. Anything else :func:`dask.array.asarray` takes becomes a
        one-block dask array.
    method : {"transform", "inverse_transform", "score_samples"}, \
            default="transform"
        The method to apply. ``inverse_transform`` takes latent points.

    Returns
    -------
    result : dask.array.Array
        Lazy; of shape (n_samples, n_out) with X's row chunks, where ``n_out``
        is ``n_components_`` for ``transform`` and ``n_features_in_`` for
        ``inverse_transform``, or of shape (n_samples,) for
        ``score_samples``.

    Raises
    ------
    ImportError
        If dask is not installed.
    ValueError
        If ``method`` is not one of the three above, or ``X`` is not
        two-dimensional. Errors of the method itself (an unfitted estimator,
        the wrong number of columns) are raised here too, not at compute time.

    Notes
    -----
    The estimator goes into the graph once, as one task that the blocks
    share, so a distributed scheduler sends it to each worker once rather than
    with every block. The graph holds the estimator object itself: train it
    further only after computing what was built from it.

    One row of zeros goes through ``method`` here, in this process, to learn
    the output's width and dtype (float32 data gives float32 results) and to
    check ``X`` against the model before anything runs.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from skvae import LinearAutoencoder
    >>> from skvae.dask import transform_blocks
    >>> X = np.random.RandomState(0).normal(size=(100, 6))
    >>> model = LinearAutoencoder(n_components=2, random_state=0).fit(X)
    >>> Xd = da.from_array(X, chunks=(25, 6))
    >>> Z = transform_blocks(model, Xd)
    >>> Z.shape, Z.chunks
    ((100, 2), ((25, 25, 25, 25), (2,)))
    >>> np.allclose(Z.compute(), model.transform(X))
    True
    >>> transform_blocks(model, Xd, "score_samples").chunks
    ((25, 25, 25, 25),)
    >>> transform_blocks(model, Z, "inverse_transform").shape
    (100, 6)
    """
    dask = import_optional("dask", "dask", "skvae.dask.transform_blocks")
    da = import_optional("dask.array", "dask", "skvae.dask.transform_blocks")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")
    X = da.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be two-dimensional, got {X.ndim} dimensions.")
    if X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    # The method's output on one row: its width and dtype, and the method's own
    # checks (fitted, right width) now rather than in a worker at compute time.
    probe = _apply(np.zeros((1, X.shape[1]), dtype=X.dtype), estimator, method)
    model = dask.delayed(estimator, pure=True, traverse=False)
    if probe.ndim == 1:
        chunks, drop_axis = (X.chunks[0],), 1
    else:
        chunks, drop_axis = (X.chunks[0], (probe.shape[1],)), None
    return X.map_blocks(
        _apply,
        model,
        method,
        chunks=chunks,
        drop_axis=drop_axis,
        dtype=probe.dtype,
        meta=probe[:0],
        token=f"{method}-blocks",
    )
