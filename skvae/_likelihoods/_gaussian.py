"""Gaussian decoder p(x | z) = N(f(z), c I), with c learned or given."""

from __future__ import annotations

import math

import numpy as np
import torch

from ._family import Family, reparameterize

_LOG_2PI = math.log(2 * math.pi)

#: Smallest learned decoder variance, as a share of the data's variance.
C_FLOOR = 1e-6


def _masked_sum(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return (values if mask is None else values * mask).sum(-1)


class _BatchTotals:
    """Each training batch's (sum of squares, entries), float64, on the batch's
    device: written into one buffer that doubles when full. A tensor kept per
    batch (a list of them) pinned small blocks between the batches' freed ones,
    and glibc's heap grew by about 0.7 MiB a batch."""

    def __init__(self) -> None:
        self.buffer: torch.Tensor | None = None
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def append(self, sq: torch.Tensor, count: torch.Tensor) -> None:
        if self.buffer is None or self.n == len(self.buffer):
            grown = torch.empty((max(64, 2 * self.n), 2), dtype=torch.float64, device=sq.device)
            if self.buffer is not None:
                grown[: self.n] = self.buffer
            self.buffer = grown
        self.buffer[self.n, 0] = sq
        self.buffer[self.n, 1] = count
        self.n += 1

    def stacked(self) -> torch.Tensor:
        """The rows so far, one per batch (n x 2)."""
        return self.buffer[: self.n]


class Gaussian(Family):
    """Isotropic Gaussian in standardised units: log N(xs; out, c I).

    ``variance=None`` learns c: each training batch uses its exact maximiser
    c = mean E_q||xs - f(z)||^2 / d (dELBO/dc = 0 there, so the networks get
    the gradient they would get with c at its optimum), and the c that
    validation and scoring use is set at the end of each epoch from all of its
    training rows. A float fixes c, given in the data's units.

    For a linear decoder f(z) = W z + b the expectation over q is exact:
    E_q||xs - f(z)||^2 = ||xs - f(m)||^2 + sum_j s_j^2 ||W_j||^2.
    """

    name = "gaussian"
    standardised = True

    def __init__(self, n_features: int, dtype: torch.dtype, variance: float | None = None):
        super().__init__(n_features, dtype)
        self.variance = variance
        # log c in standardised units
        self.register_buffer("log_noise_variance", torch.zeros((), dtype=dtype))
        self._epoch = _BatchTotals()

    @classmethod
    def build(cls, n_features, dtype, options):
        variance = options["decoder_variance"]
        return cls(n_features, dtype, None if variance == "learned" else float(variance))

    def exact(self, decoder) -> bool:
        return decoder.correction is None

    def expected_sq_error(self, decoder, xs, mean, logvar, eps, mask=None) -> torch.Tensor:
        """E_q ||xs - f(z)||^2 over the observed entries of each row."""
        if self.exact(decoder):
            W = decoder.linear.weight
            var = logvar.exp()
            if mask is None:
                spread = var @ torch.sum(W * W, dim=0)
            else:
                spread = torch.sum(mask * (var @ (W * W).T), dim=-1)
            return _masked_sum((xs - decoder(mean)) ** 2, mask) + spread
        z = reparameterize(mean, logvar, eps)
        return _masked_sum((xs - decoder(z)) ** 2, mask).mean(0)

    def gaussian_log_prob(self, sq, n_observed, log_c) -> torch.Tensor:
        """-sq / (2c) - n/2 log(2 pi c): the log-density of squared error ``sq``."""
        return -0.5 * sq * torch.exp(-log_c) - 0.5 * n_observed * (_LOG_2PI + log_c)

    def _n_observed(self, xs, mask):
        return xs.shape[-1] if mask is None else mask.sum(-1, dtype=xs.dtype)

    def log_prob_entries(self, x, out):
        log_c = self.log_noise_variance
        return -0.5 * (x - out) ** 2 * torch.exp(-log_c) - 0.5 * (_LOG_2PI + log_c)

    def log_prob(self, x, out, mask=None):  # one sum of squares, one log c per row
        sq = _masked_sum((x - out) ** 2, mask)
        return self.gaussian_log_prob(sq, self._n_observed(x, mask), self.log_noise_variance)

    def expected_log_prob(self, decoder, x, mean, logvar, eps, mask=None, fit=False):
        sq = self.expected_sq_error(decoder, x, mean, logvar, eps, mask)
        log_c = self.log_noise_variance
        n = self._n_observed(x, mask)
        if fit and self.variance is None:
            entries = torch.as_tensor(n, dtype=sq.dtype).sum() if mask is not None else None
            batch = sq.detach().sum()
            log_c = self.optimal_log_variance(batch, entries, len(sq))
            # the epoch's c: its squared errors over its (observed) entries
            if entries is None:  # no host-to-device copy per batch
                count = batch.new_full((), len(sq) * self.n_features, dtype=torch.float64)
            else:
                count = entries.double()
            self._epoch.append(batch, count)
        return self.gaussian_log_prob(sq, n, log_c)

    def optimal_log_variance(self, sq_sum, n_entries, n_rows) -> torch.Tensor:
        """log c maximising the likelihood: sum of squares / entries, floored at C_FLOOR."""
        entries = n_rows * self.n_features if n_entries is None else n_entries
        return torch.log(torch.clamp(sq_sum / entries, min=C_FLOOR))

    def mean(self, out):
        return out  # standardised: the model maps it back to the data's units

    def sample(self, means, rng, scale):
        sd = np.sqrt(self.noise_variance(scale))
        return means + (sd * rng.standard_normal(means.shape)).astype(means.dtype)

    def start(self, decoder, weight, noise_variance):
        decoder.start_linear(weight)
        if self.variance is None:
            self.log_noise_variance.fill_(math.log(noise_variance))

    def start_noise_variance(self, pca_noise_variance):
        if self.variance is None:
            return pca_noise_variance
        return float(self.log_noise_variance.exp())  # pPCA's start for a given c

    def on_scaling(self, scale: float) -> None:
        if self.variance is not None:
            self.log_noise_variance.fill_(math.log(self.variance) - 2 * math.log(scale))

    def begin_epoch(self) -> None:
        self._epoch = _BatchTotals()

    def end_epoch(self, total) -> None:
        if self.variance is None and len(self._epoch):
            # with several ranks, every rank's rows of the epoch: the same c on all
            sq, entries = total(self._epoch.stacked().sum(0))
            if entries > 0:
                log_c = self.optimal_log_variance(sq, entries, None)
                self.log_noise_variance.copy_(log_c.to(self.log_noise_variance.dtype))
        self._epoch = _BatchTotals()

    def noise_variance(self, scale: float) -> float:
        if self.variance is not None:
            return float(self.variance)
        return float(self.log_noise_variance.exp()) * scale**2
