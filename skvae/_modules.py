"""Plain PyTorch building blocks: MLPs, encoders and decoders.

Nothing here knows about scikit-learn. Every module is created without touching
torch's global random state; weights are drawn from the ``torch.Generator`` handed
to :func:`init_parameters`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "logistic": nn.Sigmoid,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "identity": nn.Identity,
}


def _linear(n_in: int, n_out: int, dtype: torch.dtype) -> nn.Linear:
    # skip_init builds the layer without drawing from torch's global RNG.
    return torch.nn.utils.skip_init(nn.Linear, n_in, n_out, dtype=dtype)


def mlp(sizes: Sequence[int], activation: str, dtype: torch.dtype) -> nn.Sequential:
    """Linear layers between consecutive ``sizes``, ``activation`` between them.

    The last layer has no activation, so ``mlp([a, b], ...)`` is one affine map.
    """
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i > 0:
            layers.append(ACTIVATIONS[activation]())
        layers.append(_linear(n_in, n_out, dtype))
    return nn.Sequential(*layers)


def init_parameters(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default ``nn.Linear`` initialisation, drawn from ``generator``.

    Weights and biases are uniform on +-1/sqrt(fan_in) (what ``reset_parameters``
    gives), but the draws come from a local generator, so fits are reproducible
    and torch's global RNG is left alone.
    """
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            bound = 1.0 / math.sqrt(max(sub.in_features, 1))
            nn.init.uniform_(sub.weight, -bound, bound, generator=generator)
            nn.init.uniform_(sub.bias, -bound, bound, generator=generator)


class ScaledIO(nn.Module):
    """Networks that see standardised data and answer in the data's units.

    The buffers ``offset`` (per-feature mean) and ``scale`` (one scalar, the
    root mean variance) are set from the training data by :meth:`set_scaling`;
    inputs enter as (x - offset) / scale and outputs leave as y * scale + offset.
    Optimisation then runs in the same units whatever the data's location and
    scale: an offset of 100 no longer overflows a log-variance head, and
    Adam's steps mean the same on any data. The loss stays in the data's units.
    """

    def _init_scaling(self, n_features: int, dtype: torch.dtype) -> None:
        self.register_buffer("offset", torch.zeros(n_features, dtype=dtype))
        self.register_buffer("scale", torch.ones((), dtype=dtype))

    @torch.no_grad()
    def set_scaling(self, X: torch.Tensor, max_rows: int = 4096) -> None:
        """Per-feature mean of ``X``; root mean variance (1 for constant data).

        The scale only conditions the optimisation, so it comes from at most
        ``max_rows`` evenly spaced rows: a column-wise variance of all of X
        would cost a few percent of a short fit.
        """
        self.offset.copy_(X.mean(dim=0))
        rows = X[:: max(1, len(X) // max_rows)]
        spread = torch.sqrt(rows.var(dim=0, correction=0).mean())
        self.scale.copy_(spread if spread > 0 and torch.isfinite(spread) else 1.0)

    def scale_in(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.offset) / self.scale

    def scale_out(self, y: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.offset, y, self.scale)  # y * scale + offset, one kernel


class AutoencoderModule(ScaledIO):
    """A deterministic encoder z = g(x) and decoder x_hat = f(z)."""

    def __init__(
        self,
        n_features: int,
        n_components: int,
        hidden_layer_sizes: Sequence[int],
        activation: str,
        dtype: torch.dtype,
    ) -> None:
        super().__init__()
        hidden = list(hidden_layer_sizes)
        self.encoder = mlp([n_features, *hidden, n_components], activation, dtype)
        self.decoder = mlp([n_components, *hidden[::-1], n_features], activation, dtype)
        self._init_scaling(n_features, dtype)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.scale_in(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.scale_out(self.decoder(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class GaussianEncoderModule(ScaledIO):
    """The VAE's networks: x -> (mean g(x), log variance log h(x)^2) and z -> f(z).

    The buffer ``log_noise_variance`` is the log of the Gaussian decoder's
    variance c, a single scalar shared by all features; when it is learned, the
    estimator sets it to its optimum during training.
    The buffer ``score_eps`` holds draws of eps ~ N(0, I), fixed once per fit,
    with which the ELBO is estimated when it has no closed form. With
    ``bernoulli=True`` the decoder returns logits, in no data units.
    """

    def __init__(
        self,
        n_features: int,
        n_components: int,
        hidden_layer_sizes: Sequence[int],
        activation: str,
        dtype: torch.dtype,
        noise_variance: float = 1.0,
        n_score_draws: int = 32,
        bernoulli: bool = False,
    ) -> None:
        super().__init__()
        hidden = list(hidden_layer_sizes)
        self.bernoulli = bernoulli
        self.linear = not hidden  # a linear decoder: E_q of a Gaussian term is exact
        self.body = mlp([n_features, *hidden], activation, dtype)
        if hidden:
            self.body.append(ACTIVATIONS[activation]())
        width = hidden[-1] if hidden else n_features
        self.mean_head = _linear(width, n_components, dtype)
        self.logvar_head = _linear(width, n_components, dtype)
        self.decoder = mlp([n_components, *hidden[::-1], n_features], activation, dtype)
        self.register_buffer(
            "log_noise_variance", torch.tensor(math.log(noise_variance), dtype=dtype)
        )
        self.register_buffer("score_eps", torch.zeros(n_score_draws, n_components, dtype=dtype))
        self._init_scaling(n_features, dtype)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(self.scale_in(x))
        return self.mean_head(h), self.logvar_head(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out = self.decoder(z)
        return out if self.bernoulli else self.scale_out(out)
