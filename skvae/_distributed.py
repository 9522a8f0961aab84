"""Data-parallel training across the processes of a ``torch.distributed`` group.

Plain torch, no scikit-learn. When a script launched with ``torchrun`` (or any
launcher) has initialised the default process group, :func:`participants`
says which ranks a ``fit`` called here trains with, as a :class:`Ranks`: a
rank number and a world size, nothing else. The estimators never keep it (nor
any process-group handle or wrapped module), so a fitted estimator pickles,
clones and deep-copies as in a single process.

The rule the collectives rely on: every rank calls ``fit`` (or
``partial_fit``) at the same point of its program, with the same parameters.
:meth:`Ranks.agree` checks this at the start of each call, so that a mistake
raises an error on every rank instead of hanging or mixing two models'
gradients.

Collectives run on the device the backend needs: tensors are copied to the
rank's GPU for NCCL and to the CPU for gloo, and back.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

_opted_out = threading.local()

#: How many facts :meth:`Ranks.agree` compares at most.
_MAX_FACTS = 8


@contextlib.contextmanager
def single_process() -> Iterator[None]:
    """Fit on this process's data alone, even inside a ``torch.distributed`` group.

    Under an initialised process group of several ranks, ``fit`` and
    ``partial_fit`` called from the main thread train data-parallel with the
    other ranks, which must make the same calls. Within this block they do
    not: each rank fits its own model on its own data, e.g. a different
    hyper-parameter setting per rank.

    Examples
    --------
    >>> import numpy as np
    >>> import skvae
    >>> X = np.random.RandomState(0).normal(size=(50, 4))
    >>> with skvae.single_process():
    ...     model = skvae.LinearAutoencoder(n_components=2).fit(X)
    >>> model.n_components_
    2
    """
    previous = getattr(_opted_out, "value", False)
    _opted_out.value = True
    try:
        yield
    finally:
        _opted_out.value = previous


def local_cuda_index() -> int | None:
    """The GPU of this process under ``torchrun`` (``LOCAL_RANK``), else None."""
    local = os.environ.get("LOCAL_RANK")
    if local is None or not torch.cuda.is_available():
        return None
    return int(local) % torch.cuda.device_count()


def _wire(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor``, or a copy on the device the group's backend works on."""
    backend = str(dist.get_backend())
    if backend == "nccl" and tensor.device.type != "cuda":
        index = local_cuda_index()
        return tensor.to(f"cuda:{torch.cuda.current_device() if index is None else index}")
    if backend == "gloo" and tensor.device.type != "cpu":
        return tensor.cpu()
    return tensor


@dataclass(frozen=True)
class Ranks:
    """The processes that train one model together: ``world`` ranks, this one
    ``rank``. ``Ranks()`` is a process on its own, for which every method is
    free (no collective, no copy)."""

    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    # ----------------------------------------------------------- collectives
    def _collective(self, tensor: torch.Tensor, call: Callable[[torch.Tensor], object]):
        wire = _wire(tensor)
        call(wire)
        if wire is not tensor:
            tensor.copy_(wire)
        return tensor

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks, in place; returns it."""
        if not self.active:
            return tensor
        return self._collective(tensor, lambda t: dist.all_reduce(t, dist.ReduceOp.SUM))

    def broadcast_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Overwrite ``tensor`` with rank 0's, in place; returns it."""
        if not self.active:
            return tensor
        return self._collective(tensor, lambda t: dist.broadcast(t, src=0))

    def broadcast_seed(self, seed: int) -> int:
        """Rank 0's ``seed``: with ``random_state=None`` each rank draws its own,
        and the shuffles, the validation split and the start must agree."""
        if not self.active:
            return seed
        return int(self.broadcast_(torch.tensor([seed], dtype=torch.int64))[0])

    @torch.no_grad()
    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Give every rank rank 0's parameters and buffers (one collective)."""
        if not self.active:
            return
        tensors = [t for t in (*module.parameters(), *module.buffers()) if t.numel()]
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for t in tensors:
            by_dtype.setdefault(t.dtype, []).append(t)
        for group in by_dtype.values():
            flat = self.broadcast_(torch.cat([t.reshape(-1) for t in group]))
            for t, part in zip(group, flat.split([t.numel() for t in group]), strict=True):
                t.copy_(part.view_as(t))

    def agree(self, facts: Sequence[float] | None, names: Sequence[str] = ()) -> None:
        """Check that every rank passed the same ``facts`` (None: this rank
        failed before training and re-raises its own error after this call).

        Raises on every rank when the facts differ (naming which differ), and,
        on the others, when a rank failed; never leaves one rank waiting. The
        facts are numbers, at most ``_MAX_FACTS``, named by ``names``.
        """
        if not self.active:
            return
        values = [1.0] if facts is None else [0.0, *map(float, facts)]
        width = 1 + _MAX_FACTS  # the same on every rank, whatever it checks
        values += [0.0] * (width - len(values))
        mine = torch.tensor(values, dtype=torch.float64)
        extremes = self._collective(
            torch.cat([mine, -mine]), lambda t: dist.all_reduce(t, dist.ReduceOp.MAX)
        )
        highest, lowest = extremes[:width], -extremes[width:]
        if facts is None:
            return
        if highest[0] > 0:
            raise RuntimeError(
                "Another rank of the torch.distributed group failed before training; "
                "its error says why."
            )
        pairs = zip(names, highest[1:], lowest[1:], strict=False)
        differ = [name for name, high, low in pairs if high != low]
        if differ:
            raise ValueError(
                f"The {self.world} ranks of the torch.distributed group disagree on: "
                f"{', '.join(differ)}. Every rank must call fit with the same "
                "parameters and the same X (the same rows in the same order; "
                "partial_fit: the same number of features), or fit inside "
                "skvae.single_process() to train a model per rank."
            )

    # ---------------------------------------------------------------- rows
    def share(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's part of ``rows`` that every rank holds: every world-th."""
        return rows[self.rank :: self.world] if self.active else rows

    def block(self, X: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous block of rows of an ``X`` that every rank holds."""
        if not self.active:
            return X
        n = len(X)
        start, stop = n * self.rank // self.world, n * (self.rank + 1) // self.world
        return X.rows(start, stop) if hasattr(X, "rows") else X[start:stop]  # out of core: unread

    def stacked(self, n_local: int) -> tuple[int, Callable[[torch.Tensor], torch.Tensor]]:
        """Each rank passed its own rows: they stand for one data set, rank 0's
        rows first. Returns its size and the map from a batch of its row
        numbers to the numbers of this rank's rows among them."""
        if not self.active:
            return n_local, lambda rows: rows
        counts = torch.zeros(self.world, dtype=torch.int64)
        counts[self.rank] = n_local
        counts = self.sum_(counts).tolist()
        low = sum(counts[: self.rank])
        high = low + n_local

        def mine(rows: torch.Tensor) -> torch.Tensor:
            return rows[(rows >= low) & (rows < high)] - low

        return sum(counts), mine

    def noise_generator(self, generator: torch.Generator) -> torch.Generator:
        """A generator of this rank's own draws (the VAE's noise): ``generator``
        itself alone; with several ranks, one seeded apart per rank, so that
        the rows of a batch on different ranks do not share their noise."""
        if not self.active:
            return generator
        seed = (generator.initial_seed() * 1_000_003 + self.rank + 1) % (2**63)
        return torch.Generator(device=generator.device).manual_seed(seed)

    # ----------------------------------------------------------- gradients
    @torch.no_grad()
    def average_gradients(
        self,
        params: Sequence[torch.Tensor],
        loss: torch.Tensor,
        n_rows: int,
        total_rows: int,
        stop: bool,
        has_grad: list[bool] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, list[bool]]:
        """Make each parameter's gradient its mean over the whole batch.

        Each rank's gradient (of the mean loss of its ``n_rows`` rows) is
        weighted by its rows, summed over the ranks and divided by the batch's
        ``total_rows``: the gradient one process gets from the whole batch.
        The batch's loss and this rank's Ctrl-C flag travel in the same
        buffer, one collective per step, and so, when ``has_grad`` is None
        (the first step), does whether each parameter has a gradient at all
        (a rank without rows in the batch has none), which costs a host
        synchronisation. Returns the batch's mean loss, whether any rank asked
        to stop (both on the device) and which parameters have gradients.
        """
        ref = params[0]
        parts = [
            torch.zeros(p.numel(), dtype=ref.dtype, device=ref.device)
            if p.grad is None
            else p.grad.reshape(-1).to(ref.dtype) * n_rows
            for p in params
        ]
        flags = [p.grad is not None for p in params] if has_grad is None else []
        extras = torch.tensor([*flags, stop], dtype=ref.dtype, device=ref.device)
        parts += [(loss.detach().to(ref.dtype) * n_rows).reshape(1), extras]
        buffer = self.sum_(torch.cat(parts))
        n_grads = sum(p.numel() for p in params)
        if has_grad is None:
            has_grad = [bool(x > 0) for x in buffer[n_grads + 1 : -1].tolist()]
        grads = buffer[:n_grads] / total_rows
        for p, received, grad in zip(
            params, has_grad, grads.split([p.numel() for p in params]), strict=True
        ):
            p.grad = grad.view_as(p) if received else None
        return buffer[n_grads] / total_rows, buffer[-1] > 0, has_grad


#: A process on its own.
LOCAL = Ranks()


def participants() -> Ranks:
    """The ranks that a ``fit`` called here trains with.

    All of the default process group when ``torch.distributed`` is available
    and initialised with more than one rank, the call comes from the main
    thread (threads of one rank would issue collectives out of order) and not
    inside :func:`single_process`; else this process alone.
    """
    if (
        not dist.is_available()
        or not dist.is_initialized()
        or getattr(_opted_out, "value", False)
        or threading.current_thread() is not threading.main_thread()
    ):
        return LOCAL
    world = dist.get_world_size()
    return Ranks(dist.get_rank(), world) if world > 1 else LOCAL
