"""Full-batch L-BFGS for :class:`skvae._training.Trainer` (``solver="lbfgs"``).

It shares the trainer's objective, configuration and history with Adam, and
its stopping rules with every loop (:mod:`skvae._stopping`); it is kept apart
only because it is a different loop: one step per iteration over all rows,
with a line search and a restart when the curvature memory stalls.
"""

from __future__ import annotations

import torch

from ._distributed import LOCAL
from ._stopping import _check_finite, _Stopper


def fit_lbfgs(trainer, X: torch.Tensor) -> None:
    """Full-batch L-BFGS with a strong-Wolfe line search; one iteration per step.

    Converges when the largest gradient entry is at most ``tol`` times the
    starting loss's magnitude (at least ``tol``), or when the loss has not
    improved by ``tol / 100`` (relative) for ``n_iter_no_change`` iterations.
    It stops, unconverged, when no step lowers the loss even after the
    curvature memory is reset to steepest descent. With several ranks it
    runs whole on each, and the trainer gives them all rank 0's result.
    """
    config, history, module = trainer.config, trainer.history, trainer.module
    X = X.to(trainer.device)
    params = [p for p in module.parameters() if p.requires_grad]
    wd = config.weight_decay

    def objective() -> torch.Tensor:
        loss = trainer.objective.loss(module, X)
        if wd:
            loss = loss + 0.5 * wd * sum((p * p).sum() for p in params)
        return loss

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = objective()
        loss.backward()
        return loss

    def evaluate() -> float:
        """The loss at the current weights; the epoch hooks see it whole."""
        trainer.objective.begin_epoch(module, LOCAL.sum_)
        with torch.no_grad():
            loss = float(objective())
        trainer.objective.end_epoch(module, LOCAL.sum_)
        return loss

    module.train()
    reference = previous = evaluate()
    optimizer = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=1,
        max_eval=26,  # the default, max_iter * 5 // 4, would leave no line search
        history_size=20,
        tolerance_grad=config.tol * max(abs(reference), 1.0),
        tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )

    def steps_taken() -> int:
        return optimizer.state[params[0]].get("n_iter", 0)

    restarted = False
    # full-batch steps are exact, so a finer relative tolerance than Adam's
    stopper = _Stopper(config.tol * 1e-2, config.n_iter_no_change)
    for it in range(1, config.max_iter + 1):
        before = steps_taken()
        optimizer.step(closure)
        if steps_taken() == before:  # L-BFGS found max |gradient| <= tolerance
            history.converged = True
            break
        loss = evaluate()
        _check_finite(loss, reference, it, None)  # L-BFGS has no learning rate
        history.loss_curve.append(loss)
        history.n_iter = it
        history.best_loss = min(history.best_loss, loss)
        if config.verbose:
            trainer.log(f"Iteration {it}: loss {loss:.10g}")
        if trainer.interrupt.requested:
            history.interrupted = True
            break
        stopper.update(-loss)
        if stopper.done:
            history.converged = True
            break
        if loss < previous:
            restarted = False
        elif restarted:  # no descent even from a fresh steepest-descent start:
            break  # stalled, not converged (the estimator warns)
        else:  # the curvature memory gave no descent direction: forget it
            optimizer.state.clear()
            restarted = True
        previous = min(previous, loss)
    module.eval()
