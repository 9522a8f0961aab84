"""Where tensors live: moving training data to the device, and chunked inference.

Plain torch and numpy, no scikit-learn. :func:`resolve_device` reads the
estimators' ``device``; :func:`map_rows` runs a function of the fitted
networks over chunks of rows on a device, so inference memory does not grow
with the number of rows; :func:`to_device` puts training data on the device
once when it fits there.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ._distributed import local_cuda_index

#: NumPy's floating dtypes and torch's.
TORCH_DTYPES = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}

#: Activations per chunk of rows at inference: bounds the memory of transform & co.
CHUNK_ELEMENTS = 1 << 22

#: Elements per tensor in a fit's once-per-fit passes over wide rows (checks,
#: importance-weighted judges, the codes' Gaussian): 2 MiB of float64, a dense
#: batch of 128 rows of 2048 features, so that a sparse fit's peak stays near
#: the matrix plus a batch (larger blocks, several alive at once, added 30-80 MiB).
BATCH_ELEMENTS = CHUNK_ELEMENTS // 16


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when torch sees a GPU (under ``torchrun``, the GPU of
    ``LOCAL_RANK``), else the CPU; others as given."""
    if isinstance(device, str) and device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        index = local_cuda_index()
        return torch.device("cuda") if index is None else torch.device("cuda", index)
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a device torch knows.") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was asked for, but torch sees no CUDA GPU; "
            "use device='auto' or 'cpu'."
        )
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"device={device!r} was asked for, but torch sees only "
            f"{torch.cuda.device_count()} CUDA GPU(s)."
        )
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r}: skvae runs on 'cpu' or 'cuda' devices.")
    return resolved


def to_device(X: torch.Tensor | Rows, device: torch.device) -> torch.Tensor | Rows:
    """Move ``X`` to ``device`` once if it fits in its free memory, else leave it.

    Batches of a tensor left on the host (or read from out-of-core
    :class:`Rows`) are copied to the device one at a time.
    """
    if X.device == device or isinstance(X, Rows):
        return X
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if X.element_size() * X.nelement() > 0.5 * free:
            return X
    return X.to(device)


def is_out_of_core(X) -> bool:
    """Whether ``X`` is a 2-D array read in slices rather than held in memory:
    a ``numpy.memmap``, or an object that slices like one (h5py, zarr) and is
    no NumPy array, array library (dask, CuPy: ``__array_function__``) or
    sparse matrix (``format``)."""
    if isinstance(X, np.memmap):
        return X.ndim == 2
    if isinstance(X, np.ndarray) or hasattr(X, "__array_function__") or hasattr(X, "format"):
        return False
    shape, dtype = getattr(X, "shape", None), getattr(X, "dtype", None)
    return (
        isinstance(dtype, np.dtype)
        and isinstance(shape, tuple)
        and len(shape) == 2
        and hasattr(X, "__getitem__")
    )


class Rows:
    """The rows of an out-of-core 2-D array as tensors of ``dtype``, read on demand.

    Supports what training needs of a tensor: ``len``, ``shape``, ``dtype``,
    ``device`` (the CPU), slices (``rows[a:b]``, ``rows[::step]``) and index
    tensors (``rows[idx]``, read in increasing order, as h5py requires).
    Nothing but the rows asked for is ever read into memory.
    """

    device = torch.device("cpu")

    def __init__(self, X, dtype: torch.dtype, start: int = 0, stop: int | None = None) -> None:
        self.data, self.dtype = X, dtype
        self.start, self.stop = start, X.shape[0] if stop is None else stop
        self.shape = (self.stop - self.start, int(X.shape[1]))
        self.sparse = sp.issparse(X) and X.format == "csr"

    def __len__(self) -> int:
        return self.shape[0]

    def rows(self, start: int, stop: int) -> Rows:
        """Rows ``start:stop`` of these, still unread."""
        return Rows(self.data, self.dtype, self.start + start, self.start + stop)

    def _tensor(self, rows) -> torch.Tensor:
        return torch.from_numpy(dense(rows, copy=True)).to(self.dtype)

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if self.sparse:
                return csr_rows(self.data, np.arange(start, stop, step) + self.start, self.dtype)
            return self._tensor(self.data[self.start + start : self.start + stop : step])
        idx = torch.as_tensor(key).cpu().numpy().astype(np.int64, copy=False) + self.start
        if self.sparse:  # in any order, repeats included
            return csr_rows(self.data, idx, self.dtype)
        order = np.argsort(idx, kind="stable")
        unique, inverse = np.unique(idx[order], return_inverse=True)
        rows = self._tensor(self.data[unique] if len(unique) else self.data[:0])
        out = torch.empty((len(idx), self.shape[1]), dtype=self.dtype)
        out[torch.from_numpy(order)] = rows[torch.from_numpy(inverse)]
        return out

    def to(self, device=None, dtype=None) -> torch.Tensor:
        """All the rows in memory: for full-batch L-BFGS, which needs them."""
        return self[:].to(device=device, dtype=dtype)


def csr_rows(X: sp.csr_matrix, idx: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """Rows ``idx`` of the CSR matrix ``X``, densified straight into a tensor.

    The same values as ``X[idx].toarray()``, without the sliced matrix or the
    dense NumPy copy: a 2 MiB NumPy block freed every batch fragmented glibc's
    heap, and a sparse fit's resident size grew by about 0.7 MiB a batch.
    """
    indptr = X.indptr
    starts = indptr[idx].astype(np.int64)
    counts = indptr[idx + 1] - starts
    out = torch.zeros((len(idx), X.shape[1]), dtype=TORCH_DTYPES[X.dtype])
    total = int(counts.sum())
    if total:
        # the positions in X.data of each row's entries, rows one after another
        first = np.cumsum(counts) - counts
        pos = np.arange(total, dtype=np.int64) + np.repeat(starts - first, counts)
        flat = np.repeat(np.arange(len(idx), dtype=np.int64) * X.shape[1], counts)
        flat += X.indices[pos]
        # added, not set: a repeated entry of a non-canonical matrix sums, as in toarray
        out.view(-1).index_add_(0, torch.from_numpy(flat), torch.from_numpy(X.data[pos]))
    return out.to(dtype)


def csr_blocks(X: Rows, budget: int = CHUNK_ELEMENTS // 4):
    """Consecutive blocks of the rows of sparse :class:`Rows`, as float64 CSR
    matrices whose values are rounded to ``X.dtype`` first (what a batch reads).

    A block's rows hold at most ``budget`` pairs of entries (one row at least),
    which bounds the size of the block's X'X.
    """
    M = X.data
    nnz = np.diff(M.indptr[X.start : X.stop + 1]).astype(np.int64)
    cost = np.cumsum(nnz * nnz + 1)  # +1: empty rows count, and every block moves on
    rounded = np.float32 if X.dtype == torch.float32 else np.float64
    start, spent = 0, 0
    while start < len(nnz):
        stop = max(start + 1, int(np.searchsorted(cost, spent + budget, side="right")))
        block = M[X.start + start : X.start + stop]
        values = block.data.astype(rounded, copy=False).astype(np.float64, copy=False)
        yield sp.csr_matrix((values, block.indices, block.indptr), shape=block.shape)
        start, spent = stop, int(cost[stop - 1])


def sparse_spread(X: Rows, step: int) -> float:
    """The root mean column variance (ddof=0) of the rows ``X[::step]`` of sparse
    :class:`Rows`, from their entries (values rounded to ``X.dtype``, summed in
    float64): what a densified ``X[::step]`` gives, to rounding, without it."""
    rows = X.data[X.start : X.stop : step]
    values = rows.data.astype(np.float32 if X.dtype == torch.float32 else np.float64)
    rows = sp.csr_matrix((values.astype(np.float64), rows.indices, rows.indptr), shape=rows.shape)
    n = max(rows.shape[0], 1)
    mean = np.asarray(rows.sum(axis=0)).ravel() / n
    squares = np.asarray(rows.multiply(rows).sum(axis=0)).ravel() / n
    return float(np.sqrt(np.clip(squares - mean * mean, 0.0, None).mean()))


def dense(rows, copy: bool = False) -> np.ndarray:
    """A C-ordered NumPy array of ``rows``: a chunk of a sparse matrix densified."""
    if hasattr(rows, "toarray"):
        return rows.toarray(order="C")
    return np.array(rows, copy=True, order="C") if copy else np.ascontiguousarray(rows)


class MappedRows:
    """``fn`` of the rows of ``X`` (a tensor or :class:`Rows`), a slice at a time.

    Supports what the start reads: ``len``, ``shape``, ``dtype``, ``device`` and
    slices; ``fn`` maps rows to rows of the same width.
    """

    def __init__(self, X: torch.Tensor | Rows, fn: Callable[[torch.Tensor], torch.Tensor]):
        self.X, self.fn = X, fn
        self.shape, self.dtype, self.device = tuple(X.shape), X.dtype, X.device

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, key) -> torch.Tensor:
        return self.fn(self.X[key])


def column_mean(X: torch.Tensor | Rows) -> torch.Tensor:
    """The mean of each column, summed in float64 over chunks of rows."""
    n, d = X.shape
    if getattr(X, "sparse", False):  # the entries only
        total = sum((np.asarray(b.sum(axis=0)).ravel() for b in csr_blocks(X)), np.zeros(d))
        return (torch.from_numpy(total) / max(n, 1)).to(X.dtype)
    step = max(1, CHUNK_ELEMENTS // max(d, 1))
    total = sum(X[a : a + step].double().sum(dim=0) for a in range(0, n, step))
    return (total / max(n, 1)).to(X.dtype)


def on_device(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` itself if its weights are on ``device``, else a copy there.

    The fitted module is never moved: threads sharing it (two ``transform``
    calls on a GPU) cannot race, and the weights cross to the device once per
    call, not there and back.
    """
    tensors = [*module.parameters(), *module.buffers()]
    if all(t.device == device for t in tensors):
        return module
    memo = {id(t): t.detach().to(device) for t in module.buffers()}
    for p in module.parameters():
        memo[id(p)] = nn.Parameter(p.detach().to(device), requires_grad=p.requires_grad)
    return copy.deepcopy(module, memo)


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
    check: Callable[[np.ndarray], np.ndarray] | None = None,
    extras: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """Inference: ``fn(module, rows, *extra)`` over chunks of ``X`` on ``device``.

    The output has X's dtype (float64 for an out-of-core X of another dtype);
    the module computes in its own dtype, on a copy on ``device`` if it is not
    there (see :func:`on_device`). ``check`` validates each chunk of rows read
    from an out-of-core X. A chunk holds about ``CHUNK_ELEMENTS`` activations of
    the widest layer, times ``copies`` when ``fn`` runs each row several times
    (Monte Carlo draws), so memory does not grow with the number of rows; a
    sparse X is densified one chunk at a time. ``extras``: arrays of one row per
    row of X (e.g. random draws), chunked alongside it.
    """
    model_dtype = next(module.parameters()).dtype
    out_dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    out = np.empty((X.shape[0], out_width), dtype=out_dtype)
    widest = max(
        (max(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)),
        default=1,
    )
    step = max(1, CHUNK_ELEMENTS // (max(widest, X.shape[1], out_width) * copies))
    module = on_device(module, device)
    with torch.inference_mode():
        for start in range(0, X.shape[0], step):
            rows = X[start : start + step]
            if check is not None:
                rows = check(rows)
            chunk = as_tensor(dense(rows))
            to = {"device": device, "dtype": model_dtype}
            extra = [torch.as_tensor(e[start : start + step]).to(**to) for e in extras]
            result = fn(module, chunk.to(**to), *extra)
            out[start : start + step] = result.reshape(len(chunk), -1).cpu().numpy()
    return out


def random_rows(X: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """Up to ``n`` rows of ``X`` drawn without replacement (all of them if fewer)."""
    order = torch.randperm(len(X), generator=generator, device=generator.device)
    return X[order[:n].to(X.device)]
