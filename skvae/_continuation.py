"""What a later ``partial_fit`` may not change: the parameters the networks were built with.

Each estimator names, in ``_network_parameters``, the parameters read once,
when its networks are built: their widths, their activation, the VAE's
likelihood and decoder variance, the Autoencoder's loss. The values they had then are recorded
(:func:`network_params`, kept as ``_network_params``), and a ``partial_fit``
that continues training refuses other values (:func:`check_unchanged`), as
:class:`sklearn.decomposition.IncrementalPCA` refuses a new ``n_components``,
rather than keep training the old networks under parameters that describe
others. ``compute_dtype`` is checked against the networks' own dtype.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch

from ._placement import TORCH_DTYPES

#: The deep estimators' parameters read when the networks are built.
NETWORK_PARAMETERS = (
    "n_components",
    "hidden_layer_sizes",
    "activation",
    "likelihood",
    "decoder_variance",
    "library_size",
    "loss",
)


def _normalised(name: str, value):
    """``value`` in a form that compares by value (hidden sizes as a tuple of ints)."""
    if name == "hidden_layer_sizes":
        try:
            return tuple(int(size) for size in value)
        except (TypeError, ValueError):
            return value
    return value


def _names(estimator) -> list[str]:
    return [name for name in estimator._network_parameters if hasattr(estimator, name)]


def network_params(estimator) -> dict:
    """The current values of ``estimator``'s parameters that fix its networks."""
    return {name: _normalised(name, getattr(estimator, name)) for name in _names(estimator)}


def _module_dtype(estimator) -> torch.dtype:
    return next(estimator.module_.parameters()).dtype


def _refuse(name: str, fitted, new) -> None:
    raise ValueError(
        f"partial_fit cannot change {name}: the networks were built with "
        f"{name}={fitted!r}, and {name} is now {new!r}. Set it back with "
        f"set_params({name}={fitted!r}) to keep training them, or call fit to "
        "train new networks."
    )


def check_unchanged(estimator) -> None:
    """Refuse to continue training a fitted ``estimator`` whose parameters now
    describe other networks than the ones it holds.

    ``n_components`` may also be given as the width it chose
    (``n_components_``). Models fitted before the values were recorded are
    checked for what their networks show: the width, the dtype.
    """
    fitted = getattr(estimator, "_network_params", {})
    for name in _names(estimator):
        new = _normalised(name, getattr(estimator, name))
        if name == "n_components" and _is_width(new, estimator.n_components_):
            continue
        given = getattr(estimator, name)  # as the user set it, for the message
        if name in fitted and not _same(new, fitted[name]):
            _refuse(name, fitted[name], given)
        if name == "n_components" and name not in fitted and isinstance(new, Integral):
            _refuse(name, estimator.n_components_, given)
    compute_dtype = estimator.compute_dtype
    if compute_dtype is not None:
        dtype = _module_dtype(estimator)
        if TORCH_DTYPES[np.dtype(compute_dtype)] != dtype:
            fitted_name = str(dtype).removeprefix("torch.")
            raise ValueError(
                f"partial_fit cannot change compute_dtype: the networks were built in "
                f"{fitted_name}, and compute_dtype is now {compute_dtype!r}. Set it back with "
                f"set_params(compute_dtype={fitted_name!r}) to keep training them, "
                "or call fit to train new networks."
            )


def _is_width(value, width: int) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool) and value == width


def _same(a, b) -> bool:
    """Equal values of one type family (so 1 and True, or "1" and 1, differ)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, str) or isinstance(b, str):
        return a == b and isinstance(a, str) and isinstance(b, str)
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False
