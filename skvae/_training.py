"""The training engine shared by every estimator.

It fits whatever ``torch.nn.Module`` and loss it is handed, and imports no
estimator and nothing from scikit-learn. Training is a few named steps, after
skorch: :func:`train` runs epochs, :func:`_run_epoch` one pass over shuffled
mini-batches, :func:`_validation_loss` one pass over held-out rows. Full-batch
L-BFGS (:func:`_train_lbfgs`) and the alternating least-squares solver of the
linear autoencoder (:func:`fit_principal_subspace`) share the bookkeeping.

Hot-path rules (measured in DESIGN.md): the data is moved to the device once
when it fits, batches are index slices of one tensor, and the loss is summed on
the device, so there is one host synchronisation per epoch, not per batch.
"""

from __future__ import annotations

import contextlib
import copy
import math
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

LossFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]

#: Activations per chunk of rows at inference: bounds the memory of transform & co.
CHUNK_ELEMENTS = 1 << 22

#: A loss this many times its starting magnitude above where it started means
#: the optimiser has diverged (an absurd learning rate, for instance).
DIVERGENCE_FACTOR = 1e4


class TrainingDiverged(ArithmeticError):
    """Raised when the loss becomes non-finite or explodes during training."""


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


@dataclass
class History:
    """What happened during training; the estimators turn it into attributes."""

    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] = field(default_factory=list)
    best_loss: float = math.inf
    n_iter: int = 0
    converged: bool = False
    interrupted: bool = False


# --------------------------------------------------------------------------- #
# Ctrl-C: finish the current batch, then stop.
# --------------------------------------------------------------------------- #
class _Interrupt:
    """Turns SIGINT into a flag that the loops read between batches."""

    def __init__(self) -> None:
        self.requested = False

    def _handler(self, signum, frame) -> None:  # pragma: no cover - signal path
        self.requested = True
        # a second Ctrl-C, during a long batch, interrupts as usual
        signal.signal(signal.SIGINT, self._previous)

    @contextlib.contextmanager
    def armed(self) -> Iterator[_Interrupt]:
        previous = (
            signal.getsignal(signal.SIGINT)
            if threading.current_thread() is threading.main_thread()
            else None
        )
        if previous is None:
            # Off the main thread, or a handler installed from C, we cannot
            # (re)set handlers: a KeyboardInterrupt is caught where it lands.
            yield self
            return
        self._previous = previous
        signal.signal(signal.SIGINT, self._handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


# --------------------------------------------------------------------------- #
# Data placement
# --------------------------------------------------------------------------- #
def to_device(X: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move ``X`` to ``device`` once if it fits in its free memory, else leave it.

    Batches of a tensor left on the host are copied to the device one at a time.
    """
    if X.device == device:
        return X
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if X.element_size() * X.nelement() > 0.5 * free:
            return X
    return X.to(device)


def as_tensor(X: np.ndarray) -> torch.Tensor:
    """Share memory with ``X`` when torch can; copy only a read-only array
    (torch warns on read-only memory)."""
    if not X.flags.writeable:
        X = X.copy()
    return torch.from_numpy(X)


def map_rows(
    module: nn.Module,
    fn: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    X: np.ndarray,
    out_width: int,
    device: torch.device,
    copies: int = 1,
) -> np.ndarray:
    """Inference: ``fn(module, rows)`` over chunks of ``X`` on ``device``.

    The output has X's dtype; the module computes in its own and goes back to
    the CPU afterwards. A chunk holds about ``CHUNK_ELEMENTS`` activations of
    the widest layer, times ``copies`` when ``fn`` runs each row several times
    (Monte Carlo draws), so memory does not grow with the number of rows.
    """
    model_dtype = next(module.parameters()).dtype
    out = np.empty((X.shape[0], out_width), dtype=X.dtype)
    widest = max(
        (max(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)),
        default=1,
    )
    step = max(1, CHUNK_ELEMENTS // (max(widest, X.shape[1], out_width) * copies))
    module.to(device)
    try:
        with torch.inference_mode():
            for start in range(0, X.shape[0], step):
                chunk = as_tensor(np.ascontiguousarray(X[start : start + step]))
                result = fn(module, chunk.to(device=device, dtype=model_dtype))
                out[start : start + step] = result.reshape(len(chunk), -1).cpu().numpy()
    finally:
        module.to("cpu")
    return out


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


# --------------------------------------------------------------------------- #
# The named steps
# --------------------------------------------------------------------------- #
def _run_epoch(
    module: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    train_idx: torch.Tensor | None,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device,
    interrupt: _Interrupt,
    first_loss: list[float],
) -> tuple[torch.Tensor, int]:
    """One pass over shuffled mini-batches; returns (sum of batch losses x rows, rows).

    ``train_idx`` (on the generator's device) selects the training rows when
    some are held out for validation; None means every row of X trains.
    """
    n_train = len(X) if train_idx is None else len(train_idx)
    perm = torch.randperm(n_train, generator=generator, device=generator.device)
    if train_idx is not None:
        perm = train_idx[perm]
    if perm.device != X.device:
        perm = perm.to(X.device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    seen = 0
    for start in range(0, len(perm), batch_size):
        xb = X[perm[start : start + batch_size]]
        if xb.device != device:
            xb = xb.to(device)
        loss = loss_fn(module, xb)
        if not first_loss:
            first_loss.append(float(loss.detach()))  # one sync per fit: divergence reference
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(xb)
        seen += len(xb)
        if interrupt.requested:
            break
    return total, seen


@torch.inference_mode()
def _validation_loss(
    module: nn.Module,
    loss_fn: LossFn,
    X: torch.Tensor,
    idx: torch.Tensor,
    batch_size: int,
    device: torch.device,
) -> float:
    """Mean loss over the validation rows, in chunks."""
    total = torch.zeros((), dtype=torch.float64, device=device)
    for start in range(0, len(idx), batch_size):
        xb = X[idx[start : start + batch_size].to(X.device)].to(device)
        total += loss_fn(module, xb) * len(xb)
    return float(total) / len(idx)


def _check_finite(loss: float, reference: float, epoch: int, lr: float | None) -> None:
    """Raise :class:`TrainingDiverged` if the loss is not finite or has exploded."""
    if not math.isfinite(reference):
        raise TrainingDiverged(
            f"The loss is {reference} before any update: the data's scale overflows "
            "the network's arithmetic. Rescale X first (e.g. StandardScaler)."
        )
    if not math.isfinite(loss) or (
        loss - reference > DIVERGENCE_FACTOR * max(abs(reference), 1e-12)
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


def train(
    module: nn.Module,
    loss_fn: LossFn,
    X: torch.Tensor,
    config: TrainingConfig,
    generator: torch.Generator,
    device: torch.device,
    validation_loss_fn: LossFn | None = None,
    log: Callable[[str], None] = print,
) -> History:
    """Fit ``module`` in place by minimising ``loss_fn`` (a per-row mean) on ``X``.

    ``module`` is moved to ``device`` for the call and back to the CPU after it.
    Stops after ``config.max_iter`` epochs, when the loss (or with early stopping
    the validation loss) has not improved by ``tol`` relative for
    ``n_iter_no_change`` epochs, or at the end of the batch in which Ctrl-C came.
    With early stopping the weights of the best validation epoch are restored.
    Raises :class:`TrainingDiverged` if the loss becomes non-finite or explodes.
    """
    history = History()
    module.to(device)
    try:
        with _Interrupt().armed() as interrupt:
            try:
                if config.solver == "lbfgs":
                    _train_lbfgs(module, loss_fn, X, config, device, interrupt, history, log)
                else:
                    _train_adam(
                        module,
                        loss_fn,
                        X,
                        config,
                        generator,
                        device,
                        interrupt,
                        history,
                        validation_loss_fn or loss_fn,
                        log,
                    )
            except KeyboardInterrupt:  # raised off the main thread, mid-batch
                history.interrupted = True
    finally:
        module.to("cpu")
    return history


def _train_adam(
    module: nn.Module,
    loss_fn: LossFn,
    X: torch.Tensor,
    config: TrainingConfig,
    generator: torch.Generator,
    device: torch.device,
    interrupt: _Interrupt,
    history: History,
    validation_loss_fn: LossFn,
    log: Callable[[str], None],
) -> None:
    train_idx, val_idx = (
        split_indices(len(X), config.validation_fraction, generator)
        if config.early_stopping
        else (None, None)
    )
    n_train = len(X) if train_idx is None else len(train_idx)
    X = to_device(X, device)
    optimizer = torch.optim.Adam(
        module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    stopper = _Stopper(config.tol, config.n_iter_no_change)
    best_state = None
    first_loss: list[float] = []
    for epoch in range(1, config.max_iter + 1):
        module.train()
        total, seen = _run_epoch(
            module,
            loss_fn,
            optimizer,
            X,
            train_idx,
            config.batch_size,
            generator,
            device,
            interrupt,
            first_loss,
        )
        if interrupt.requested and seen < n_train:
            history.interrupted = True
            break
        loss = float(total) / seen
        _check_finite(loss, first_loss[0], epoch, config.learning_rate)
        history.loss_curve.append(loss)
        history.n_iter = epoch
        if val_idx is not None:
            module.eval()
            score = -_validation_loss(
                module, validation_loss_fn, X, val_idx, config.batch_size, device
            )
            history.validation_scores.append(score)
        else:
            score = -loss
        if stopper.update(score):
            history.best_loss = loss
            if val_idx is not None:
                best_state = copy.deepcopy(module.state_dict())
        if config.verbose:
            extra = f", validation score {score:.6g}" if val_idx is not None else ""
            log(f"Epoch {epoch}: loss {loss:.6g}{extra}")
        if interrupt.requested:
            history.interrupted = True
            break
        if stopper.done:
            history.converged = True
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()


def _train_lbfgs(
    module: nn.Module,
    loss_fn: LossFn,
    X: torch.Tensor,
    config: TrainingConfig,
    device: torch.device,
    interrupt: _Interrupt,
    history: History,
    log: Callable[[str], None],
) -> None:
    """Full-batch L-BFGS with a strong-Wolfe line search; one iteration per step.

    Converges when the largest gradient entry is at most ``tol`` (as scipy's
    ``gtol``) or when the loss has not improved by ``tol / 100`` (relative) for
    ``n_iter_no_change`` iterations. It stops, unconverged, when no step lowers
    the loss even after the curvature memory is reset to steepest descent.
    """
    X = X.to(device)
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=1,
        max_eval=26,  # the default, max_iter * 5 // 4, would leave no line search
        history_size=20,
        tolerance_grad=config.tol,
        tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )
    wd = config.weight_decay

    def objective() -> torch.Tensor:
        loss = loss_fn(module, X)
        if wd:
            loss = loss + 0.5 * wd * sum((p * p).sum() for p in params)
        return loss

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = objective()
        loss.backward()
        return loss

    def steps_taken() -> int:
        return optimizer.state[params[0]].get("n_iter", 0)

    module.train()
    with torch.no_grad():
        reference = previous = float(objective())
    restarted = False
    # full-batch steps are exact, so a finer relative tolerance than Adam's
    stopper = _Stopper(config.tol * 1e-2, config.n_iter_no_change)
    for it in range(1, config.max_iter + 1):
        before = steps_taken()
        optimizer.step(closure)
        if steps_taken() == before:  # L-BFGS found max |gradient| <= tol
            history.converged = True
            break
        with torch.no_grad():
            loss = float(objective())
        _check_finite(loss, reference, it, None)  # L-BFGS has no learning rate
        history.loss_curve.append(loss)
        history.n_iter = it
        history.best_loss = min(history.best_loss, loss)
        if config.verbose:
            log(f"Iteration {it}: loss {loss:.10g}")
        if interrupt.requested:
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


# --------------------------------------------------------------------------- #
# The linear autoencoder's alternating least squares
# --------------------------------------------------------------------------- #
def fit_principal_subspace(
    X: torch.Tensor,
    n_components: int,
    config: TrainingConfig,
    generator: torch.Generator,
    device: torch.device,
    log: Callable[[str], None] = print,
) -> tuple[torch.Tensor, torch.Tensor, History]:
    """Train a linear autoencoder on squared error by exact least-squares steps.

    With the decoder D fixed, the best linear encoder is the least-squares
    projection, codes Z = Xc D (D'D)^-1; with the codes fixed, the best decoder is
    D = Xc' Z (Z'Z)^-1. One such pair of steps maps span(D) to span(C D),
    C = Xc'Xc / n, and on the codes' side span(Z) to span(G Z), G = Xc Xc' / n,
    so the iteration runs in whichever of the two spaces is smaller; the loss of a
    span Q is (tr M - tr Q'MQ) / tr M for that matrix M. Alternating alone
    converges at the rate lambda_{k+1} / lambda_k (Baldi & Hornik 1989: from a
    random start, to PCA's subspace). Each step here also takes the exactly
    optimal span inside the one spanned by the current iterate, its alternating
    update and the previous iterate (a locally optimal block step, as in
    conjugate gradients / LOBPCG), which is much faster when eigenvalue gaps are
    small. Every step lowers the loss.

    Returns the data mean, an orthonormal basis of the learned span
    (n_features x k) and the history. Training stops when the largest principal
    angle between successive iterates is below ``tol ** 2`` radians (or a few
    ulps of the dtype), when the loss has been flat to that precision for
    ``n_iter_no_change`` steps, or after ``max_iter`` steps.
    """
    dtype = X.dtype
    # float64 throughout: the Gram matrix squares the data's condition number,
    # and float32 rounding alone can turn a subspace with close eigenvalues by
    # about a degree. Only the result goes back to the data's dtype.
    X = X.to(device=device, dtype=torch.float64)
    n, d = X.shape
    mean = X.mean(dim=0)
    Xc = X - mean
    wide = n < d
    M = (Xc @ Xc.T if wide else Xc.T @ Xc) / n  # the smaller Gram/covariance
    total = torch.diagonal(M).sum()
    scale = total.clamp_min(torch.finfo(X.dtype).tiny)
    k = n_components
    start = torch.randn(M.shape[0], k, generator=generator, dtype=X.dtype, device=generator.device)
    Q = torch.linalg.qr(M @ start.to(device)).Q
    previous = None
    flat = 0
    history = History()
    # below a few ulps the angle between successive iterates is rounding noise
    rounding = 10 * torch.finfo(X.dtype).eps
    threshold = max(config.tol**2, rounding)
    with _Interrupt().armed() as interrupt:
        for it in range(1, config.max_iter + 1):
            blocks = [Q, M @ Q] if previous is None else [Q, M @ Q, previous]
            search = torch.linalg.qr(torch.cat(blocks, dim=1)).Q
            if search.shape[1] > k:
                # the best k-dimensional span inside the search space
                evals, evecs = torch.linalg.eigh(search.T @ M @ search)
                Q_new = search @ evecs[:, -k:]
            else:
                Q_new = search
            loss = float((total - torch.trace(Q_new.T @ M @ Q_new)) / scale)
            # sine of the largest principal angle between successive spans,
            # accurate for small angles (unlike one from the cosines)
            sine = float(torch.linalg.matrix_norm(Q_new - Q @ (Q.T @ Q_new), ord=2))
            previous, Q = Q, Q_new
            history.loss_curve.append(loss)
            history.n_iter = it
            if config.verbose:
                log(f"Iteration {it}: share of variance lost {loss:.10g}")
            # Also converged when the loss is flat to rounding for n_iter_no_change
            # steps: then the angle to the optimum is ~sqrt(eps), and directions
            # of zero variance (k above the rank) may turn freely without cost.
            change = abs(history.loss_curve[-2] - loss) if it > 1 else math.inf
            flat = flat + 1 if change <= rounding else 0
            if sine < threshold or flat >= config.n_iter_no_change:
                history.converged = True
                break
            if interrupt.requested:
                history.interrupted = True
                break
    history.best_loss = min(history.loss_curve)
    if wide:  # from the codes' basis to the decoder's: the rows' span Xc' Q
        Q = torch.linalg.qr(Xc.T @ Q).Q
    return mean.to("cpu", dtype), Q.to("cpu", dtype), history
