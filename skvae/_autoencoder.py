"""Autoencoder: MLP encoder and mirrored MLP decoder trained on squared error
(or, for counts, on the Poisson likelihood)."""

from __future__ import annotations

from sklearn.utils._param_validation import StrOptions

from ._base import BaseAutoencoder
from ._deep_missing import AutoencoderMissing, codes_gaussian
from ._likelihoods import FAMILIES
from ._modules import ACTIVATIONS, AutoencoderModule, CountAutoencoderModule
from ._placement import MappedRows, random_rows
from ._training import Objective

#: Training rows on which a count loss calibrates its start (as the VAE's).
_START_ROWS = 4096

#: Autoencoder(loss=...): None for squared error, else the likelihood family.
LOSSES = {"squared_error": None, "poisson": "poisson"}


class PointAutoencoder(BaseAutoencoder):
    """Encoder to a point, decoder back, squared error (or, where
    :meth:`_loss_family` gives one, a likelihood family's negative
    log-likelihood); ``sample`` from the codes' Gaussian. Shared by
    :class:`Autoencoder` and ``LinearAutoencoder`` (always squared error)."""

    def _build_module(self, n_features, dtype):
        family = self._loss_family(n_features, dtype)
        if family is None:
            return AutoencoderModule(
                n_features, self.n_components_, self._hidden(), self._activation(), dtype
            )
        return CountAutoencoderModule(
            n_features, self.n_components_, self._hidden(), self._activation(), family, dtype
        )

    def _loss_family(self, n_features, dtype):
        """The likelihood family the loss reads, or None for squared error."""
        return None

    def _hidden(self):
        return tuple(self.hidden_layer_sizes)

    def _activation(self):
        return self.activation

    def _objective(self, module, generator):
        # the model's own losses (mean squared error, standardised units)
        return Objective(type(module).loss, type(module).row_loss)

    def _after_fit(self, X, module, generator, state):
        # A random subset of rows is enough for a Gaussian in n_components
        # dimensions and keeps fit from paying for another pass over the data.
        # The isotropic Gaussian decoder's maximum-likelihood variance is their
        # MSE (a count loss has its family's noise, and no such variance).
        counts = hasattr(module, "family")
        return codes_gaussian(module, X, generator, masked=False, noise=not counts)

    def _set_fitted(self, module, history, state, fitted):
        self.latent_mean_, self.latent_covariance_, self.noise_variance_ = fitted
        super()._set_fitted(module, history, state, fitted)

    def score_samples(self, X):
        """Minus the mean squared reconstruction error of each row; with
        ``loss="poisson"``, its Poisson log-likelihood.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to reconstruct.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            ``-mean((inverse_transform(transform(X)) - X) ** 2, axis=1)``; with
            ``loss="poisson"``, the log-likelihood (nats) of each row's counts
            under the Poisson rates ``inverse_transform(transform(X))``.
        """
        return self._row_scores(X)

    def score(self, X, y=None):
        """Minus the mean squared reconstruction error of ``X``.

        A wider latent space always reconstructs at least as well, so a grid
        search on this score prefers the largest ``n_components``. To choose
        the latent size, use a probabilistic model, whose score is a
        held-out log-likelihood: :class:`VariationalAutoencoder` (its ELBO),
        ``LinearAutoencoder`` or :class:`sklearn.decomposition.PCA`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to reconstruct.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        score : float
            ``-mean((inverse_transform(transform(X)) - X) ** 2)``; with
            ``loss="poisson"``, the mean of :meth:`score_samples` (nats per
            row). Higher is better.
        """
        return super().score(X)


class Autoencoder(AutoencoderMissing, PointAutoencoder, register=True):
    """Deep autoencoder: MLP encoder and mirrored MLP decoder.

    The encoder maps each row to a point z = g(x) in ``n_components`` dimensions
    and the decoder maps it back, both trained together on mean squared
    reconstruction error with Adam. Curved data is reconstructed better than by
    PCA, but the latent space is not regular: :meth:`sample` decodes draws from
    a Gaussian fitted to the training codes, which may land where no training
    point was encoded.

    Each network is a linear map plus an MLP correction. With ``init="pca"``
    (the default) the linear maps start at PCA's solution and the corrections
    at zero, so training starts exactly at PCA's reconstruction; held-out rows
    (``early_stopping``) decide when to stop, and the best weights, the start
    included, are kept. On held-out data the model is therefore at least as
    good as PCA, and better wherever the data is curved.

    Parameters
    ----------
    n_components : int, default=2
        Width of the latent space.
    hidden_layer_sizes : tuple of int, default=(256, 128)
        Widths of the encoder's hidden layers; the decoder mirrors them.
        ``()`` makes both maps linear.
    activation : {"relu", "tanh", "logistic", "elu", "gelu", "identity"}, default="relu"
        Nonlinearity between hidden layers.
    init : {"pca", "random"}, default="pca"
        ``"pca"``: the linear maps start at PCA's solution (computed from all
        training rows, in closed form) and the MLP corrections at zero.
        ``"random"``: every layer starts from PyTorch's default random
        initialisation.
    loss : {"squared_error", "poisson"}, default="squared_error"
        What training minimises. ``"squared_error"``: the mean squared
        reconstruction error (standardised units). ``"poisson"``, for counts
        (non-negative integers; anything else is refused with a
        ``ValueError``): the decoder gives each feature's log-rate and
        training minimises the Poisson negative log-likelihood of the counts,
        nats per row, with the likelihood family of
        ``VariationalAutoencoder(likelihood="poisson")``. The encoder then
        reads log1p of the counts, the PCA start is PCA of those with each
        feature's baseline rate matched to its counts, ``inverse_transform``
        gives rates, :meth:`sample` draws counts, and ``score_samples`` is
        each row's Poisson log-likelihood given its code. No missing entries.
    solver : {"adam", "lbfgs"}, default="adam"
        Mini-batch Adam, or full-batch L-BFGS (small data sets).
    batch_size : int, default=128
        Rows per mini-batch (Adam).
    learning_rate : float, default=1e-3
        Adam's step size.
    max_iter : int, default=500
        Maximum number of epochs (L-BFGS: iterations): a safety limit; fits
        normally end by the ``n_iter_no_change`` rule (the default fits of
        ``python -m benchmarks`` end after 35 to 272 epochs).
    tol : float, default=1e-4
        Adam: relative improvement of the validation score (without held-out
        rows, of the training loss) below which an epoch counts as no
        improvement. L-BFGS: converged when the largest gradient entry is
        below ``tol`` times the starting loss or the loss improves by less
        than ``tol / 100`` (relative) for ``n_iter_no_change`` iterations.
    n_iter_no_change : int, default=10
        Epochs without improvement after which training stops; with Adam, at
        least 200 optimiser steps' worth of epochs (up to five times
        ``n_iter_no_change``), since on small data an epoch is a few steps,
        too few for networks started at PCA's solution to move away from it.
    early_stopping : bool, default=True
        Adam only: hold out ``validation_fraction`` of the rows, stop on their
        score and restore the weights of the best candidate; the starting point
        is the first candidate. With too few rows to hold any out (fewer than
        ``0.5 / validation_fraction``), or with ``False``, training stops on
        the training loss instead and keeps the last weights.
    validation_fraction : float, default=0.1
        Share of rows held out when ``early_stopping``.
    weight_decay : float, default=0.0
        L2 penalty on the weights.
    random_state : int, RandomState instance or None, default=None
        Seeds weights, batch order and the validation split. A fixed seed gives
        bit-identical fits on the CPU.
    device : str or torch.device, default="auto"
        Where to compute: ``"auto"`` uses CUDA when torch sees it. Weights are
        kept on the CPU between calls.
    compute_dtype : {"float32", "float64"} or None, default=None
        The floating dtype the networks train and compute in. None: the
        input's (float32 data in float32, anything else in float64).
        ``"float32"`` trains float64 data in float32: 35-50% less time per
        epoch on a CPU (``benchmarks.scale``), far less on GPUs with slow
        float64 arithmetic, for the same held-out error up to rounding;
        outputs keep the input's dtype either way.
    verbose : int, default=0
        Print the loss after each epoch when positive.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained encoder and decoder (on the CPU).
    n_components_ : int
        The latent width of the fitted model.
    n_iter_ : int
        Number of epochs run.
    loss_curve_ : list of float
        Mean training loss of each epoch.
    best_loss_ : float or None
        Lowest epoch loss; None when held-out rows decide (see
        ``best_validation_score_``), as in scikit-learn's MLPs.
    validation_scores_ : list of float or None
        Validation score (minus the MSE; with ``loss="poisson"``, the mean
        log-likelihood per row) of the starting point, then of each epoch,
        with held-out rows; None without.
    best_validation_score_ : float or None
        The best of ``validation_scores_``: the kept weights' score.
    latent_mean_ : ndarray of shape (n_components,)
        Mean of the training codes (of up to 2048 random training rows).
    latent_covariance_ : ndarray of shape (n_components, n_components)
        Covariance of those codes; :meth:`sample` draws from this Gaussian.
    noise_variance_ : float or None
        Mean squared reconstruction error of those rows: the variance of the
        isotropic Gaussian noise that :meth:`sample` adds to decoded means.
        None with ``loss="poisson"``, whose :meth:`sample` draws Poisson counts.
        After a fit on data with missing entries that kept its
        probabilistic-PCA start (see :ref:`missing_data`), these three are
        that model's: latent mean 0, covariance the EM variances in the
        codes' units, and EM's noise variance.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when they were all strings.

    See Also
    --------
    LinearAutoencoder : The linear case, aligned with PCA.
    VariationalAutoencoder : A regular, generative latent space.

    Notes
    -----
    The networks see standardised inputs, (x - mean) / scale with the
    training mean and one overall scale, and answer in the data's units.
    Training minimises the loss in those standardised units, so the data's
    location and units do not change the result; the reported losses and
    every output are in the data's units.

    Missing entries (NaN in a dense array; inf is refused): training reads
    the observed entries only. The encoder reads each row with its missing
    entries at the training mean (0 in standardised units, as MIWAE), the loss
    is the mean squared error of the observed entries, of which each batch
    hides a fifth from the encoder (a denoising autoencoder: it learns to
    predict entries it does not read), and the start is the
    EM solution of probabilistic PCA on them (``LinearAutoencoder``'s), in
    place of PCA's. ``transform`` encodes that filled row, ``score_samples``
    is minus the mean squared error of the observed entries (0 for a row with
    nothing observed). ``partial_fit`` and ``score_features`` refuse NaN;
    data without NaN is fitted as before.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skvae import Autoencoder
    >>> X = load_digits().data / 16
    >>> ae = Autoencoder(n_components=4, max_iter=5, random_state=0).fit(X)
    >>> ae.transform(X[:3]).shape
    (3, 4)
    >>> ae.sample(2, random_state=0).shape
    (2, 64)
    """

    _parameter_constraints = {
        **BaseAutoencoder._parameter_constraints,
        "hidden_layer_sizes": ["array-like"],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "init": [StrOptions({"pca", "random"})],
        "loss": [StrOptions(set(LOSSES))],
        "solver": [StrOptions({"adam", "lbfgs"})],
    }

    def __init__(
        self,
        n_components=2,
        *,
        hidden_layer_sizes=(256, 128),
        activation="relu",
        init="pca",
        loss="squared_error",
        solver="adam",
        batch_size=128,
        learning_rate=1e-3,
        max_iter=500,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=True,
        validation_fraction=0.1,
        weight_decay=0.0,
        random_state=None,
        device="auto",
        compute_dtype=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.init = init
        self.loss = loss
        self.solver = solver
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.device = device
        self.compute_dtype = compute_dtype
        self.verbose = verbose

    def _loss_family(self, n_features, dtype):
        name = LOSSES[self.loss]
        if name is None:
            return None
        return FAMILIES[name].build(n_features, dtype, {"library_size": False})

    def __sklearn_tags__(self):
        # counts have no missing entries: NaN is refused, as by the count VAEs
        tags = super().__sklearn_tags__()
        counts = self._loss_name() != "squared_error"
        tags.input_tags.allow_nan = tags.input_tags.allow_nan and not counts
        return tags

    def _loss_name(self) -> str:
        """The loss that decides on NaN: the fitted model's, else the parameter."""
        module = getattr(self, "module_", None)
        if module is None:
            return self.loss
        return module.family.name if hasattr(module, "family") else "squared_error"

    def _nan_refusal(self) -> str:
        """Why NaN is refused, where the tags say it is: a count loss's rows."""
        loss = self._loss_name()
        return (
            f"Autoencoder(loss={loss!r}) takes no missing entries (NaN): only "
            "loss='squared_error' reads NaN as a missing entry. Drop or fill those "
            "entries with counts."
        )

    def _check_training_data(self, X, dtype):
        super()._check_training_data(X, dtype)
        family = self._loss_family(X.shape[1], dtype)
        if family is not None:
            family.check(X, "loss", "squared_error")

    def _start(self, X, module, generator, device, state):
        family = getattr(module, "family", None)
        if family is None:
            return super()._start(X, module, generator, device, state)
        # as the count VAEs start: PCA of what the encoder reads (log1p counts),
        # then each feature's baseline rate from some training rows
        rows = random_rows(X, _START_ROWS, generator).to(device, module.offset.dtype)
        family.set_reference(rows)
        super()._start(MappedRows(X, family.encoder_input), module, generator, device, state)
        if self.init == "pca":
            module.calibrate(rows)
