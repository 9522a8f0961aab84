"""E[x_miss | x_obs] under a deep model, by adaptive self-normalised importance sampling.

The model, in the networks' standardised units: z ~ N(m0, S0), and
x | z ~ N(f(z), s2 I), f the decoder, an affine map A z + b plus an MLP
correction (:class:`~skvae._modules.LinearPlusMLP`). For a row with observed
entries o, the proposal is the exact posterior of the affine part,
N(mu, P^-1) with P = S0^-1 + A_o'A_o / s2 and mu = P^-1 (S0^-1 m0 + A_o'(x_o - b_o) / s2).
Each round draws K points z_k = mu + L eps_k from it (L L' = P^-1 at first,
the same balanced draws eps for every row), weighs them by
p(x_o | z) p(z) / q(z) (self-normalised), and moves the proposal to their
weighted mean and covariance (adaptive importance sampling), until it stops
moving.
The answer is the last round's weighted mean of f(z) on the missing entries,
and a draw is one z_k picked by its weight, decoded, plus noise
(sampling-importance-resampling).

Where the correction is zero (a deep model at its probabilistic-PCA start),
the proposal is the exact posterior, the weights are all equal, and the
answer is probabilistic PCA's conditional mean, A_m mu + b_m, exactly (the
draws have mean 0 exactly). Elsewhere it converges to the model's
conditional mean as K grows.

Nothing here imports scikit-learn.
"""

from __future__ import annotations

import torch

#: the move of the proposal's centre, in its standard deviations, below which
#: the rounds stop
TOL = 5e-2


def affine_posterior(decoder, xs, mask, prior_mean, prior_precision, noise):
    """Each row's posterior N(mu, P^-1) under the affine part of ``decoder`` (a
    ``LinearPlusMLP``), given its observed entries: (mu, a square root of P^-1)."""
    A, b = decoder.linear.weight, decoder.linear.bias  # (d, k), (d,)
    k = A.shape[1]
    o = mask.to(xs.dtype)
    outer = (A[:, :, None] * A[:, None, :]).reshape(len(A), k * k)
    precision = (o @ outer).view(-1, k, k) / noise + prior_precision
    shift = prior_precision @ prior_mean + (o * (xs - b)) @ A / noise
    chol = torch.linalg.cholesky(precision)
    mean = torch.cholesky_solve(shift.unsqueeze(-1), chol).squeeze(-1)
    # P^-1 = L^-T L^-1: its Cholesky-like factor is L^-T (L lower, from P)
    eye = torch.eye(k, dtype=xs.dtype, device=xs.device).expand_as(chol)
    factor = torch.linalg.solve_triangular(chol, eye, upper=False).transpose(-1, -2)
    return mean, factor


def weighted_draws(decoder, xs, mask, prior_mean, prior_cov, noise, eps, rounds: int):
    """The last round's draws z (K, n, k), decoded f(z) (K, n, d) and
    self-normalised weights (K, n) for each row (see the module's docstring):
    a row's rounds stop once its proposal's centre moves by less than ``TOL``
    of its standard deviations, or after ``rounds``."""
    prior_precision = torch.linalg.inv(prior_cov)
    mean, factor = affine_posterior(decoder, xs, mask, prior_mean, prior_precision, noise)
    o = mask.to(xs.dtype)
    # log q(z) - const = -|eps|^2 / 2 for every row (the factor's determinant cancels)
    log_q = -0.5 * (eps * eps).sum(-1)[:, None]
    z_all = xs.new_empty(len(eps), *mean.shape)
    out_all = xs.new_empty(len(eps), *xs.shape)
    weights_all = xs.new_empty(len(eps), len(xs))
    active = torch.arange(len(xs), device=xs.device)
    for step in range(rounds):
        z = mean + torch.einsum("nij,kj->kni", factor, eps)
        out = decoder(z)
        log_lik = -0.5 * ((o[active] * (xs[active] - out)) ** 2).sum(-1) / noise
        centred = z - prior_mean
        log_prior = -0.5 * (centred * (centred @ prior_precision)).sum(-1)
        weights = torch.softmax(log_lik + log_prior - log_q, dim=0)
        z_all[:, active], out_all[:, active], weights_all[:, active] = z, out, weights
        previous, sd = mean, torch.linalg.vector_norm(factor, dim=-1)  # rows of L: the sds
        mean, factor = _moved(z, weights, factor)
        moving = ((mean - previous) / sd).abs().amax(-1) >= TOL
        if step == rounds - 1 or not bool(moving.any()):
            break
        active, mean, factor = active[moving], mean[moving], factor[moving]
    return z_all, out_all, weights_all


def _moved(z, weights, factor):
    """The next proposal: the draws' weighted mean, and their weighted covariance
    shrunk towards the current proposal's with the weight of k draws against
    the effective sample size (so that a few dominant draws cannot collapse it).
    With equal weights on balanced draws it is the current proposal's exactly."""
    k = z.shape[-1]
    mean = (weights[..., None] * z).sum(0)
    centred = z - mean
    spread = torch.einsum("kn,kni,knj->nij", weights, centred, centred)
    ess = (1.0 / (weights**2).sum(0))[:, None, None]
    current = factor @ factor.transpose(-1, -2)
    cov = (ess * spread + k * current) / (ess + k)
    return mean, torch.linalg.cholesky(cov)


def conditional_fill(decoder, xs, mask, prior_mean, prior_cov, noise, eps, rounds: int):
    """E[f(z) | x_o] for each row and entry (standardised units)."""
    _, out, weights = weighted_draws(decoder, xs, mask, prior_mean, prior_cov, noise, eps, rounds)
    return (weights[..., None] * out).sum(0)


def conditional_draw(
    decoder, xs, mask, prior_mean, prior_cov, noise, eps, rounds, uniform, normal
):
    """One draw of each row given its observed entries: a z_k picked by its weight
    (``uniform``: one U(0, 1) per row), decoded, plus N(0, noise) (``normal``:
    standard normal, rows x features)."""
    _, out, weights = weighted_draws(decoder, xs, mask, prior_mean, prior_cov, noise, eps, rounds)
    cumulative = weights.cumsum(0)
    pick = (cumulative < uniform[None, :] * cumulative[-1]).sum(0).clamp_max(len(weights) - 1)
    chosen = out[pick, torch.arange(out.shape[1], device=out.device)]
    return chosen + noise**0.5 * normal


class ImportanceImputation:
    """The model verb ``impute``, for a model with a ``LinearPlusMLP`` ``decoder``
    and :class:`~skvae._modules.ScaledIO`'s standardisation and ``fill_missing``."""

    def impute(self, x, prior, noise_variance, draws, rounds, uniform=None, normal=None):
        """Rows ``x`` with each missing entry (NaN) at E[x_miss | x_obs] under the
        model with latent ``prior`` (mean, covariance) and a Gaussian decoder of
        ``noise_variance`` (data units); with ``uniform`` and ``normal`` (see
        :func:`conditional_draw`), one draw from the conditional instead."""
        filled, mask = self.fill_missing(x)
        xs = self.scale_in(filled)
        noise = max(noise_variance / float(self.scale) ** 2, 1e-12)  # standardised
        args = (self.decoder, xs, mask, *prior, noise, draws, rounds)
        if uniform is None:
            fill = conditional_fill(*args)
        else:
            fill = conditional_draw(*args, uniform, normal)
        return torch.where(mask, x, self.scale_out(fill))
