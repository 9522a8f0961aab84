"""Probabilistic PCA with missing entries, fitted by EM.

A row's missing entries (NaN) are integrated out: every quantity is that of
the row's observed entries o under the model's marginal
N(mean_o, W_o W_o' + noise I), computed from the k x k matrix W_o'W_o
(Woodbury), one per pattern of observed entries, batched, in float64.
:func:`fit_em` is the exact EM algorithm of Tipping & Bishop (1999,
appendix) with the row-wise E-step of Ilin & Raiko (2010): each row's
posterior of z is conditioned on its observed entries, and the M-step
updates mean, W and noise jointly from the expected sufficient statistics,
posterior covariances included.

The noise may also be a variance per feature: factor analysis (Ghahramani &
Jordan 1994), which is probabilistic PCA of rescaled features
(:func:`_isotropic`), so every formula below is written once. The closed
forms given a row's observed entries (conditional means, draws,
likelihoods) are in :mod:`skvae._missing_forms`.

Nothing here imports scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ._placement import CHUNK_ELEMENTS
from ._subspace import discarded_variance, moments, principal_components
from ._training import History, interruptible

_LOG_2PI = math.log(2 * math.pi)


@dataclass
class PPCA:
    """Probabilistic PCA's parameters: x = weight z + mean + noise, z ~ N(0, I)."""

    mean: torch.Tensor  # (d,)
    weight: torch.Tensor  # (d, k)
    noise: float | torch.Tensor  # the isotropic noise variance, or one per feature (d,)


def _isotropic(model: PPCA) -> tuple[PPCA, torch.Tensor | None]:
    """``model`` in units where its noise is isotropic, and the features' unit
    change ``root`` (None where it already is): a per-feature noise psi is
    s2 * phi with s2 its mean, so y = x / sqrt(phi) is probabilistic PCA with
    weight W / sqrt(phi), mean mean / sqrt(phi) and noise s2. A density of y
    is one of x times prod sqrt(phi) over the entries it covers."""
    if not isinstance(model.noise, torch.Tensor):
        return model, None
    noise = model.noise.clamp_min(torch.finfo(model.noise.dtype).tiny)  # 0: no division by 0
    s2 = float(noise.mean())
    root = (noise / s2).sqrt()
    return PPCA(model.mean / root, model.weight / root[:, None], s2), root


def _rows_isotropic(x: torch.Tensor, model: PPCA):
    """``x`` and ``model`` in :func:`_isotropic`'s units, and the unit change."""
    iso, root = _isotropic(model)
    return (x, iso, None) if root is None else (x / root, iso, root)


def _outer(W: torch.Tensor) -> torch.Tensor:
    """Each row's outer product w_j w_j', flattened: (d, k * k)."""
    return (W[:, :, None] * W[:, None, :]).reshape(W.shape[0], -1)


def _row_chunks(n: int, width: int) -> list[tuple[int, int]]:
    step = max(1, CHUNK_ELEMENTS // max(width, 1))
    return [(a, min(a + step, n)) for a in range(0, n, step)]


# --------------------------------------------------------------------- fit
@dataclass
class _Sweep:
    """What one pass of E-steps over the rows gives the M-step and the monitor."""

    A: torch.Tensor  # (d, k+1, k+1): each column's sum over its rows of E[z~ z~']
    B: torch.Tensor  # (d, k+1): each column's sum of x_ij E[z~_i], z~ = (z, 1)
    loglik: float  # the observed-data log-likelihood of the training entries
    held_out: float  # the held-out entries' log-likelihood, each given its row's others


@dataclass
class _Patterns:
    """The rows ``a:b`` grouped by their pattern of training entries: rows
    with the same pattern share W_o'W_o, its factors and their posterior's
    covariance, which are computed once per pattern."""

    a: int
    b: int
    masks: torch.Tensor  # (P, d): the distinct patterns
    index: torch.Tensor  # (b - a,): each row's pattern
    weights: torch.Tensor  # (P, d): each pattern's mask times its number of rows


def group_rows(seen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The distinct rows of the 0/1 mask ``seen`` (n, d) as a (P, d) mask,
    each row's index among them (n,), and how many rows each has (P,): a
    sort of integers, each row's bits 62 columns at a time (torch.unique with
    dim=0 sorts whole rows, 10 to 30x slower here)."""
    n, d = seen.shape
    powers = 2 ** torch.arange(62, device=seen.device)
    bits = seen.to(torch.int64)
    index = torch.zeros(n, dtype=torch.int64, device=seen.device)
    for j in range(0, max(d, 1), 62):
        word = (bits[:, j : j + 62] * powers[: d - j]).sum(1)
        key = index * n + torch.unique(word, return_inverse=True)[1]
        _, index, counts = torch.unique(key, return_inverse=True, return_counts=True)
    return seen.new_zeros(len(counts), d).index_copy_(0, index, seen), index, counts


def _patterns(seen: torch.Tensor, k: int) -> list[_Patterns]:
    """``seen``'s rows, a chunk at a time, grouped by pattern (a tall table
    with few columns has few patterns: its E-step factors a few k x k
    matrices instead of one per row)."""
    groups = []
    for a, b in _row_chunks(len(seen), max(seen.shape[1], (k + 1) ** 2)):
        masks, index, counts = group_rows(seen[a:b])
        groups.append(_Patterns(a, b, masks, index, masks * counts[:, None]))
    return groups


def _sweep(X, seen, held, model: PPCA, groups: list[_Patterns] | None = None) -> _Sweep:
    """The E-step of every row, given its training entries (mask ``seen``;
    ``groups``, its rows by pattern, :func:`_patterns`), accumulated over
    chunks of rows; and the log-likelihood of the ``held``-out entries, each
    under its Gaussian given its row's training entries."""
    n, d = X.shape
    k = model.weight.shape[1]
    iso, root = _isotropic(model)
    W, noise, mean = iso.weight, iso.noise, iso.mean
    WW = _outer(W)
    eye = torch.eye(k, dtype=X.dtype, device=X.device)
    A = X.new_zeros(d, (k + 1) ** 2)
    B = X.new_zeros(d, k + 1)
    loglik, held_out = 0.0, 0.0
    for group in _patterns(seen, k) if groups is None else groups:
        a, b, index = group.a, group.b, group.index
        x, o = (X[a:b], seen[a:b]) if root is None else (X[a:b] / root, seen[a:b])
        # per pattern: M = W_o'W_o + s2 I, its Cholesky factor L, and
        # M^-1 = L^-T L^-1 by one batched triangular solve (batched LAPACK
        # calls on k x k matrices cost mostly their per-matrix overhead)
        L = torch.linalg.cholesky((group.masks @ WW).view(-1, k, k) + noise * eye)
        L_inv = torch.linalg.solve_triangular(L, eye.expand_as(L), upper=False)
        cov = noise * (L_inv.mT @ L_inv)  # the posterior covariance of z
        # det(W_o W_o' + s2 I) = s2^(n_obs - k) det(M)
        n_obs = group.masks.sum(dim=1)
        log_det = (n_obs - k) * math.log(noise) + 2 * torch.diagonal(L, 0, -2, -1).log().sum(-1)
        # per row: m = L^-T (L^-1 W_o'r), by the factors, not the product M^-1
        # (whose error near the noise floor moved the loss by more than EM's tolerance)
        rhs = ((o * (x - mean)) @ W).unsqueeze(-1)
        factor = L_inv[index]
        m = (factor.mT @ (factor @ rhs)).squeeze(-1)
        fit = mean + m @ W.T
        # with m = M^-1 W_o' r, r' (W_o W_o' + s2 I)^-1 r = |r - W_o m|^2 / s2 + |m|^2 (Woodbury)
        quad = ((o * (x - fit)) ** 2).sum(dim=1) / noise + (m**2).sum(dim=1)
        loglik += float(-0.5 * ((n_obs * _LOG_2PI + log_det)[index] + quad).sum())
        if held is not None:  # x_ij given x_o: N(fit_ij, s2 + w_j' cov w_j)
            var = (noise + cov.reshape(len(cov), -1) @ WW.T)[index]
            log_density = (x - fit) ** 2 / var + var.log() + _LOG_2PI
            held_out += float(-0.5 * (held[a:b] * log_density).sum())
        z1 = torch.cat([m, m.new_ones(len(m), 1)], dim=1)
        A += o.T @ (z1[:, :, None] * z1[:, None, :]).reshape(len(m), -1)
        A.view(d, k + 1, k + 1)[:, :k, :k] += (group.weights.T @ cov.reshape(len(cov), -1)).view(
            d, k, k
        )
        B += (o * x).T @ z1
    if root is not None:  # back to X's units: B's x, and the densities' Jacobian
        B *= root[:, None]
        log_root = root.log()
        loglik -= float(seen.sum(dim=0) @ log_root)
        if held is not None:
            held_out -= float(held.sum(dim=0) @ log_root)
    return _Sweep(A.view(d, k + 1, k + 1), B, loglik, held_out)


def _m_step(
    sweep: _Sweep, squares: torch.Tensor, counts: torch.Tensor, floor: float, per_feature: bool
) -> PPCA:
    """The exact joint update of mean, W and noise from the expected statistics.

    Each column's (w_j, mean_j) is the regression of its observed entries on
    E[(z, 1)] (whatever the noise, its own); the noise is the mean expected
    squared residual, which at the regression's optimum is sum_i x_ij^2 -
    theta_j' B_j summed over the columns, over the ``counts`` of their
    observed entries summed; with ``per_feature``, each column's over its own.
    """
    k = sweep.A.shape[1] - 1
    L = torch.linalg.cholesky(sweep.A)
    theta = torch.cholesky_solve(sweep.B.unsqueeze(-1), L).squeeze(-1)
    residual = squares - (theta * sweep.B).sum(dim=1)
    if per_feature:
        noise = (residual / counts.clamp_min(1)).clamp_min(floor)
    else:
        noise = max(float(residual.sum()) / float(counts.sum()), floor)
    return PPCA(theta[:, k].clone(), theta[:, :k].clone(), noise)


def _extrapolated(p0: PPCA, p1: PPCA, p2: PPCA, floor: float) -> PPCA | None:
    """SQUAREM's step (Varadhan & Roland 2008, their SqS3) from three successive
    EM iterates: theta0 - 2 a r + a^2 v, with r = theta1 - theta0, v = theta2 -
    2 theta1 + theta0, a = -|r| / |v| (at most -1; -1 gives theta2). The
    step length comes from mean and W, which share the data's units, so the
    path is the same in any units; the noise variance is extrapolated in log
    space, which keeps it positive. None where the step is EM's own (theta2)."""
    r = [p1.mean - p0.mean, p1.weight - p0.weight]
    v = [p2.mean - 2 * p1.mean + p0.mean, p2.weight - 2 * p1.weight + p0.weight]
    r2, v2 = (float(sum((t * t).sum() for t in ts)) for ts in (r, v))
    if not (v2 > 0 and r2 > v2):  # a step of at most one EM step's length: EM's
        return None
    a = -math.sqrt(r2 / v2)

    def step(t0, dr, dv):
        return t0 - 2 * a * dr + a * a * dv

    logs = [torch.as_tensor(p.noise, dtype=p0.mean.dtype).log() for p in (p0, p1, p2)]
    log_noise = step(logs[0], logs[1] - logs[0], logs[2] - 2 * logs[1] + logs[0])
    noise = log_noise.clamp_max(700.0).exp().clamp_min(floor)  # one, or one per feature
    noise = noise if isinstance(p0.noise, torch.Tensor) else float(noise)
    return PPCA(step(p0.mean, r[0], v[0]), step(p0.weight, r[1], v[1]), noise)


def _em_path(
    X, seen, held, model: PPCA, squares, counts, floor, accelerate: bool = True
) -> Iterator[tuple[PPCA, _Sweep]]:
    """EM's iterates with their E-steps, accelerated by SQUAREM: after every two
    EM steps, a jump along their path (:func:`_extrapolated`), kept if it
    raises the training entries' likelihood above the second step's (the
    path then goes on from it; else from the second step, and the rejected
    jump's E-step is neither yielded nor counted). The likelihood never
    falls. Up to the first kept jump the path is plain EM's, so a held-out
    optimum within the first two steps is found where plain EM finds it.
    Where EM crawls (its convergence is linear), it took about a quarter
    fewer E-steps. Without ``accelerate``, plain EM."""

    per_feature = isinstance(model.noise, torch.Tensor)
    groups = _patterns(seen, model.weight.shape[1])

    def m_step(sweep):
        return _m_step(sweep, squares, counts, floor, per_feature)

    sweep = _sweep(X, seen, held, model, groups)
    yield model, sweep
    while True:
        first = m_step(sweep)
        first_sweep = _sweep(X, seen, held, first, groups)
        yield first, first_sweep
        second = m_step(first_sweep)
        second_sweep = _sweep(X, seen, held, second, groups)
        yield second, second_sweep
        jump = _extrapolated(model, first, second, floor) if accelerate else None
        if jump is not None:
            try:
                jump_sweep = _sweep(X, seen, held, jump, groups)
            except torch.linalg.LinAlgError:  # a jump too far for a Cholesky factor
                jump = None
            else:
                if not jump_sweep.loglik >= second_sweep.loglik:  # NaN too
                    jump = None
        if jump is None:
            model, sweep = second, second_sweep
        else:
            yield jump, jump_sweep
            model, sweep = jump, jump_sweep


def _start(X, seen, k: int, generator: torch.Generator) -> tuple[PPCA, float]:
    """PCA of the column-mean-filled data, as probabilistic PCA; and a floor
    for the noise variance (EM's updates need it positive)."""
    mean = (X * seen).sum(dim=0) / seen.sum(dim=0)
    mom = moments(torch.where(seen.bool(), X, mean), X.device)
    rank = mom.matrix.shape[0]  # min(n, d)
    k_eff = min(k, rank)
    basis, variances = principal_components(mom, k_eff, generator)
    scale = max(mom.total_variance / X.shape[1], torch.finfo(X.dtype).tiny)
    # away from the degenerate W = 0 and noise = 0, both fixed points of EM
    noise = max(discarded_variance(mom, variances) if k_eff < rank else 0.0, 1e-2 * scale)
    weight = X.new_zeros(X.shape[1], k)
    weight[:, :k_eff] = basis * (variances - noise).clamp_min(1e-2 * scale).sqrt()
    return PPCA(mean, weight, noise), _noise_floor(X, seen)


def _noise_floor(X, seen) -> float:
    """EM's floor for the noise variance: 1e-10 of the mean variance of the
    column-mean-filled data (X centred on its observed means, 0 where not
    ``seen``)."""
    scale = float(((X * seen) ** 2).sum()) / X.numel()
    return 1e-10 * max(scale, torch.finfo(X.dtype).tiny)


def hold_out(seen: torch.Tensor, fraction: float, generator: torch.Generator):
    """A random ``fraction`` of the observed entries ``seen`` as a mask, leaving
    each column at least one; None when none is left to hold out."""
    draw = torch.rand(seen.shape, generator=generator, device=generator.device, dtype=seen.dtype)
    held = seen * (draw.to(seen.device) < fraction)
    held[:, (seen - held).sum(dim=0) < 1] = 0
    return held if bool(held.any()) else None


def fit_em(
    X: torch.Tensor,
    k: int,
    generator: torch.Generator,
    *,
    max_iter: int = 1000,
    tol: float = 1e-4,
    n_iter_no_change: int = 10,
    validation_fraction: float | None = 0.1,
    held: torch.Tensor | None = None,
    start: PPCA | None = None,
    accelerate: bool = True,
    per_feature_noise: bool = False,
    verbose: int = 0,
    log: Callable[[str], None] = print,
) -> tuple[PPCA, History]:
    """EM for probabilistic PCA on ``X`` (float64, NaN where missing).

    With ``validation_fraction``, that share of the observed entries is held
    out, EM runs on the others, and the parameters under which the held-out
    entries were likeliest (each given its row's other entries) are returned:
    run to its maximum likelihood, EM overfits the observed entries when many
    are missing, its noise variance collapsing and its predictions of the
    missing entries worsening. ``held``, a 0/1 mask of observed entries, holds
    out those entries instead. Without either, EM runs to the maximum
    likelihood of all the observed entries.

    EM starts at PCA of the column-mean-filled rows, or at ``start`` (of
    X's d features and width ``k``) if given. With ``accelerate``, SQUAREM
    jumps along EM's path between its steps (:func:`_em_path`); each step
    and kept jump counts as one of ``max_iter``. With ``per_feature_noise``,
    each feature has its own noise variance: factor analysis (from a start
    of isotropic noise, unless ``start`` has one per feature).

    Stops after ``n_iter_no_change`` successive steps that improve neither the
    held-out entries' log-likelihood nor the training entries' by more than
    ``tol`` nats per entry, or after ``max_iter``: absolute changes, which a
    change of the data's units leaves as they are (a log-likelihood per entry
    moves by the log of the scale), so EM stops at the same step in any units.
    ``loss_curve`` is minus the training entries' log-likelihood per entry,
    ``validation_scores`` the held-out entries' per entry, each of the
    parameters before the step (the first, of the start).
    """
    seen = (~torch.isnan(X)).to(X.dtype)
    # centred on the observed means, so that the noise update's sums of squares
    # do not cancel digits (0 where missing)
    shift = torch.nan_to_num(X, nan=0.0).sum(dim=0) / seen.sum(dim=0)
    X = torch.nan_to_num(X - shift, nan=0.0)
    if held is None and validation_fraction:
        held = hold_out(seen, validation_fraction, generator)
    if held is not None:
        seen = seen - held
    if start is None:
        model, floor = _start(X, seen, k, generator)
    else:
        floor = _noise_floor(X, seen)
        model = PPCA(start.mean.to(X) - shift, start.weight.to(X), start.noise)
    noise = torch.as_tensor(model.noise, dtype=X.dtype, device=X.device)
    if per_feature_noise:
        noise = noise.expand(X.shape[1]).clamp_min(floor)
    else:
        noise = float(noise.mean().clamp_min(floor))
    model = PPCA(model.mean, model.weight, noise)
    squares = ((X * seen) ** 2).sum(dim=0)
    counts = seen.sum(dim=0)
    n_obs, n_held = float(counts.sum()), None if held is None else float(held.sum())
    history = History()
    best, flat, since_best = model, 0, 0
    path = _em_path(X, seen, held, model, squares, counts, floor, accelerate)
    with interruptible() as interrupt:
        for it, (model, sweep) in zip(range(1, max_iter + 1), path, strict=False):
            loss = -sweep.loglik / n_obs
            previous = history.loss_curve[-1] if history.loss_curve else math.inf
            history.loss_curve.append(loss)
            flat = flat + 1 if previous - loss < tol else 0
            if held is None:
                best = model
            else:
                score = sweep.held_out / n_held
                history.validation_scores.append(score)
                top = history.best_validation_score
                if top is None or score > top + tol:
                    since_best = 0
                else:
                    since_best += 1
                if top is None or score > top:
                    history.best_validation_score, best = score, model
            if verbose:
                log(f"EM step {it}: minus log-likelihood per observed entry {loss:.10g}")
            history.n_iter = it
            if since_best >= n_iter_no_change or flat >= n_iter_no_change:
                history.converged = True
                break
            if interrupt.requested:
                history.interrupted = True
                break
    if held is None:  # the parameters after the last E-step
        if history.n_iter > 0:
            model = _m_step(sweep, squares, counts, floor, per_feature_noise)
        best = model
        history.best_loss = min(history.loss_curve, default=math.inf)
    else:
        history.best_loss = None
    return PPCA(best.mean + shift, best.weight, best.noise), history


def has_nan(X) -> bool:
    """Whether a dense array or tensor holds a NaN: min propagates it, one pass, no copy."""
    if isinstance(X, torch.Tensor):
        return X.numel() > 0 and bool(torch.isnan(X.min()))
    return isinstance(X, np.ndarray) and X.size > 0 and bool(np.isnan(X.min()))
