"""When training stops: divergence, patience, significance and Ctrl-C.

The rules that :class:`~skvae._training.Trainer` (and the linear model's
alternating least-squares solver) apply between steps, kept apart from the
loops that apply them. Plain torch, no scikit-learn.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from collections.abc import Iterator

import torch

#: A loss this many times its starting magnitude above where it started means
#: the optimiser has diverged (an absurd learning rate, for instance).
DIVERGENCE_FACTOR = 1e4


class TrainingInterrupted(UserWarning):
    """Warned when Ctrl-C ended training early; the model keeps what it reached."""


class TrainingDiverged(ArithmeticError):
    """Raised when the loss becomes non-finite or explodes during training."""


def _check_finite(loss: float, reference: float, epoch: int, lr: float | None) -> None:
    """Raise :class:`TrainingDiverged` if the loss is not finite or has exploded."""
    if not math.isfinite(reference):
        raise TrainingDiverged(
            f"The loss is {reference} before any update: the data's scale overflows "
            "the network's arithmetic. Rescale X first (e.g. StandardScaler)."
        )
    # Losses are in standardised units (a model that predicts the mean scores
    # about 1), so the floor of 1 keeps a near-perfect start from looking diverged.
    if not math.isfinite(loss) or (
        loss - reference > DIVERGENCE_FACTOR * max(abs(reference), 1.0)
    ):
        advice = (
            f"Try a smaller learning_rate (got {lr!r}) or rescale the data"
            if lr is not None
            else "Try solver='adam' or rescale the data"
        )
        raise TrainingDiverged(
            f"Training diverged at iteration {epoch}: the loss reached {loss:.4g} "
            f"after starting at {reference:.4g}. {advice} (e.g. StandardScaler)."
        )


#: Patience is at least this many optimiser steps (up to five times
#: n_iter_no_change epochs), whatever n_iter_no_change says in epochs: on small
#: data an epoch is a few steps, too few for networks started at PCA's solution
#: (a saddle of the deep loss) to leave it.
MIN_PATIENCE_STEPS = 200

#: How many standard errors of the paired per-row differences the best epoch
#: must beat the starting point by on held-out rows to replace it.
SIGNIFICANCE = 2.0


def _significantly_better(rows: torch.Tensor, reference: torch.Tensor) -> bool:
    """Whether per-row losses ``rows`` beat ``reference``'s on the same rows by
    more than ``SIGNIFICANCE`` standard errors of their mean paired difference.

    The best of many epochs, chosen on a few held-out rows, beats the start on
    those rows by chance alone; a model that starts at PCA keeps PCA unless
    the held-out rows say clearly that the trained networks are better.
    """
    if rows is reference:
        return True
    gains = (reference - rows).double()
    if len(gains) < 2:
        return bool(gains.mean() > 0)
    return bool(gains.mean() > SIGNIFICANCE * gains.std() / math.sqrt(len(gains)))


class _Stopper:
    """Tracks the best score and counts iterations without enough improvement."""

    def __init__(self, tol: float, patience: int) -> None:
        self.tol, self.patience = tol, patience
        self.best = -math.inf
        self.bad = 0

    def update(self, score: float) -> bool:
        """Record ``score`` (higher is better); True if it is a new best."""
        improved = score > self.best + self.tol * abs(self.best)
        if improved or self.best == -math.inf:
            self.bad = 0
        else:
            self.bad += 1
        is_best = score > self.best
        if is_best:
            self.best = score
        return is_best

    @property
    def done(self) -> bool:
        return self.bad >= self.patience


# --------------------------------------------------------------------------- #
# Ctrl-C: finish the current batch, then stop; a second Ctrl-C interrupts.
# --------------------------------------------------------------------------- #
class _Interrupt:
    """Turns the first SIGINT into a flag that the loops read between batches."""

    def __init__(self) -> None:
        self.requested = False
        self.handled = False  # whether SIGINT comes here rather than as an exception

    def _handler(self, signum, frame) -> None:  # pragma: no cover - signal path
        self.requested = True
        # a second Ctrl-C raises KeyboardInterrupt as usual, out of fit
        signal.signal(signal.SIGINT, self._previous)

    @property
    def raw(self) -> _Interrupt:
        """This rank's own flag (see :class:`_Agreed`)."""
        return self


class _Agreed:
    """A Ctrl-C on any of several ranks, as they all see it: ``requested``
    turns True only at the end of an epoch, from the flags that its steps
    carried (``Ranks.average_gradients``), so every rank stops at the same
    point rather than one leaving the others waiting."""

    def __init__(self, raw: _Interrupt) -> None:
        self.raw, self.handled, self.requested = raw, raw.handled, False


@contextlib.contextmanager
def interruptible() -> Iterator[_Interrupt]:
    """Catch the first Ctrl-C as a request to stop at the end of the batch.

    Off the main thread (or under a handler installed from C) no handler can be
    set; a ``KeyboardInterrupt`` then ends training where it lands.
    """
    interrupt = _Interrupt()
    previous = (
        signal.getsignal(signal.SIGINT)
        if threading.current_thread() is threading.main_thread()
        else None
    )
    if previous is None:
        yield interrupt
        return
    interrupt._previous = previous
    interrupt.handled = True
    signal.signal(signal.SIGINT, interrupt._handler)
    try:
        yield interrupt
    finally:
        signal.signal(signal.SIGINT, previous)
