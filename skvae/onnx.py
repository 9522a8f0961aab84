"""ONNX export of fitted estimators, alone or inside scikit-learn Pipelines.

:func:`register_converters` teaches skl2onnx the three estimators, so that
``skl2onnx.to_onnx`` converts any Pipeline that contains them; their
``transform`` (the encoder; the posterior mean for the VAE) is exported with
``torch.onnx.export`` and merged into the skl2onnx graph.
:func:`export_encoder` and :func:`export_decoder` export one network on its
own, e.g. the decoder for ``inverse_transform``.

Everything here needs the ``onnx`` extra (``pip install "skvae[onnx]"``):
onnx, onnxscript (which ``torch.onnx.export`` uses), skl2onnx and
onnxruntime. Importing this module imports none of them.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import textwrap
import warnings

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from . import _autoencoder, _linear, _variational  # noqa: F401 - they register
from ._base import ESTIMATORS
from ._imputer import LatentImputer
from ._optional import import_optional
from ._placement import TORCH_DTYPES

__all__ = ["export_decoder", "export_encoder", "register_converters"]

_ESTIMATORS = tuple(ESTIMATORS.values())
#: torch.onnx.export writes opset 18 or later; older opsets cannot hold its graph.
_MIN_OPSET = 18
_EXTRA = "onnx"


class _Method(torch.nn.Module):
    """``forward(x) = fn(module, x)``: one of an estimator's network verbs as a module."""

    def __init__(self, fn, module: torch.nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.module, x)


@contextlib.contextmanager
def _quiet_torch_onnx():
    """Hide the exporter's log lines and a deprecation inside torch.export itself."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec", category=FutureWarning)
            yield
    finally:
        logger.setLevel(level)


#: verb -> (the attribute giving the input width, the input and output names)
_VERBS = {"_encode": ("n_features_in_", ("X", "Z")), "_decode": ("n_components_", ("Z", "X"))}


def _export(estimator, verb: str, dtype, opset: int | None):
    """ONNX model of ``estimator.<verb>(module_, rows)`` with a dynamic number of rows."""
    onnx = import_optional("onnx", _EXTRA, "ONNX export")
    import_optional("onnxscript", _EXTRA, "torch.onnx.export")
    if not isinstance(estimator, _ESTIMATORS):
        raise TypeError(f"expected a skvae estimator, got {type(estimator).__name__}.")
    check_is_fitted(estimator)
    if np.dtype(dtype) not in TORCH_DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}.")
    if opset is not None and opset < _MIN_OPSET:
        raise ValueError(
            f"skvae's networks export to ONNX opset {_MIN_OPSET} or later, not {opset}; "
            f"pass target_opset>={_MIN_OPSET} to skl2onnx."
        )
    width, names = _VERBS[verb]
    torch_dtype = TORCH_DTYPES[np.dtype(dtype)]
    module = copy.deepcopy(estimator.module_).to(device="cpu", dtype=torch_dtype)
    wrapper = _Method(getattr(estimator, verb), module).eval()
    example = torch.zeros(2, getattr(estimator, width), dtype=torch_dtype)  # 1 row: fixed size
    with torch.no_grad(), _quiet_torch_onnx():
        program = torch.onnx.export(
            wrapper,
            (example,),
            dynamo=True,
            input_names=[names[0]],
            output_names=[names[1]],
            dynamic_shapes=({0: torch.export.Dim.DYNAMIC},),
            opset_version=opset,
            verbose=False,
        )
    model = program.model_proto
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    onnx.checker.check_model(model)
    return model


def _save(model, path: str | os.PathLike | None):
    if path is not None:
        import_optional("onnx", _EXTRA, "ONNX export").save_model(model, os.fspath(path))
    return model


#: The Parameters section shared by the docstrings of the two exports.
_EXPORT_PARAMETERS = """\
Parameters
----------
estimator : LinearAutoencoder, Autoencoder or VariationalAutoencoder
    A fitted estimator.
path : str, os.PathLike or None, default=None
    If given, the model is also written there.
dtype : {np.float32, np.float64}, default=np.float32
    The element type of the model's input, output and weights.
opset : int or None, default=None
    ONNX opset (18 or later); None lets torch choose."""


def _shared_parameters(function):
    """Put :data:`_EXPORT_PARAMETERS` in place of ``{parameters}`` in the docstring."""
    if function.__doc__:  # None under python -OO
        section = textwrap.indent(_EXPORT_PARAMETERS, "    ").lstrip()
        function.__doc__ = function.__doc__.replace("{parameters}", section)
    return function


@_shared_parameters
def export_encoder(estimator, path=None, *, dtype=np.float32, opset=None):
    """Export the encoder (``transform``) of a fitted estimator to ONNX.

    The model maps an input ``"X"`` of shape (n_samples, `n_features_in_`)
    to the codes ``"Z"`` of shape (n_samples, `n_components_`), for any
    number of rows; for the VAE the codes are the posterior means.

    {parameters}

    Returns
    -------
    model : onnx.ModelProto
        The encoder.

    See Also
    --------
    export_decoder : The decoder.
    register_converters : Whole Pipelines with skl2onnx.

    Examples
    --------
    >>> import numpy as np, onnxruntime
    >>> from skvae import LinearAutoencoder
    >>> from skvae.onnx import export_encoder
    >>> X = np.random.RandomState(0).normal(size=(40, 5)).astype(np.float32)
    >>> lae = LinearAutoencoder(n_components=2, random_state=0).fit(X)
    >>> session = onnxruntime.InferenceSession(export_encoder(lae).SerializeToString())
    >>> Z = session.run(None, {"X": X})[0]
    >>> bool(np.allclose(Z, lae.transform(X), atol=1e-5))
    True
    """
    return _save(_export(estimator, "_encode", dtype, opset), path)


@_shared_parameters
def export_decoder(estimator, path=None, *, dtype=np.float32, opset=None):
    """Export the decoder (``inverse_transform``) of a fitted estimator to ONNX.

    The model maps codes ``"Z"`` of shape (n_samples, `n_components_`) to
    the reconstructions ``"X"`` of shape (n_samples, `n_features_in_`), for
    any number of rows: the decoder's mean, as ``inverse_transform`` gives.
    Decoding prior draws with it generates data, as ``sample`` does.

    {parameters}

    Returns
    -------
    model : onnx.ModelProto
        The decoder.

    See Also
    --------
    export_encoder : The encoder.

    Examples
    --------
    Decoding draws from the prior, as ``sample`` does:

    >>> import numpy as np, onnxruntime
    >>> from skvae import VariationalAutoencoder
    >>> from skvae.onnx import export_decoder
    >>> X = np.random.RandomState(0).normal(size=(40, 5))
    >>> vae = VariationalAutoencoder(hidden_layer_sizes=(), random_state=0).fit(X)
    >>> decoder = onnxruntime.InferenceSession(export_decoder(vae).SerializeToString())
    >>> Z = np.random.RandomState(1).standard_normal((3, 2)).astype(np.float32)
    >>> X_new = decoder.run(None, {"Z": Z})[0]
    >>> X_new.shape
    (3, 5)
    >>> bool(np.allclose(X_new, vae.inverse_transform(Z), atol=1e-5))
    True
    """
    return _save(_export(estimator, "_decode", dtype, opset), path)


# ----------------------------------------------------------------- skl2onnx
def _shape_calculator(operator) -> None:
    """Output of ``transform``: (rows, n_components_), the input's element type."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    from skl2onnx.common.utils import check_input_and_output_numbers, check_input_and_output_types

    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=1)
    check_input_and_output_types(operator, good_input_types=[FloatTensorType, DoubleTensorType])
    input_type = operator.inputs[0].type
    rows = input_type.shape[0] if input_type.shape else None
    operator.outputs[0].type = type(input_type)([rows, operator.raw_operator.n_components_])


def _converter(scope, operator, container) -> None:
    """The encoder, exported at the graph's opset and merged into it."""
    from skl2onnx.common.data_types import DoubleTensorType
    from skl2onnx.helpers.integration import add_onnx_graph

    double = isinstance(operator.inputs[0].type, DoubleTensorType)
    dtype = np.float64 if double else np.float32
    model = _export(operator.raw_operator, "_encode", dtype, container.target_opset)
    add_onnx_graph(scope, operator, container, model)


def _no_imputer_shape(operator) -> None:
    raise NotImplementedError(
        "skvae.LatentImputer has no ONNX converter: the conditional mean of a row "
        "solves a k x k system that depends on which of the row's entries are "
        "missing, which standard ONNX operators do not express. Fill the data "
        "before the converted Pipeline, or convert the steps after the imputer."
    )


def _no_imputer_converter(scope, operator, container) -> None:
    _no_imputer_shape(operator)


def register_converters() -> None:
    """Register skl2onnx converters for the three estimators.

    Afterwards ``skl2onnx.to_onnx`` (or ``convert_sklearn``) converts any
    Pipeline that contains a :class:`~skvae.LinearAutoencoder`,
    :class:`~skvae.Autoencoder` or :class:`~skvae.VariationalAutoencoder`:
    their ``transform`` becomes the exported encoder network (the posterior
    mean for the VAE), for float32 or float64 inputs and any number of rows.
    A Pipeline with a :class:`~skvae.LatentImputer` raises NotImplementedError:
    it has no converter.
    The graph needs ``target_opset`` 18 or later (skl2onnx's default is).
    Calling it again does no harm.

    Raises
    ------
    ImportError
        If skl2onnx is not installed (``pip install "skvae[onnx]"``).

    See Also
    --------
    export_encoder : The encoder alone.
    export_decoder : The decoder, for ``inverse_transform``.

    Examples
    --------
    >>> import numpy as np, onnxruntime, skl2onnx
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skvae import LinearAutoencoder
    >>> from skvae.onnx import register_converters
    >>> register_converters()
    >>> X = np.random.RandomState(0).normal(size=(40, 5)).astype(np.float32)
    >>> pipe = make_pipeline(StandardScaler(), LinearAutoencoder(random_state=0)).fit(X)
    >>> onx = skl2onnx.to_onnx(pipe, X[:1])
    >>> session = onnxruntime.InferenceSession(onx.SerializeToString())
    >>> Z = session.run(None, {"X": X})[0]
    >>> bool(np.allclose(Z, pipe.transform(X), atol=1e-5))
    True
    """
    skl2onnx = import_optional("skl2onnx", _EXTRA, "skvae.onnx.register_converters")
    for cls in _ESTIMATORS:
        skl2onnx.update_registered_converter(
            cls,
            f"Skvae{cls.__name__}",
            _shape_calculator,
            _converter,
            overwrite=True,
        )
    # a clear refusal rather than skl2onnx's "unable to find a shape calculator"
    skl2onnx.update_registered_converter(
        LatentImputer,
        "SkvaeLatentImputer",
        _no_imputer_shape,
        _no_imputer_converter,
        overwrite=True,
    )
