"""LinearAutoencoder: one linear map each way, aligned with PCA after training."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import _fit_context

# Minka's evidence for each rank, as PCA(n_components="mle") computes it: "mle"
# picks PCA's rank by construction. Private, but unchanged since scikit-learn 0.18.
from sklearn.decomposition._pca import _infer_dimension
from sklearn.utils._param_validation import Interval, RealNotInt, StrOptions
from sklearn.utils.extmath import svd_flip

from ._autoencoder import PointAutoencoder
from ._base import _VALIDATED, BaseAutoencoder, _kept_on_failure, resolve_device
from ._distributed import participants
from ._fitstate import FitState
from ._ppca import ProbabilisticPCAMixin
from ._ppca_missing import MissingValuesMixin
from ._ppca_module import PPCAModule, ppca_state
from ._subspace import (
    EIGH_MAX_SIZE,
    Moments,
    discarded_variance,
    leading_subspace,
    principal_axes,
    principal_components,
    spectrum,
)
from ._training import History, TrainingConfig


class LinearAutoencoder(
    MissingValuesMixin, ProbabilisticPCAMixin, PointAutoencoder, register=True
):
    """Linear autoencoder: z = E (x - b), x_hat = D z + b, trained on squared error.

    A linear autoencoder trained to its optimum spans the same subspace as
    PCA's first ``n_components`` directions (Baldi & Hornik, 1989), but the
    basis it learns is any basis of that subspace. After training, the learned
    decoder is orthonormalised (an SVD of the learned map) and rotated within its
    span to the directions of decreasing code variance (Plaut, 2018), so
    ``components_`` are ordered principal directions with a deterministic sign
    and :meth:`transform` returns uncorrelated codes, as ``PCA`` does.

    Having PCA's subspace, it is also PCA's probabilistic model (Tipping &
    Bishop, 1999): ``noise_variance_``, :meth:`get_covariance`,
    :meth:`get_precision`, and :meth:`score_samples` / :meth:`score` as the
    log-likelihood, so a grid search over ``n_components`` picks the rank
    that ``PCA.score`` picks; :meth:`sample` draws from that model.

    Parameters
    ----------
    n_components : int, float, "mle" or None, default=2
        Width of the latent space, as for ``PCA(svd_solver="full")``:

        - an int: at most ``min(n_samples, n_features)``;
        - None: ``min(n_samples, n_features)``;
        - a float in (0, 1): the fewest components whose explained variance
          ratios add up to more than this fraction;
        - ``"mle"``: Minka's maximum-likelihood rank (needs
          ``n_samples >= n_features``).

        The last two read the whole spectrum of the data's covariance (an
        eigendecomposition of a ``min(n_samples, n_features)`` square matrix).
        The width fitted is ``n_components_``.
    whiten : bool, default=False
        When True, :meth:`transform` divides each code by the square root of
        its explained variance, so the codes have unit variance, and
        :meth:`inverse_transform` multiplies it back, as ``PCA(whiten=True)``.
        The encoder and decoder weights carry the scaling; ``components_``,
        the variances and the probabilistic model do not change.
    solver : {"als", "adam", "lbfgs"}, default="als"
        ``"als"`` alternates the exact least-squares encoder and decoder
        updates of the same loss: each step lowers it, and from a random start
        it reaches PCA's subspace quickly. ``"adam"`` (mini-batch) and
        ``"lbfgs"`` (full-batch) train by gradient with the engine the deep
        models use.
    batch_size : int, default=128
        Rows per mini-batch (Adam).
    learning_rate : float, default=1e-3
        Adam's step size.
    max_iter : int, default=1000
        Maximum number of ALS steps, or epochs (Adam), or iterations (L-BFGS).
    tol : float, default=1e-4
        ALS stops when successive subspaces are within ``tol ** 2`` radians;
        the gradient solvers stop when the loss improves by less than ``tol``
        (relative) for ``n_iter_no_change`` epochs.
    n_iter_no_change : int, default=10
        Epochs without improvement after which the gradient solvers stop;
        ALS also stops after this many steps whose loss is flat to rounding.
    early_stopping : bool, default=False
        Adam only: stop on a held-out validation score.
    validation_fraction : float, default=0.1
        Share of rows held out when ``early_stopping``; with missing entries,
        share of the observed entries EM holds out (see Notes). 0 holds
        nothing out: EM then runs to the maximum likelihood of all the
        observed entries, or for ``max_iter`` steps.
    weight_decay : float, default=0.0
        L2 penalty on the weights (gradient solvers).
    random_state : int, RandomState instance or None, default=None
        Seeds the starting point (and batch order). A fixed seed gives
        bit-identical fits on the CPU.
    device : str or torch.device, default="auto"
        Where to compute: ``"auto"`` uses CUDA when torch sees it.
    compute_dtype : {"float32", "float64"} or None, default=None
        The floating dtype the networks train and compute in. None: the
        input's (float32 data in float32, anything else in float64).
        ``"float32"`` trains float64 data in float32: 35-50% less time per
        epoch on a CPU (``benchmarks.scale``), far less on GPUs with slow
        float64 arithmetic, for the same held-out error up to rounding;
        outputs and fitted arrays keep the input's dtype either way.
    verbose : int, default=0
        Print the loss after each step when positive.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Orthonormal principal directions of the learned subspace, by decreasing
        explained variance.
    explained_variance_ : ndarray of shape (n_components,)
        Variance of the training codes along each component (ddof=1, as PCA).
    explained_variance_ratio_ : ndarray of shape (n_components,)
        Share of the total variance explained by each component.
    singular_values_ : ndarray of shape (n_components,)
        The singular values of the centred training data along the components,
        ``sqrt(explained_variance_ * (n_samples_ - 1))``, as PCA.
    noise_variance_ : float
        Probabilistic PCA's noise variance: the mean explained variance (ddof=1)
        of the ``min(n_samples, n_features) - n_components_`` discarded
        directions, 0 when none is discarded; as PCA.
    n_samples_ : int
        Number of samples in the training data.
    mean_ : ndarray of shape (n_features,)
        Per-feature mean of the training data.
    module_ : torch.nn.Module
        The encoder and decoder, set to the rotated maps (on the CPU).
    n_components_ : int
        The latent width of the fitted model.
    n_iter_ : int
        Number of ALS steps, epochs or iterations run.
    loss_curve_ : list of float
        Loss after each step (ALS: the share of variance not captured).
    best_loss_ : float
        Lowest loss reached.
    validation_scores_ : list of float or None
        Validation scores with ``early_stopping`` (Adam).
    latent_mean_, latent_covariance_ : ndarray
        The Gaussian of the training codes that :meth:`sample` draws from:
        zero and ``diag(explained_variance_)``, the identity with ``whiten``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when they were all strings.

    See Also
    --------
    sklearn.decomposition.PCA : The closed-form solution it reproduces.
    Autoencoder : The nonlinear version.

    Notes
    -----
    :meth:`get_covariance` does not depend on ``whiten``, nor does anything
    derived from it. ``PCA(whiten=True).get_covariance()`` (and with it its
    ``get_precision`` and ``score``) scales the components by the square root
    of the explained variances (scikit-learn issue #13898), so with
    ``whiten=True`` compare with ``PCA(whiten=False)``'s.

    NaN in a dense array is a missing entry (inf is refused). ``fit`` then runs
    EM for probabilistic PCA on the observed entries, whatever ``solver``
    (accelerated by SQUAREM; ``n_iter_`` counts steps and kept jumps); it holds
    out ``validation_fraction`` of them and keeps the step that predicts them
    best (run to its maximum likelihood, EM overfits; see the benchmarks page).
    ``LatentImputer(LinearAutoencoder())`` fills with this model. ``transform`` gives
    E[transform(x) | x_observed] (0, the prior mean, for a row with nothing
    observed), ``score_samples`` the observed entries' log-likelihood (0 for
    none). ``n_components`` must then be an int or None, and ``partial_fit``
    refuses NaN. Data without NaN is fitted as before.

    References
    ----------
    P. Baldi and K. Hornik, "Neural networks and principal component analysis:
    learning from examples without local minima", Neural Networks, 1989.
    E. Plaut, "From principal subspaces to principal components with linear
    autoencoders", arXiv:1804.10253, 2018.
    M. E. Tipping and C. M. Bishop, "Probabilistic principal component
    analysis", Journal of the Royal Statistical Society B, 61(3), 1999.
    T. P. Minka, "Automatic choice of dimensionality for PCA", NIPS 2000.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from skvae import LinearAutoencoder
    >>> from skvae.metrics import max_principal_angle
    >>> X = np.random.RandomState(0).normal(size=(200, 8)) @ np.diag(np.arange(8, 0, -1))
    >>> lae = LinearAutoencoder(n_components=3, random_state=0).fit(X)
    >>> pca = PCA(n_components=3).fit(X)
    >>> bool(max_principal_angle(lae, pca) < 1.0)  # degrees
    True
    >>> np.allclose(lae.explained_variance_, pca.explained_variance_, rtol=1e-3)
    True
    >>> bool(np.isclose(lae.score(X), pca.score(X), rtol=1e-6))  # PPCA's log-likelihood
    True
    """

    _parameter_constraints = {
        **BaseAutoencoder._parameter_constraints,
        "n_components": [
            Interval(Integral, 1, None, closed="left"),
            Interval(RealNotInt, 0, 1, closed="neither"),
            StrOptions({"mle"}),
            None,
        ],
        "whiten": ["boolean"],
        "solver": [StrOptions({"als", "adam", "lbfgs"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
    }

    # Every partial_fit builds the model anew from the running moments, so a new
    # n_components or whiten applies to the next call; only compute_dtype is fixed.
    _network_parameters = ()

    def __init__(
        self,
        n_components=2,
        *,
        whiten=False,
        solver="als",
        batch_size=128,
        learning_rate=1e-3,
        max_iter=1000,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        weight_decay=0.0,
        random_state=None,
        device="auto",
        compute_dtype=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.whiten = whiten
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

    def _build_module(self, n_features, dtype):  # its densities and posteriors: its verbs
        return PPCAModule(n_features, self.n_components_, dtype)

    def _resolve_n_components(self, X, state):
        width = self._em_width(X, state)  # rows with missing entries: EM instead
        if width is not None:
            return width
        # the moments, once: "mle" and fractions read them; training reuses them
        self._check_width(*X.shape)
        mom = self._data_moments(X, resolve_device(self.device), state)
        state.moments = mom
        return self._width(mom, X.shape[1])

    def _check_width(self, n, d):
        """Refuse an n_components that n rows of d features cannot give."""
        k = self.n_components
        if isinstance(k, str) and n < d:  # "mle"
            raise ValueError(
                f"n_components='mle' is only supported if n_samples >= n_features "
                f"(n_samples={n}, n_features={d}), as in PCA."
            )
        if isinstance(k, Integral):
            super()._resolve_n_components(None, None)  # refuses bools
            if k > min(n, d):
                raise ValueError(
                    f"n_components={self.n_components!r} must be at most "
                    f"min(n_samples, n_features)={min(n, d)} (n_samples={n}, n_features={d})."
                )

    def _width(self, mom, d):
        """n_components_ from the data's moments, as PCA reads it off the spectrum."""
        k, n = self.n_components, mom.n_samples
        if k is None:
            return min(n, d)
        if isinstance(k, Integral):
            return int(k)
        # PCA's explained variances (ddof=1), all min(n, d) of them
        variances = spectrum(mom)[: min(n, d)].cpu().numpy() * (n / max(n - 1, 1))
        if k == "mle":
            return max(int(_infer_dimension(variances, n)), 1)
        total = variances.sum()
        ratios = variances / total if total > 0 else np.zeros_like(variances)
        # PCA's rule: the fewest components whose ratios add up to more than k
        chosen = np.searchsorted(np.cumsum(ratios), k, side="right") + 1
        return int(min(chosen, len(variances)))

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Add the rows of ``X`` to the model: exact streaming PCA.

        The mean and covariance of all the rows seen so far are updated in
        float64 (the pairwise update of Chan et al.), and the model is set to
        their principal subspace: after one pass over the chunks of a data
        set, the model is the one :meth:`fit` gives on all of it (up to
        rounding), whatever the chunk sizes. This needs ``n_features``
        squared float64 numbers of memory, kept between calls; every
        ``solver`` streams this way; :meth:`fit` keeps them too, unless its
        data had more features than rows, and over 2048 features. Each call
        builds the model anew from these statistics, so a new
        ``n_components`` or ``whiten`` applies to it; a new ``compute_dtype``
        is refused.

        Under ``torchrun`` (see :meth:`fit`), every rank calls ``partial_fit``
        together, each with its own chunk, and the statistics of all the
        chunks are merged: every rank holds the same model, of all the rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training data, with the features of the first chunk.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The estimator, updated with these rows.
        """
        first = not hasattr(self, "module_")
        if not first and not hasattr(self, "_moments"):
            raise ValueError(
                "This LinearAutoencoder holds no running moments of its training rows "
                "for partial_fit to continue from: it was loaded from a file of format "
                "version 1, which did not store them. Start the stream on a new "
                "estimator (sklearn.base.clone)."
            )
        if not first and self._moments is None:
            n, d = self.n_samples_, self.n_features_in_
            why = (
                f"too wide to keep their {d}^2 covariance"
                if n < d and d > EIGH_MAX_SIZE
                else "with missing entries, by EM, which keeps no covariance of the rows"
            )
            raise ValueError(
                f"This LinearAutoencoder was fitted on {n} rows of {d} features, {why} "
                "for partial_fit to continue. Start the stream on a new estimator "
                "(sklearn.base.clone)."
            )
        ranks = participants()
        with _kept_on_failure(self, *_VALIDATED, "_moments"):
            model_dtype = None if first else self.module_.decoder.linear.weight.dtype
            Xt = self._validate_training(X, ranks, "partial_fit", first, model_dtype)
            self._refuse_missing(Xt)
            device = resolve_device(self.device)
            state = FitState(ranks=ranks, incremental=True)
            chunk = self._data_moments(Xt, device, state, tall=True)
            mom = chunk if first else self._moments.merged(chunk)
            n, d = mom.n_samples, Xt.shape[1]
            self._check_width(n, d)
            self.n_components_ = self._width(mom, d)
            offset = 0 if first else self.n_iter_
            generator, init_generator = self._generator(device, offset, ranks)
            module = self._new_module(Xt, init_generator, state)
            basis, variances = principal_components(mom, self.n_components_, generator)
            state.moments, state.axes = mom, (basis, variances, None)
            fitted = self._after_fit(None, module, generator, state)
        lost = max(mom.total_variance - float(variances.sum()), 0.0) / d
        # one iteration; its loss, the mean squared error of all the rows so far
        history = History(loss_curve=[lost], best_loss=lost, n_iter=1, converged=True)
        if not first:
            self._continue_history(history)
        self._set_fitted(module, history, state, fitted)
        return self

    def _set_fitted(self, module, history, state, fitted):
        self.components_ = fitted["components"]
        self.explained_variance_ = fitted["explained_variance"]
        self.explained_variance_ratio_ = fitted["explained_variance_ratio"]
        self.singular_values_ = fitted["singular_values"]
        self.noise_variance_ = fitted["noise_variance"]
        self.n_samples_ = fitted["n_samples"]
        self.mean_ = fitted["mean"]
        self.latent_mean_ = fitted["latent_mean"]
        self.latent_covariance_ = fitted["latent_covariance"]
        # not PointAutoencoder's: the codes' Gaussian is set above, from PCA's
        BaseAutoencoder._set_fitted(self, module, history, state, fitted)
        mom = state.moments  # None after EM on missing entries: no moments kept
        # The running statistics partial_fit continues from, on the CPU: fit's
        # covariance, or one made from a wide fit's centred rows if not too big.
        if mom is not None and mom.wide and mom.centred.shape[1] <= EIGH_MAX_SIZE:
            Xc = mom.centred
            mom = Moments(mom.mean, Xc.T @ Xc / mom.n_samples, mom.n_samples)
        self._moments = None if mom is None or mom.wide else mom.to("cpu")

    def _fit_module(self, X, module, generator, device, state):
        if state.missing:
            return self._fit_em(X, generator, device, state)
        if self.solver != "als":
            return super()._fit_module(X, module, generator, device, state)
        config = TrainingConfig(
            max_iter=self.max_iter,
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            verbose=self.verbose,
        )
        state.axes = leading_subspace(state.moments, self.n_components_, config, generator)
        return state.axes[2]

    def _after_fit(self, X, module, generator, state):
        if state.missing:
            return self._em_fitted(X, module, state)
        mom = state.moments
        if state.axes is not None:  # ALS: already the principal axes
            basis, variances, _ = state.axes
        else:
            # Plaut (2018): an SVD of the learned decoder gives an orthonormal
            # basis of its span; the principal axes of the data within that span
            # order it by variance.
            weight = module.decoder.linear.weight.detach().to(mom.mean)
            learned = torch.linalg.svd(weight, full_matrices=False).U
            basis, variances = principal_axes(mom, learned)
        noise, n = discarded_variance(mom, variances), mom.n_samples
        return self._fitted(module, mom.mean, basis, variances, mom.total_variance, noise, n)

    def _fitted(self, module, mean, basis, variances, total, noise, n):
        """The fitted attributes of the model ``mean + span(basis)``: its axes'
        variances, the total variance and the noise variance (ddof=0), of n rows."""
        components = basis.T.cpu().numpy()
        # sign convention of PCA: the largest |entry| of each component is positive
        _, components = svd_flip(None, components, u_based_decision=False)
        ddof_scale = n / max(n - 1, 1)
        explained_variance = variances.cpu().numpy() * ddof_scale
        total = total * ddof_scale
        k = self.n_components_
        noise = noise * ddof_scale
        # the fitted arrays keep the input's dtype, as the outputs do, whatever
        # dtype the networks compute in (compute_dtype)
        np_dtype = np.dtype(self._input_dtype)
        mean = mean.to("cpu", torch.float64)
        latent_variance = explained_variance
        scale = None
        if self.whiten:
            # PCA's whitening: divide the codes by the standard deviations
            # (clipped at eps, against components of no variance), multiply back
            scale = np.sqrt(explained_variance)
            eps = torch.finfo(module.decoder.linear.weight.dtype).eps  # the encoder's clip
            latent_variance = np.where(scale >= eps, 1.0, explained_variance / eps**2)
        _set_projection(module, mean, torch.from_numpy(components.T), scale)
        components = np.ascontiguousarray(components, dtype=np_dtype)
        reported, mean = explained_variance.astype(np_dtype), mean.numpy().astype(np_dtype)
        # the model's own probabilistic PCA, from the arrays the estimator reports
        module.set_ppca(ppca_state(components, reported, noise, mean, self.whiten))
        # what _set_fitted sets, each under its attribute's name less the "_"
        return {
            "components": components,
            "explained_variance": reported,
            "explained_variance_ratio": (explained_variance / total).astype(np_dtype)
            if total > 0
            else np.zeros(k, dtype=np_dtype),
            "singular_values": np.sqrt(explained_variance * max(n - 1, 0)).astype(np_dtype),
            "noise_variance": float(noise),
            "n_samples": n,
            "mean": mean,
            "latent_mean": np.zeros(k),
            "latent_covariance": np.diag(latent_variance),
        }


@torch.no_grad()
def _set_projection(module, mean: torch.Tensor, basis: torch.Tensor, scale=None) -> None:
    """Make ``module`` the orthogonal projection onto ``mean + span(basis)``.

    Encoder z = basis' (x - mean), decoder x_hat = basis z + mean: for an
    orthonormal decoder this encoder is the exact least-squares one. With
    ``scale`` (one standard deviation per column of ``basis``, an array), the
    codes are whitened: the encoder divides by ``scale`` (clipped at the
    dtype's eps, as PCA's transform) and the decoder multiplies by it.
    """
    basis = basis.to(module.decoder.linear.weight.dtype)
    mean = mean.to(basis.dtype)
    encoder, decoder = basis.T, basis
    if scale is not None:
        scale = torch.as_tensor(scale).to(basis.dtype)
        encoder = encoder / scale.clamp_min(torch.finfo(basis.dtype).eps)[:, None]
        decoder = decoder * scale
    module.offset.zero_()  # the maps below work in the data's own units
    module.scale.fill_(1.0)
    module.encoder.start_linear(encoder, -(encoder @ mean))
    module.decoder.start_linear(decoder, mean)
