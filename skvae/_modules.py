"""Plain PyTorch building blocks: MLPs, encoders and decoders.

Nothing here knows about scikit-learn. Every module is created without touching
torch's global random state; weights are drawn from the ``torch.Generator`` handed
to :func:`init_parameters`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

_LOG_2PI = math.log(2 * math.pi)

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "logistic": nn.Sigmoid,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "identity": nn.Identity,
}


def _linear(n_in: int, n_out: int, dtype: torch.dtype) -> nn.Linear:
    # skip_init builds the layer without drawing from torch's global RNG; on the
    # default device (the CPU, or "meta" inside `with torch.device("meta")`, where
    # skvae.load sizes the networks before it allocates them), not always the CPU
    device = torch.empty(0).device
    return torch.nn.utils.skip_init(nn.Linear, n_in, n_out, dtype=dtype, device=device)


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
    The estimators compute their training losses in these standardised units
    too, so optimisation is the same whatever the data's location and units:
    X, 1e-3 X and 1e3 X train identically up to rounding, Adam's epsilon and
    any absolute tolerance mean the same on any data, and an offset of 100
    cannot overflow a log-variance head. Losses and scores are reported in the
    data's units.
    """

    def _init_scaling(self, n_features: int, dtype: torch.dtype) -> None:
        self.register_buffer("offset", torch.zeros(n_features, dtype=dtype))
        self.register_buffer("scale", torch.ones((), dtype=dtype))

    @torch.no_grad()
    def set_scaling(
        self, X: torch.Tensor, max_rows: int = 4096, mean: torch.Tensor | None = None
    ) -> None:
        """Per-feature mean of ``X`` (or ``mean``, when the caller has it already);
        root mean variance (1 for constant data).

        The scale only conditions the optimisation, so it comes from at most
        ``max_rows`` evenly spaced rows: a column-wise variance of all of X
        would cost a few percent of a short fit.
        """
        self.offset.copy_(X.mean(dim=0) if mean is None else mean)
        rows = X[:: max(1, -(-len(X) // max_rows))]  # at most max_rows of them
        spread = torch.sqrt(rows.var(dim=0, correction=0).mean())
        self.scale.copy_(spread if spread > 0 and torch.isfinite(spread) else 1.0)

    def scale_in(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.offset) / self.scale

    def scale_out(self, y: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.offset, y, self.scale)  # y * scale + offset, one kernel


class LinearPlusMLP(nn.Module):
    """y = A x + b + g(x): an affine map plus an MLP correction g.

    Without hidden layers there is no correction and the map is affine. After
    :meth:`start_linear` the correction's last layer is zero, so the map starts
    as exactly the affine map it contains and training learns a nonlinear
    correction on top of it.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        hidden_layer_sizes: Sequence[int],
        activation: str,
        dtype: torch.dtype,
    ) -> None:
        super().__init__()
        hidden = list(hidden_layer_sizes)
        self.linear = _linear(n_in, n_out, dtype)
        self.correction = mlp([n_in, *hidden, n_out], activation, dtype) if hidden else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        return y if self.correction is None else y + self.correction(x)

    @torch.no_grad()
    def start_linear(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        """Set the affine map to (weight, bias) and the correction to zero."""
        self.linear.weight.copy_(weight)
        if bias is None:
            self.linear.bias.zero_()
        else:
            self.linear.bias.copy_(bias)
        if self.correction is not None:
            self.correction[-1].weight.zero_()
            self.correction[-1].bias.zero_()


def _padded(rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    """``rows`` with zero rows appended up to ``n_rows``."""
    out = rows.new_zeros((n_rows, *rows.shape[1:]))
    out[: len(rows)] = rows
    return out


class AutoencoderModule(ScaledIO):
    """A deterministic encoder z = g(x) and decoder x_hat = f(z).

    Each is an affine map plus an MLP correction (:class:`LinearPlusMLP`), and
    both work in standardised units (see :class:`ScaledIO`).
    """

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
        self.encoder = LinearPlusMLP(n_features, n_components, hidden, activation, dtype)
        self.decoder = LinearPlusMLP(n_components, n_features, hidden[::-1], activation, dtype)
        self._init_scaling(n_features, dtype)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.scale_in(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.scale_out(self.decoder(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def start_at_pca(self, components: torch.Tensor) -> None:
        """Start as PCA: encoder V'x, decoder V z, corrections zero.

        ``components`` (n_features x k', k' <= n_components) are orthonormal
        principal axes of the standardised data; latent dimensions beyond k'
        start unused.
        """
        V = _padded(components.T, self.encoder.linear.out_features)
        self.encoder.start_linear(V)
        self.decoder.start_linear(V.T)


#: Bound on the posterior log-variance (standardised units).
LOGVAR_BOUND = 30.0


class GaussianEncoderModule(ScaledIO):
    """The VAE's networks: x -> (mean g(x), log variance log h(x)^2) and z -> f(z).

    With hidden layers, the mean is an affine map of x plus an MLP head on a
    shared body, the log variance an MLP head on that body, and the decoder an
    affine map plus an MLP correction; without them all three are affine.
    Everything works in standardised units (see :class:`ScaledIO`).

    The buffer ``log_noise_variance`` is the log of the Gaussian decoder's
    variance c (standardised units), a single scalar shared by all features;
    when it is learned, the estimator sets it from each epoch's training rows.
    The buffer ``score_eps`` holds draws of eps ~ N(0, I), fixed once per fit
    (:func:`balanced_draws`, at least twice as many as latent dimensions),
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
        n_score_draws: int | None = None,
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
        self.skip = _linear(n_features, n_components, dtype) if hidden else None
        self.mean_head = _linear(width, n_components, dtype)
        self.logvar_head = _linear(width, n_components, dtype)
        self.decoder = LinearPlusMLP(n_components, n_features, hidden[::-1], activation, dtype)
        self.register_buffer("log_noise_variance", torch.zeros((), dtype=dtype))
        n_draws = n_score_draws or max(32, 2 * n_components)
        self.register_buffer("score_eps", torch.zeros(n_draws, n_components, dtype=dtype))
        self._init_scaling(n_features, dtype)

    def encode_standardised(self, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(xs)
        mean = self.mean_head(h)
        if self.skip is not None:
            mean = mean + self.skip(xs)
        # Clamped: far outside the data a head can output log-variances whose
        # exp overflows, and inf - inf turns a very low score into NaN. The bound
        # (posterior sd up to e^15 data scales) is never reached on the data:
        # pPCA's own log-variance log(s2 / L) is above -14 - log(d).
        return mean, self.logvar_head(h).clamp(-LOGVAR_BOUND, LOGVAR_BOUND)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_standardised(self.scale_in(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out = self.decoder(z)
        return out if self.bernoulli else self.scale_out(out)

    def expected_sq_error(
        self, xs: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None
    ) -> torch.Tensor:
        """E_q ||xs - f(z)||^2 per row, in standardised units.

        Exact for a linear decoder f(z) = W z + b:
        ||xs - f(m)||^2 + sum_j s_j^2 ||W_j||^2. Otherwise an average over
        z = m + s * eps for the draws ``eps`` (n_draws x rows-or-1 x k).
        """
        if self.linear:
            W = self.decoder.linear.weight
            spread = logvar.exp() @ torch.sum(W * W, dim=0)
            return torch.sum((xs - self.decoder(mean)) ** 2, dim=-1) + spread
        z = reparameterize(mean, logvar, eps)
        return torch.sum((xs - self.decoder(z)) ** 2, dim=-1).mean(0)

    @torch.no_grad()
    def start_at_ppca(
        self, components: torch.Tensor, variances: torch.Tensor, noise_variance: float
    ) -> None:
        """Start at the probabilistic-PCA optimum (Tipping & Bishop, 1999).

        With principal axes U (``components``, standardised units), their
        variances L and the noise variance s2, pPCA's decoder is
        W = U (L - s2 I)^(1/2) with variance c = s2, and its exact posterior is
        N(M^-1 W' x, s2 M^-1) with M = W'W + s2 I = L: a linear mean and a
        constant log-variance log(s2 / L). Corrections start at zero, so the
        ELBO starts equal to pPCA's log-likelihood. Latent dimensions beyond
        the given axes start at the prior and are ignored by the decoder. A
        Bernoulli decoder starts at the features' mean probabilities.
        """
        k = self.mean_head.out_features
        s2 = torch.as_tensor(noise_variance, dtype=variances.dtype)
        L = variances.clamp_min(s2)
        root = torch.sqrt(L - s2)
        posterior_mean = _padded((root / L)[:, None] * components.T, k)
        mean_map = self.skip if self.skip is not None else self.mean_head
        mean_map.weight.copy_(posterior_mean)
        mean_map.bias.zero_()
        if self.skip is not None:
            self.mean_head.weight.zero_()
            self.mean_head.bias.zero_()
        self.logvar_head.weight.zero_()
        self.logvar_head.bias.copy_(_padded(torch.log(s2 / L), k))
        W = _padded((components * root).T, k).T
        if self.bernoulli:
            p = self.offset.clamp(1e-3, 1 - 1e-3)
            self.decoder.start_linear(torch.zeros_like(W), torch.log(p / (1 - p)))
        else:
            self.decoder.start_linear(W)
            self.log_noise_variance.copy_(torch.log(s2))


# --------------------------------------------------------------------------- #
# The VAE's distributions, as pure functions
# --------------------------------------------------------------------------- #
def balanced_draws(
    n_draws: int, n_components: int, generator: torch.Generator, dtype: torch.dtype
) -> torch.Tensor:
    """Standard normal draws (n_draws x k) with sample mean 0 and covariance I exactly.

    Antithetic pairs (eps, -eps), interleaved, after whitening the first of
    each pair so that their second moment is the identity. A Monte Carlo
    average over these draws of any polynomial of degree two in eps is then
    exact: the expected squared error of a linear decoder has no Monte Carlo
    error, so a model that starts at probabilistic PCA scores exactly
    ``PCA.score``, and one near it nearly so. Needs ``n_draws >= 2k``.
    """
    half = n_draws // 2
    g = torch.randn(half, n_components, generator=generator, device=generator.device)
    g = g.to(dtype=torch.float64)
    cholesky = torch.linalg.cholesky(g.T @ g / half)
    g = torch.linalg.solve_triangular(cholesky, g.T, upper=False).T  # g'g / half = I
    return torch.stack([g, -g], dim=1).reshape(2 * half, n_components).to(dtype)


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = g(x) + h(x) * eps, differentiable in g and h (Kingma & Welling, eq. 10)."""
    return mean + torch.exp(0.5 * logvar) * eps


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(m, diag s^2) || N(0, I)) = 1/2 sum(m^2 + s^2 - 1 - log s^2), per row."""
    return 0.5 * torch.sum(mean**2 + logvar.exp() - 1.0 - logvar, dim=-1)


def gaussian_expected_log_prob(
    expected_sq_error: torch.Tensor, n_features: int, log_c: torch.Tensor
) -> torch.Tensor:
    """E_q log N(x; f(z), c I) = -E_q||x - f(z)||^2 / (2c) - d/2 log(2 pi c), per row."""
    return -0.5 * expected_sq_error * torch.exp(-log_c) - 0.5 * n_features * (_LOG_2PI + log_c)


def bernoulli_expected_log_prob(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """E_q log Bernoulli(x; sigmoid(f(z))), averaged over the draws in dimension 0."""
    bce = F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")
    return -bce.sum(-1).mean(0)


#: Smallest learned decoder variance, as a share of the data's variance.
C_FLOOR = 1e-6


def cycled_draws(module, x):
    """One fixed draw per row, row i taking score_eps[i % n_draws]: shape (1, rows, k)."""
    draws = module.score_eps
    return draws[torch.arange(len(x), device=draws.device) % len(draws)][None]


def optimal_log_variance(sq, n_features):
    """log c maximising the Gaussian ELBO: c = mean E_q||x - f(z)||^2 / d.

    Floored at ``C_FLOOR`` of the data's variance, so that a perfect fit (one
    row, constant features) keeps a finite likelihood.
    """
    return torch.log(torch.clamp(sq.mean() / n_features, min=C_FLOOR))
