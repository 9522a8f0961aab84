"""Saving fitted estimators to safetensors files, and loading them without pickle.

One file holds a fitted estimator:

* the tensors: the module's ``state_dict`` under ``module.<key>``, every
  fitted attribute that is a NumPy array, NumPy scalar or torch tensor under
  ``attribute.<name>``, and the training state's tensors (Adam's, the running
  moments) under ``state.<...>``;
* the safetensors metadata, a str -> str mapping with two entries:
  ``"skvae"``, a JSON document (format version, class name, skvae and torch
  versions, ``get_params(deep=False)``, the ``set_output`` choice, the
  module's dtype, the fitted attributes that are plain JSON values and the
  rest of the training state, see :mod:`skvae._persistence_state`), and
  ``"skvae_sha256"``, a SHA-256 digest of that document and of every tensor
  (name, dtype, shape, bytes).

Loading runs no code from the file: the class comes from a fixed list of
names, the estimator is rebuilt from its parameters with ``_build_module``,
and the tensors are copied into it after strict checks of their names,
shapes and dtypes. The digest detects a file that was damaged or edited by
hand; it is no signature, since whoever can write the file can write a new
digest too.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from . import _autoencoder, _linear, _variational  # noqa: F401 - they register
from ._base import ESTIMATORS as _CLASSES
from ._optional import import_optional
from ._persistence_json import Unstorable, from_json, parse, to_json
from ._persistence_state import STATE, check_attributes, decode, encode, network_params
from ._ppca_module import ppca_state

#: Version of the file layout; a reader refuses files of a later version.
#: Version 2 added the training state (skvae._persistence_state); version 3,
#: LinearAutoencoder's probabilistic PCA among its module's tensors.
FORMAT_VERSION = 3

#: The only classes a file may name: loading never imports anything else.
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_MODULE, _ATTRIBUTE = "module.", "attribute."
_PAYLOAD, _DIGEST = "skvae", "skvae_sha256"
#: The most characters and the deepest nesting of the JSON document that load
#: parses; save writes far less (feature names are the bulk) and 8 levels deep.
MAX_METADATA_CHARS, MAX_DEPTH = 64 * 2**20, 32
_EXTRA = "safetensors"


# ------------------------------------------------------------------- the parts
def _parameters(estimator) -> dict:
    params = estimator.get_params(deep=False)
    random_state = params.get("random_state")
    if random_state is not None and not isinstance(random_state, int | np.integer):
        raise TypeError(
            f"random_state is a {type(random_state).__name__}, which a file cannot hold "
            "(only an int or None). The fitted model does not depend on it: call "
            "estimator.set_params(random_state=0) (or None) before saving."
        )
    encoded = {}
    for name, value in params.items():
        try:
            encoded[name] = to_json(value)
        except Unstorable as exc:
            raise TypeError(
                f"parameter {name}={value!r} holds a {exc}, which a file cannot hold: "
                "only None, bool, int, float, str, torch.device and lists, tuples "
                "and dicts of these."
            ) from None
    return encoded


def _fitted_attributes(estimator) -> tuple[dict, dict, dict]:
    """Split the fitted attributes (but ``module_``) into tensors and JSON values.

    Returns the arrays for the file, the kind of each (``"ndarray"``,
    ``"scalar"`` or ``"tensor"``) and the JSON-encoded rest.
    """
    arrays, kinds, values = {}, {}, {}
    for name, value in vars(estimator).items():
        if not _is_fitted_attribute(name):
            continue
        if isinstance(value, np.ndarray) and value.dtype != object and value.dtype.kind != "U":
            # safetensors writes an array's memory as it lies: only C order reads back
            arrays[name], kinds[name] = np.ascontiguousarray(value), "ndarray"
        elif isinstance(value, np.generic) and not isinstance(value, np.str_ | np.bytes_):
            arrays[name], kinds[name] = np.asarray(value), "scalar"
        elif isinstance(value, torch.Tensor):
            arrays[name], kinds[name] = _to_numpy(value, name), "tensor"
        else:
            try:
                values[name] = to_json(value)
            except Unstorable as exc:
                raise TypeError(
                    f"the fitted attribute {name} is a {exc}, which skvae.save cannot "
                    "store: it stores NumPy arrays and scalars, torch tensors, and "
                    "None, bool, int, float, str and lists, tuples and dicts of these."
                ) from None
    return arrays, kinds, values


def _is_fitted_attribute(name: str) -> bool:
    """scikit-learn's convention (trailing underscore), less the networks themselves."""
    return name.endswith("_") and not name.startswith("__") and name != "module_"


def _to_numpy(tensor: torch.Tensor, name: str) -> np.ndarray:
    try:
        return tensor.detach().cpu().contiguous().numpy()
    except TypeError as exc:
        raise TypeError(f"{name}: a tensor of dtype {tensor.dtype} cannot be stored.") from exc


def _digest(payload: str, arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of the JSON document and of every tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256(payload.encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(json.dumps([name, array.dtype.str, list(array.shape)]).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _class_of(estimator) -> str:
    name = type(estimator).__name__
    if _CLASSES.get(name) is not type(estimator):
        raise TypeError(
            f"skvae.save stores {', '.join(_CLASSES)} only, not {type(estimator).__name__}."
        )
    return name


def _module_dtype(module: torch.nn.Module) -> str:
    dtype = next(module.parameters()).dtype
    names = [name for name, known in _DTYPES.items() if known == dtype]
    if not names:
        raise TypeError(f"the module's dtype {dtype} cannot be stored (float32 or float64).")
    return names[0]


# -------------------------------------------------------------------- save
def save(estimator, path: str | os.PathLike) -> None:
    """Write a fitted skvae estimator to a safetensors file, without pickle.

    The weights and fitted arrays go in the file as tensors; the parameters,
    the other fitted attributes, the class name and the versions go in its
    metadata as JSON. :func:`load` reads it back without running code from
    the file. Needs the ``safetensors`` package
    (``pip install "skvae[safetensors]"``).

    Parameters
    ----------
    estimator : LinearAutoencoder, Autoencoder or VariationalAutoencoder
        A fitted estimator. Its parameters must be JSON values (an int or
        None as ``random_state``, not a ``RandomState``).
    path : str or os.PathLike
        The file to write (conventionally ``*.safetensors``); overwritten if it
        exists.

    Raises
    ------
    ImportError
        If safetensors is not installed.
    TypeError
        If the estimator, a parameter or a fitted attribute cannot be stored.
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.

    See Also
    --------
    load : Read the file back.

    Examples
    --------
    >>> import tempfile, os, numpy as np
    >>> import skvae
    >>> X = np.random.RandomState(0).normal(size=(50, 4))
    >>> lae = skvae.LinearAutoencoder(n_components=2, random_state=0).fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "lae.safetensors")
    >>> skvae.save(lae, path)
    >>> np.array_equal(skvae.load(path).transform(X), lae.transform(X))
    True
    """
    safetensors_numpy = import_optional("safetensors.numpy", _EXTRA, "skvae.save")
    name = _class_of(estimator)
    check_is_fitted(estimator)
    module = estimator.module_
    arrays = {_MODULE + k: _to_numpy(v, k) for k, v in module.state_dict().items()}
    attribute_arrays, kinds, values = _fitted_attributes(estimator)
    arrays.update({_ATTRIBUTE + k: v for k, v in attribute_arrays.items()})
    state, state_arrays = encode(estimator)
    arrays.update(state_arrays)
    payload = json.dumps(
        {
            "format_version": FORMAT_VERSION,
            "class": name,
            "skvae_version": _skvae_version(),
            "torch_version": torch.__version__,
            "params": _parameters(estimator),
            "dtype": _module_dtype(module),
            "module_training": module.training,
            # set_output's choice, e.g. {"transform": "pandas"}; not a fitted attribute
            "output_config": getattr(estimator, "_sklearn_output_config", {}),
            "arrays": kinds,
            "attributes": values,
            "state": state,
        },
        sort_keys=True,
    )
    metadata = {_PAYLOAD: payload, _DIGEST: _digest(payload, arrays)}
    safetensors_numpy.save_file(arrays, os.fspath(path), metadata=metadata)


def _skvae_version() -> str:
    from . import __version__

    return __version__


# -------------------------------------------------------------------- load
def load(path: str | os.PathLike, *, device: str | torch.device | None = None):
    """Read an estimator written by :func:`save`.

    Nothing in the file is run: the class must be one of skvae's three
    estimators, which is rebuilt from the stored parameters; its tensors are
    read onto the CPU, whatever device the model was fitted on, and must match
    the rebuilt networks name for name, shape for shape and dtype for dtype.
    ``transform``, ``inverse_transform``, ``score_samples`` and ``sample`` of
    the result give the same bits as the saved estimator, and ``partial_fit``
    continues its training as it would continue the saved one's, as after a
    pickle round trip.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save`.
    device : str, torch.device or None, default=None
        If given, replaces the stored ``device`` parameter, e.g. ``"cpu"`` for
        a model fitted with ``device="cuda"`` and used on a machine without a
        GPU. The weights are on the CPU either way.

    Returns
    -------
    estimator : LinearAutoencoder, Autoencoder or VariationalAutoencoder
        The fitted estimator.

    Raises
    ------
    ImportError
        If safetensors is not installed.
    ValueError
        If the file is not a skvae file, comes from a newer file format, fails
        its checksum (damaged or edited), names an unknown class, or holds
        tensors that do not match the networks its parameters describe; or if
        its metadata is malformed in any way: over ``MAX_METADATA_CHARS``
        characters or nested over ``MAX_DEPTH`` deep (both checked before it
        is parsed), or holding a value of the wrong type or shape.

    See Also
    --------
    save : Write the file.

    Examples
    --------
    >>> import tempfile, os, numpy as np
    >>> import skvae
    >>> X = np.random.RandomState(0).normal(size=(50, 4))
    >>> path = os.path.join(tempfile.mkdtemp(), "lae.safetensors")
    >>> skvae.save(skvae.LinearAutoencoder(random_state=0).fit(X), path)
    >>> skvae.load(path)
    LinearAutoencoder(random_state=0)
    """
    safe_open = import_optional("safetensors", _EXTRA, "skvae.load").safe_open
    metadata, arrays = _read(safe_open, os.fspath(path))
    header = _check_header(metadata, arrays, path)
    estimator = _rebuild(header, device)
    attributes = _decoded(header["attributes"], path)
    attributes.update(_attribute_arrays(header["arrays"], arrays, path))
    refused = [name for name in attributes if not _is_fitted_attribute(name)]
    if refused:
        raise ValueError(f"{path}: {refused} are not names of fitted attributes.")
    check_attributes(attributes, estimator, path)
    vars(estimator).update(attributes)  # before _build_module, which may read them
    network = {}  # format 1: the parameters stored are those of the networks
    if "state" in header:
        network = network_params(header["state"].get("network_params"), estimator, path)
    module_arrays = {k[len(_MODULE) :]: v for k, v in arrays.items() if k.startswith(_MODULE)}
    if header["format_version"] < 3 and header["class"] == "LinearAutoencoder":
        module_arrays.update(_ppca_arrays(estimator, path))
    dtype = _DTYPES[header["dtype"]]
    with torch.device("meta"):  # the shapes first, with no memory: a file cannot
        meta = _build(estimator, network, dtype, path, header)  # make load allocate
    _check_tensors(meta.state_dict(), module_arrays, path, header)  # more than it holds
    module = _build(estimator, network, dtype, path, header)
    _load_state(module, module_arrays, path, header)
    module.train(bool(header["module_training"]))
    if "state" in header:
        vars(estimator).update(decode(header["state"], arrays, estimator, module, path))
    else:  # format 1: no Adam state (as after fit), no running moments
        estimator._input_dtype = np.dtype(str(_DTYPES[header["dtype"]]).removeprefix("torch."))
        estimator._optimizer_state = None
    estimator.module_ = module
    return estimator


def _ppca_arrays(estimator, path) -> dict:
    """The probabilistic-PCA tensors that a LinearAutoencoder's module holds since
    format 3, from the fitted attributes that files of formats 1 and 2 hold."""
    try:
        return ppca_state(
            estimator.components_,
            estimator.explained_variance_,
            estimator.noise_variance_,
            estimator.mean_,
            estimator.whiten,
        )
    except (AttributeError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: cannot rebuild the model's probabilistic PCA: {exc}") from exc


def _build(estimator, network: dict, dtype: torch.dtype, path, header: dict):
    """The estimator's networks, built with the parameters ``network`` (those
    they were fitted with, which may differ from the estimator's own now)."""
    current = {name: getattr(estimator, name) for name in network}
    vars(estimator).update(network)
    try:
        return estimator._build_module(estimator.n_features_in_, dtype)
    except (ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise ValueError(
            f"{path}: cannot rebuild the networks ({_versions(header)}): {exc}"
        ) from exc
    finally:
        vars(estimator).update(current)


def _read(safe_open, path: str) -> tuple[dict, dict]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such file: {path!r}")
    try:
        with safe_open(path, framework="np") as f:
            return f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors' own error type differs between versions
        raise ValueError(f"{path} is not a readable safetensors file: {exc}") from exc


def _check_header(metadata: dict, arrays: dict, path) -> dict:
    """The JSON document of the file, once its version and checksum are checked."""
    if _PAYLOAD not in metadata:
        raise ValueError(f"{path} is a safetensors file, but not one written by skvae.save.")
    try:  # the size and depth first: no parser sees a document it could choke on
        header = parse(metadata[_PAYLOAD], MAX_METADATA_CHARS, MAX_DEPTH)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc} The file is damaged.") from None
    version = header.get("format_version") if isinstance(header, dict) else None
    if type(version) is not int or version < 1:
        raise ValueError(f"{path}: the skvae metadata has no valid format version; damaged.")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has file format version {version!r}, written by skvae "
            f"{header.get('skvae_version', '?')}; this skvae ({_skvae_version()}) reads "
            f"versions up to {FORMAT_VERSION}. Upgrade skvae to load it."
        )
    if metadata.get(_DIGEST) != _digest(metadata[_PAYLOAD], arrays):
        raise ValueError(
            f"{path} fails its checksum: the file was damaged or modified after "
            "skvae.save wrote it."
        )
    if not isinstance(header.get("class"), str) or header["class"] not in _CLASSES:
        raise ValueError(
            f"{path} holds a {header.get('class')!r}; skvae.load knows only {', '.join(_CLASSES)}."
        )
    if not isinstance(header.get("dtype"), str) or header["dtype"] not in _DTYPES:
        raise ValueError(f"{path}: unknown module dtype {header.get('dtype')!r}.")
    fields = {
        "params": dict,
        "attributes": dict,
        "arrays": dict,
        "module_training": bool,
        "output_config": dict,
        "state": dict if version >= 2 else type(None),  # format 1 has no training state
    }
    wrong = [key for key, kind in fields.items() if not isinstance(header.get(key), kind)]
    if wrong or "n_features_in_" not in header["attributes"]:
        raise ValueError(f"{path}: the skvae metadata lacks or mangles {wrong or ['attributes']}.")
    return header


def _decoded(values: dict, path) -> dict:
    """The JSON values of a document's mapping, each decoded (ValueError if mangled)."""
    try:
        return {name: from_json(value) for name, value in values.items()}
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _rebuild(header: dict, device):
    """An unfitted estimator of the stored class with the stored parameters."""
    estimator = _CLASSES[header["class"]]()
    params = _decoded(header["params"], f"{header['class']}'s parameters")
    if device is not None:
        params["device"] = device
    try:
        estimator.set_params(**params)
        estimator._validate_params()
        estimator._check_hidden_layer_sizes()
        estimator.set_output(**header["output_config"])
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"the stored parameters do not fit this {header['class']} ({_versions(header)}): {exc}"
        ) from exc
    return estimator


def _attribute_arrays(kinds: dict, arrays: dict, path) -> dict:
    """The fitted attributes stored as tensors, each in its original kind."""
    stored = {k[len(_ATTRIBUTE) :] for k in arrays if k.startswith(_ATTRIBUTE)}
    unknown = [k for k in arrays if not k.startswith((_MODULE, _ATTRIBUTE, STATE))]
    _check_same_names(set(kinds), stored, "fitted-attribute tensors", path)
    if unknown:
        raise ValueError(f"{path} holds unexpected tensors: {sorted(unknown)}.")
    restore = {
        "ndarray": lambda a: a.copy(),
        "scalar": lambda a: a[()],
        "tensor": lambda a: torch.from_numpy(a.copy()),
    }
    wrong = {name: kind for name, kind in kinds.items() if not isinstance(kind, str)
             or kind not in restore}  # fmt: skip
    if wrong:
        raise ValueError(f"{path}: unknown attribute kinds {wrong}.")
    return {name: restore[kind](arrays[_ATTRIBUTE + name]) for name, kind in kinds.items()}


def _check_same_names(expected: set, found: set, what: str, path, header=None) -> None:
    missing, extra = sorted(expected - found), sorted(found - expected)
    if missing or extra:
        where = f" ({_versions(header)})" if header else ""
        raise ValueError(
            f"{path} does not match the estimator it describes{where}: {what} "
            f"missing {missing}, unexpected {extra}."
        )


def _load_state(module: torch.nn.Module, arrays: dict, path, header: dict) -> None:
    """Copy ``arrays`` into ``module`` after checking names, shapes and dtypes."""
    _check_tensors(module.state_dict(), arrays, path, header)
    state = {name: torch.from_numpy(arrays[name].copy()) for name in module.state_dict()}
    module.load_state_dict(state, strict=True)


def _check_tensors(expected: dict, arrays: dict, path, header: dict) -> None:
    """Refuse ``arrays`` unless they have ``expected``'s names, shapes and dtypes."""
    _check_same_names(set(expected), set(arrays), "network tensors", path, header)
    for name, target in expected.items():
        array = arrays[name]
        dtype = _DTYPES.get(array.dtype.name, array.dtype)
        if tuple(array.shape) != tuple(target.shape) or dtype != target.dtype:
            raise ValueError(
                f"{path}: the tensor {name!r} is {dtype} of shape "
                f"{tuple(array.shape)}, but the network expects {target.dtype} of "
                f"shape {tuple(target.shape)} ({_versions(header)})."
            )


def _versions(header: dict) -> str:
    return (
        f"written by skvae {header.get('skvae_version', '?')} with torch "
        f"{header.get('torch_version', '?')}; this is skvae {_skvae_version()}"
    )
