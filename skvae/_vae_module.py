"""The VAE as a torch module with its verbs: encode, decode, elbo (the reparameterisation
is the likelihood families' own, :func:`~skvae._likelihoods._family.reparameterize`).

After pytorch/examples' VAE, each verb is a few lines with its equation; the
decoder's distribution is a likelihood family (:mod:`skvae._likelihoods`), so
nothing here branches on which one. No scikit-learn.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import torch

from ._conditional import ImportanceImputation
from ._likelihoods import C_FLOOR, Family
from ._likelihoods._family import reparameterize
from ._modules import ACTIVATIONS, LinearPlusMLP, ScaledIO, _linear, mlp, padded, unread

#: Smallest noise variance of the start, as a share of the data's variance.
NOISE_FLOOR = C_FLOOR

#: Bound on the posterior log-variance (standardised units).
LOGVAR_BOUND = 30.0


class VAEModule(ImportanceImputation, ScaledIO):
    """Gaussian encoder x -> (g(x), log h(x)^2), decoder z -> f(z), family p(x | f(z)).

    With hidden layers, the mean is an affine map of the encoder's input plus
    an MLP head on a shared body, the log variance an MLP head on that body,
    and the decoder an affine map plus an MLP correction; without them all
    three are affine. The encoder reads ``family.encoder_input(x)``
    standardised (see :class:`~skvae._modules.ScaledIO`).

    The buffer ``score_eps`` holds draws of eps ~ N(0, I), fixed once per fit
    (:func:`balanced_draws`, at least twice as many as latent dimensions),
    with which the ELBO is estimated when it has no closed form.
    """

    def __init__(
        self,
        n_features: int,
        n_components: int,
        hidden_layer_sizes: Sequence[int],
        activation: str,
        family: Family,
        dtype: torch.dtype,
    ) -> None:
        super().__init__()
        hidden = list(hidden_layer_sizes)
        self.body = mlp([n_features, *hidden], activation, dtype)
        if hidden:
            self.body.append(ACTIVATIONS[activation]())
        width = hidden[-1] if hidden else n_features
        self.skip = _linear(n_features, n_components, dtype) if hidden else None
        self.mean_head = _linear(width, n_components, dtype)
        self.logvar_head = _linear(width, n_components, dtype)
        self.decoder = LinearPlusMLP(n_components, n_features, hidden[::-1], activation, dtype)
        self.family = family
        n_draws = max(32, 2 * n_components)
        self.register_buffer("score_eps", torch.zeros(n_draws, n_components, dtype=dtype))
        self._init_scaling(n_features, dtype)

    # ----------------------------------------------------------- the verbs
    def standardised_input(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale_in(self.family.encoder_input(x))

    def encode_standardised(self, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.skip is not None and unread(self.mean_head, self.logvar_head):
            # the heads ignore the body (a PCA start): its MLP need not run
            mean = self.skip(xs) + self.mean_head.bias
            logvar = self.logvar_head.bias.expand(*mean.shape)
            return mean, logvar.clamp(-LOGVAR_BOUND, LOGVAR_BOUND)
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
        """The posterior q(z|x) = N(mean, diag exp(logvar)) of each row."""
        return self.encode_standardised(self.standardised_input(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The mean of p(x|z) in the data's units."""
        out = self.decoder(z)
        return self.scale_out(out) if self.family.standardised else self.family.mean(out)

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """What the family's log-density reads: x, standardised if the family is."""
        return self.scale_in(x) if self.family.standardised else x

    def exact(self) -> bool:
        """E_q log p(x|z) has a closed form (no draws needed)."""
        return self.family.exact(self.decoder)

    def elbo(self, x, eps, beta=1.0, mask=None, fit=False) -> torch.Tensor:
        """Per-row E_q log p(x|z) - beta KL(q(z|x) || N(0, I)) (Kingma & Welling, eq. 3),
        in the family's units (see :meth:`log_unit_change`).

        ``eps`` (draws x rows-or-1 x k) are the draws of the reparameterisation;
        None where :meth:`exact`. ``fit`` marks a training batch.
        """
        xs = self.standardised_input(x)
        mean, logvar = self.encode_standardised(xs)
        # a standardised family reads what the encoder reads: standardise once
        same = self.family.standardised and not self.family.transforms_input()
        target = xs if same else self.target(x)
        expected = self.family.expected_log_prob(
            self.decoder, target, mean, logvar, eps, mask, fit
        )
        return expected - beta * kl_to_standard_normal(mean, logvar)

    def check_support(self, X) -> None:
        """Raise a ``ValueError`` for rows outside the likelihood's support."""
        self.family.check(X)

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean g(x) of each row: the deterministic code (``transform``)."""
        return self.encode(x)[0]

    def posterior(self, x: torch.Tensor, mask=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior's mean g(x) and standard deviation h(x) of each row (the
        encoder's, of a row with missing entries filled by :meth:`fill_missing`:
        ``mask`` changes nothing)."""
        mean, logvar = self.encode(x)
        return mean, torch.exp(0.5 * logvar)

    def sample_around(self, means, rng):
        """Draws from p(x | z) around decoded ``means`` (a NumPy array), by the family."""
        return self.family.sample(means, rng, float(self.scale))

    def score_copies(self, n_importance: int = 1) -> int:
        """How many times :meth:`score_rows` runs the decoder on each row."""
        if n_importance > 1:
            return n_importance
        return 1 if self.exact() else len(self.score_eps)

    def score_rows(self, x: torch.Tensor, n_importance: int = 1, mask=None) -> torch.Tensor:
        """An estimate of log p(x) for each row, in the data's units.

        ``n_importance=1``: the ELBO (beta = 1, so that it bounds log p(x)),
        over the draws fixed at fit time (exact for a linear Gaussian VAE).
        K > 1: the importance-weighted bound of Burda et al. (2016),
        log (1/K) sum_k p(x, z_k) / q(z_k | x), over K draws fixed by the fit
        (:meth:`importance_draws`) and shared by every row. It is at least the
        ELBO in expectation, and tends to log p(x) as K grows; where q(z|x) is
        the exact posterior (a linear VAE at probabilistic PCA), every
        weight is p(x) and every K gives log p(x) itself. With ``mask``, of
        each row's observed entries (0 for a row with none).
        """
        if n_importance <= 1:
            eps = None if self.exact() else self.score_eps[:, None, :]
            score = self.elbo(x, eps, mask=mask)
        else:
            score = self.log_mean_weight(x, self.importance_draws(n_importance)[:, None, :], mask)
        if mask is None:
            return score + self.log_unit_change()
        n_observed = mask.sum(-1, dtype=x.dtype)  # the unit change is per entry
        unit = self.log_unit_change() * n_observed / x.shape[-1]
        return torch.where(n_observed > 0, score + unit, 0.0)

    def score_entries(self, x: torch.Tensor, n_importance: int = 1) -> torch.Tensor:
        """Each feature's share of :meth:`score_rows` (rows x features).

        The expected log-likelihood of each entry under the posterior, over
        the same draws as the row's score, self-normalised importance weights
        for K > 1: sum_k w_k log p(x_j | z_k). What the row's score has beyond
        these (the code's cost: the KL, or the weighted log p(z)/q(z|x) less
        the weights' entropy) is shared equally between the features, so each
        row sums to :meth:`score_rows` exactly.
        """
        if n_importance <= 1:
            total = self.score_rows(x)
            target, out, _ = self._draws(x, self.score_eps[:, None, :])
            shares = self.family.log_prob_entries(target, out).mean(0)
        else:  # one pass gives both the weights and the entries
            target, out, prior_over_q = self._draws(
                x, self.importance_draws(n_importance)[:, None, :]
            )
            entries = self.family.log_prob_entries(target, out)
            log_w = entries.sum(-1) + prior_over_q
            total = torch.logsumexp(log_w, dim=0) - math.log(n_importance) + self.log_unit_change()
            shares = (torch.softmax(log_w, dim=0)[..., None] * entries).sum(0)
        shares = shares + self.log_unit_change() / x.shape[-1]
        return shares + ((total - shares.sum(-1)) / x.shape[-1])[:, None]

    def _draws(self, x, eps):
        """At z = g(x) + h(x) eps: what the family reads, the decoder's output, and
        log p(z) - log q(z | x) = (|eps|^2 - |z|^2) / 2 + sum log s (no 2 pi, no
        division by s), for each draw and row."""
        xs = self.standardised_input(x)
        mean, logvar = self.encode_standardised(xs)
        z = reparameterize(mean, logvar, eps)
        same = self.family.standardised and not self.family.transforms_input()
        prior_over_q = 0.5 * (torch.sum(eps * eps, -1) - torch.sum(z * z, -1) + logvar.sum(-1))
        return (xs if same else self.target(x)), self.decoder(z), prior_over_q

    def log_weights(self, x, eps, mask=None) -> torch.Tensor:
        """log p(x | z) + log p(z) - log q(z | x) at z = g(x) + h(x) eps, for each
        draw and row (draws x rows), in the family's units."""
        target, out, prior_over_q = self._draws(x, eps)
        return self.family.log_prob(target, out, mask) + prior_over_q

    def log_mean_weight(self, x, eps, mask=None) -> torch.Tensor:
        """log (1/K) sum_k of the K = len(eps) importance weights of each row."""
        return torch.logsumexp(self.log_weights(x, eps, mask), dim=0) - math.log(len(eps))

    def importance_draws(self, n: int) -> torch.Tensor:
        """``n`` draws of eps (n x k) for the importance-weighted score, the same
        at every call: seeded from the draws fixed at fit time, and balanced
        (:func:`balanced_draws`) where ``n >= 2k``."""
        eps = self.score_eps
        seed = zlib.crc32(eps.detach().cpu().numpy().tobytes())
        generator = torch.Generator().manual_seed(seed)
        k = eps.shape[1]
        draws = torch.randn(n, k, generator=generator, dtype=torch.float64)
        if n >= 2 * k:  # an odd n keeps its last plain draw
            draws[: n - n % 2] = balanced_draws(n, k, generator, torch.float64)
        return draws.to(device=eps.device, dtype=eps.dtype)

    def loss_in_data_units(self, loss: float, observed: float = 1.0) -> float:
        """A training loss (minus an ELBO, family units) in the data's units: e.g.
        p(x) = p(x_s) / scale^d, so a log-density in data units is d log(scale)
        lower; a loss of the ``observed`` share of the entries changes by that share."""
        return loss - observed * self.log_unit_change()

    def log_unit_change(self) -> float:
        """A log-density in the data's units minus one in the family's."""
        return self.family.log_unit_change(float(self.scale))

    @torch.no_grad()
    def set_scaling(self, X, max_rows=4096, mean=None) -> None:
        super().set_scaling(X, max_rows, mean)
        self.family.on_scaling(float(self.scale))

    @torch.no_grad()
    def start_at_pca(
        self,
        components: torch.Tensor,
        variances: torch.Tensor,
        noise_variance: float,
    ) -> None:
        """Start at the probabilistic-PCA optimum (Tipping & Bishop, 1999).

        With principal axes U (``components``) of the standardised encoder
        input, their variances L and the noise variance s2, pPCA's decoder is
        W = U (L - s2 I)^(1/2) with variance c = s2, and its exact posterior is
        N(M^-1 W' x, s2 M^-1) with M = W'W + s2 I = L: a linear mean and a
        constant log-variance log(s2 / L). Corrections start at zero, so a
        Gaussian ELBO starts equal to pPCA's log-likelihood. Latent dimensions
        beyond the given axes start at the prior and are ignored by the
        decoder. The family sets the decoder from W (see also :meth:`calibrate`).
        """
        k = self.mean_head.out_features
        # the floor keeps log s2 finite (one row, constant features)
        noise_variance = max(self.family.start_noise_variance(noise_variance), NOISE_FLOOR)
        s2 = torch.as_tensor(noise_variance, dtype=variances.dtype)
        L = variances.clamp_min(s2)
        root = torch.sqrt(L - s2)
        posterior_mean = padded((root / L)[:, None] * components.T, k)
        mean_map = self.skip if self.skip is not None else self.mean_head
        mean_map.weight.copy_(posterior_mean)
        mean_map.bias.zero_()
        if self.skip is not None:
            self.mean_head.weight.zero_()
            self.mean_head.bias.zero_()
        self.logvar_head.weight.zero_()
        self.logvar_head.bias.copy_(padded(torch.log(s2 / L), k))
        W = padded((components * root).T, k).T
        self.family.start(self.decoder, W, float(s2))

    @torch.no_grad()
    def calibrate(self, rows: torch.Tensor) -> None:
        """Let the family set what PCA does not give (a bias, a dispersion) from
        some training ``rows`` and their codes at the start."""
        self.family.calibrate(self.decoder, rows, self.encode(rows)[0])


# --------------------------------------------------------------------------- #
# The posterior's distributions, as pure functions
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


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(m, diag s^2) || N(0, I)) = 1/2 sum(m^2 + s^2 - 1 - log s^2), per row."""
    return 0.5 * torch.sum(mean**2 + logvar.exp() - 1.0 - logvar, dim=-1)


def cycled_draws(module: VAEModule, x: torch.Tensor) -> torch.Tensor:
    """One fixed draw per row, row i taking score_eps[i % n_draws]: shape (1, rows, k)."""
    draws = module.score_eps
    return draws[torch.arange(len(x), device=draws.device) % len(draws)][None]
