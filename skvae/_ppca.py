"""Probabilistic PCA's covariance and sampling, for a fitted linear model.

:class:`ProbabilisticPCAMixin` gives ``LinearAutoencoder`` what
:class:`sklearn.decomposition.PCA` derives from its subspace (Tipping & Bishop,
1999): ``get_covariance``, ``get_precision``, the documentation of
``score_samples`` and ``score``, and draws from the full model. It reads only
fitted attributes: ``components_``, ``explained_variance_``,
``noise_variance_`` and ``mean_``. The densities and posteriors themselves are
the model's verbs (:class:`~skvae._ppca_module.PPCAModule`).
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted


class ProbabilisticPCAMixin:
    """The probabilistic-PCA model N(mean_, C) of a fitted principal subspace."""

    def _model_variances(self) -> tuple[np.ndarray, float]:
        """The model's variance along each component and in every other direction.

        Along a component it is ``explained_variance_``, at least
        ``noise_variance_`` (as PCA's ``get_covariance``); off the plane it is
        ``noise_variance_``.
        """
        noise = float(self.noise_variance_)
        along = np.maximum(np.asarray(self.explained_variance_, dtype=np.float64), noise)
        return along, noise

    def _plane_and_rest(self, along, rest) -> np.ndarray:
        """The symmetric matrix with eigenvalue ``along[i]`` on component i and
        ``rest`` in every direction orthogonal to the components, in mean_'s dtype."""
        C = np.asarray(self.components_, dtype=np.float64)
        matrix = (C.T * (along - rest)) @ C
        matrix.flat[:: len(matrix) + 1] += rest
        return matrix.astype(self.mean_.dtype, copy=False)

    def get_covariance(self):
        """Data covariance under the probabilistic PCA model.

        ``components_.T @ diag(explained_variance_ - noise_variance_) @ components_
        + noise_variance_ * I``, as ``PCA.get_covariance``. It does not depend on
        ``whiten``.

        Returns
        -------
        cov : ndarray of shape (n_features, n_features)
            Estimated covariance of the data, in the training data's dtype.
        """
        check_is_fitted(self)
        return self._plane_and_rest(*self._model_variances())

    def get_precision(self):
        """Inverse of :meth:`get_covariance`, as ``PCA.get_precision``.

        The covariance has eigenvalues ``max(explained_variance_,
        noise_variance_)`` along the components and ``noise_variance_`` off
        them; the precision has their reciprocals, with no ``d x d`` inversion
        when ``noise_variance_ > 0``. When it is 0 (no discarded direction), the
        covariance is inverted directly, as ``PCA.get_precision`` does.

        Returns
        -------
        precision : ndarray of shape (n_features, n_features)
            Estimated precision of the data, in the training data's dtype.
        """
        check_is_fitted(self)
        along, noise = self._model_variances()
        if noise == 0.0:
            return np.linalg.inv(self.get_covariance())
        return self._plane_and_rest(1.0 / along, 1.0 / noise)

    def score_samples(self, X):
        """Log-likelihood of each row under the probabilistic PCA model.

        The log-density of ``N(mean_, get_covariance())`` at each row, as
        ``PCA.score_samples``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The data.

        Returns
        -------
        ll : ndarray of shape (n_samples,)
            Log-likelihood of each row, in X's floating dtype.

        See Also
        --------
        sklearn.decomposition.PCA.score_samples : The same figure from PCA.

        Notes
        -----
        Probabilistic PCA (Tipping & Bishop, 1999): ``x = W z + mean_ + noise``,
        with z ~ N(0, I) in ``n_components_`` dimensions and isotropic noise of
        variance ``noise_variance_``; its maximum-likelihood W spans the
        components. When ``noise_variance_`` is 0 the model has no density off
        the components' plane: rows on it score finitely (a variance of 0 is
        taken as the smallest normal float), rows off it hugely negatively or
        ``-inf``; ``PCA.score_samples`` inverts a singular matrix there.

        A row with missing entries (NaN) scores the log-density of its observed
        entries o under their marginal, ``N(mean_[o], get_covariance()[o][:, o])``
        (from k x k matrices); a row with none observed scores 0.
        """
        return self._row_scores(X)

    def score(self, X, y=None):
        """Mean log-likelihood of the rows of ``X`` under probabilistic PCA.

        The mean of :meth:`score_samples`, as ``PCA.score``: higher is better,
        and unlike a reconstruction error it does not keep improving as
        ``n_components`` grows, so a grid search over ``n_components`` picks
        the rank PCA's score picks.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The data.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        ll : float
            Average log-likelihood of the rows.

        See Also
        --------
        sklearn.decomposition.PCA.score : The same figure from PCA.

        Notes
        -----
        The log-likelihood of probabilistic PCA (Tipping & Bishop, 1999); see
        :meth:`score_samples`.
        """
        return super().score(X)

    def sample(self, n_samples=1, random_state=None, *, noise=True):
        """Generate data from the fitted model.

        Parameters
        ----------
        n_samples : int, default=1
            Number of points to generate.
        random_state : int, RandomState instance or None, default=None
            Seeds the draws.
        noise : bool, default=True
            True: draw from the full probabilistic PCA model,
            ``N(mean_, get_covariance())``, the distribution :meth:`score`
            measures; the samples fill all ``n_features`` dimensions.
            False: decode latent draws from ``N(latent_mean_,
            latent_covariance_)`` to the decoder's mean, with no noise: the
            samples lie on the ``n_components_``-dimensional plane of the
            components through ``mean_``.

        Returns
        -------
        X : ndarray of shape (n_samples, `n_features_in_`)
            Samples, in the training data's dtype.

        Notes
        -----
        With ``noise=True`` each sample is one with ``noise=False`` (whose
        spread along the plane is already the model's, ``explained_variance_``)
        plus Gaussian noise of variance ``noise_variance_`` in every direction
        orthogonal to the plane: the same Gaussian as probabilistic PCA's
        ``x = W z + mean_ + noise`` with isotropic noise. The same latent points
        are drawn either way, so a seed gives the same points on the plane.
        """
        rng = check_random_state(random_state)
        on_plane = super().sample(n_samples, rng, noise=False)
        if not noise or self.noise_variance_ == 0:
            return on_plane
        C = np.asarray(self.components_, dtype=np.float64)
        off = rng.standard_normal(on_plane.shape)
        off -= (off @ C.T) @ C  # the part orthogonal to the plane
        return (on_plane + math.sqrt(self.noise_variance_) * off).astype(on_plane.dtype)
