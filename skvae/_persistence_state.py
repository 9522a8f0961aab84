"""The training state a file keeps besides the fitted attributes, as a pickle does.

A fitted estimator holds a few private attributes that its outputs and a
later ``partial_fit`` read:

* ``_input_dtype``: the training data's dtype, that of :meth:`sample`'s output;
* ``_network_params``: the parameters its networks were built with, which a
  later ``partial_fit`` keeps (see :mod:`skvae._continuation`) and
  :func:`skvae.load` builds the networks from;
* ``_optimizer_state``: Adam's state after a ``partial_fit`` (None after
  ``fit``), from which the next call continues;
* ``_moments`` (``LinearAutoencoder`` only): the running mean and covariance
  of all the rows seen, or None where they were too big to keep.

:func:`encode` splits them into a JSON document and tensors named
``state.<...>``; :func:`decode` checks both against the rebuilt networks and
builds the attributes back, raising ValueError for anything else.
:func:`check_attributes` checks the fitted attributes the same way.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.utils._param_validation import validate_parameter_constraints

from ._linear import LinearAutoencoder
from ._persistence_json import from_json, to_json
from ._subspace import Moments
from ._variational import VariationalAutoencoder

STATE = "state."
_OPTIMIZER, _MOMENTS = STATE + "optimizer.", STATE + "moments."
_INPUT_DTYPES = ("float32", "float64")
#: Network parameters added after files were first written, with the value a
#: file that lacks one was fitted with.
ADDED = {"loss": "squared_error"}
#: Adam's per-parameter state (without amsgrad, which skvae does not use)
_ADAM_KEYS = frozenset({"step", "exp_avg", "exp_avg_sq"})


def _array(tensor: torch.Tensor, name: str) -> np.ndarray:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} is a {type(tensor).__name__}, not a tensor: it cannot be stored.")
    return tensor.detach().cpu().contiguous().numpy()


def encode(estimator) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON document and the tensors of ``estimator``'s training state."""
    doc = {
        "input_dtype": np.dtype(estimator._input_dtype).name,
        "network_params": to_json(getattr(estimator, "_network_params", {})),
        "optimizer": None,
    }
    arrays = {}
    optimizer = estimator._optimizer_state
    if optimizer is not None:
        doc["optimizer"] = {
            "param_groups": to_json(optimizer["param_groups"]),
            "state": {str(i): sorted(entry) for i, entry in optimizer["state"].items()},
        }
        for i, entry in optimizer["state"].items():
            for key, tensor in entry.items():
                name = f"{_OPTIMIZER}{i}.{key}"
                arrays[name] = _array(tensor, name)
    if hasattr(estimator, "_moments"):
        moments = estimator._moments
        doc["moments"] = None if moments is None else {"n_samples": int(moments.n_samples)}
        if moments is not None:
            arrays[_MOMENTS + "mean"] = _array(moments.mean, "the running mean")
            arrays[_MOMENTS + "matrix"] = _array(moments.matrix, "the running covariance")
    return doc, arrays


def decode(doc, arrays: dict, estimator, module: torch.nn.Module, path) -> dict:
    """The private attributes stored as ``doc`` and the ``state.`` ``arrays``,
    checked against ``module``, the estimator's rebuilt networks."""
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: the training state is a {type(doc).__name__}, not an object.")
    keys = {"input_dtype", "network_params", "optimizer"}
    # a LinearAutoencoder loaded from a file of format 1 has no moments to store
    allowed = keys | ({"moments"} if isinstance(estimator, LinearAutoencoder) else set())
    if not keys <= set(doc) <= allowed:
        raise ValueError(
            f"{path}: the training state has the entries {sorted(doc)}, not {sorted(allowed)}."
        )
    if doc["input_dtype"] not in _INPUT_DTYPES:
        raise ValueError(f"{path}: unknown input dtype {doc['input_dtype']!r}.")
    state = {
        "_input_dtype": np.dtype(doc["input_dtype"]),
        "_network_params": network_params(doc["network_params"], estimator, path),
    }
    used = set()
    state["_optimizer_state"] = _optimizer(doc["optimizer"], arrays, module, used, path)
    if "moments" in doc:
        state["_moments"] = _moments(doc["moments"], arrays, estimator, used, path)
    if isinstance(estimator, VariationalAutoencoder) and (estimator.noise_variance_ is None) != (
        module.family.noise_variance(1.0) is None
    ):
        raise ValueError(f"{path}: noise_variance_ does not fit the decoder's likelihood.")
    stored = {name for name in arrays if name.startswith(STATE)}
    if stored != used:
        raise ValueError(
            f"{path}: training-state tensors missing {sorted(used - stored)}, "
            f"unexpected {sorted(stored - used)}."
        )
    return state


def network_params(doc, estimator, path) -> dict:
    """The parameters the networks were built with, checked by name."""
    params = from_json(doc) if doc is not None else None
    names = [n for n in estimator._network_parameters if hasattr(estimator, n)]
    if isinstance(params, dict) and params:  # a file older than the parameter: its default
        params = {**{n: ADDED[n] for n in names if n in ADDED and n not in params}, **params}
    if not isinstance(params, dict) or (params and sorted(params) != sorted(names)):
        raise ValueError(
            f"{path}: the networks' parameters are {params!r}, not values of {names}."
        )
    constraints = {name: estimator._parameter_constraints[name] for name in params}
    try:
        validate_parameter_constraints(constraints, params, caller_name="the stored networks")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    sizes = params.get("hidden_layer_sizes", ())
    if not isinstance(sizes, tuple) or not all(_count(size) for size in sizes):
        raise ValueError(f"{path}: the networks' hidden_layer_sizes {sizes!r} are not valid.")
    return params


def _tensor(arrays: dict, name: str, used: set, like: torch.Tensor | None, path) -> torch.Tensor:
    """The stored tensor ``name``, of ``like``'s shape and dtype (a float scalar
    if ``like`` is None)."""
    if name not in arrays:
        raise ValueError(f"{path}: the training-state tensor {name!r} is missing.")
    used.add(name)
    tensor = torch.from_numpy(arrays[name].copy())
    shape, dtype = ((), None) if like is None else (like.shape, like.dtype)
    if tuple(tensor.shape) != tuple(shape) or not tensor.is_floating_point():
        raise ValueError(
            f"{path}: the tensor {name!r} is {tensor.dtype} of shape {tuple(tensor.shape)}, "
            f"not a float of shape {tuple(shape)}."
        )
    if dtype is not None and tensor.dtype != dtype:
        raise ValueError(f"{path}: the tensor {name!r} is {tensor.dtype}, not {dtype}.")
    return tensor


def _optimizer(doc, arrays: dict, module, used: set, path) -> dict | None:
    """Adam's state dict for ``module``'s parameters, or None."""
    if doc is None:
        return None
    params = list(module.parameters())
    if not isinstance(doc, dict) or set(doc) != {"param_groups", "state"}:
        raise ValueError(f"{path}: the optimiser's state is not Adam's for these networks.")
    groups, entries = from_json(doc["param_groups"]), doc["state"]
    if (
        not isinstance(groups, list)
        or not all(_is_group(group) for group in groups)
        or [i for group in groups for i in group["params"]] != list(range(len(params)))
        or not isinstance(entries, dict)
    ):
        raise ValueError(f"{path}: the optimiser's state is not Adam's for these networks.")
    state = {}
    for key, names in entries.items():
        if (
            not key.isdigit()
            or int(key) >= len(params)
            or not isinstance(names, list)
            or not all(isinstance(name, str) for name in names)
            or set(names) != _ADAM_KEYS
        ):
            raise ValueError(f"{path}: the optimiser's state for parameter {key!r} is malformed.")
        i = int(key)
        state[i] = {
            name: _tensor(
                arrays,
                f"{_OPTIMIZER}{i}.{name}",
                used,
                None if name == "step" else params[i],
                path,
            )  # fmt: skip
            for name in names
        }
    return {"state": state, "param_groups": groups}


def _is_group(group) -> bool:
    """A parameter group of the Adam skvae makes: indices of parameters, its
    hyperparameters, and the flags torch sets (those skvae never turns on off)."""
    if not isinstance(group, dict) or not set(group) <= _GROUP_KEYS:
        return False
    params, betas = group.get("params"), group.get("betas")
    return (
        isinstance(params, list)
        and all(type(i) is int for i in params)
        and all(_count(group.get(key), 0) or _positive(group.get(key)) for key in _REALS)
        and isinstance(betas, tuple)
        and len(betas) == 2
        and all(_number(b) and 0 <= b < 1 for b in betas)
        and all(group.get(flag, False) is False for flag in _OFF)
        and all(group.get(flag) in (None, True, False) for flag in ("foreach", "fused"))
    )


def _positive(value) -> bool:
    return _number(value) and math.isfinite(value) and value >= 0


_REALS = ("lr", "eps", "weight_decay")
_OFF = ("amsgrad", "maximize", "capturable", "differentiable", "decoupled_weight_decay")
_GROUP_KEYS = {"params", "betas", "foreach", "fused", *_REALS, *_OFF}


def _moments(doc, arrays: dict, estimator, used: set, path) -> Moments | None:
    if doc is None:
        return None
    n = doc.get("n_samples") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or set(doc) != {"n_samples"} or type(n) is not int or n < 1:
        raise ValueError(f"{path}: the running moments' count of rows {doc!r} is not valid.")
    d = estimator.n_features_in_
    like_mean = torch.zeros(d, dtype=torch.float64, device="meta")
    like_matrix = torch.zeros(d, d, dtype=torch.float64, device="meta")
    mean = _tensor(arrays, _MOMENTS + "mean", used, like_mean, path)
    matrix = _tensor(arrays, _MOMENTS + "matrix", used, like_matrix, path)
    return Moments(mean, matrix, n)


# ---------------------------------------------------------- fitted attributes
def _number(value) -> bool:
    return isinstance(value, int | float | np.floating | np.integer) and not isinstance(
        value, bool | np.bool_
    )


def _count(value, least: int = 1) -> bool:
    return type(value) is int and value >= least


#: What each fitted attribute must be: a test, or the shape of a float array in
#: terms of k (n_components_) and d (n_features_in_); "?" allows None too.
_KINDS = {
    "n_features_in_": _count,
    "n_components_": _count,
    "n_samples_": _count,
    "n_iter_": lambda v: _count(v, 0),
    "loss_curve_": lambda v: isinstance(v, list) and all(_number(x) for x in v),
    "validation_scores_": lambda v: v is None or isinstance(v, list) and all(map(_number, v)),
    "best_loss_": lambda v: v is None or _number(v),
    "best_validation_score_": lambda v: v is None or _number(v),
    "noise_variance_": lambda v: v is None or _positive(v),
    "kl_threshold_": lambda v: v is None or _number(v),
    "components_": "kd",
    "explained_variance_": "k",
    "explained_variance_ratio_": "k",
    "singular_values_": "k",
    "mean_": "d",
    "latent_mean_": "k",
    "latent_covariance_": "kk",
    "latent_kl_": "k?",
    "null_kl_": "k?",
}
_COMMON = ("n_features_in_", "n_components_", "n_iter_", "loss_curve_", "best_loss_",
           "validation_scores_", "best_validation_score_", "noise_variance_")  # fmt: skip
#: The fitted attributes every model of a class has (what fit sets).
REQUIRED = {
    "LinearAutoencoder": (
        *_COMMON,
        "components_",
        "explained_variance_",
        "mean_",
        "explained_variance_ratio_",
        "singular_values_",
        "n_samples_",
        "latent_mean_",
        "latent_covariance_",
    ),  # fmt: skip
    "Autoencoder": (*_COMMON, "latent_mean_", "latent_covariance_"),
    "VariationalAutoencoder": (*_COMMON, "latent_kl_", "null_kl_", "kl_threshold_"),
}


def check_attributes(attributes: dict, estimator, path) -> None:
    """Refuse fitted ``attributes`` that a fit of ``estimator``'s class could not
    have set: one missing, of another type, or an array of another shape."""
    missing = [n for n in REQUIRED[type(estimator).__name__] if n not in attributes]
    if missing:
        raise ValueError(f"{path}: the fitted attributes {missing} are missing.")
    k, d = attributes["n_components_"], attributes["n_features_in_"]
    for name in ("n_features_in_", "n_components_"):
        if not _count(attributes[name]):
            raise ValueError(f"{path}: {name}={attributes[name]!r} is not a positive int.")
    for name, value in attributes.items():
        kind = _KINDS.get(name)
        if callable(kind) and not kind(value):
            raise ValueError(f"{path}: the fitted attribute {name}={value!r} is not valid.")
        if isinstance(kind, str) and not (kind.endswith("?") and value is None):
            shape = tuple({"k": k, "d": d}[c] for c in kind.rstrip("?"))
            if not (isinstance(value, np.ndarray) and value.dtype.kind == "f"
                    and value.shape == shape):  # fmt: skip
                raise ValueError(
                    f"{path}: the fitted attribute {name} is {_describe(value)}, but "
                    f"n_components_={k} and n_features_in_={d} make it a float array of "
                    f"shape {shape}."
                )
    noiseless = isinstance(estimator, VariationalAutoencoder) or (
        getattr(estimator, "loss", "squared_error") != "squared_error"
    )  # a likelihood of its own (counts): no one noise variance
    if attributes["noise_variance_"] is None and not noiseless:
        raise ValueError(f"{path}: noise_variance_ is None; this model has a noise variance.")
    names = attributes.get("feature_names_in_")
    if names is not None and not (
        isinstance(names, np.ndarray) and names.shape == (d,) and names.dtype.kind in "UO"
    ):
        raise ValueError(f"{path}: feature_names_in_ is not {d} strings.")


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    return f"a {type(value).__name__}"
