"""VariationalAutoencoder: a Gaussian encoder q(z|x), a decoder p(x|z), ELBO training."""

from __future__ import annotations

from numbers import Integral, Real

import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ._active_units import active_units
from ._base import BaseAutoencoder
from ._deep_missing import VAEMissing
from ._likelihoods import FAMILIES
from ._modules import ACTIVATIONS
from ._placement import MappedRows, random_rows
from ._vae_module import VAEModule, balanced_draws
from ._vae_objective import vae_objective

#: Training rows with which a likelihood family calibrates its start.
_START_ROWS = 4096

#: Importance samples per row of score_samples (see benchmarks/importance.py).
DEFAULT_IMPORTANCE = 64


class VariationalAutoencoder(VAEMissing, BaseAutoencoder, register=True):
    """Variational autoencoder (Kingma & Welling, 2014) as a transformer.

    The encoder maps each row x to a Gaussian q(z|x) = N(g(x), diag h(x)^2);
    the decoder maps z to the parameters of p(x|z). Training maximises the
    evidence lower bound

        ELBO(x) = E_q[log p(x|z)] - beta * KL(q(z|x) || N(0, I)),

    with the expectation taken through the reparameterisation
    z = g(x) + h(x) * eps, eps ~ N(0, I), and the KL in closed form. Because
    the codes are pulled towards the prior, decoding prior draws
    (:meth:`sample`) generates new data.

    With ``likelihood="gaussian"``, p(x|z) = N(f(z), c I): the reconstruction
    term is -||x - f(z)||^2 / (2c) - d/2 log(2 pi c), a squared error weighted
    by C = 1 / (2c). ``decoder_variance="learned"`` fits c (``noise_variance_``);
    a float fixes it. With ``hidden_layer_sizes=()`` the model is a linear VAE,
    whose optimum is probabilistic PCA (Lucas et al., 2019); its expected
    reconstruction term is exact, so it is trained deterministically with full
    batch L-BFGS (``solver="auto"``) and its ``score`` matches ``PCA.score``.

    The deep model contains the linear one: the encoder's mean is a linear map
    plus an MLP head, its log-variance an MLP head, and the decoder a linear
    map plus an MLP correction. With ``init="pca"`` (the default) training
    starts at probabilistic PCA's optimum, in closed form from PCA's leading
    eigenpairs and noise variance s2: posterior mean L^-1 (L - s2 I)^(1/2) U'x,
    constant posterior log-variance log(s2 / L), decoder W = U (L - s2 I)^(1/2)
    and decoder variance c = s2, with every MLP head at zero. There the ELBO
    equals ``PCA.score`` exactly. Held-out rows (``early_stopping``) decide
    when to stop and which weights to keep, the start included, by an
    importance-weighted estimate of log p(x) rather than the ELBO (see
    ``early_stopping``), so the held-out log-likelihood ends at least at PCA's
    (up to the Monte Carlo noise of the estimate).

    Parameters
    ----------
    n_components : int or "auto", default=2
        Width of the latent space. ``"auto"`` fits ``min(n_samples,
        n_features) // 2`` units, keeps as many as are active (average KL to
        the prior above the largest a unit reaches on the data with each
        column shuffled; see the Notes) and refits at that width,
        ``n_components_``. It costs two fits more. ``partial_fit`` chooses
        on its first chunk.
    hidden_layer_sizes : tuple of int, default=(256, 128)
        Widths of the encoder's hidden layers; the decoder mirrors them.
        ``()`` makes both linear.
    activation : {"relu", "tanh", "logistic", "elu", "gelu", "identity"}, default="relu"
        Nonlinearity between hidden layers.
    init : {"pca", "random"}, default="pca"
        ``"pca"``: start at probabilistic PCA's optimum (see above; with a
        Bernoulli decoder only the encoder starts there, the decoder at the
        features' mean probabilities). ``"random"``: PyTorch's default random
        initialisation for every layer.
    likelihood : {"gaussian", "bernoulli", "poisson", "negative_binomial"}, \
            default="gaussian"
        The decoder's distribution. ``"bernoulli"`` needs data in [0, 1] and
        decodes to probabilities. ``"poisson"`` and ``"negative_binomial"``
        (with one learned dispersion per feature) need counts (non-negative
        integers), decode to rates and sample counts; the encoder reads
        log1p of the counts, and the PCA start is PCA of those, with each
        feature's baseline rate matched to its counts.
    decoder_variance : "learned" or float > 0, default="learned"
        The Gaussian decoder's variance c (one scalar for all features).
    library_size : bool, default=False
        Count likelihoods only. ``True`` scales each row's decoded rates by its
        total count over the training rows' median total, as scVI does, and
        the encoder reads counts normalised to that median: the codes then
        describe a row's composition, not its depth, and the likelihood is
        conditional on each row's total. ``inverse_transform`` and ``sample``
        give rates and counts at the median total.
    beta : float, default=1.0
        Weight of the KL term (beta-VAE when not 1).
    solver : {"auto", "adam", "lbfgs"}, default="auto"
        ``"auto"``: L-BFGS on the exact ELBO for a linear Gaussian VAE, else
        mini-batch Adam.
    batch_size : int, default=128
        Rows per mini-batch (Adam).
    learning_rate : float, default=1e-3
        Adam's step size.
    max_iter : int or None, default=None
        Maximum number of epochs with Adam, or of iterations with L-BFGS: a
        safety limit, fits normally end by the ``n_iter_no_change`` rule.
        ``None``: 200 epochs, or 1000 L-BFGS iterations (each costs a few
        full-batch passes, and the linear VAE's flat directions need many).
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
        score and restore the weights of the best candidate, the starting point
        included. Each epoch's score is an importance-weighted bound of
        log p(x) (Burda et al.) with an antithetic pair of fixed draws per
        row, exact at the PCA start: the ELBO would charge the trained
        networks their inference gap, which the start does not have, and can
        miss a better model entirely. The best epoch replaces the start if it
        beats it by two standard errors on that score or, failing that, on the
        bound over all the fit's fixed draws (at least 32). With ``beta`` other
        than 1 or without hidden layers, the beta-weighted ELBO (one fixed
        draw of eps per row) decides. With too few rows to hold any out, or
        with ``False``, training stops on the training loss and keeps the last
        weights.
    validation_fraction : float, default=0.1
        Share of rows held out when ``early_stopping``.
    weight_decay : float, default=0.0
        L2 penalty on the weights.
    random_state : int, RandomState instance or None, default=None
        Seeds weights, batch order and reparameterisation noise. A fixed seed
        gives bit-identical fits on the CPU.
    device : str or torch.device, default="auto"
        Where to compute: ``"auto"`` uses CUDA when torch sees it.
    compute_dtype : {"float32", "float64"} or None, default=None
        The floating dtype the networks train and compute in. None: the
        input's (float32 data in float32, anything else in float64).
        ``"float32"`` trains float64 data in float32: 35-50% less time per
        epoch on a CPU (``benchmarks.scale``), far less on GPUs with slow
        float64 arithmetic, for the same held-out error up to rounding;
        outputs keep the input's dtype either way.
    verbose : int, default=0
        Print the loss after each epoch when positive.
    n_importance : int, default=64
        K, the importance samples per row with which :meth:`score_samples`
        and :meth:`score` estimate log p(x) (the IWAE bound of Burda et al.):
        a tighter estimate as K grows, at about K / 32 times the ELBO's cost
        (1 gives the ELBO itself). It plays no part in training, so it can be
        changed after ``fit`` (``set_params``).

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained encoder and decoder (on the CPU).
    noise_variance_ : float or None
        The Gaussian decoder's variance c (learned or as given); None with
        ``likelihood="bernoulli"``.
    n_components_ : int
        The latent width of the fitted model: with ``"auto"``, the number of
        active units.
    latent_kl_ : ndarray of shape (n_bound,) or None
        With ``"auto"``: each unit's average KL to the prior (nats, over the
        training rows) in the fit with the upper bound ``n_bound`` of units,
        decreasing; None otherwise.
    null_kl_ : ndarray of shape (n_bound,) or None
        The same for the fit to the data with shuffled columns.
    kl_threshold_ : float or None
        ``null_kl_[0]``: the KL above which a unit counts as active.
    n_iter_ : int
        Number of epochs (or L-BFGS iterations) run.
    loss_curve_ : list of float
        Mean training loss (minus the ELBO, nats per row) of each epoch.
    best_loss_ : float or None
        Lowest epoch loss; None when held-out rows decide (see
        ``best_validation_score_``), as in scikit-learn's MLPs.
    validation_scores_ : list of float or None
        Mean validation score (nats per row; see ``early_stopping``) of the
        starting point, then of each epoch, with held-out rows; None without.
    best_validation_score_ : float or None
        The best of ``validation_scores_``: the kept weights' score.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when they were all strings.

    See Also
    --------
    Autoencoder : Deterministic codes, no prior.
    sklearn.decomposition.PCA : Its ``score`` is the probabilistic PCA
        log-likelihood, which the linear VAE's ELBO reaches.

    Notes
    -----
    Active units (``n_components="auto"``). A fixed threshold on a unit's
    average KL (or Burda et al.'s activity > 0.01) cannot choose the width of
    a model that starts at probabilistic PCA: on scikit-learn's rank-5
    example (bound 12) the seven extra units keep KLs of 0.12 to 0.23 nats,
    all "active". The KL the most informative unit reaches on the same data
    with shuffled columns (0.31 to 0.34) separates them from the five real
    ones (0.39 to 0.51), as ``PCA(n_components="mle")`` does.

    The networks see standardised inputs, (x - mean) / scale with the
    training mean and one overall scale, and answer in the data's units.
    Training maximises the ELBO of the standardised data, which differs from
    the data's by the constant d log(scale), so the data's location and units
    do not change the result; the reported losses, scores and every output are
    in the data's units.

    Missing entries (NaN in a dense array; inf is refused), with
    ``likelihood="gaussian"`` and an int ``n_components``: the encoder reads
    each row with its missing entries at the training mean (0 in standardised
    units, as MIWAE, Mattei & Frellsen 2019), and the ELBO, the held-out
    score and :meth:`score_samples` (IWAE) read the likelihood of the
    observed entries only; the start is the EM solution of probabilistic PCA
    on the observed entries (``LinearAutoencoder``'s). A row with nothing
    observed scores 0, the log-likelihood of no observation, and encodes as
    the mean. ``partial_fit`` and ``score_features`` refuse NaN; data without
    NaN is fitted as before.

    References
    ----------
    D. P. Kingma and M. Welling, "Auto-encoding variational Bayes", ICLR 2014.
    Y. Burda, R. Grosse and R. Salakhutdinov, "Importance weighted
    autoencoders", ICLR 2016.
    J. L. Horn, "A rationale and test for the number of factors in factor
    analysis", Psychometrika 30, 1965.
    J. Lucas, G. Tucker, R. Grosse and M. Norouzi, "Don't blame the ELBO! A
    linear VAE perspective on posterior collapse", NeurIPS 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skvae import VariationalAutoencoder
    >>> X = load_digits().data / 16
    >>> vae = VariationalAutoencoder(n_components=2, max_iter=5, random_state=0).fit(X)
    >>> vae.transform(X[:3]).shape
    (3, 2)
    >>> vae.sample(4, random_state=0).shape
    (4, 64)
    """

    _parameter_constraints = {
        **BaseAutoencoder._parameter_constraints,
        "n_components": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "hidden_layer_sizes": ["array-like"],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "init": [StrOptions({"pca", "random"})],
        "likelihood": [StrOptions(FAMILIES.keys())],  # live: registered families count
        "decoder_variance": [StrOptions({"learned"}), Interval(Real, 0, None, closed="neither")],
        "library_size": ["boolean"],
        "beta": [Interval(Real, 0, None, closed="left")],
        "solver": [StrOptions({"auto", "adam", "lbfgs"})],
        "max_iter": [Interval(Integral, 1, None, closed="left"), None],
        "n_importance": [Interval(Integral, 1, None, closed="left")],
    }

    _prior_latent = True

    def __init__(
        self,
        n_components=2,
        *,
        hidden_layer_sizes=(256, 128),
        activation="relu",
        init="pca",
        likelihood="gaussian",
        decoder_variance="learned",
        library_size=False,
        beta=1.0,
        solver="auto",
        batch_size=128,
        learning_rate=1e-3,
        max_iter=None,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=True,
        validation_fraction=0.1,
        weight_decay=0.0,
        random_state=None,
        device="auto",
        compute_dtype=None,
        verbose=0,
        n_importance=DEFAULT_IMPORTANCE,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.init = init
        self.likelihood = likelihood
        self.decoder_variance = decoder_variance
        self.library_size = library_size
        self.beta = beta
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
        self.n_importance = n_importance

    # ---------------------------------------------------------------- set-up
    def _family(self, n_features: int, dtype: torch.dtype):
        options = {"decoder_variance": self.decoder_variance, "library_size": self.library_size}
        return FAMILIES[self.likelihood].build(n_features, dtype, options)

    def _exact_expectation(self) -> bool:
        """A linear decoder with a Gaussian likelihood has a closed-form E_q."""
        return self.likelihood == "gaussian" and len(tuple(self.hidden_layer_sizes)) == 0

    def _solver(self):
        if self.solver == "auto":
            return "lbfgs" if self._exact_expectation() else "adam"
        return self.solver

    def _max_iter(self):
        if self.max_iter is None:
            return 1000 if self._solver() == "lbfgs" else 200
        return self.max_iter

    def _check_training_data(self, X, dtype):
        super()._check_training_data(X, dtype)
        self._family(X.shape[1], dtype).check(X)

    def _build_module(self, n_features, dtype):
        return VAEModule(
            n_features,
            self.n_components_,
            tuple(self.hidden_layer_sizes),
            self.activation,
            self._family(n_features, dtype),
            dtype,
        )

    def _start(self, X, module, generator, device, state):
        # Draws fixed before training: the ELBO estimate used for validation and
        # score_samples sees the same eps for every row, whatever its batch.
        module.score_eps.copy_(balanced_draws(*module.score_eps.shape, generator, torch.float64))
        family = module.family
        rows = None  # some training rows, for the family to calibrate on
        if family.calibrates():
            rows = random_rows(X, _START_ROWS, generator).to(device, module.offset.dtype)
            family.set_reference(rows)
        inputs = X
        if family.transforms_input():  # the start reads what the encoder reads
            inputs = MappedRows(X, family.encoder_input)  # read a block at a time
        super()._start(inputs, module, generator, device, state)
        if rows is not None and self.init == "pca":
            module.calibrate(rows)

    def _resolve_n_components(self, X, state):
        if not isinstance(self.n_components, str):
            return super()._resolve_n_components(X, state)
        # "auto" fits two models first (on partial_fit's first chunk, the width is
        # chosen on that chunk); for out-of-core rows, on the array itself
        n_active, report = active_units(self, X.numpy() if torch.is_tensor(X) else X.data)
        state.active_units = report
        return n_active

    def _set_fitted(self, module, history, state, fitted):
        report = state.active_units or {}
        self.latent_kl_ = report.get("latent_kl_")
        self.null_kl_ = report.get("null_kl_")
        self.kl_threshold_ = report.get("kl_threshold_")
        self.noise_variance_ = module.family.noise_variance(float(module.scale))
        super()._set_fitted(module, history, state, fitted)

    # ------------------------------------------------------------- objective
    def _objective(self, module, generator, masked=False):
        """Minus the beta-weighted ELBO of a batch, and how held-out rows judge
        the weights: see :func:`~skvae._vae_objective.vae_objective`. ``masked``:
        the rows have missing entries (NaN), left out of the likelihood."""
        lbfgs = self._solver() == "lbfgs"
        return vae_objective(module, generator, self.beta, lbfgs, masked)

    # --------------------------------------------------------------- public
    def score_samples(self, X):
        """Estimated log-likelihood log p(x) of each row, in nats.

        The importance-weighted bound (Burda et al., 2016) with K =
        ``n_importance`` draws z_k from the encoder's posterior q(z|x):

            log (1/K) sum_k p(x | z_k) p(z_k) / q(z_k | x),

        a lower bound of log p(x) in expectation that tightens as K grows,
        computed with a log-sum-exp. K=1 gives the ELBO, averaged over the
        draws fixed at fit time (exact for a linear Gaussian VAE). The draws
        are fixed by the fit and shared by every row, so a row's score does
        not depend on the rows beside it or on the call. Where q(z|x) is the
        exact posterior (a linear VAE at its probabilistic-PCA start) every K
        gives ``PCA.score_samples`` exactly. Memory is O(chunk x K), whatever
        the number of rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        log_likelihood : ndarray of shape (n_samples,)
        """
        return self._row_scores(X)

    def score(self, X, y=None):
        """Mean estimated log-likelihood of ``X`` in nats per row (see
        :meth:`score_samples`), comparable with ``PCA.score``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        score : float
        """
        return super().score(X)
