"""Bernoulli decoder: each feature is 1 with probability sigmoid(f(z))."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._family import Family


class Bernoulli(Family):
    """Independent Bernoulli features; the decoder gives logits, in no data units.

    Data must lie in [0, 1] (values in between are read as probabilities, the
    usual relaxation for grey-level images).
    """

    name = "bernoulli"

    def check(self, X, parameter="likelihood", other="gaussian"):
        if X.size and (X.min() < 0 or X.max() > 1):
            raise ValueError(
                f"{parameter}='bernoulli' needs data in [0, 1]; X ranges over "
                f"[{X.min():.3g}, {X.max():.3g}]. Scale it (e.g. MinMaxScaler) or use "
                f"{parameter}={other!r}."
            )

    def log_prob_entries(self, x, out):
        return -F.binary_cross_entropy_with_logits(out, x.expand_as(out), reduction="none")

    def mean(self, out):
        return torch.sigmoid(out)

    def sample(self, means, rng, scale):
        return (rng.uniform(size=means.shape) < means).astype(means.dtype)

    def start(self, decoder, weight, noise_variance):
        # PCA gives no logits: start at the features' mean probabilities (calibrate)
        decoder.start_linear(torch.zeros_like(weight))

    def calibrate(self, decoder, x, codes):
        p = x.mean(0).clamp(1e-3, 1 - 1e-3)
        decoder.linear.bias.copy_(torch.log(p / (1 - p)))
