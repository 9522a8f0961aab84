"""The VAE's training objective and how held-out rows judge its weights.

Minus the beta-weighted ELBO of a batch, with fresh reparameterisation draws
(fixed ones for full-batch L-BFGS), and per-row held-out losses. Plain torch:
:class:`~skvae._training.Objective` is all the trainer sees.
"""

from __future__ import annotations

import torch
from torch import nn

from ._deep_missing import observed
from ._placement import BATCH_ELEMENTS
from ._training import Objective
from ._vae_module import cycled_draws

#: Importance draws per held-out row in the score that each epoch is judged by.
VALIDATION_DRAWS = 2
#: Draws per row of the first judge where that score cannot tell the best epoch
#: from the start; the second uses all the fit's draws (at least 32).
JUDGE_DRAWS = 8


def vae_objective(module, generator, beta: float, lbfgs: bool, masked: bool) -> Objective:
    """The :class:`Objective` of a VAE ``module``.

    The family may learn statistics of its own from the training batches (the
    Gaussian's decoder variance: see
    :class:`~skvae._likelihoods._gaussian.Gaussian`), through the epoch hooks;
    with several ranks, from all the ranks' rows. Full-batch L-BFGS needs a
    deterministic objective, so it uses one fixed draw per row.

    Held-out rows judge the weights by log p(x), not by the ELBO: the start
    (probabilistic PCA's exact posterior) has no inference gap and trained
    networks do, which can hide their gain from the ELBO entirely. Each epoch
    is scored by an importance-weighted bound with two draws per row (one more
    decoder pass); where that cannot tell the best epoch from the start, with
    eight, then all the fit's draws (the ``judges``, once per fit, the second
    only where the first leaves it open). With ``beta != 1`` (the
    objective is not a bound) or a closed-form ELBO, the beta-weighted ELBO
    judges. ``masked``: each row's missing entries (NaN) are read at the
    networks' offset by the encoder and left out of the likelihood.
    """
    exact = module.exact()

    def draws(x):
        if exact:
            return None  # not needed: E_q is exact
        if lbfgs:
            return cycled_draws(module, x)
        shape = (1, len(x), module.score_eps.shape[1])
        return torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype)

    def rows(x):
        return observed(module, x) if masked else (x, None)

    def loss(module, x):
        x, mask = rows(x)
        return -module.elbo(x, draws(x), beta, mask, fit=True).mean()

    bound = not exact and beta == 1

    def row_loss(module, x):
        x, mask = rows(x)
        if bound:
            return minus_importance_bound(module, x, VALIDATION_DRAWS, mask)
        eps = None if exact else cycled_draws(module, x)
        return -module.elbo(x, eps, beta, mask)

    def judge(n_draws):
        def row_loss(module, x):
            x, mask = rows(x)
            return minus_importance_bound(module, x, n_draws, mask)

        return row_loss

    def begin_epoch(module, total):
        module.family.begin_epoch()

    def end_epoch(module, total):
        module.family.end_epoch(total)

    judges = (judge(JUDGE_DRAWS), judge(None)) if bound else ()
    # the probabilistic-PCA start's posterior is exact for complete rows only:
    # a zero-filled row has an inference gap
    return Objective(loss, row_loss, begin_epoch, end_epoch, judges, exact_start=not masked)


def minus_importance_bound(module, x, n_draws=None, mask=None):
    """Minus the importance-weighted bound of log p(x) of each row (Burda et al.,
    2016), log (1/K) sum_k p(x | z_k) p(z_k) / q(z_k | x), in the family's units.

    The draws are those fixed at fit time (``score_eps``, balanced): all of
    them (K >= 32) for every row, or ``n_draws`` of them per row, row i taking
    draws iK to iK + K - 1 (cycled): with K = 2 an antithetic pair (eps, -eps).
    Exact, for any K, where q(z|x) is the exact posterior (the PCA start); it
    costs K decoder passes.
    """
    draws = module.score_eps
    # rows x draws <= 4096, and activations of at most BATCH_ELEMENTS: 4096 rows
    # x 2000 features were 62.5 MiB a tensor, and 128 rows x 8 draws of them,
    # several alive at once, 80 MiB over a sparse fit's peak
    width = max(
        [x.shape[-1]] + [m.out_features for m in module.modules() if isinstance(m, nn.Linear)]
    )
    n_eps = len(draws) if n_draws is None else n_draws
    step = max(1, min(4096, BATCH_ELEMENTS // width) // n_eps)
    if n_draws is None:
        eps = draws[:, None, :]
    else:
        rows, ks = (
            torch.arange(len(x), device=draws.device),
            torch.arange(n_draws, device=draws.device),
        )
        eps = draws[(rows[None, :] * n_draws + ks[:, None].to(rows)) % len(draws)]
    out = x.new_empty(0)
    for a in range(0, len(x), step):
        e = eps if n_draws is None else eps[:, a : a + step]
        part_mask = None if mask is None else mask[a : a + step]
        part = -module.log_mean_weight(x[a : a + step], e, part_mask)
        if a == 0:  # one output, not a list of parts: those pinned freed blocks
            out = part.new_empty((len(x), *part.shape[1:]))
        out[a : a + step] = part
    return out
