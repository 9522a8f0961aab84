"""Negative binomial decoder for overdispersed counts, one dispersion per feature."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.distributions import NegativeBinomial as _NegativeBinomial

from ._poisson import Poisson

#: Bounds on the log inverse dispersion: from nearly Poisson to very overdispersed.
LOG_THETA_BOUNDS = (-7.0, 14.0)


class NegativeBinomial(Poisson):
    """Counts with mean mu = s exp(f(z)) and variance mu + mu^2 / theta.

    The mean is the Poisson family's (same link, library and start); each
    feature learns its inverse dispersion theta_j (large theta: Poisson). The
    start sets theta_j by the method of moments on the start's means:
    1 / theta_j = sum((x - mu)^2 - mu) / sum(mu^2).
    """

    name = "negative_binomial"

    def __init__(self, n_features: int, dtype: torch.dtype, library_size: bool = False):
        super().__init__(n_features, dtype, library_size)
        self.log_theta = nn.Parameter(torch.zeros(n_features, dtype=dtype))

    def theta(self) -> torch.Tensor:
        return torch.exp(self.log_theta.clamp(*LOG_THETA_BOUNDS))

    def distribution(self, x, out):
        theta = self.theta()
        logits = self.log_rate(x, out) - torch.log(theta)  # mean = theta * exp(logits)
        return _NegativeBinomial(theta, logits=logits, validate_args=False)

    def sample(self, means, rng, scale):
        theta = self.theta().detach().double().cpu().numpy()
        rates = rng.gamma(theta, means / theta)  # a gamma-Poisson mixture
        return rng.poisson(rates).astype(means.dtype)

    @torch.no_grad()
    def calibrate_dispersion(self, x, out):
        mu = torch.exp(self.log_rate(x, out))
        excess = ((x - mu) ** 2 - mu).sum(0) / (mu**2).sum(0).clamp_min(1e-12)
        inverse = excess.clamp(np.exp(-LOG_THETA_BOUNDS[1]), np.exp(-LOG_THETA_BOUNDS[0]))
        self.log_theta.copy_(-torch.log(inverse))
