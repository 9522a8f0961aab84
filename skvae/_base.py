"""The scikit-learn contract shared by the three estimators.

A subclass says only what differs: how its networks are built
(:meth:`_build_module`) and started at PCA's solution, its objective, how it
encodes, decodes and scores rows, and how it draws latent points for
:meth:`sample`. Training itself is delegated to :mod:`skvae._training`.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
import zlib
from numbers import Integral, Real

import numpy as np
import torch

# _fit_context and _param_validation are private to scikit-learn, but they are
# how its own estimators validate parameters once per fit; the minimum version in
# pyproject.toml has both, and every test run (check_estimator too) uses them.
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from ._continuation import NETWORK_PARAMETERS, check_unchanged, network_params
from ._distributed import LOCAL, Ranks, participants
from ._fitstate import FitState
from ._inference import InferenceMixin
from ._missing import has_nan
from ._modules import init_parameters
from ._placement import TORCH_DTYPES, column_mean, resolve_device
from ._stopping import TrainingInterrupted
from ._subspace import (
    covariance_operator,
    discarded_variance,
    moments,
    principal_components,
    use_operator,
)
from ._training import History, Objective, Trainer, TrainingConfig, TrainingDiverged
from ._validation import training_rows


@contextlib.contextmanager
def _kept_on_failure(estimator, *names: str):
    """Put back the attributes ``names`` (set by validate_data) if the block fails."""
    saved = {name: estimator.__dict__[name] for name in names if name in estimator.__dict__}
    try:
        yield
    except BaseException:
        for name in names:
            estimator.__dict__.pop(name, None)
        estimator.__dict__.update(saved)
        raise


#: What validate_data and fit's first steps set; put back if a fit fails.
_VALIDATED = ("n_features_in_", "feature_names_in_", "n_components_", "_input_dtype")

#: What the ranks of a process group check they share before training together.
_FACTS = {
    "fit": (
        "estimator and parameters",
        "dtype",
        "n_features",
        "n_samples",
        "X's values",
        "X's row order",
    ),
    "partial_fit": ("estimator and parameters", "dtype", "n_features", "passes made so far"),
}


#: The public estimators, by class name: what persistence, ONNX export and the
#: metrics accept. A class joins with ``register=True`` in its class statement.
ESTIMATORS: dict[str, type] = {}


class BaseAutoencoder(
    InferenceMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Shared fit/transform/inverse_transform/score/sample for torch autoencoders.

    A subclass says what differs: how its model is built
    (:meth:`_build_module`: a torch module with the protocol's verbs, which
    encode, decode, score rows, start at PCA and convert units), what it
    minimises (:meth:`_objective`), its fitted attributes (:meth:`_after_fit`,
    :meth:`_set_fitted`) and how :meth:`sample` draws latent points.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "device": [str, torch.device],
        "compute_dtype": [StrOptions({"float32", "float64"}), None],
        "verbose": ["verbose"],
    }

    def __init_subclass__(cls, register: bool = False, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if register:
            ESTIMATORS[cls.__name__] = cls

    #: The parameters read once, when the networks are built (those of them an
    #: estimator has): a partial_fit that continues training refuses new values
    #: (see skvae._continuation).
    _network_parameters: tuple[str, ...] = NETWORK_PARAMETERS

    # ------------------------------------------------------------------ hooks
    def _build_module(self, n_features: int, dtype: torch.dtype) -> torch.nn.Module:
        raise NotImplementedError

    def _objective(self, module, generator, masked: bool = False) -> Objective:
        """The training objective, in the networks' standardised units; called
        with ``masked=True`` only where the rows have missing entries (NaN),
        whose objective reads the observed entries."""
        raise NotImplementedError

    def _solver(self) -> str:
        return self.solver

    def _max_iter(self) -> int:
        return self.max_iter

    def _training_config(self) -> TrainingConfig:
        return TrainingConfig(
            solver=self._solver(),
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            max_iter=self._max_iter(),
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            early_stopping=self.early_stopping,
            validation_fraction=self.validation_fraction,
            weight_decay=self.weight_decay,
            verbose=self.verbose,
        )

    def _start(self, X, module, generator, device, state: FitState) -> None:
        """Set the networks' scaling and starting point from the rows of ``X``."""
        if getattr(self, "init", "random") == "pca":
            self._pca_start(X, module, generator, device, state)
        else:
            module.set_scaling(X, mean=column_mean(X))

    def _trainer(self, module, generator, device, state: FitState) -> Trainer:
        ranks = state.ranks
        masked = {"masked": True} if state.missing else {}
        objective = self._objective(module, ranks.noise_generator(generator), **masked)
        config = self._training_config()
        return Trainer(module, objective, config, generator, device, ranks=ranks)

    def _fit_module(self, X, module, generator, device, state: FitState) -> History:
        """Start and train ``module`` on the tensor ``X``; returns the history in
        data units.

        Adam's state is not kept (it would triple a pickle's size): a
        :meth:`partial_fit` after :meth:`fit` continues from the fitted
        weights with a fresh optimiser, as from a warm start.
        """
        self._start(X, module, generator, device, state)
        history = self._trainer(module, generator, device, state).fit(X)
        # a masked loss reads the observed entries only: their share converts it
        observed = float((~torch.isnan(X)).double().mean()) if state.missing else 1.0
        return self._history_in_data_units(module, history, observed)

    def _partial_fit_module(self, X, module, generator, device, state: FitState) -> History:
        """One pass of Adam over ``X``, continuing from ``state.optimizer_state``
        (the first pass, None, starts the new networks first). Rows with missing
        entries are refused: a model completes them only from all the rows."""
        if has_nan(X):
            raise ValueError(
                f"{type(self).__name__}.partial_fit takes no missing entries (NaN); "
                "fit takes them (on all the rows together), or impute the chunk first."
            )
        if state.optimizer_state is None and state.network_params is not None:
            self._start(X, module, generator, device, state)
        trainer = self._trainer(module, generator, device, state)
        history = trainer.partial_fit(X, state.optimizer_state)
        state.optimizer_state = trainer.optimizer_state()
        return self._history_in_data_units(module, history)

    def _history_in_data_units(self, module, history: History, observed=1.0) -> History:
        def to_data(loss):  # the share observed, for a model trained with a mask
            args = (loss,) if observed == 1.0 else (loss, observed)
            return module.loss_in_data_units(*args)

        history.loss_curve = [to_data(loss) for loss in history.loss_curve]
        if history.best_loss is not None:
            history.best_loss = to_data(history.best_loss)
        history.validation_scores = [-to_data(-s) for s in history.validation_scores]
        if history.best_validation_score is not None:
            history.best_validation_score = -to_data(-history.best_validation_score)
        return history

    def _pca_start(self, X, module, generator, device, state: FitState) -> None:
        """Set the networks' scaling, then PCA's solution on all of X in those units.

        Variances use ddof=1 and the noise variance is the mean variance of the
        discarded directions, both as :class:`sklearn.decomposition.PCA`
        computes them, so the start reproduces PCA (and its ``score``) exactly.
        """
        # in the networks' dtype: a start needs no more digits than training has
        mom = self._data_moments(X, device, state, scatter_dtype=X.dtype, start=True)
        n, d = mom.n_samples, X.shape[1]
        module.set_scaling(X, mean=mom.mean)  # one pass over X for the mean, not two
        k = min(self.n_components_, n - 1, d)
        components, variances = principal_components(mom, k, generator)
        ddof = n / max(n - 1, 1) / float(module.scale) ** 2
        noise = discarded_variance(mom, variances) * ddof
        module.start_at_pca(components, variances * ddof, noise)

    def _data_moments(
        self, X, device, state: FitState, tall=False, scatter_dtype=None, start=False
    ):
        """:func:`~skvae._subspace.moments` of the call's rows (for a deep model's
        ``start`` on wide sparse rows, an operator: no d x d matrix). Trained
        data-parallel, each rank reads its part of the rows (its block of X in
        :meth:`fit`, where every rank holds X; its own X in :meth:`partial_fit`)
        and the ranks sum; in :meth:`fit`, wide data's Gram matrix is computed
        whole on every rank."""
        ranks, shared = state.ranks, not state.incremental
        dtype = scatter_dtype or torch.float64
        if start and use_operator(X, self.n_components_, ranks.active):
            return covariance_operator(X)
        if not ranks.active or (shared and not tall and len(X) < X.shape[1]):
            return moments(X, device, tall, scatter_dtype=dtype)
        rows = ranks.block(X) if shared else X
        return moments(rows, device, tall=True, total=ranks.sum_, scatter_dtype=dtype)

    def _after_fit(self, X, module, generator, state: FitState):
        """What the estimator's own fitted attributes need from the trained
        module, computed before any attribute is set (see :meth:`_set_fitted`)."""
        return None

    # ------------------------------------------------------------- validation
    def _resolve_n_components(self, X, state: FitState) -> int:
        """The latent width to fit on the (checked) training rows ``X``, as a
        Python int (``n_components_``); work the later steps reuse goes in
        ``state``."""
        k = self.n_components
        if isinstance(k, bool | np.bool_):  # an Integral to Python, not a width
            raise ValueError(f"n_components must be a positive integer, got {k!r}.")
        return int(k)

    def _check_training_data(self, X: np.ndarray, dtype: torch.dtype) -> None:
        """Refuse finite data whose squares would overflow the compute ``dtype``."""
        if X.size == 0:
            return
        max_abs = max(float(X.max()), -float(X.min()))  # no |X| temporary
        finfo = np.finfo(np.float32 if dtype == torch.float32 else np.float64)
        limit = np.sqrt(finfo.max / max(X.shape[1], 1)) / 1e3
        if max_abs > limit:
            raise ValueError(
                f"X has values of magnitude up to {max_abs:.3g}; squared errors at this "
                f"scale overflow {finfo.dtype}. Rescale the data first, e.g. with "
                "sklearn.preprocessing.StandardScaler."
            )

    def _compute_dtype(self, input_dtype: np.dtype) -> torch.dtype:
        """The dtype the networks train and compute in (``compute_dtype``)."""
        if self.compute_dtype is not None:
            return TORCH_DTYPES[np.dtype(self.compute_dtype)]
        return torch.float32 if input_dtype == np.float32 else torch.float64

    def _validate_training(self, X, ranks: Ranks, method: str, reset=True, dtype=None):
        """Validate training data (see :meth:`_training_data`); trained
        data-parallel, also check that every rank called ``method`` alike
        (:meth:`Ranks.agree`), before any rank starts waiting for the others
        in training."""
        names = _FACTS[method]
        try:
            self._check_hidden_layer_sizes()
            if not reset:  # a partial_fit that continues training
                check_unchanged(self)
            row_sums = ranks.active and method == "fit"
            X, sums = training_rows(self, X, reset, dtype, row_sums)
        except Exception:
            ranks.agree(None, names)  # tells the other ranks, then raises here
            raise
        if not ranks.active:
            return X
        params = self.get_params(deep=False)
        for name in ("random_state", "device", "verbose"):  # may differ by rank
            params.pop(name, None)
        described = repr((type(self).__name__, method, sorted(params.items())))
        facts = [zlib.crc32(described.encode()), torch.finfo(X.dtype).bits, X.shape[1]]
        if method == "fit":
            order = np.arange(1, len(sums) + 1, dtype=np.float64)
            facts += [X.shape[0], sums.sum(), (sums * order).sum()]
        else:
            facts.append(getattr(self, "n_iter_", 0) if hasattr(self, "module_") else -1)
        ranks.agree(facts, names)
        return X

    def _check_hidden_layer_sizes(self) -> None:
        sizes = getattr(self, "hidden_layer_sizes", ())
        try:
            sizes = tuple(sizes)
        except TypeError:
            raise ValueError(
                f"hidden_layer_sizes must be a sequence of positive integers, "
                f"got {self.hidden_layer_sizes!r}."
            ) from None
        if not all(isinstance(s, Integral) and s >= 1 for s in sizes):
            raise ValueError(
                f"hidden_layer_sizes must be a sequence of positive integers, "
                f"got {self.hidden_layer_sizes!r}."
            )

    # -------------------------------------------------------------------- fit
    def _generator(self, device: torch.device, offset: int = 0, ranks: Ranks = LOCAL):
        """The fit's generator on ``device`` (and one on the CPU for the initial
        weights, so that they do not depend on the device), seeded from
        ``random_state`` (rank 0's, with several ranks); ``offset`` gives each
        partial_fit call its own draws."""
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        seed = (ranks.broadcast_seed(seed) + offset) % np.iinfo(np.int32).max
        generator = torch.Generator(device=device).manual_seed(seed)
        init_generator = generator if device.type == "cpu" else torch.Generator().manual_seed(seed)
        return generator, init_generator

    def _new_module(self, X, init_generator, state: FitState) -> torch.nn.Module:
        module = self._build_module(X.shape[1], X.dtype)
        init_parameters(module, init_generator)
        state.network_params = network_params(self)
        return module

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the encoder and decoder on ``X``.

        In a script launched with ``torchrun`` (a ``torch.distributed``
        process group of several ranks), every rank calls ``fit`` with the
        same parameters and the same ``X``, and they train data-parallel:
        each computes the gradient of its share of each batch, and all end
        with the same weights, those one process would reach (up to rounding).
        Rank 0's estimator is the model; see :func:`skvae.single_process` to
        fit one model per rank instead.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data. float32 data is trained in float32, anything else in
            float64.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(X, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """One pass of training over the rows of ``X``, for data that streams.

        The first call builds the networks (started at PCA's solution of
        these rows with ``init="pca"``); each later call keeps the weights
        and the optimiser's state, and makes one pass of Adam steps over the
        rows in shuffled mini-batches of ``batch_size``, whatever ``solver``
        says. No rows are held out (``early_stopping`` applies to
        :meth:`fit` only): the caller decides how many passes to make. A call
        after :meth:`fit` continues from the fitted weights, with a fresh Adam.
        The parameters the networks were built with (``n_components``,
        ``hidden_layer_sizes``, ``activation``, a VAE's ``likelihood`` and
        ``decoder_variance``, ``compute_dtype``) cannot change between calls.

        Under ``torchrun`` (see :meth:`fit`), every rank calls ``partial_fit``
        together, each with its own chunk: the pass is the one a single
        process makes over all the chunks, rank 0's rows first, and the first
        call starts every rank from rank 0's start.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training data, with the features of the first chunk.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The estimator, trained one more pass.
        """
        return self._fit(X, incremental=True)

    def _fit(self, X, incremental: bool):
        """fit and partial_fit: validate, start, train, then set the attributes.

        ``incremental``: one pass that keeps the weights and Adam's state of an
        earlier call, if any (:meth:`partial_fit`); else a new model trained
        until its stopping rule (:meth:`fit`).
        """
        first = not (incremental and hasattr(self, "module_"))
        ranks = participants()
        method = "partial_fit" if incremental else "fit"
        with _kept_on_failure(self, *_VALIDATED):
            model_dtype = None if first else next(self.module_.parameters()).dtype
            Xt = self._validate_training(X, ranks, method, first, model_dtype)
            state = FitState(ranks=ranks, incremental=incremental)
            device = resolve_device(self.device)
            offset = 0 if first else self.n_iter_
            generator, init_generator = self._generator(device, offset, ranks)
            if first:
                self.n_components_ = self._resolve_n_components(Xt, state)
                module = self._new_module(Xt, init_generator, state)
            else:  # trained on a copy: a failed call leaves the model as it was
                module = copy.deepcopy(self.module_)
                state.optimizer_state = self._optimizer_state
            train = self._partial_fit_module if incremental else self._fit_module
            try:
                history = train(Xt, module, generator, device, state)
            except TrainingDiverged as exc:
                raise ValueError(str(exc)) from None
            fitted = self._after_fit(Xt, module, generator, state)
        # Everything is computed before anything is set: a failed fit leaves a
        # previously fitted model as it was.
        if not first:
            self._continue_history(history)
            if self.best_loss_ is not None and history.best_loss is not None:
                history.best_loss = min(self.best_loss_, history.best_loss)
        self._set_fitted(module, history, state, fitted)
        self._warn_if_unfinished(history)
        return self

    def _continue_history(self, history: History) -> None:
        """Put the fitted model's iterations and loss curve before ``history``'s."""
        history.n_iter += self.n_iter_
        history.loss_curve = self.loss_curve_ + history.loss_curve

    def _set_fitted(self, module, history: History, state: FitState, fitted) -> None:
        """Set the fitted attributes (a subclass sets its own from ``fitted``, what
        :meth:`_after_fit` computed, then calls this)."""
        self.module_ = module
        # Adam's state is kept after partial_fit only (it would triple a pickle)
        self._optimizer_state = state.optimizer_state if state.incremental else None
        if state.network_params is not None:  # new networks, not the fitted ones trained on
            self._network_params = state.network_params
        self.n_iter_ = history.n_iter
        self.loss_curve_ = history.loss_curve
        self.best_loss_ = history.best_loss
        self.validation_scores_ = history.validation_scores or None
        self.best_validation_score_ = history.best_validation_score

    def _warn_if_unfinished(self, history: History) -> None:
        """Warn, at the caller's line, if Ctrl-C or ``max_iter`` ended training."""
        if history.interrupted:
            warnings.warn(
                f"Training was interrupted after {history.n_iter} complete "
                "iterations; the model keeps the weights it had reached.",
                TrainingInterrupted,
                stacklevel=5,  # this, _fit, fit, sklearn's _fit_context wrapper, the caller
            )
        elif not history.converged:
            warnings.warn(
                f"{type(self).__name__} stopped at max_iter={self._max_iter()} before "
                f"the loss stopped improving by tol={self.tol}; consider raising "
                "max_iter.",
                ConvergenceWarning,
                stacklevel=5,
            )

    # ------------------------------------------------------------ the rest
    @property
    def _n_features_out(self):
        return self.n_components_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.sparse = True  # densified one batch at a time
        return tags

    def __getstate__(self):
        state = super().__getstate__()
        module = state.get("module_")
        if module is not None and any(p.device.type != "cpu" for p in module.parameters()):
            state["module_"] = copy.deepcopy(module).to("cpu")
        return state
