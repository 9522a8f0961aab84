"""The likelihood protocol: what a VAE's decoder distribution p(x | z) must say.

A family is a small ``torch.nn.Module`` (so that its learned parameters, such as
a negative binomial's dispersions, train, save and load with the networks). The
decoder's last layer gives one number per feature, ``out``; the family turns it
into a distribution over the data. Nothing here knows about scikit-learn.

Units: a family whose ``standardised`` is True compares the decoder's output with
the *standardised* data (x - mean) / scale, so its log-densities are those of the
data less d log(scale) (:meth:`Family.log_unit_change`); the others read the data
in its own units.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = g(x) + h(x) * eps, differentiable in g and h (Kingma & Welling, eq. 10)."""
    return mean + torch.exp(0.5 * logvar) * eps


class Family(nn.Module):
    """Base class of the decoder distributions; see :mod:`skvae._likelihoods`.

    A subclass sets ``name`` and overrides :meth:`log_prob_entries` and :meth:`mean`;
    everything else has a default that suits a family without parameters of its
    own. ``mask`` (a boolean tensor shaped like ``x``, True where an entry is
    observed) is accepted by every log-density; None means all observed.
    """

    name: str = ""
    #: The decoder's output is compared with the standardised data.
    standardised: bool = False

    def __init__(self, n_features: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.n_features = n_features

    @classmethod
    def build(cls, n_features: int, dtype: torch.dtype, options: dict) -> Family:
        """The family for ``n_features`` features, from the estimator's ``options``
        (its parameters that describe the likelihood; a family reads those it has)."""
        return cls(n_features, dtype)

    # ------------------------------------------------------------ validation
    def check(self, X: np.ndarray, parameter: str = "likelihood", other: str = "gaussian") -> None:
        """Raise a ``ValueError`` naming the likelihood if ``X`` is outside its support.

        ``parameter`` is the estimator's parameter that chose the family (the
        VAE's ``likelihood``, the Autoencoder's ``loss``), and ``other`` the
        value of it that suits continuous data, for the message.
        """

    # ----------------------------------------------------------- the density
    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the encoder reads (before standardisation): ``x`` itself by default."""
        return x

    def log_prob_entries(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """log p(x_j | out_j) of each entry (no sum): each feature's share of
        :meth:`log_prob`. ``out`` may carry leading dimensions of Monte Carlo
        draws; ``x`` broadcasts."""
        raise NotImplementedError

    def log_prob(
        self, x: torch.Tensor, out: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """log p(x | out) summed over the (observed) features of each row."""
        entries = self.log_prob_entries(x, out)
        return (entries if mask is None else entries * mask).sum(-1)

    def expected_log_prob(
        self, decoder: nn.Module, x: torch.Tensor, mean, logvar, eps, mask=None, fit=False
    ) -> torch.Tensor:
        """E_q log p(x | f(z)) per row, averaged over z = mean + exp(logvar / 2) * eps.

        ``eps`` has shape (draws, rows or 1, k). ``fit`` is True for training
        batches, where a family may update statistics of its own (see
        :meth:`begin_epoch`).
        """
        return self.log_prob(x, decoder(reparameterize(mean, logvar, eps)), mask).mean(0)

    def exact(self, decoder: nn.Module) -> bool:
        """True when :meth:`expected_log_prob` needs no draws (``eps`` may be None)."""
        return False

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        """E[x | out], in the data's units (for a latent point: ``inverse_transform``)."""
        raise NotImplementedError

    def sample(self, means: np.ndarray, rng: np.random.RandomState, scale: float) -> np.ndarray:
        """Draw data around the decoded ``means`` (what ``sample(noise=True)`` returns);
        ``scale`` is the networks' data scale."""
        raise NotImplementedError

    # ---------------------------------------------------- start, units, hooks
    def transforms_input(self) -> bool:
        """Whether :meth:`encoder_input` is more than the identity."""
        return type(self).encoder_input is not Family.encoder_input

    def start(self, decoder, weight: torch.Tensor, noise_variance: float) -> None:
        """Set ``decoder`` (a linear-plus-MLP map) and the family's own parameters
        at PCA's solution: ``weight`` maps codes to the standardised encoder
        input, and ``noise_variance`` is pPCA's in those units."""
        decoder.start_linear(weight)

    def calibrates(self) -> bool:
        """Whether the family calibrates its start on training rows (:meth:`calibrate`)."""
        return type(self).calibrate is not Family.calibrate

    def set_reference(self, x: torch.Tensor) -> None:
        """Before the start, for a family that :meth:`calibrates`: some training rows."""

    def calibrate(self, decoder, x: torch.Tensor, codes: torch.Tensor) -> None:
        """After the start: set what PCA does not give (a bias, a dispersion) from
        some training rows ``x`` and their codes at the start."""

    def start_noise_variance(self, pca_noise_variance: float) -> float:
        """The pPCA noise variance the encoder's start assumes (standardised units)."""
        return pca_noise_variance

    def on_scaling(self, scale: float) -> None:
        """Called once the networks' data scale is known (before any start)."""

    def log_unit_change(self, scale: float) -> float:
        """log p(x) in the data's units minus log p in the units the family uses."""
        return -self.n_features * float(np.log(scale)) if self.standardised else 0.0

    def begin_epoch(self) -> None:
        """Before an epoch's first training batch."""

    def end_epoch(self, total) -> None:
        """After its last; ``total`` sums a tensor over the ranks training together."""

    def noise_variance(self, scale: float) -> float | None:
        """The decoder's variance in data units, where it is one number (else None)."""
        return None
