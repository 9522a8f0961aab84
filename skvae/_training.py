"""The training engine shared by every estimator.

It fits whatever ``torch.nn.Module`` and :class:`Objective` it is handed, and
imports no estimator and nothing from scikit-learn. After skorch, training is a
few named steps of :class:`Trainer`: :meth:`~Trainer.fit_loop` runs epochs,
:meth:`~Trainer.run_epoch` one pass over shuffled mini-batches,
:meth:`~Trainer.train_step` one batch and :meth:`~Trainer.validation_losses` one
pass over held-out rows. Full-batch L-BFGS (:meth:`~Trainer.fit_lbfgs`) shares
the bookkeeping.

Stopping: with held-out rows, the model that training starts from is scored
before the first update and is a candidate like every epoch's; the weights of
the best candidate are restored at the end. A model that starts at PCA's
solution therefore ends at least as good as PCA on the held-out rows.

Hot-path rules: the data is moved to the device once when it fits
(:mod:`skvae._placement`), batches are index slices of one tensor, and the
loss is summed on the device, so there is one host synchronisation per epoch,
not per batch.

Data parallelism (:mod:`skvae._distributed`): handed several :class:`Ranks`,
Adam trains each batch on all of them, each rank computing the gradient of its
share of the batch's rows; the gradients, losses and epoch statistics are
summed across the ranks, so every rank takes the same steps, sees the same
held-out scores and stops at the same epoch, with the weights one process
would reach from the same batches (up to rounding). L-BFGS runs whole on every
rank and rank 0's result is kept.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ._distributed import LOCAL, Ranks
from ._lbfgs import fit_lbfgs
from ._placement import to_device
from ._stopping import (
    MIN_PATIENCE_STEPS,
    TrainingDiverged,  # noqa: F401 - raised from here, caught by the estimators
    _Agreed,
    _check_finite,
    _significantly_better,
    _Stopper,
    interruptible,
)

LossFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]
#: Held-out rows on which a judge is first tried on the start (see Trainer._beats).
EXACT_CHECK_ROWS = 64
#: Held-out rows on which each judge is tried before the rest (Trainer._beats).
SAMPLE_ROWS = 256
#: Sums a tensor over the ranks that train together, in place (alone: returns it).
Reduce = Callable[[torch.Tensor], torch.Tensor]
Hook = Callable[[nn.Module, Reduce], None]


@dataclass
class TrainingConfig:
    solver: str = "adam"
    batch_size: int = 128
    learning_rate: float = 1e-3
    max_iter: int = 200
    tol: float = 1e-4
    n_iter_no_change: int = 10
    early_stopping: bool = False
    validation_fraction: float = 0.1
    weight_decay: float = 0.0
    verbose: int = 0


def _nothing(module: nn.Module, total: Reduce) -> None:
    pass


def _silent(message: str) -> None:
    pass


@dataclass
class Objective:
    """What to minimise, and the hooks an estimator may need around each epoch.

    ``loss(module, rows)`` is the mean training loss of a batch of raw rows;
    ``row_loss(module, rows)`` the loss of each row, by which held-out rows
    judge a model (deterministic for given weights). ``judges``, if any, are
    ever tighter and dearer per-row losses (deterministic too; for the VAE,
    importance-weighted bounds with more draws) that decide, once per fit,
    whether the best epoch beats the start where ``row_loss`` cannot tell
    (:meth:`Trainer._beats`). ``begin_epoch`` runs
    before an epoch's first batch and ``end_epoch`` after its last, before
    validation (e.g. to set a statistic from the whole epoch); both get a
    function that sums a tensor over the ranks training together, with which
    ``end_epoch`` makes a statistic of this rank's rows one of all the rows.
    """

    loss: LossFn
    row_loss: LossFn
    begin_epoch: Hook = _nothing
    end_epoch: Hook = _nothing
    judges: tuple[LossFn, ...] = ()
    #: whether the start's ``row_loss`` may already be what every judge gives
    #: (an exact posterior): then checked on a few rows, and if so not judged
    exact_start: bool = False


@dataclass
class History:
    """What happened during training; the estimators turn it into attributes.

    ``validation_scores[0]`` scores the starting point, before any update.
    """

    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] = field(default_factory=list)
    best_loss: float | None = math.inf  # None when held-out rows decide instead
    best_validation_score: float | None = None
    n_iter: int = 0
    converged: bool = False
    interrupted: bool = False
    #: the held-out rows (indices into the rows trained on, on the CPU), if any
    validation_rows: torch.Tensor | None = None


def split_indices(
    n_samples: int, validation_fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Shuffle row indices into training rows (on the generator's device) and
    validation rows (on the CPU); (None, None) when too few rows to hold any out."""
    n_val = int(round(validation_fraction * n_samples))
    if n_val < 1 or n_samples - n_val < 1:
        return None, None
    perm = torch.randperm(n_samples, generator=generator, device=generator.device)
    return perm[n_val:], perm[:n_val].cpu()


def _adam(module: nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    """Adam, fused into one kernel per step where this torch supports it (about
    5% of a step of benchmarks.speed's networks on a two-core CPU with torch
    2.13; older torch has no fused CPU Adam)."""
    params = list(module.parameters())
    try:
        return torch.optim.Adam(
            params, lr=config.learning_rate, weight_decay=config.weight_decay, fused=True
        )
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=config.learning_rate, weight_decay=config.weight_decay)


# --------------------------------------------------------------------------- #
# The trainer
# --------------------------------------------------------------------------- #
class Trainer:
    """Fits ``module`` in place by minimising ``objective`` on the rows of a tensor.

    ``module`` is moved to ``device`` for the call and back to the CPU after it.
    With several ``ranks``, every rank trains from rank 0's starting weights
    (see the module notes).
    Adam stops after ``max_iter`` epochs, when the score (minus the validation
    loss with ``early_stopping``, else minus the training loss) has not improved
    by ``tol`` relative for ``n_iter_no_change`` epochs, or at the end of the
    batch in which Ctrl-C came. With held-out rows the best candidate, the
    starting point included, is restored. Raises :class:`TrainingDiverged` if
    the loss becomes non-finite or explodes.
    """

    def __init__(
        self,
        module: nn.Module,
        objective: Objective,
        config: TrainingConfig,
        generator: torch.Generator,
        device: torch.device,
        ranks: Ranks = LOCAL,
    ) -> None:
        self.module = module
        self.ranks = ranks
        self.objective = objective
        self.config = config
        self.generator = generator
        self.device = device
        self.log = print if ranks.rank == 0 else _silent  # verbose: one rank prints
        self.history = History()
        self.has_grad: list[bool] | None = None  # which parameters get gradients

    def fit(self, X: torch.Tensor) -> History:
        """Train until a stopping rule says so (see the class notes)."""
        return self._run(self.fit_lbfgs if self.config.solver == "lbfgs" else self.fit_loop, X)

    def partial_fit(self, X: torch.Tensor, optimizer_state: dict | None = None) -> History:
        """One pass of Adam over the rows of ``X``, in shuffled mini-batches.

        The optimiser continues from ``optimizer_state`` (from
        :meth:`optimizer_state`) when given. No rows are held out and nothing
        decides to stop: the caller streams the data and decides. With several
        ranks, each passes its own rows, and the pass is the one a single
        process makes over all of them, rank 0's first.
        """
        return self._run(self.stream_epoch, X, optimizer_state)

    def _run(self, step: Callable, *args) -> History:
        self.module.to(self.device)
        whole = step == self.fit_lbfgs  # runs whole on every rank, no collective
        self.ranks.broadcast_module(self.module)
        try:
            with interruptible() as interrupt:
                sharded = self.ranks.active and not whole
                self.interrupt = _Agreed(interrupt) if sharded else interrupt
                try:
                    step(*args)
                except KeyboardInterrupt:
                    if self.interrupt.handled:  # a second Ctrl-C: the user means it
                        raise
                    self.history.interrupted = True  # the first, where no handler could be set
            if whole:
                self.ranks.broadcast_module(self.module)  # rank 0's result
        finally:
            self.module.to("cpu")
        return self.history

    def optimizer_state(self) -> dict | None:
        """Adam's state after training, on the CPU (picklable), or None (L-BFGS)."""
        optimizer = getattr(self, "optimizer", None)
        if not isinstance(optimizer, torch.optim.Adam):
            return None
        return _to_cpu(optimizer.state_dict())

    # ------------------------------------------------------------------ Adam
    def fit_loop(self, X: torch.Tensor) -> None:
        config, history, module = self.config, self.history, self.module
        self.train_idx, self.val_idx = (
            split_indices(len(X), config.validation_fraction, self.generator)
            if config.early_stopping
            else (None, None)
        )
        self.X = to_device(X, self.device)
        self.n_rows, self.mine = len(X), self.ranks.share  # every rank holds X
        self.optimizer = _adam(module, config)
        n_train = len(X) if self.train_idx is None else len(self.train_idx)
        steps_per_epoch = math.ceil(n_train / config.batch_size)
        floor = min(math.ceil(MIN_PATIENCE_STEPS / steps_per_epoch), 5 * config.n_iter_no_change)
        patience = max(config.n_iter_no_change, floor)
        stopper = _Stopper(config.tol, patience)
        start = best = None  # (per-row held-out losses, weights)
        self.first_loss: float | None = None
        if self.val_idx is not None:
            # The starting point is a candidate for the final choice, but not the
            # bar for patience: a PCA start is often better than the first few
            # epochs, which need time to find a nonlinear improvement.
            history.best_loss = None
            start = self._validate(), copy.deepcopy(module.state_dict())
        for epoch in range(1, config.max_iter + 1):
            loss = self.run_epoch()
            if loss is None:  # Ctrl-C mid-epoch: that epoch does not count
                history.interrupted = True
                break
            _check_finite(loss, self.first_loss, epoch, config.learning_rate)
            history.loss_curve.append(loss)
            history.n_iter = epoch
            if self.val_idx is not None:
                rows = self._validate()
                if stopper.update(history.validation_scores[-1]):
                    best = rows, copy.deepcopy(module.state_dict())
            elif stopper.update(-loss):
                history.best_loss = loss
            if config.verbose:
                scores = history.validation_scores
                extra = f", validation score {scores[-1]:.6g}" if scores else ""
                self.log(f"Epoch {epoch}: loss {loss:.6g}{extra}")
            if self.interrupt.requested:
                history.interrupted = True
                break
            if stopper.done:
                history.converged = True
                break
        history.validation_rows = self.val_idx
        if start is not None:
            if best is None or not self._beats(best, start):
                best = start  # held-out rows cannot tell the change from noise
            module.load_state_dict(best[1])
            history.best_validation_score = -float(best[0].mean())
        module.eval()

    def _beats(self, best: tuple, start: tuple) -> bool:
        """Whether the best epoch's weights beat the start's on the held-out rows
        by more than noise: on the epochs' score, or failing that on the
        objective's ``judges`` in turn (run only then: they may cost about an
        epoch together).

        The judges are tighter bounds of the same quantity, each dearer than
        the last. The next is skipped where the best epoch is short of the start
        by more than twice what the last judge's tightening gained it (against
        the start's): that gain shrinks from one judge to the next, so more
        of the same would not close the gap. Each judge first scores
        ``SAMPLE_ROWS`` rows, and stops there where the tightening on those
        leaves the best epoch short by more than twice it. Where the objective
        says the start may be exact and a judge gives the start's own scores
        back on a few rows (an exact posterior: every bound is log p(x)), the
        start's scores are kept without judging the rest.
        """
        best_rows, start_rows = best[0], start[0]
        if _significantly_better(best_rows, start_rows):
            return True
        self.start_exact = None if self.objective.exact_start else False
        sample, rest = slice(SAMPLE_ROWS), slice(SAMPLE_ROWS, None)
        for judge in self.objective.judges:
            few_best, few_start = self._judged(judge, best, start, sample)
            gained = self._gained(few_best, few_start, best_rows[sample], start_rows[sample])
            # judged in full, the gap would be short - gained: more than 2 gained?
            if (best_rows - start_rows).mean() > 3 * max(gained, 0.0):
                return False
            more_best, more_start = self._judged(judge, best, start, rest)
            judged_best = torch.cat([few_best, more_best])
            judged_start = torch.cat([few_start, more_start])
            if _significantly_better(judged_best, judged_start):
                return True
            gained = self._gained(judged_best, judged_start, best_rows, start_rows)
            if (judged_best - judged_start).mean() > 2 * max(gained, 0.0):
                return False
            best_rows, start_rows = judged_best, judged_start
        return False

    def _judged(self, judge: LossFn, best: tuple, start: tuple, rows: slice) -> tuple:
        """The losses of the held-out ``rows`` by ``judge`` under the best
        epoch's and the start's weights (the start's own scores, where it is
        exact)."""
        self.module.load_state_dict(best[1])
        judged_best = self.validation_losses(judge, rows)
        self.module.load_state_dict(start[1])
        if self.start_exact is None:
            few = self.validation_losses(judge, slice(EXACT_CHECK_ROWS))
            self.start_exact = bool(torch.allclose(few, start[0][: len(few)], rtol=1e-5))
        exact = start[0][rows] if self.start_exact else None
        return judged_best, self.validation_losses(judge, rows) if exact is None else exact

    @staticmethod
    def _gained(best_rows, start_rows, looser_best, looser_start) -> float:
        """What tightening the looser losses to ``*_rows`` gained the best epoch
        against the start, per row."""
        return float((looser_best - best_rows).mean() - (looser_start - start_rows).mean())

    def stream_epoch(self, X: torch.Tensor, optimizer_state: dict | None = None) -> None:
        """:meth:`run_epoch` over all of ``X`` with a continuing optimiser."""
        history = self.history
        self.train_idx = self.val_idx = None
        self.X = to_device(X, self.device)
        self.n_rows, self.mine = self.ranks.stacked(len(X))  # each rank its own rows
        self.optimizer = _adam(self.module, self.config)
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)
            # the moments carry over, the settings are today's: load_state_dict
            # would bring back the learning rate and decay of the first call
            for group in self.optimizer.param_groups:
                group["lr"] = self.config.learning_rate
                group["weight_decay"] = self.config.weight_decay
        self.first_loss = None
        loss = self.run_epoch()
        if loss is None:  # Ctrl-C mid-pass: the weights reached so far are kept
            history.interrupted = True
        else:
            _check_finite(loss, self.first_loss, 1, self.config.learning_rate)
            history.loss_curve.append(loss)
            history.best_loss = loss
            history.n_iter = 1
            history.converged = True  # one pass is all that was asked
        self.module.eval()

    def _validate(self) -> torch.Tensor:
        """Score the current weights on the held-out rows: record the mean score
        and return the per-row losses."""
        rows = self.validation_losses()
        self.history.validation_scores.append(-float(rows.mean()))
        return rows

    def run_epoch(self) -> float | None:
        """One pass over shuffled mini-batches of the training rows.

        Returns the mean batch loss, or None if Ctrl-C cut the epoch short.
        With several ranks, each computes on its rows (``self.mine``) of each
        batch, and a Ctrl-C counts at the end of the epoch.
        """
        self.module.train()
        self.objective.begin_epoch(self.module, self.ranks.sum_)
        n_train = self.n_rows if self.train_idx is None else len(self.train_idx)
        perm = torch.randperm(n_train, generator=self.generator, device=self.generator.device)
        if self.train_idx is not None:
            perm = self.train_idx[perm]
        if perm.device != self.X.device:
            perm = perm.to(self.X.device)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        batch_size = self.config.batch_size
        for start in range(0, n_train, batch_size):
            rows = perm[start : start + batch_size]
            xb = self.X[self.mine(rows)]
            if xb.device != self.device:
                xb = xb.to(self.device)
            total += self.train_step(xb, len(rows)) * len(rows)
            if self.interrupt.requested and start + batch_size < n_train:
                return None
        if isinstance(self.interrupt, _Agreed):  # the ranks' last step agreed on it
            self.interrupt.requested = bool(self.stop)
        self.objective.end_epoch(self.module, self.ranks.sum_)
        return float(total) / n_train

    def train_step(self, xb: torch.Tensor, n_rows: int | None = None) -> torch.Tensor:
        """One optimiser step on one batch; returns its (detached) loss.

        With several ranks, ``xb`` is this rank's share (possibly empty) of a
        batch of ``n_rows`` rows, and the step and loss are the whole batch's.
        """
        self.optimizer.zero_grad(set_to_none=True)
        if len(xb):
            loss = self.objective.loss(self.module, xb)
            loss.backward()
            loss = loss.detach()
        else:
            loss = torch.zeros((), dtype=self.X.dtype, device=self.device)
        if self.ranks.active:
            params = self.optimizer.param_groups[0]["params"]
            loss, self.stop, self.has_grad = self.ranks.average_gradients(
                params, loss, len(xb), n_rows, self.interrupt.raw.requested, self.has_grad
            )
        if self.first_loss is None:  # one sync per fit: the divergence reference
            self.first_loss = float(loss)
        self.optimizer.step()
        return loss

    @torch.inference_mode()
    def validation_losses(self, row_loss: LossFn | None = None, rows=slice(None)) -> torch.Tensor:
        """The loss of each held-out row (float64, on the device), in chunks:
        ``row_loss``, by default the objective's; of the slice ``rows`` of them
        only if given.

        With several ranks, each scores its share of the rows and the ranks
        sum the scores into one vector, the same on every rank.
        """
        self.module.eval()
        val_idx = self.val_idx[rows]
        idx, step = self.ranks.share(val_idx), self.config.batch_size
        row_loss = row_loss or self.objective.row_loss
        # written into one vector: a list of per-batch parts pinned freed blocks
        losses = torch.zeros(len(idx), dtype=torch.float64, device=self.device)
        for a in range(0, len(idx), step):
            batch = self.X[idx[a : a + step].to(self.X.device)].to(self.device)
            losses[a : a + step] = row_loss(self.module, batch)
        if not self.ranks.active:
            return losses
        every = torch.zeros(len(val_idx), dtype=torch.float64, device=self.device)
        every[self.ranks.share(torch.arange(len(every), device=self.device))] = losses
        return self.ranks.sum_(every)

    # ---------------------------------------------------------------- L-BFGS
    def fit_lbfgs(self, X: torch.Tensor) -> None:
        """Full-batch L-BFGS (:func:`skvae._lbfgs.fit_lbfgs`), with the same
        history and bookkeeping as Adam."""
        fit_lbfgs(self, X)


def _to_cpu(state):
    """A copy of a (nested) optimiser state with every tensor on the CPU."""
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {key: _to_cpu(value) for key, value in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(_to_cpu(value) for value in state)
    return state
