"""Poisson decoder for counts: x_j ~ Poisson(s * exp(f_j(z)))."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.distributions import Poisson as _Poisson

from ._family import Family

#: Bound on a log-rate: rates stay finite far from the data.
LOG_RATE_BOUND = 30.0


class Poisson(Family):
    """Independent Poisson counts, with a log link.

    The decoder gives each feature's log-rate at a reference library size.
    With ``library_size=False`` that is the rate itself; with True (as in
    scVI), each row's rates are scaled by its observed total count over the
    training rows' median total, so that the latent code describes a row's
    composition and not its depth. The encoder reads log1p of the counts
    (normalised to the reference library with ``library_size``), and the PCA
    start is PCA of those, with each feature's baseline rate set to match its
    training counts (the Poisson maximum-likelihood bias given PCA's map).
    """

    name = "poisson"

    def __init__(self, n_features: int, dtype: torch.dtype, library_size: bool = False):
        super().__init__(n_features, dtype)
        self.library_size = library_size
        self.register_buffer("log_reference_library", torch.zeros((), dtype=dtype))
        self._scale = 1.0

    @classmethod
    def build(cls, n_features, dtype, options):
        return cls(n_features, dtype, bool(options["library_size"]))

    def check(self, X, parameter="likelihood", other="gaussian"):
        if X.size and X.min() < 0:
            raise ValueError(
                f"{parameter}={self.name!r} needs counts, but X has negative values "
                f"(down to {X.min():.3g})."
            )
        if X.size and not np.array_equal(X, np.round(X)):
            raise ValueError(
                f"{parameter}={self.name!r} needs counts, but X has non-integer values. "
                f"Pass raw counts, or use {parameter}={other!r} for continuous data."
            )

    def log_library(self, x: torch.Tensor) -> torch.Tensor | float:
        """log s of each row (rows x 1): its total over the reference total (0
        without ``library_size``)."""
        if not self.library_size:
            return 0.0
        return torch.log(x.sum(-1, keepdim=True).clamp_min(1.0)) - self.log_reference_library

    def encoder_input(self, x):
        if not self.library_size:
            return torch.log1p(x)
        return torch.log1p(x * torch.exp(-self.log_library(x)))

    def log_rate(self, x, out):
        return out.clamp(-LOG_RATE_BOUND, LOG_RATE_BOUND) + self.log_library(x)

    def distribution(self, x, out) -> torch.distributions.Distribution:
        """p(x | out) as a ``torch.distributions`` object, one per entry."""
        return _Poisson(torch.exp(self.log_rate(x, out)), validate_args=False)

    def log_prob_entries(self, x, out):
        return self.distribution(x, out).log_prob(x)

    def mean(self, out):
        return torch.exp(out.clamp(-LOG_RATE_BOUND, LOG_RATE_BOUND))

    def sample(self, means, rng, scale):
        return rng.poisson(means).astype(means.dtype)

    def on_scaling(self, scale):
        self._scale = scale

    def set_reference(self, x: torch.Tensor) -> None:
        """The reference library: the median total count of the rows ``x``."""
        totals = x.sum(-1).clamp_min(1.0)
        self.log_reference_library.fill_(math.log(float(totals.median())))

    def start(self, decoder, weight, noise_variance):
        # PCA's map, from standardised log1p units to log-rates (log1p ~ log
        # for the counts that carry the likelihood); the bias comes in calibrate
        decoder.start_linear(weight * self._scale)

    def calibrate(self, decoder, x, codes):
        # each feature's bias matches its total count given PCA's map: the
        # Poisson maximum likelihood of the bias
        decoder.linear.bias.zero_()
        eta = decoder(codes) + self.log_library(x)
        observed = torch.log(x.sum(0).clamp_min(1e-3))
        decoder.linear.bias.copy_(observed - torch.logsumexp(eta, dim=0))
        self.calibrate_dispersion(x, decoder(codes))

    def calibrate_dispersion(self, x, out) -> None:
        """Set what the family learns beside the decoder, at the start's ``out``."""
