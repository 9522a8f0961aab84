"""What a fitted estimator computes: transform, inverse_transform, score, sample.

A mixin of :class:`~skvae._base.BaseAutoencoder`. Each verb runs one of the
fitted model's own verbs (``code``, ``decode``, ``score_rows``: the model
protocol, see the developer notes) over chunks of rows on the estimator's
device (:func:`~skvae._placement.map_rows`); rows with missing entries (NaN)
go to the same verbs with a ``mask``, filled by the model (``fill_missing``).
``sample`` draws latent points from the prior or the codes' Gaussian, decodes
them and draws around them (the model's ``sample_around``, else Gaussian).
"""

from __future__ import annotations

import functools
import inspect
import warnings
from numbers import Integral

import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from ._missing import has_nan
from ._placement import map_rows, resolve_device
from ._validation import FLOATS, inference_rows


class InferenceMixin(TransformerMixin):
    """transform, inverse_transform, score and sample, over chunks of rows.

    A TransformerMixin itself, so that scikit-learn's ``set_output`` wraps the
    ``transform`` defined here.
    """

    #: ``sample`` draws codes from the prior N(0, I) (else from the codes' Gaussian).
    _prior_latent: bool = False

    def _map_rows(self, fn, X, out_width: int, copies=1, check=None, extras=()) -> np.ndarray:
        """``fn(module, rows, *extra)`` over chunks of X (and of each per-row array
        of ``extras``) on the device; output in X's dtype."""
        device = self._inference_device()
        return map_rows(self.module_, fn, X, out_width, device, copies, check, extras)

    def _inference_data(self, X):
        """Validate rows to encode or score: (X, per-chunk check or None)."""
        check_is_fitted(self)
        return inference_rows(self, X)

    def _inference_device(self) -> torch.device:
        """``device``, or the CPU with a warning where this machine lacks it.

        A model fitted on a GPU and unpickled on a machine without one still
        transforms, scores and samples.
        """
        try:
            return resolve_device(self.device)
        except ValueError as exc:
            warnings.warn(f"{exc} Computing on the CPU instead.", UserWarning, stacklevel=4)
            return torch.device("cpu")

    def transform(self, X, return_std=False):
        """Encode ``X`` into the latent space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to encode.
        return_std : bool, default=False
            Also return the standard deviation of each row's posterior along
            each latent coordinate, in the coordinates of the codes, as
            ``GaussianProcessRegressor.predict`` does for its predictions.
            Probabilistic models only (``VariationalAutoencoder``,
            ``LinearAutoencoder``); ``Autoencoder`` raises a ``ValueError``.
            Not part of an ONNX export.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            The codes (a probabilistic model's posterior means), in X's
            floating dtype.
        Z_std : ndarray of shape (n_samples, n_components)
            With ``return_std=True`` only: the posterior standard deviations.
        """
        if return_std:
            self._check_posterior()
        X, check = self._inference_data(X)
        k = self.n_components_
        if not return_std:
            return self._map_rows(self._with_missing(self._encode, X, check), X, k, check=check)
        fn = self._with_missing(self._posterior, X, check)
        both = self._map_rows(fn, X, 2 * k, check=check)
        return np.ascontiguousarray(both[:, :k]), np.ascontiguousarray(both[:, k:])

    def _check_posterior(self) -> None:
        check_is_fitted(self)
        if not hasattr(self.module_, "posterior"):
            raise ValueError(
                f"{type(self).__name__} has no posterior: its codes are points, with "
                "no spread, so transform(X, return_std=True) has nothing to return. "
                "VariationalAutoencoder and LinearAutoencoder are probabilistic."
            )

    def _with_missing(self, fn, X, check):
        """``fn(module, rows)``, or for dense in-memory rows with missing entries
        (NaN), ``fn(module, filled, mask)`` on the rows as the model fills them
        (its ``fill_missing`` verb) and the mask of their observed entries.

        Decided once for all of ``X``: data without NaN never builds a mask.
        """
        return functools.partial(_filled, fn) if _has_missing(X, check) else fn

    def inverse_transform(self, X):
        """Decode latent points back to the data space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Latent points, e.g. the output of :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, `n_features_in_`)
            The decoder's mean for each latent point.
        """
        check_is_fitted(self)
        Z = check_array(X, dtype=FLOATS, input_name="X")
        if Z.shape[1] != self.n_components_:
            raise ValueError(
                f"X has {Z.shape[1]} latent dimensions, but {type(self).__name__}."
                f"inverse_transform expects n_components={self.n_components_}."
            )
        return self._map_rows(self._decode, Z, self.n_features_in_)

    # The model's verbs as functions of (module, rows), for map_rows and ONNX;
    # ``mask``: the rows' observed entries, where they have missing ones.
    def _encode(self, module, x, mask=None):
        return module.code(x)  # the filled rows' code

    def _posterior(self, module, x, mask=None):
        """Each row's posterior mean and standard deviation, side by side."""
        return torch.cat(module.posterior(*_given(x, mask)), dim=-1)

    def _decode(self, module, z):
        return module.decode(z)

    def _score_rows(self, module, x, mask=None):
        return module.score_rows(x, self._n_importance(), *_given(mask))

    def _n_importance(self) -> int:
        """Importance samples per row for ``score_samples`` (1: none)."""
        return getattr(self, "n_importance", 1)

    def _score_entries(self, module, x, mask=None):
        return module.score_entries(x, self._n_importance(), *_given(mask))

    def _scored_rows(self, X):
        """Validate rows to score, with the model's support checked too."""
        X, check = self._inference_data(X)
        # rows outside the model's support (negative counts, say) get a clear error
        support = getattr(self.module_, "check_support", None)
        if support is not None and check is None:
            support(X)
        elif support is not None:
            check = functools.partial(_checked, check, support)
        return X, check

    def _row_scores(self, X) -> np.ndarray:
        X, check = self._scored_rows(X)
        copies = self.module_.score_copies(self._n_importance())
        fn = self._with_missing(self._score_rows, X, check)
        return self._map_rows(fn, X, 1, copies, check)[:, 0]

    def score_features(self, X):
        """Each feature's share of each row's :meth:`score_samples`.

        For anomaly detection: a row scores low in :meth:`score_samples`, and
        this says which features make it so. Each row of the result sums to
        that row's ``score_samples`` (up to rounding).

        - ``Autoencoder``: minus each entry's squared reconstruction error,
          over ``n_features_in_``.
        - ``LinearAutoencoder``: each entry's expected log-density given the
          code, E_q log N(x_j | w_j'z + mean_j, noise_variance_) under the
          exact posterior q(z|x); the rest of the row's log-likelihood (minus
          the KL of q to the prior) is shared equally between the features.
        - ``VariationalAutoencoder``: the same with the importance-weighted
          posterior of :meth:`score_samples` (self-normalised weights over its
          K draws); the code's cost is shared equally between the features.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_features)
            In nats for the probabilistic models; higher is more typical.
        """
        X, check = self._scored_rows(X)
        copies = self.module_.score_copies(self._n_importance())
        masked = "mask" in inspect.signature(self.module_.score_entries).parameters
        if _has_missing(X, check) and not masked:
            raise ValueError(
                f"{type(self).__name__}.score_features takes no missing entries (NaN); "
                "score_samples and score do."
            )
        fn = self._with_missing(self._score_entries, X, check)
        return self._map_rows(fn, X, self.n_features_in_, copies, check)

    def score(self, X, y=None):
        """Mean per-row score of ``X`` (higher is better); see the class notes.

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
        return float(np.mean(self._row_scores(X), dtype=np.float64))

    def sample(self, n_samples=1, random_state=None, *, noise=True):
        """Generate new data from the fitted generative model.

        Draws latent points (see the class notes for their distribution),
        decodes them, and with ``noise=True`` draws each row from the
        decoder's distribution around that mean: isotropic Gaussian noise of
        variance ``noise_variance_`` (a Bernoulli VAE draws 0/1 pixels).

        Parameters
        ----------
        n_samples : int, default=1
            Number of points to generate.
        random_state : int, RandomState instance or None, default=None
            Seeds the latent draws and the noise.
        noise : bool, default=True
            Draw from the full generative model. ``False`` returns the
            decoder's means, which lie on the decoder's image: a k-dimensional
            surface, with less spread than the data.

        Returns
        -------
        X : ndarray of shape (n_samples, `n_features_in_`)
            Samples, in the training data's dtype.
        """
        check_is_fitted(self)
        if not isinstance(n_samples, Integral) or isinstance(n_samples, bool) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        rng = check_random_state(random_state)
        z = self._draw_latent(int(n_samples), rng)
        default = np.float32 if next(self.module_.parameters()).dtype == torch.float32 else None
        z = z.astype(getattr(self, "_input_dtype", default or np.float64), copy=False)
        means = self._map_rows(self._decode, z, self.n_features_in_)
        return self._add_noise(means, rng) if noise else means

    def _draw_latent(self, n_samples: int, rng: np.random.RandomState) -> np.ndarray:
        """Latent points: from the prior N(0, I) (``_prior_latent``), else from the
        Gaussian of the training codes (``latent_mean_``, ``latent_covariance_``)."""
        if self._prior_latent:
            return rng.standard_normal((n_samples, self.n_components_))
        # eigh rather than cholesky: the codes' covariance may be singular
        evals, evecs = np.linalg.eigh(self.latent_covariance_)
        scale = evecs * np.sqrt(np.clip(evals, 0, None))
        return self.latent_mean_ + rng.standard_normal((n_samples, len(evals))) @ scale.T

    def _add_noise(self, means: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
        """Draw from the decoder's distribution around ``means``: the model's own
        (its ``sample_around`` verb), else Gaussian of variance ``noise_variance_``."""
        sample_around = getattr(self.module_, "sample_around", None)
        if sample_around is not None:
            return sample_around(means, rng)
        scale = np.sqrt(self.noise_variance_)
        return means + (scale * rng.standard_normal(means.shape)).astype(means.dtype)


def _has_missing(X, check) -> bool:
    """Whether validated rows hold missing entries: dense in-memory rows with NaN
    (sparse and out-of-core rows are refused NaN as they are read)."""
    return check is None and has_nan(X)


def _filled(fn, module, x: torch.Tensor) -> torch.Tensor:
    """``fn(module, rows, mask)`` on rows with missing entries, as the model fills them."""
    return fn(module, *module.fill_missing(x))


def _given(*values):
    """The values, less a trailing mask of None (a model's verbs without missing
    entries are called without one)."""
    return values[:-1] if values[-1] is None else values


def _checked(check, support, rows: np.ndarray) -> np.ndarray:
    """``check`` a chunk of out-of-core rows, then the model's ``support``."""
    rows = check(rows)
    support(rows)
    return rows
