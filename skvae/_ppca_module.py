"""Probabilistic PCA as a model with the protocol's verbs: ``LinearAutoencoder``'s module.

The networks are one affine map each way (:class:`~skvae._modules.AutoencoderModule`
without hidden layers): trained as any autoencoder, then set to the orthogonal
projection onto the principal subspace. The buffers hold probabilistic PCA's
parameters (Tipping & Bishop, 1999), in float64 whatever the networks' dtype,
and the verbs ``score_rows``, ``score_entries`` and ``posterior`` answer with
their closed forms; with a ``mask``, rows with missing entries condition on
their observed entries (:mod:`skvae._missing_forms`). No scikit-learn.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._missing import PPCA
from ._missing_forms import (
    conditional_mean,
    expected_entry_log_density,
    log_likelihood,
    posterior_variance,
)
from ._modules import AutoencoderModule
from ._placement import CHUNK_ELEMENTS

#: The buffers of probabilistic PCA, all float64: the mean (d), the components
#: (k x d, orthonormal rows), the model's variance along each (at least the
#: noise's), the noise variance (a scalar) and the posterior's standard
#: deviation along each code, in the coordinates of ``code``.
PPCA_BUFFERS = ("ppca_mean", "ppca_components", "ppca_variances", "ppca_noise", "ppca_std")


def ppca_state(components, explained_variance, noise_variance, mean, whiten: bool) -> dict:
    """The buffers of :class:`PPCAModule` (float64 NumPy arrays) from a fitted
    model's arrays, as ``PCA`` reads its subspace.

    Along a component the model's variance is ``explained_variance``, at least
    the noise variance (as ``PCA.get_covariance``); the posterior of z given x is
    N(M^-1 W'(x - mean), s2 M^-1) with W = U (L - s2 I)^(1/2) and M = L along the
    components U. The code y = U'(x - mean) (divided by sqrt(L) when whitened)
    is the posterior mean times L / (L - s2)^(1/2), so on its scale the
    posterior variance is s2 L / (L - s2) (s2 / (L - s2) whitened): 0 with no
    noise, inf along a component whose variance does not exceed the noise (pPCA
    gives it no weight, so its code says nothing).
    """
    noise = float(noise_variance)
    explained = np.asarray(explained_variance, dtype=np.float64)
    along = np.maximum(explained, noise)
    if noise == 0.0:
        std = np.zeros_like(along)
    else:
        excess = along - noise
        informative = excess > 0
        ratio = along / np.where(informative, excess, 1.0)
        variance = np.where(informative, noise * ratio, np.inf)
        if whiten:
            eps = float(np.finfo(np.asarray(mean).dtype).eps)
            variance = variance / np.maximum(np.sqrt(explained), eps) ** 2
        std = np.sqrt(variance)
    arrays = (mean, components, along, noise, std)
    return {
        name: np.asarray(value, dtype=np.float64)
        for name, value in zip(PPCA_BUFFERS, arrays, strict=True)
    }


class PPCAModule(AutoencoderModule):
    """An affine encoder and decoder, and probabilistic PCA's density and posterior.

    ``code`` and ``decode`` are the affine maps (after fit, the projection onto
    the components, whitened or not); ``score_rows`` is the log-density of
    N(mean, C), C = U diag(L - s2) U' + s2 I, ``score_entries`` each feature's
    share of it, and ``posterior`` the exact posterior's mean and spread. A row
    with missing entries (``mask`` False there) is the marginal of its observed
    entries, and ``fill_missing`` completes it with its conditional mean.
    """

    def __init__(self, n_features: int, n_components: int, dtype: torch.dtype) -> None:
        super().__init__(n_features, n_components, (), "identity", dtype)
        shapes = ((n_features,), (n_components, n_features), (n_components,), (), (n_components,))
        for name, shape in zip(PPCA_BUFFERS, shapes, strict=True):
            self.register_buffer(name, torch.zeros(shape, dtype=torch.float64))

    @torch.no_grad()
    def set_ppca(self, state: dict) -> None:
        """Set the buffers from :func:`ppca_state`'s arrays."""
        for name in PPCA_BUFFERS:
            getattr(self, name).copy_(torch.as_tensor(state[name]))

    def ppca(self) -> PPCA:
        """The model as (mean, W, noise), W = U (L - s2 I)^(1/2), in float64."""
        noise = float(self.ppca_noise)
        weight = self.ppca_components.T * torch.sqrt(self.ppca_variances - noise)
        return PPCA(self.ppca_mean, weight, noise)

    # ---------------------------------------------------------- the verbs
    def fill_missing(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row with its missing entries (NaN) at their conditional mean,
        E[x_miss | x_obs] (the code of a row is then E[code(x) | x_obs]: the
        code is affine), and the mask of observed entries."""
        mask = ~torch.isnan(x)
        holed = ~mask.all(-1)
        if not bool(holed.any()):
            return x, mask
        filled = x.clone()
        model = self.ppca()
        filled[holed] = self._by_rows(conditional_mean, x[holed].double(), model).to(x.dtype)
        return filled, mask

    def _by_rows(self, fn, rows: torch.Tensor, *args) -> torch.Tensor:
        """``fn(rows, *args)`` over chunks that bound its k x k matrices per row."""
        k, d = self.ppca_components.shape
        step = max(1, CHUNK_ELEMENTS // max(d, k * k))
        return torch.cat([fn(rows[a : a + step], *args) for a in range(0, len(rows), step)])

    def _missing_rows(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The rows in float64 with NaN where ``mask`` says missing."""
        return torch.where(mask, x.double(), torch.nan)

    def score_rows(self, x: torch.Tensor, n_importance: int = 1, mask=None) -> torch.Tensor:
        """Each row's log-density under N(mean, C), in float64 (an exact model has
        nothing to importance-sample); with ``mask``, a row with missing entries
        scores its observed entries' marginal (0 for none observed)."""
        if mask is None:
            return self._complete_scores(x)
        complete = mask.all(-1)
        out = torch.empty(len(x), dtype=torch.float64, device=x.device)
        if bool(complete.any()):  # as without missing entries, to the bit
            out[complete] = self._complete_scores(x[complete])
        if not bool(complete.all()):
            rows = self._missing_rows(x[~complete], mask[~complete])
            out[~complete] = self._by_rows(log_likelihood, rows, self.ppca())
        return out

    def _complete_scores(self, x: torch.Tensor) -> torch.Tensor:
        # From the components (O(d k) per row, no d x d matrix). A variance of 0
        # (no discarded direction, or no variance at all) is floored at the
        # smallest normal float: rows on the model's support keep a finite
        # score, rows off it get a hugely negative one.
        floor = np.finfo(np.float64).tiny
        along = np.maximum(self.ppca_variances.cpu().numpy(), floor)
        noise = max(float(self.ppca_noise), floor)
        C = self.ppca_components
        centred = x.double() - self.ppca_mean
        codes = centred @ C.T
        k, d = C.shape
        distance = (codes**2 / torch.as_tensor(along).to(codes)).sum(dim=1)
        log_det = float(np.log(along).sum())
        if k < d:
            off_plane = ((centred - codes @ C) ** 2).sum(dim=1)
            distance = distance + off_plane / noise
            log_det += (d - k) * math.log(noise)
        return -0.5 * (distance + log_det + d * math.log(2 * math.pi))

    def score_entries(self, x: torch.Tensor, n_importance: int = 1, mask=None) -> torch.Tensor:
        """Each feature's share of :meth:`score_rows`: E_q log N(x_j | w_j'z + mean_j,
        s2) under the exact posterior q, plus an equal share of the rest (minus
        the KL); with no noise the model has no per-entry density, equal shares.
        With ``mask``, missing entries get 0 and q is the posterior given the
        observed entries."""
        if mask is None or bool(mask.all()):
            return self._complete_entries(x)
        model = self.ppca()
        rows = self._missing_rows(x, mask)
        total = log_likelihood(rows, model)
        n_observed = mask.sum(-1).clamp_min(1)
        if model.noise == 0:
            shares = torch.zeros_like(rows)
        else:
            shares = expected_entry_log_density(rows, model)
        rest = (total - shares.sum(-1)) / n_observed
        return torch.where(mask, shares + rest[:, None], 0.0).to(x.dtype)

    def _complete_entries(self, x: torch.Tensor) -> torch.Tensor:
        # q = N(m, S): m = (L - s2)^(1/2) / L * codes, S = s2 / L along the
        # components, W = U (L - s2)^(1/2)
        total = self._complete_scores(x)
        noise = float(self.ppca_noise)
        d = x.shape[-1]
        if noise == 0.0:
            return (total / d)[:, None].expand(-1, d)
        C = self.ppca_components
        centred = x.double() - self.ppca_mean
        along = self.ppca_variances
        shrink = (along - noise) / along  # W m = U diag(shrink) codes
        residual = centred - ((centred @ C.T) * shrink) @ C
        spread = ((C**2) * (shrink * noise)[:, None]).sum(0)  # w_j' S w_j
        shares = -0.5 * ((residual**2 + spread) / noise + math.log(2 * math.pi * noise))
        return shares + ((total - shares.sum(-1)) / d)[:, None]

    def posterior(self, x: torch.Tensor, mask=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior's mean and standard deviation of each row, in the
        coordinates of :meth:`code`. With ``mask`` (and ``x`` filled by
        :meth:`fill_missing`), a row with missing entries has the code of its
        conditional mean and the spread of Cov[z | x_o] = s2 M_o^-1, mapped as
        the complete rows'."""
        codes = self.code(x)
        std = self.ppca_std.to(codes).expand_as(codes)
        noise = float(self.ppca_noise)
        if mask is None or noise == 0.0:  # no noise: the spread is 0 whatever is observed
            return codes, std
        holed = ~mask.all(-1)
        if not bool(holed.any()):
            return codes, std
        complete = noise / self.ppca_variances  # Var[z | x] of a complete row
        rows = self._missing_rows(x[holed], mask[holed])
        ratio = self._by_rows(posterior_variance, rows, self.ppca()) / complete
        std = std.double().clone()
        std[holed] = std[holed] * torch.sqrt(ratio)
        return codes, std.to(codes.dtype)
