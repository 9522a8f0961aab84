"""Fit PCA and the three skvae estimators on each data set and compare them.

:func:`run` is the whole benchmark: for each data set and each latent size k
it fits the models on the training rows and measures, on the test rows, the
reconstruction error, its ratio to PCA's, the largest principal angle to PCA's
subspace (models with a linear decoder only), the held-out log-likelihood
(PCA's exact probabilistic-PCA likelihood, the VAE's evidence lower bound) and
the time taken by ``fit`` and ``transform``. :func:`format_table` turns the
result into the table that ``python -m benchmarks`` prints.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import torch
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning

import skvae
from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder
from skvae._placement import resolve_device
from skvae.metrics import max_principal_angle, reconstruction_error

from . import datasets as _datasets
from ._report import _TABLE_COLUMNS, format_summary, format_table  # noqa: F401
from .regularity import COLUMNS as _REGULARITY
from .regularity import regularity_columns

#: The latent-regularity columns (see :mod:`benchmarks.regularity`).
REGULARITY_COLUMNS = list(_REGULARITY)

__all__ = [
    "DEFAULT_KS",
    "MODELS",
    "QUICK",
    "FittedModels",
    "ModelSpec",
    "format_summary",
    "format_table",
    "run",
]

#: The seed every model is fitted with.
RANDOM_STATE = 0

#: Latent sizes compared on each data set by default.
DEFAULT_KS: dict[str, tuple[int, ...]] = {
    "digits": (2, 10, 16),
    "spiked": (2, 5, 10),
    "s_curve": (1, 2, 3),
    "planar": (1, 2, 5),
    "curved": (2, 5, 10),
}


@dataclass(frozen=True)
class QuickSettings:
    """What ``quick=True`` shrinks: rows per data set, the grid of k, epochs."""

    n_samples: int = 400
    ks: dict[str, tuple[int, ...]] = field(
        default_factory=lambda: {
            "digits": (2,),
            "spiked": (5,),
            "s_curve": (2,),
            "planar": (2,),
            "curved": (5,),
        }
    )
    max_iter: int = 20


#: The smoke-run settings used by ``quick=True``.
QUICK = QuickSettings()


@dataclass(frozen=True)
class ModelSpec:
    """How to build one of the compared models.

    Attributes
    ----------
    name : str
        The model's name in the table (its class name).
    make : callable
        ``make(k, device)`` returns an unfitted estimator with ``n_components=k``.
    deep : bool
        Whether it is trained by gradient for ``max_iter`` epochs (``quick``
        lowers ``max_iter`` for these).
    has_log_likelihood : bool
        Whether ``score`` is a log-likelihood (or a bound on one) in nats, as
        opposed to minus the reconstruction error.
    """

    name: str
    make: Callable[[int, str], Any]
    deep: bool = False
    has_log_likelihood: bool = False


#: The compared models, in the order of the table; PCA first (the reference).
MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "PCA",
        lambda k, device: PCA(n_components=k, random_state=RANDOM_STATE),
        has_log_likelihood=True,
    ),
    ModelSpec(
        "LinearAutoencoder",
        lambda k, device: LinearAutoencoder(k, random_state=RANDOM_STATE, device=device),
    ),
    ModelSpec(
        "Autoencoder",
        lambda k, device: Autoencoder(k, random_state=RANDOM_STATE, device=device),
        deep=True,
    ),
    ModelSpec(
        "VariationalAutoencoder",
        lambda k, device: VariationalAutoencoder(k, random_state=RANDOM_STATE, device=device),
        deep=True,
        has_log_likelihood=True,
    ),
)


@dataclass
class FittedModels:
    """The fitted models of one data set, returned by ``run(return_models=True)``.

    Attributes
    ----------
    dataset : Dataset
        The data, with its training and test split.
    models : dict of int to dict of str to estimator
        ``models[k][name]`` is the fitted model called ``name`` with ``k``
        components.
    """

    dataset: _datasets.Dataset
    models: dict[int, dict[str, Any]] = field(default_factory=dict)


#: Columns of the results, in order.
_COLUMNS = [
    "dataset",
    "n_train",
    "n_test",
    "n_features",
    "k",
    "model",
    "test_mse",
    "mse_ratio_to_pca",
    "max_angle_to_pca_deg",
    "test_log_likelihood",
    "log_likelihood_minus_pca",
    "test_elbo",
    *REGULARITY_COLUMNS,
    "fit_time_s",
    "transform_time_s",
    "n_iter",
    "converged",
    "quick",
    "device",
    "device_name",
    "skvae_version",
    "torch_version",
    "sklearn_version",
    "numpy_version",
    "torch_threads",
]


def _device_and_name(device: str) -> tuple[str, str]:
    """The device the skvae estimators will use, and a readable name for it.

    The estimators' own rule (:func:`skvae._placement.resolve_device`): under
    ``torchrun``, ``"auto"`` is the GPU of ``LOCAL_RANK``.
    """
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        return str(resolved), torch.cuda.get_device_name(resolved)
    return str(resolved), resolved.type


def _environment() -> dict[str, Any]:
    """Package versions and the torch thread count, recorded with every row."""
    return {
        "skvae_version": skvae.__version__,
        "torch_version": torch.__version__,
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def _fit(model, X: np.ndarray) -> tuple[float, bool]:
    """Fit ``model``; return the seconds taken and whether training converged.

    A ``ConvergenceWarning`` (``max_iter`` reached before ``tol``) is recorded
    rather than shown; any other warning is passed on.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X)
        seconds = time.perf_counter() - start
    converged = True
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            converged = False
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return seconds, converged


def _warm_up(device: str) -> None:
    """Fit every model once on a tiny array, untimed.

    The first call into torch, BLAS or CUDA pays one-off start-up costs that
    would otherwise be charged to whichever fit comes first.
    """
    X = np.random.RandomState(RANDOM_STATE).standard_normal((64, 4))
    for spec in MODELS:
        model = spec.make(1, device)
        if spec.deep:
            model.set_params(max_iter=2)
        _fit(model, X)
        reconstruction_error(model, X)


def _max_angle(model, reference) -> float:
    """Largest principal angle (degrees) to the reference, NaN without a subspace."""
    try:
        return max_principal_angle(model, reference)
    except ValueError:  # a nonlinear decoder: its image is not a subspace
        return float("nan")


def _evaluate(spec: ModelSpec, model, data: _datasets.Dataset) -> dict[str, float]:
    """Test-set measurements of one fitted model."""
    start = time.perf_counter()
    model.transform(data.X_test)
    transform_time = time.perf_counter() - start
    elbo = float("nan")
    if "n_importance" in model.get_params():  # its score is importance-weighted
        K = model.n_importance
        elbo = float(model.set_params(n_importance=1).score(data.X_test))
        model.set_params(n_importance=K)
    return {
        "test_mse": reconstruction_error(model, data.X_test),
        "test_log_likelihood": (
            float(model.score(data.X_test)) if spec.has_log_likelihood else float("nan")
        ),
        "test_elbo": elbo,
        "transform_time_s": transform_time,
        **regularity_columns(model, data.X_train, data.X_test, random_state=RANDOM_STATE),
    }


def _check_names(names: Sequence[str] | None) -> list[str]:
    if names is None:
        return list(_datasets.DATASETS)
    if isinstance(names, str):
        names = [names]
    unknown = [name for name in names if name not in _datasets.DATASETS]
    if unknown:
        raise ValueError(
            f"Unknown data set(s) {unknown}; choose among {', '.join(_datasets.DATASETS)}."
        )
    return list(dict.fromkeys(names))


def _check_ks(ks: Sequence[int] | None) -> list[int] | None:
    if ks is None:
        return None
    ks = [ks] if isinstance(ks, Integral) else list(ks)
    if not ks or not all(isinstance(k, Integral) and k >= 1 for k in ks):
        raise ValueError(f"ks must be a non-empty list of positive integers, got {ks!r}.")
    return sorted({int(k) for k in ks})


def run(
    datasets: Sequence[str] | None = None,
    ks: Sequence[int] | None = None,
    quick: bool = False,
    device: str = "auto",
    log: Callable[[str], None] | None = None,
    return_models: bool = False,
):
    """Fit PCA and the skvae estimators for a grid of k and measure them on test rows.

    Every model is fitted on the training split of each data set with default
    settings and ``random_state=0``; the measurements are taken on the test
    split.

    Parameters
    ----------
    datasets : list of str or None, default=None
        Names from :data:`benchmarks.datasets.DATASETS`; None runs them all.
    ks : list of int or None, default=None
        Latent sizes to compare on every data set; None uses each data set's
        grid (:data:`DEFAULT_KS`, or the smaller one of :data:`QUICK`). A k
        larger than a data set's number of features or training rows is
        skipped.
    quick : bool, default=False
        A smoke run: each data set shrunk to ``QUICK.n_samples`` rows, one k
        per data set, and ``max_iter=QUICK.max_iter`` epochs for the deep
        models (which then stop before converging).
    device : str, default="auto"
        Passed to the skvae estimators (``"auto"``, ``"cpu"``, ``"cuda"``),
        and resolved as they resolve it (``"auto"`` under ``torchrun``: the GPU
        of ``LOCAL_RANK``); a device torch does not know or cannot see raises
        ``ValueError`` before anything is fitted.
    log : callable or None, default=None
        Called with one line of progress (what is being fitted, time elapsed)
        before each fit, and after a fit that stopped at ``max_iter`` before
        converging; None is silent.
    return_models : bool, default=False
        Also return the fitted models and the data they were fitted on.

    Returns
    -------
    results : pandas.DataFrame
        One row per data set, k and model, with columns ``dataset``,
        ``n_train``, ``n_test``, ``n_features``, ``k``, ``model``,
        ``test_mse``, ``mse_ratio_to_pca``, ``max_angle_to_pca_deg`` (NaN for
        a nonlinear decoder, which spans no subspace), ``test_log_likelihood``
        (mean per test row in nats: PCA's probabilistic-PCA log-likelihood,
        the VAE's importance-weighted estimate, its ``score``; NaN for the
        autoencoders, which define none), ``log_likelihood_minus_pca`` (that
        minus PCA's), ``test_elbo`` (the VAE's ELBO, ``n_importance=1``; NaN
        for the others), the latent-regularity columns of
        :func:`benchmarks.regularity.regularity_columns`, ``fit_time_s``,
        ``transform_time_s``, ``n_iter``, ``converged`` (False when training
        stopped at ``max_iter``), ``quick``, ``device`` and ``device_name``
        (where the skvae estimators ran; PCA always runs on the CPU) and the
        versions of skvae, torch, scikit-learn and NumPy, and
        ``torch_threads``, the number of CPU threads torch used.
    fitted : dict of str to FittedModels
        Only with ``return_models=True``: for each data set, its
        :class:`FittedModels`.

    Examples
    --------
    >>> from benchmarks.compare import run
    >>> results = run(datasets=["spiked"], ks=[5], quick=True, device="cpu")
    >>> list(results["model"])
    ['PCA', 'LinearAutoencoder', 'Autoencoder', 'VariationalAutoencoder']
    >>> float(results.loc[results["model"] == "PCA", "mse_ratio_to_pca"].item())
    1.0
    """
    names = _check_names(datasets)
    ks = _check_ks(ks)
    device_str, device_name = _device_and_name(device)
    constants = {
        "quick": quick,
        "device": device_str,
        "device_name": device_name,
        **_environment(),
    }
    start = time.perf_counter()
    _warm_up(device)

    def progress(message: str) -> None:
        if log is not None:
            log(f"[{time.perf_counter() - start:7.1f} s] {message}")

    rows: list[dict[str, Any]] = []
    fitted: dict[str, FittedModels] = {}
    for name in names:
        data = _datasets.load(name, QUICK.n_samples if quick else None)
        fitted[name] = FittedModels(data)
        grid = ks or (QUICK.ks if quick else DEFAULT_KS).get(name, (2,))
        n_train = len(data.X_train)
        for k in grid:
            if k > min(n_train, data.n_features):
                progress(
                    f"{name}: skipping k={k}, more than min(n_train, n_features)="
                    f"{min(n_train, data.n_features)}"
                )
                continue
            models: dict[str, Any] = {}
            mse: dict[str, float] = {}
            loglik: dict[str, float] = {}
            for spec in MODELS:
                model = spec.make(k, device)
                if quick and spec.deep:
                    model.set_params(max_iter=QUICK.max_iter)
                progress(f"{name} ({n_train} x {data.n_features}), k={k}: fitting {spec.name}")
                fit_time, converged = _fit(model, data.X_train)
                if not converged:
                    progress(
                        f"{name}, k={k}: {spec.name} stopped at max_iter="
                        f"{model.max_iter} before converging ({fit_time:.1f} s)"
                    )
                models[spec.name] = model
                measured = _evaluate(spec, model, data)
                mse[spec.name] = measured["test_mse"]
                loglik[spec.name] = measured["test_log_likelihood"]
                rows.append(
                    {
                        "dataset": name,
                        "n_train": n_train,
                        "n_test": len(data.X_test),
                        "n_features": data.n_features,
                        "k": k,
                        "model": spec.name,
                        "test_mse": mse[spec.name],
                        "mse_ratio_to_pca": mse[spec.name] / mse["PCA"],
                        "max_angle_to_pca_deg": _max_angle(model, models["PCA"]),
                        "test_log_likelihood": measured["test_log_likelihood"],
                        "log_likelihood_minus_pca": measured["test_log_likelihood"]
                        - loglik["PCA"],
                        "test_elbo": measured["test_elbo"],
                        **{col: measured[col] for col in REGULARITY_COLUMNS},
                        "fit_time_s": fit_time,
                        "transform_time_s": measured["transform_time_s"],
                        "n_iter": getattr(model, "n_iter_", np.nan),
                        "converged": converged,
                        **constants,
                    }
                )
            fitted[name].models[k] = models
    progress("done")
    results = pd.DataFrame(rows, columns=_COLUMNS)
    return (results, fitted) if return_models else results
