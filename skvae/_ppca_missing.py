"""Missing entries (NaN) in ``LinearAutoencoder``'s data: probabilistic PCA's answers.

:class:`MissingValuesMixin` lets ``LinearAutoencoder`` take NaN, in dense
in-memory data, as an entry that was not observed. ``fit`` runs EM on the
observed entries (:func:`skvae._missing.fit_em`), and the imputation helpers
condition on each row's observed entries under the fitted model;
``transform``, ``score_samples`` and ``score_features`` do so through the
model's own verbs (:class:`~skvae._ppca_module.PPCAModule`, with a mask). Data
without NaN takes the usual paths, unchanged.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._distributed import participants
from ._missing import PPCA, fit_em, has_nan
from ._missing_forms import completed, conditional_mean, conditional_sample
from ._placement import is_out_of_core


class MissingValuesMixin:
    """NaN as a missing entry, for the probabilistic-PCA model of a linear autoencoder."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # -------------------------------------------------------------------- fit
    def _check_training_data(self, X: np.ndarray, dtype: torch.dtype) -> None:
        if not has_nan(X):  # one pass, no n x d mask
            return super()._check_training_data(X, dtype)
        missing = np.isnan(X)
        if participants().active:
            raise ValueError(
                "LinearAutoencoder fits data with missing entries (NaN) in one process "
                "only, not data-parallel under torchrun; see skvae.single_process."
            )
        empty = np.flatnonzero(missing.all(axis=0))
        if len(empty):
            names = getattr(self, "feature_names_in_", None)
            j = int(empty[0])
            which = f"column {j}" + (f" ({names[j]!r})" if names is not None else "")
            more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
            raise ValueError(
                f"X's {which}{more} has no observed entry, only NaN: no model can "
                "estimate its mean or variance. Drop it, or fill it first."
            )
        super()._check_training_data(np.where(missing, 0, X), dtype)

    def _refuse_missing(self, X) -> None:
        """partial_fit's refusal of rows with missing entries."""
        if isinstance(X, torch.Tensor) and bool(torch.isnan(X).any()):
            raise ValueError(
                "LinearAutoencoder.partial_fit takes no missing entries (NaN): it adds "
                "each chunk's rows to running moments of complete rows, and a row with "
                "missing entries is completed only by EM over all the rows together. "
                "Fit on all the rows (fit takes NaN), or impute the chunk first."
            )

    def _em_width(self, X, state) -> int | None:
        """n_components_ for rows ``X`` with missing entries (then ``state.missing``);
        None for complete rows."""
        if not (isinstance(X, torch.Tensor) and bool(torch.isnan(X).any())):
            return None
        n, d = X.shape
        self._check_width(n, d)
        k = self.n_components
        if k is not None and not isinstance(k, Integral):
            raise ValueError(
                f"n_components={k!r} reads the spectrum of the data's covariance, which "
                "data with missing entries (NaN) does not give: filled or pairwise "
                "covariances bias it. Pass an int; to choose it, compare the score of "
                "held-out rows (score takes NaN too), e.g. with GridSearchCV."
            )
        state.missing = True
        return min(n, d) if k is None else int(k)

    def _fit_em(self, X, generator, device, state):
        """EM on the observed entries of X; the model in ``state.ppca``, the history returned."""
        # a generator of the fit's seed that the networks' initial draws have not
        # advanced, which they do by an amount that depends on compute_dtype
        generator, _ = self._generator(device)
        state.ppca, history = fit_em(
            X.to(device=device, dtype=torch.float64),
            self.n_components_,
            generator,
            max_iter=self.max_iter,
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            validation_fraction=self.validation_fraction,
            verbose=self.verbose,
        )
        return history

    def _em_fitted(self, X, module, state):
        """The fitted attributes of EM's model (see ``_fitted``)."""
        model = state.ppca
        # W W' + noise I has eigenvalues s^2 + noise along W's left singular vectors
        axes, s, _ = torch.linalg.svd(model.weight, full_matrices=False)
        total = float((s**2).sum()) + model.weight.shape[0] * model.noise
        return self._fitted(
            module, model.mean, axes, s**2 + model.noise, total, model.noise, X.shape[0]
        )

    # -------------------------------------------------------------- inference
    def _completed(self, X: np.ndarray, fn, *draws) -> np.ndarray:
        """A copy of X whose rows with missing entries are ``fn``'s (see
        :func:`~skvae._missing_forms.completed`), under the fitted model on the
        inference device."""
        device = self._inference_device()
        fitted = self.module_.ppca()  # the model's own float64 buffers, on the CPU
        model = PPCA(fitted.mean.to(device), fitted.weight.to(device), fitted.noise)
        return completed(X, fn, model, *draws)

    def _dense_rows(self, X) -> np.ndarray:
        check_is_fitted(self)
        X, check = self._inference_data(X)
        return X if check is None else check(X[:] if is_out_of_core(X) else X)

    def _conditional_mean(self, X):
        """``X`` with each missing entry (NaN) replaced by its conditional mean.

        E[x_miss | x_obs] under the fitted model N(mean_, get_covariance()):
        ``mean_m + W_m E[z | x_obs]``; the observed entries are returned as
        they are, and a row with nothing observed becomes ``mean_``. The
        single imputation a PCA-based imputer makes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows with NaN where an entry is missing.

        Returns
        -------
        X_filled : ndarray of shape (n_samples, n_features)
            A copy of X, completed, in X's floating dtype.
        """
        return self._completed(self._dense_rows(X), conditional_mean)

    def _conditional_sample(self, X, random_state=None):
        """``X`` with its missing entries drawn from their distribution given the
        observed ones, for multiple imputation.

        One draw from N(E[x_miss | x_obs], Cov[x_miss | x_obs]) under the fitted
        model, per row with missing entries: z from its posterior given the
        row's observed entries, then ``W z + mean_`` plus noise of variance
        ``noise_variance_``. Observed entries are returned as they are. The
        mean of many draws is :meth:`_conditional_mean`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows with NaN where an entry is missing.
        random_state : int, RandomState instance or None, default=None
            Seeds the draws.

        Returns
        -------
        X_drawn : ndarray of shape (n_samples, n_features)
            A copy of X, completed by a draw, in X's floating dtype.
        """
        X = self._dense_rows(X)
        k = self.n_components_
        # row i's draws do not depend on the rows after it
        normal = check_random_state(random_state).standard_normal((len(X), k + X.shape[1]))
        return self._completed(X, conditional_sample, normal[:, :k], normal[:, k:])
