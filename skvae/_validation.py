"""Training data checked for the estimators: in memory, or block by block."""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.utils.validation import check_array, validate_data

from ._missing import has_nan
from ._placement import BATCH_ELEMENTS, CHUNK_ELEMENTS, Rows, as_tensor, dense, is_out_of_core

FLOATS = [np.float64, np.float32]
#: inf is refused by scikit-learn; NaN, where the estimator takes none, by
#: _refuse_nan and _refuse_sparse_nan, which say why
NAN = "allow-nan"


def check_features(estimator, X, reset: bool) -> None:
    """Check (or with ``reset``, set) ``n_features_in_`` from an out-of-core
    array's first row, without reading the rest."""
    # its NaN and inf are the block checks' to refuse, with the reason
    validate_data(estimator, np.asarray(X[:1]), dtype=FLOATS, reset=reset, ensure_all_finite=False)


def training_rows(estimator, X, reset: bool, dtype: torch.dtype | None, row_sums: bool):
    """Validate training data for ``estimator``: its rows as a tensor of the
    compute dtype (``dtype`` if given, else ``estimator._compute_dtype``) or
    as out-of-core :class:`~skvae._placement.Rows`, and the float64 sum of
    each row if ``row_sums``.

    Sets ``n_features_in_`` (with ``reset``) and ``_input_dtype``, the dtype
    of the estimator's outputs. A memmap (or an array that slices like one)
    is checked one block of rows at a time and never read into memory whole.
    """
    # NaN is judged by the parameters in a fit, not by a model fitted before
    judge = clone(estimator) if reset else estimator
    if sp.issparse(X):  # CSR (other formats converted), densified a block at a time
        X = validate_data(
            estimator, X, accept_sparse="csr", dtype=FLOATS, reset=reset, ensure_all_finite=NAN
        )
        _refuse_sparse_nan(judge, X)
        if not X.has_canonical_format:  # a copy with repeated entries summed, once:
            X = X.copy()  # every later pass then reads the values a batch holds
            X.sum_duplicates()
        return _blockwise(estimator, X, dtype, row_sums, X.dtype)
    if not is_out_of_core(X):
        X = validate_data(
            estimator, X, dtype=FLOATS, order="C", reset=reset, ensure_all_finite=NAN
        )
        _refuse_nan(judge, X)
        dtype = dtype or estimator._compute_dtype(X.dtype)
        estimator._check_training_data(X, dtype)
        estimator._input_dtype = X.dtype
        sums = X.sum(axis=1, dtype=np.float64) if row_sums else None
        return as_tensor(X).to(dtype), sums  # no copy when the dtype is already right
    check_features(estimator, X, reset)
    input_dtype = np.dtype(np.float32 if X.dtype == np.float32 else np.float64)
    return _blockwise(estimator, X, dtype, row_sums, input_dtype, judge)


def _blockwise(estimator, X, dtype, row_sums: bool, input_dtype: np.dtype, judge=None):
    """Check X one block of rows at a time; X's rows as :class:`Rows`. ``judge``:
    the estimator whose tags decide on NaN (default: ``estimator``)."""
    judge = estimator if judge is None else judge
    dtype = dtype or estimator._compute_dtype(X.dtype)
    if sp.issparse(X):
        _check_entries(estimator, X, dtype)
        estimator._input_dtype = input_dtype
        sums = np.asarray(X.sum(axis=1, dtype=np.float64)).ravel() if row_sums else None
        return Rows(X, dtype), sums
    step = max(1, CHUNK_ELEMENTS // max(X.shape[1], 1))
    sums = []
    for start in range(0, X.shape[0], step):
        block = X[start : start + step]
        block = dense(block) if sp.issparse(block) else _out_of_core_block(judge, block)
        estimator._check_training_data(block, dtype)
        if row_sums:
            sums.append(block.sum(axis=1, dtype=np.float64))
    estimator._input_dtype = input_dtype
    return Rows(X, dtype), np.concatenate(sums) if row_sums else None


def _check_entries(estimator, X, dtype) -> None:
    """The training-data checks of a (canonical) CSR matrix, on its values: its
    stored entries and a zero, laid out in blocks as wide as X of
    ``BATCH_ELEMENTS`` (a block of dense rows was 32 MiB at 2000 features).
    Every check is of values (their range, a likelihood's support), which
    zeros padding a block cannot fail: any support holds 0."""
    d = max(X.shape[1], 1)
    values = X.data
    step = max(d, BATCH_ELEMENTS // d * d)
    for a in range(0, max(len(values), 1), step):
        part = values[a : a + step]
        block = np.zeros(-(-(len(part) + 1) // d) * d, dtype=values.dtype)
        block[: len(part)] = part
        estimator._check_training_data(block.reshape(-1, d), dtype)


def inference_rows(estimator, X):
    """Validate rows to encode or score: (X, a per-chunk check or None).

    An out-of-core X is checked chunk by chunk as it is read, not copied; a
    sparse one is densified a chunk at a time.
    """
    if sp.issparse(X):
        X = validate_data(
            estimator, X, accept_sparse="csr", dtype=FLOATS, reset=False, ensure_all_finite=NAN
        )
        _refuse_sparse_nan(estimator, X)
        return X, dense
    if not is_out_of_core(X):
        X = validate_data(estimator, X, dtype=FLOATS, reset=False, ensure_all_finite=NAN)
        _refuse_nan(estimator, X)
        return X, None
    check_features(estimator, X, reset=False)
    return X, functools.partial(_out_of_core_block, estimator)


def _takes_nan(estimator) -> bool:
    """Whether dense in-memory data may hold NaN (a missing entry): where the
    estimator's tags allow it. inf never."""
    return estimator.__sklearn_tags__().input_tags.allow_nan


def _why_no_nan(estimator) -> str:
    """Why the estimator takes no missing entries: its own reason
    (``_nan_refusal``, e.g. a count likelihood's), or a plain statement."""
    reason = getattr(estimator, "_nan_refusal", None)
    name = type(estimator).__name__
    return reason() if reason else f"{name} with these parameters takes no missing entries."


def _refuse_nan(estimator, X) -> None:
    """NaN in dense in-memory rows of an estimator that takes none: refused with
    the reason (scikit-learn's own message sends the user to an imputer, while
    most skvae settings read NaN as a missing entry)."""
    if not _takes_nan(estimator) and has_nan(X):
        raise ValueError(f"X contains NaN. {_why_no_nan(estimator)}")


def _out_of_core_block(estimator, block) -> np.ndarray:
    """A block of an out-of-core array, checked: NaN is refused there, since
    missing entries are read in in-memory arrays only."""
    block = check_array(block, dtype=FLOATS, ensure_all_finite=NAN, input_name="X")
    if has_nan(block):
        if not _takes_nan(estimator):
            raise ValueError(f"X, an out-of-core array, contains NaN. {_why_no_nan(estimator)}")
        raise ValueError(
            "X, an out-of-core array, contains NaN: NaN is a missing entry in "
            "in-memory arrays only (in fit, transform and score; partial_fit takes "
            "none). Load X with np.asarray(X), or replace them."
        )
    return block


def _refuse_sparse_nan(estimator, X) -> None:
    """A stored NaN in a (validated, CSR) sparse matrix: refused with what to do
    (scikit-learn's own message says the estimator takes no NaN, which is untrue
    of dense data)."""
    if not bool(np.isnan(X.data).any()):
        return
    name = type(estimator).__name__
    if not _takes_nan(estimator):  # e.g. a count likelihood: NaN is outside its support
        raise ValueError(
            "X is a sparse matrix with NaN among its stored entries: replace them "
            "(in a sparse matrix NaN is never a missing entry). " + _why_no_nan(estimator)
        )
    raise ValueError(
        f"X is a sparse matrix with NaN among its stored entries. {name} reads NaN "
        "as a missing entry in dense arrays only: a sparse matrix's unstored "
        "entries are zeros, observed like the rest. Pass X.toarray() to treat its "
        "NaN as missing, or replace them."
    )
