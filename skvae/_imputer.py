"""``LatentImputer``: missing entries filled by a latent-variable model's conditional mean.

The model (by default factor analysis, fitted by EM on the observed
entries) is fitted to the rows with their missing entries; each missing
entry is then replaced by its expectation given the row's observed entries,
E[x_miss | x_obs], or a draw from it (``sample_posterior=True``), moved
toward the observed values of the row's nearest training rows
(:mod:`skvae._neighbors`). Observed entries are returned as they were.
"""

from __future__ import annotations

import warnings
from numbers import Integral

import numpy as np
from sklearn.base import _fit_context, clone
from sklearn.decomposition import FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute._base import _BaseImputer
from sklearn.utils import check_random_state
from sklearn.utils._mask import _get_mask
from sklearn.utils._missing import is_scalar_nan
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import (
    FLOAT_DTYPES,
    _check_feature_names_in,
    check_is_fitted,
    validate_data,
)

from ._factor_imputation import (
    em_candidates,
    fill,
    fill_candidate,
    fit_factor_analysis,
    ledermann_bound,
    selection_rows,
)
from ._linear import LinearAutoencoder
from ._missing import has_nan
from ._neighbors import NO_CORRECTION, choose_weight

__all__ = ["LatentImputer"]

#: "auto" tries k = 1, 2, 4, ... up to this many components at most: EM costs
#: O(k^2) per row and O(k^3) per pattern of holes and step, and converges
#: slowly at large k, for little gain
_MAX_AUTO_COMPONENTS = 32


#: the relative decrease of the hidden entries' error that a larger k must bring
_GAIN = 0.01


def _column_units(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's mean and standard deviation over its observed entries, in
    float64 and from the column divided by its largest magnitude, so that
    neither squares nor sums overflow (float32 entries of 1e19, float64 of
    1e160); a deviation of 0 is 1."""
    peak = np.nanmax(np.abs(X), axis=0).astype(np.float64)
    peak = np.where(peak > 0, peak, 1.0)
    units = X / peak
    mean, spread = np.nanmean(units, axis=0) * peak, np.nanstd(units, axis=0) * peak
    if not (np.isfinite(mean).all() and np.isfinite(spread).all()):
        raise ValueError(
            "X has columns whose observed mean or spread overflows float64 "
            f"(values up to {np.nanmax(np.abs(X)):.3g}): rescale them first."
        )
    return mean, np.where(spread > 0, spread, 1.0)


class LatentImputer(_BaseImputer):
    """Fill missing entries with their conditional mean under a latent-variable model.

    ``fit`` fits a model (by default factor analysis, fitted by EM on the
    observed entries; or ``estimator``) to the training rows, missing
    entries included; ``transform`` replaces each missing entry of a row by
    E[x_miss | x_obs] under the fitted model, the expectation given that
    row's observed entries, then pulled toward the mean of that column's
    observed values in the row's ``n_neighbors`` nearest training rows (by
    the distance over its observed entries), by a weight chosen on entries
    hidden from the fit (0: the model's fill as it is). Observed
    entries are returned exactly as they were.

    Factor analysis is probabilistic PCA (:class:`~skvae.LinearAutoencoder`)
    with a noise variance for each feature: x = W z + mean + e, z ~ N(0, I),
    e ~ N(0, diag(psi)). A column that its factors explain well (little
    noise) then weighs more in a row's fill than a noisy one.

    The model sees each column centred on its observed mean and in units of
    its observed standard deviation, so the fills do not depend on the
    columns' units (and a given probabilistic PCA, whose noise variance is
    the same in every column, does not put it all on the columns in the
    largest units). ``estimator_`` is the model of those standardised
    columns.

    Parameters
    ----------
    estimator : estimator, default=None
        The model, cloned before fitting: a skvae estimator that fits data with
        NaN and has ``_conditional_mean`` and ``_conditional_sample``
        (``LinearAutoencoder``, ``VariationalAutoencoder`` with its Gaussian
        likelihood, ``Autoencoder``). Its ``n_components`` is set from
        ``n_components``, and its ``random_state``, when None, from
        ``random_state``. None: factor analysis by EM (see above).
    n_components : "auto", int or list of int, default="auto"
        The latent size k. An int is used as given. A list holds candidates,
        and "auto" tries k = 1, 2, 4, 8, ... up to ``min(n_samples,
        n_features) - 1`` (at most 32; with the default model, at most the
        factors that factor analysis of the kept features can identify,
        the largest k with ``(n_features - k)**2 >= n_features + k``: 7 of
        12 features, and at least 1): a random 10% of the observed entries
        is hidden, the model is fitted for each candidate in increasing
        order on the rest (with the default model, of 5000 random rows when
        there are more), and the k whose conditional means of the hidden
        entries have the least squared error (each column in units of its observed
        variance) is chosen, a larger k only if it lowers the error by more
        than 1%; after the first k that does not, "auto" tries only the
        largest with the default model (nearly the full covariance), and
        stops with a given one. With the default
        model, the hidden entries also stop each candidate's EM (at the step
        under which they are likeliest, once five steps have not raised their
        log-likelihood by 0.001 nats per entry), and the chosen candidate's
        parameters are then refined by three EM steps on every observed
        entry, hidden ones and those of rows left out included (with no
        entry missing in ``fit``, the model is scikit-learn's
        ``FactorAnalysis`` at that k; an int k, with the default model, also
        stops EM on hidden entries). A given model is
        refitted at the chosen k on all the entries; a ``LinearAutoencoder``
        on rows with missing entries for the number of EM steps after which
        its candidate predicted its held-out entries best, with none held
        out (``validation_fraction=0``).
    n_neighbors : int, default=10
        The training rows whose observed values correct a row's fills: its
        nearest by the Euclidean distance over its observed entries to the
        training rows completed by the model (standardised columns), among at
        most 5000 drawn at random (a training row, its own nearest, is not
        counted). Each missing entry becomes ``m + w * (a - m)``, ``m`` the
        model's conditional mean and ``a`` the mean of the neighbours that
        observe that column (``m`` if none does), with ``w`` in [0, 1] the
        least-squares weight on the entries hidden to choose k, less one
        standard error (a draw of ``sample_posterior`` moves by the same
        amount). A latent model is global: neighbours add what only nearby
        rows share, as clusters or a curved surface. 0 turns the correction
        off; ``w`` is 0 where nothing is hidden: a given model at an int k,
        the default one at an int k fitted on complete rows, or too few rows.
    missing_values : int, float or np.nan, default=np.nan
        The placeholder of a missing entry.
    add_indicator : bool, default=False
        Append a :class:`~sklearn.impute.MissingIndicator`'s columns to the
        output, one for each feature that had missing entries in ``fit``.
    sample_posterior : bool, default=False
        Fill each missing entry with a draw from its conditional distribution
        given the row's observed entries instead of its mean: multiple
        imputation, one completed data set per ``random_state``.
    keep_empty_features : bool, default=False
        A feature with no observed entry in ``fit`` carries no information
        to model: it is dropped from the output (as by scikit-learn's
        imputers), or, if True, kept and filled with 0.
    random_state : int, RandomState instance or None, default=None
        Seeds the entries hidden to choose k (and, past 5000 rows, the rows
        the default model chooses k on and the neighbours' donor rows), the
        model's fit (if its own ``random_state`` is None) and the draws of
        ``sample_posterior``: with an int, every ``transform`` draws the same.

    Attributes
    ----------
    estimator_ : estimator
        The model fitted on all the training entries, each column standardised:
        ``(X - mean_) / scale_``. With the default model, a
        :class:`~sklearn.decomposition.FactorAnalysis` holding the parameters
        EM found (``components_``, ``noise_variance_``, ``mean_``; ``loglike_``
        is the observed entries' log-likelihood before each of its last EM
        steps), whose ``transform``, ``score_samples`` and ``get_covariance``
        apply to complete rows.
    mean_ : ndarray of shape (n_kept_features,)
        Each kept feature's mean over its observed entries in ``fit``.
    scale_ : ndarray of shape (n_kept_features,)
        Each kept feature's standard deviation over its observed entries in
        ``fit`` (1 where that is 0).
    n_components_ : int
        The latent size used.
    validation_errors_ : dict of int to float or None
        For a chosen k, each candidate's mean squared error on the hidden
        entries (standardised units; with the default model, of at most
        about 5000 rows); None when there was one candidate (k
        given, or "auto" with at most 4 kept features and the default model).
    neighbor_weight_ : float
        The weight ``w`` of the neighbours' correction (see ``n_neighbors``).
    indicator_ : MissingIndicator or None
        The indicator of ``add_indicator``.
    n_features_in_ : int
        The number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        The features' names, when ``X`` has string column names.

    See Also
    --------
    sklearn.impute.IterativeImputer : Regress each feature on the others, in turn.
    sklearn.impute.KNNImputer : The mean of the nearest rows, by the
        distance between their observed entries.

    Notes
    -----
    skl2onnx has no converter for this imputer: the conditional mean of a
    row solves a k x k system that depends on which of its entries are
    missing.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae import LatentImputer
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 2)) @ rng.normal(size=(2, 6)) + 0.1 * rng.normal(size=(200, 6))
    >>> X_missing = np.where(rng.uniform(size=X.shape) < 0.2, np.nan, X)
    >>> imputer = LatentImputer(random_state=0).fit(X_missing)
    >>> imputer.n_components_
    2
    >>> filled = imputer.transform(X_missing)
    >>> bool(np.isnan(filled).any())
    False
    """

    _parameter_constraints: dict = {
        **_BaseImputer._parameter_constraints,
        "estimator": [HasMethods(["fit", "_conditional_mean", "_conditional_sample"]), None],
        "n_components": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left"), list],
        "n_neighbors": [Interval(Integral, 0, None, closed="left")],
        "sample_posterior": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator=None,
        *,
        n_components="auto",
        n_neighbors=10,
        missing_values=np.nan,
        add_indicator=False,
        sample_posterior=False,
        keep_empty_features=False,
        random_state=None,
    ):
        super().__init__(
            missing_values=missing_values,
            add_indicator=add_indicator,
            keep_empty_features=keep_empty_features,
        )
        self.estimator = estimator
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.sample_posterior = sample_posterior
        self.random_state = random_state

    # ------------------------------------------------------------- validation
    def _validate(self, X, reset: bool):
        """X as floats, and its mask of missing entries (NaN in the returned copy)."""
        nan = is_scalar_nan(self.missing_values)
        X = validate_data(
            self,
            X,
            reset=reset,
            dtype=FLOAT_DTYPES,
            ensure_all_finite="allow-nan" if nan else True,
            copy=True,
        )
        mask = _get_mask(X, self.missing_values)
        if not nan:
            X[mask] = np.nan
        return X, mask

    def _candidates(self, n: int, d: int) -> list[int]:
        k = self.n_components
        if isinstance(k, Integral):
            return [int(k)]
        if isinstance(k, list):
            if not k or not all(isinstance(c, Integral) and c >= 1 for c in k):
                raise ValueError(
                    f"n_components={k!r}: a list of candidates holds positive ints, at least one."
                )
            return sorted({int(c) for c in k})
        top = max(1, min(n - 1, d - 1, _MAX_AUTO_COMPONENTS))
        if self.estimator is None:  # factor analysis: no more factors than identifiable
            top = max(1, min(top, ledermann_bound(d)))
        grid = [2**i for i in range(top.bit_length()) if 2**i < top]
        return [*grid, top]

    def _model(self, k: int, seed: int):
        """The given model, cloned, at width k."""
        model = clone(self.estimator)
        params = model.get_params(deep=False)
        update = {"n_components": k}
        if "random_state" in params and params["random_state"] is None:
            update["random_state"] = seed
        return model.set_params(**update)

    @staticmethod
    def _refit(candidate, X):
        """A given model refitted on all the entries, given the chosen candidate
        fitted on the rest: a ``LinearAutoencoder`` on rows with missing
        entries for the candidate's best number of EM steps, none held out (its
        held-out entries already chose the step; another hold-out would only
        add noise and waste entries; the steps count SQUAREM's kept jumps, and
        the refit's path is its own, so it lands near the candidate's point,
        not on it); any other model, or complete rows, as the candidate was
        set up."""
        model = clone(candidate)
        scores = getattr(candidate, "validation_scores_", None)
        if not (isinstance(candidate, LinearAutoencoder) and scores and has_nan(X)):
            return model.fit(X)
        model.set_params(max_iter=max(int(np.argmax(scores)), 1), validation_fraction=0.0)
        with warnings.catch_warnings():  # EM stops at the chosen step, on purpose
            warnings.simplefilter("ignore", ConvergenceWarning)
            return model.fit(X)

    # ------------------------------------------------------------------- fit
    def _choose(self, X, candidates, rng, seed):
        """The model fitted on all the entries, each candidate's error on the
        hidden entries (None when there was nothing to choose), and the
        neighbours' weight and donors (NO_CORRECTION when nothing was hidden): the
        candidate whose conditional means best predict hidden observed entries."""
        default = self.estimator is None
        if default:
            for k in candidates:  # before any fit: a k these rows cannot give
                if k > min(X.shape):
                    raise ValueError(
                        f"n_components={k} must be at most min(n_samples, n_features)="
                        f"{min(X.shape)} (n_samples={X.shape[0]}, n_features={X.shape[1]})."
                    )

        def unchosen():  # the first candidate on all the entries, nothing to choose by
            k = candidates[0]
            if default:
                return fit_factor_analysis(X, k, seed, None), None, NO_CORRECTION
            return self._model(k, seed).fit(X), None, NO_CORRECTION

        # a given model's one candidate, or the default's on complete rows
        # (scikit-learn's FactorAnalysis, no EM to stop), need no hidden entries
        if len(candidates) == 1 and not (default and has_nan(X)):
            return unchosen()
        rows = selection_rows(X, rng) if default else X
        seen = ~np.isnan(rows)
        hidden = seen & (rng.uniform(size=rows.shape) < 0.1)
        hidden[:, (seen & ~hidden).sum(axis=0) < 2] = False  # each column keeps two
        if not hidden.any():
            return unchosen()
        X_train = np.where(hidden, np.nan, rows)
        scale = np.nanvar(X, axis=0)
        weights = np.broadcast_to(1.0 / np.where(scale > 0, scale, 1.0), rows.shape)[hidden]

        def error(filled):  # mean squared error, each column in units of its variance
            return float(np.mean((filled[hidden] - rows[hidden]) ** 2 * weights))

        if default:
            fit = em_candidates(rows, X_train, hidden, seed)
        else:
            fit = self._candidates_fitted(X_train, seed)
        errors, best, fitted = {}, None, {}
        ladder = list(candidates)
        while ladder:
            k = ladder.pop(0)
            fitted[k], filled = fit(k)
            errors[k] = error(filled)
            # a larger k must earn its place: 1% less error
            if best is None or errors[k] < (1 - _GAIN) * errors[best]:
                best, best_fill = k, filled
            elif self.n_components == "auto":
                # no gain: larger k fit noise; but the default model's largest,
                # nearly the full covariance, can gain after a pause
                # (make_classification's six informative columns among ten of
                # noise: 1.125 at k = 1, 1.116 at 2, 1.080 at 10). A given
                # model's would be a whole training run.
                ladder = ladder[-1:] if default else []
        errors = errors if len(candidates) > 1 else None
        correction = NO_CORRECTION
        if self.n_neighbors:  # the default's candidates fill only the rows the error reads
            completed = fill_candidate(fitted[best], best_fill) if default else best_fill
            correction = choose_weight(completed, rows, hidden, self.n_neighbors, rng)
        if not default:
            return self._refit(fitted[best], X), errors, correction
        return fit_factor_analysis(X, best, seed, fitted[best]), errors, correction

    def _candidates_fitted(self, X_train, seed):
        """A given model's candidates: ``fit(k)`` fits it at width k on X_train
        (stopping by its own rule) and gives it and X_train's conditional means."""

        def fit(k):
            model = self._model(k, seed).fit(X_train)
            return model, model._conditional_mean(X_train)

        return fit

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit the model to ``X``, missing entries included.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows with ``missing_values`` where an entry is missing.
        y : Ignored

        Returns
        -------
        self : LatentImputer
        """
        X, mask = self._validate(X, reset=True)
        self._fit_indicator(mask)
        self._empty = mask.all(axis=0)
        X = X[:, ~self._empty]
        # each column centred on its observed mean, in units of its observed
        # standard deviation: the fills then do not depend on the columns'
        # units, for a given model too (a probabilistic PCA's noise is the
        # same in every column it models; factor analysis needs no such help)
        self.mean_, self.scale_ = _column_units(X)
        X = ((X - self.mean_) / self.scale_).astype(X.dtype, copy=False)
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        self._donors, self.neighbor_weight_ = None, 0.0
        if X.shape[1] == 0:
            self.estimator_, self.n_components_, self.validation_errors_ = None, 0, None
            return self
        candidates = self._candidates(*X.shape)
        self.estimator_, self.validation_errors_, correction = self._choose(
            X, candidates, rng, seed
        )
        self.neighbor_weight_, self._donors = correction
        self.n_components_ = int(self.estimator_.n_components)
        return self

    # ------------------------------------------------------------- transform
    def transform(self, X):
        """Fill the missing entries of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows with ``missing_values`` where an entry is missing.

        Returns
        -------
        X_filled : ndarray of shape (n_samples, n_features_out)
            X with its missing entries filled (its observed entries as they
            were), less the features that had no observed entry in ``fit``
            unless ``keep_empty_features``, then the indicator's columns if
            ``add_indicator``.
        """
        check_is_fitted(self)
        X, mask = self._validate(X, reset=False)
        indicator = self._transform_indicator(mask)
        kept = ~self._empty
        out = X.copy()
        if self.estimator_ is not None:
            part = X[:, kept]
            units = ((part - self.mean_) / self.scale_).astype(part.dtype, copy=False)
            rng = check_random_state(self.random_state)
            filled = self._fill(units, self.sample_posterior, rng)
            lost = np.isnan(units).any(axis=1)
            if self._donors is not None and lost.any():  # toward the neighbours' values
                sample, means = self.sample_posterior, filled[lost]
                means = self._fill(units[lost], False, None) if sample else means
                local = self._donors.local_means(units[lost], means)
                filled[lost] += self.neighbor_weight_ * (local - means)
            filled = filled * self.scale_ + self.mean_
            out[:, kept] = np.where(mask[:, kept], filled, part)
        if self.keep_empty_features:
            out[:, self._empty] = 0.0
        else:
            out = out[:, kept]
        return self._concatenate_indicator(out, indicator)

    def _fill(self, units, sample: bool, rng):
        """``units`` (standardised rows) with their missing entries at the
        fitted model's conditional means, or drawn (``sample``)."""
        if isinstance(self.estimator_, FactorAnalysis):
            return fill(self.estimator_, units, sample, rng)
        if sample:  # a given model
            return self.estimator_._conditional_sample(units, random_state=rng)
        return self.estimator_._conditional_mean(units)

    def get_feature_names_out(self, input_features=None):
        """Names of the output features: the kept input features, then the
        indicator's ``missingindicator_<name>``.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input features; None: ``feature_names_in_``, or ``x0``, ``x1``, ...

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self, "n_features_in_")
        input_features = _check_feature_names_in(self, input_features)
        names = input_features if self.keep_empty_features else input_features[~self._empty]
        return self._concatenate_indicator_feature_names_out(names, input_features)
