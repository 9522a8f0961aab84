"""Principal subspaces in torch: the linear autoencoder's solver and PCA starts.

Two users: :class:`~skvae.LinearAutoencoder` trains by the alternating
least-squares steps of :func:`fit_principal_subspace`, and the deep models start
from PCA's solution, computed by :func:`principal_components`. Both work on the
second moments of :func:`moments`, in float64 whatever the data's dtype: the
covariance squares the data's condition number, and float32 rounding alone can
turn a subspace with close eigenvalues by about a degree. On wide sparse rows
the deep models' start reads the covariance as a :class:`CovarianceOperator`
instead, never formed.

Nothing here imports scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from ._placement import BATCH_ELEMENTS, CHUNK_ELEMENTS, csr_blocks
from ._training import History, Reduce, TrainingConfig, interruptible

#: Up to this size the moment matrix is diagonalised outright (milliseconds);
#: beyond it the block iteration of :func:`fit_principal_subspace` is cheaper.
EIGH_MAX_SIZE = 2048


@dataclass
class Moments:
    """First and second moments of a data matrix X (n x d), in float64.

    ``matrix`` is the smaller of the covariance Xc'Xc / n (d x d) and the Gram
    matrix Xc Xc' / n (n x n, ``wide``); both have the same nonzero
    eigenvalues. ``centred`` keeps Xc for wide data, whose principal
    directions are Xc' times the Gram matrix's eigenvectors.
    """

    mean: torch.Tensor
    matrix: torch.Tensor
    n_samples: int
    centred: torch.Tensor | None = None

    @property
    def wide(self) -> bool:
        return self.centred is not None

    @property
    def size(self) -> int:
        """min(n_samples, n_features): how many principal directions there are."""
        return self.matrix.shape[0]

    @property
    def total_variance(self) -> float:
        """Sum of the variances of all features (ddof=0)."""
        return float(torch.diagonal(self.matrix).sum())

    def to(self, device: str | torch.device) -> Moments:
        move = None if self.centred is None else self.centred.to(device)
        return Moments(self.mean.to(device), self.matrix.to(device), self.n_samples, move)

    def merged(self, other: Moments) -> Moments:
        """The moments of both data sets' rows together (both covariances).

        The pairwise update of Chan, Golub & LeVeque (1979): the scatter
        matrices add, plus the outer product of the difference of the means
        weighted by n_a n_b / n. Exact up to rounding, whatever the order in
        which chunks arrive.
        """
        if self.wide or other.wide:
            raise ValueError("only covariance moments (tall=True) can be merged")
        na, nb = self.n_samples, other.n_samples
        n = na + nb
        delta = other.mean.to(self.mean) - self.mean
        scatter = self.matrix * na + other.matrix.to(self.matrix) * nb
        scatter.addr_(delta, delta, alpha=na * nb / n)
        return Moments(self.mean + delta * (nb / n), scatter / n, n)


#: The scatter X'X is symmetric: in this many column blocks, only the products
#: of its upper block triangle are made (10 of 16: a quarter faster at d = 784).
SCATTER_BLOCKS = 4


def moments(
    X: torch.Tensor,
    device: torch.device,
    tall: bool = False,
    total: Reduce | None = None,
    scatter_dtype: torch.dtype = torch.float64,
) -> Moments:
    """Mean and covariance (or Gram) matrix of ``X`` on ``device``, in float64.

    Tall data is read in row chunks, so no float64 copy of X is made, and the
    scatter is accumulated in ``scatter_dtype``: float64, unless a caller
    trades digits for speed (the deep models' start on float32 data, where
    a float64 scatter cost 15% of a two-epoch fit). The Gram matrix is used
    when X has fewer rows than columns, unless ``tall``.

    With ``total``, a sum over the processes that share the data
    (:mod:`skvae._distributed`), ``X`` is this process's part of the rows and
    the result is the covariance of all the parts: the row sums, then the
    scatter about the common mean, are summed over the processes (two
    collectives; exact up to rounding, like :meth:`Moments.merged`).
    """
    n, d = X.shape
    if getattr(X, "sparse", False) and (n >= d or tall or total is not None):
        return _sparse_moments(X, device, total)
    step = max(1, CHUNK_ELEMENTS // max(d, 1))
    chunks = [(s, min(s + step, n)) for s in range(0, n, step)]

    def chunk(a: int, b: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        return X[a:b].to(device=device, dtype=dtype)

    sums = _float64_sums(X, chunks, device)
    if total is not None:
        counted = total(torch.cat([sums, sums.new_tensor([n])]))
        sums, n = counted[:-1], int(counted[-1])
    mean = sums / n
    if n < d and not tall and total is None:
        Xc = chunk(0, n) - mean
        return Moments(mean, Xc @ Xc.T / n, n, Xc)
    cov = torch.zeros(d, d, dtype=scatter_dtype, device=device)
    centre = mean.to(scatter_dtype)
    edges = [d * i // SCATTER_BLOCKS for i in range(SCATTER_BLOCKS + 1)]
    for a, b in chunks:
        c = chunk(a, b, scatter_dtype) - centre
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):  # the upper blocks
            cov[lo:hi, lo:].addmm_(c[:, lo:hi].T, c[:, lo:])
        del c  # freed before the next chunk is read, not after
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):  # mirrored in place
        cov[hi:, lo:hi] = cov[lo:hi, hi:].T
        block = cov[lo:hi, lo:hi]
        block.copy_(block.triu() + block.triu(1).T)  # exactly symmetric
    cov = cov.to(torch.float64)
    if total is not None:
        cov = total(cov)
    return Moments(mean, cov / n, n)


def _float64_sums(X, chunks: list[tuple[int, int]], device: torch.device) -> torch.Tensor:
    """The column sums of the dense rows X, read in ``chunks``, in float64.

    Each chunk is converted to float64 a few rows at a time (BATCH_ELEMENTS,
    2 MiB): torch's float32-to-float64 column reduction, ``sum(dim=0,
    dtype=torch.float64)``, ran 4x slower than this on 18000 x 784 rows, and
    a float64 copy of a whole chunk is 32 MiB. One chunk is alive at a time
    (a loop variable would hold the last while the next is read)."""
    d = X.shape[1]
    step = max(1, BATCH_ELEMENTS // max(d, 1))

    def chunk_sums(rows):  # a chunk freed before the next is read
        return sum(
            rows[i : i + step].to(torch.float64).sum(dim=0) for i in range(0, len(rows), step)
        )

    zero = torch.zeros(d, dtype=torch.float64, device=device)
    return sum((chunk_sums(X[a:b].to(device)) for a, b in chunks), zero)


def _sparse_moments(X, device: torch.device, total: Reduce | None) -> Moments:
    """:func:`moments` of the rows of a sparse matrix (:class:`~skvae._placement.Rows`),
    from its entries only: the scatter about the mean m is X'X - m s' - s m' +
    n m m' (s the row sums, n the rows), X'X summed block by block from sparse
    products, so no row is densified or centred. In float64 on the CPU."""
    n_local, d = X.shape
    sums = np.zeros(d)
    scatter = torch.zeros(d * d, dtype=torch.float64)
    for block in csr_blocks(X):
        sums += np.asarray(block.sum(axis=0)).ravel()
        product = block.T.tocsr() @ block  # CSR, no repeated entries
        flat = np.repeat(np.arange(d, dtype=np.int64) * d, np.diff(product.indptr))
        flat += product.indices
        scatter.index_add_(0, torch.from_numpy(flat), torch.from_numpy(product.data))
    s = torch.from_numpy(sums).to(device)
    scatter = scatter.view(d, d).to(device)
    n = n_local
    if total is not None:
        counted = total(torch.cat([s, s.new_tensor([n])]))
        n = int(counted[-1])
        mean = counted[:-1] / n
    else:
        mean = s / n
    scatter.addr_(mean, s, alpha=-1.0).addr_(s, mean, alpha=-1.0).addr_(mean, mean, alpha=n_local)
    if total is not None:
        scatter = total(scatter)
    return Moments(mean, scatter.div_(n), n)


#: From this many features on, the deep models' PCA start on sparse rows reads
#: their covariance as an operator (:class:`CovarianceOperator`): the d x d
#: matrix is 2 MiB at d = 512, but 31 MiB at d = 2000, and with its
#: eigendecomposition's workspace a fit's start took about 100 MiB there.
OPERATOR_MIN_FEATURES = 512


@dataclass
class CovarianceOperator:
    """The covariance of sparse rows, never formed: ``C v = X'(X v) / n - m (m'v)``.

    Stands for :class:`Moments` in :func:`principal_components` and
    :func:`discarded_variance`: Lanczos (:func:`scipy.sparse.linalg.eigsh`)
    finds the leading eigenvectors from products with the matrix's entries,
    in O(nnz) time per product and O(d k) memory. In float64 on the CPU.
    """

    mean: torch.Tensor
    n_samples: int
    total_variance: float
    rows: sp.csr_matrix  # float64 values (rounded to the rows' dtype first)
    wide = False

    @property
    def size(self) -> int:
        return min(self.n_samples, self.rows.shape[1])

    def dense(self) -> torch.Tensor:
        """The d x d covariance itself (what the operator avoids making)."""
        m = self.mean.numpy()
        scatter = (self.rows.T @ self.rows).toarray() / self.n_samples
        return torch.from_numpy(scatter - np.outer(m, m))

    def times(self, basis: torch.Tensor) -> torch.Tensor:
        """The covariance times each column of ``basis`` (d x j)."""
        V = basis.detach().cpu().numpy()
        m = self.mean.numpy()
        out = self.rows.T @ (self.rows @ V) / self.n_samples - np.outer(m, m @ V)
        return torch.from_numpy(np.ascontiguousarray(out)).to(basis)


def use_operator(X, k: int, distributed: bool) -> bool:
    """Whether a PCA start of ``k`` axes on rows ``X`` reads their covariance as
    an operator: sparse rows of many features, few axes (Lanczos needs
    k < d), in one process (data-parallel ranks sum their moments as matrices)."""
    n, d = X.shape
    wide = d >= OPERATOR_MIN_FEATURES and 0 < min(k, n - 1) < d // 2
    return getattr(X, "sparse", False) and wide and not distributed


def covariance_operator(X) -> CovarianceOperator:
    """The covariance of sparse :class:`~skvae._placement.Rows` as an operator:
    the mean and total variance from the entries, no copy of the matrix
    beyond its values when they must be rounded to the rows' dtype."""
    M = X.data if (X.start, X.stop) == (0, X.data.shape[0]) else X.data[X.start : X.stop]
    rounded = np.float32 if X.dtype == torch.float32 else np.float64
    values = M.data.astype(rounded, copy=False).astype(np.float64, copy=False)
    M = sp.csr_matrix((values, M.indices, M.indptr), shape=M.shape)
    n = M.shape[0]
    mean = np.asarray(M.sum(axis=0)).ravel() / n
    # the sum of squares of every entry (training rows are canonical: no repeats)
    total = max(float(values @ values) / n - float(mean @ mean), 0.0)
    return CovarianceOperator(torch.from_numpy(mean), n, total, M)


def principal_axes(mom: Moments, basis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate an orthonormal basis (d x k) of a subspace to its principal axes.

    Returns the axes (d x k), by decreasing variance, and the variance of the
    data along each (ddof=0): the Rayleigh-Ritz step, an eigendecomposition of
    the k x k covariance of the projected data (Plaut, 2018).
    """
    if mom.wide:
        Z = mom.centred @ basis
        projected = Z.T @ Z / mom.n_samples
    elif isinstance(mom, CovarianceOperator):
        projected = basis.T @ mom.times(basis)
        projected = (projected + projected.T) / 2
    else:
        projected = basis.T @ mom.matrix @ basis
    variances, rotation = torch.linalg.eigh(projected)
    order = torch.argsort(variances, descending=True)
    axes = basis @ rotation[:, order]
    variances = variances[order]
    if not mom.wide and not isinstance(mom, CovarianceOperator):
        # A constant feature (its variance what centring's rounding leaves)
        # has no share in an axis that varies (C e = L e, row j of C zero:
        # e_j = 0). What rounding leaves there depends on the order of the
        # sums, and made fits that should agree (one process and several)
        # drift apart.
        spread = torch.diagonal(mom.matrix)
        eps = torch.finfo(spread.dtype).eps
        constant = spread <= (16 * eps * mom.mean.to(spread)) ** 2
        axes[constant[:, None] & (variances > eps * spread.sum())[None, :]] = 0
    # a deterministic sign, PCA's convention: each axis's largest |entry| is positive
    largest = axes.gather(0, axes.abs().argmax(dim=0, keepdim=True))
    return axes * torch.where(largest < 0, -1.0, 1.0).to(axes), variances.clamp_min(0)


def _to_feature_space(mom: Moments, Q: torch.Tensor) -> torch.Tensor:
    """An orthonormal feature-space basis of the span found in ``mom.matrix``'s space."""
    return torch.linalg.qr(mom.centred.T @ Q).Q if mom.wide else Q


def principal_components(
    mom: Moments, n_components: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """PCA's leading ``n_components`` axes (d x k) and variances (ddof=0).

    Exact eigendecomposition for moment matrices up to ``EIGH_MAX_SIZE``, the
    block iteration of :func:`fit_principal_subspace` beyond.
    """
    k = min(n_components, mom.size)
    if isinstance(mom, CovarianceOperator):
        return principal_axes(mom, _lanczos(mom, k, generator))
    if mom.matrix.shape[0] <= EIGH_MAX_SIZE:
        Q = leading_eigenvectors(mom.matrix, k)
    else:
        Q, _ = fit_principal_subspace(mom, k, TrainingConfig(max_iter=1000), generator)
    return principal_axes(mom, _to_feature_space(mom, Q))


def leading_eigenvectors(M: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` leading eigenvectors (d x k, ascending order) of the symmetric
    matrix ``M``. For a few of many on the CPU, LAPACK's ``syevr`` for those
    alone (scipy's ``subset_by_index``): a third of the time of the whole
    decomposition at d = 784, k = 10, but slower than it for most of them;
    otherwise (or on a GPU), torch's whole ``eigh``."""
    d = M.shape[0]
    if k == 0:
        return M[:, :0]
    if M.device.type != "cpu" or 4 * k > d:
        return torch.linalg.eigh(M).eigenvectors[:, -k:]
    leading = [d - k, d - 1]
    _, vectors = scipy.linalg.eigh(M.detach().numpy(), subset_by_index=leading, driver="evr")
    return torch.from_numpy(vectors).to(M.dtype)


def _lanczos(op: CovarianceOperator, k: int, generator: torch.Generator) -> torch.Tensor:
    """An orthonormal basis (d x k, float64, CPU) of the operator's leading
    eigenvectors, by ARPACK's Lanczos iteration to machine precision; its
    start vector from ``generator``, so a fit repeats."""
    d = op.rows.shape[1]
    if k == 0 or op.total_variance == 0:  # every direction is principal: any basis
        return torch.eye(d, k, dtype=torch.float64)
    start = torch.rand(d, generator=generator, device=generator.device, dtype=torch.float64)

    def product(v):
        return op.times(torch.from_numpy(np.asarray(v).reshape(d, -1))).numpy()

    linear = LinearOperator((d, d), matvec=product, matmat=product, dtype=np.float64)
    try:
        _, vectors = eigsh(linear, k=k, which="LA", v0=start.cpu().numpy() - 0.5, tol=0)
    except ArpackNoConvergence:  # rare: the matrix, made once, and eigh
        return leading_eigenvectors(op.dense(), k)
    return torch.linalg.qr(torch.from_numpy(vectors)).Q


def fit_principal_subspace(
    mom: Moments,
    n_components: int,
    config: TrainingConfig,
    generator: torch.Generator,
    log: Callable[[str], None] = print,
) -> tuple[torch.Tensor, History]:
    """Train a linear autoencoder on squared error by exact least-squares steps.

    With the decoder D fixed, the best linear encoder is the least-squares
    projection, codes Z = Xc D (D'D)^-1; with the codes fixed, the best decoder is
    D = Xc' Z (Z'Z)^-1. One such pair of steps maps span(D) to span(C D),
    C = Xc'Xc / n, and on the codes' side span(Z) to span(G Z), G = Xc Xc' / n,
    so the iteration runs in whichever of the two spaces is smaller (``mom``'s
    matrix M); the loss of a span Q is (tr M - tr Q'MQ) / tr M. Alternating
    alone converges at the rate lambda_{k+1} / lambda_k (Baldi & Hornik 1989:
    from a random start, to PCA's subspace). Each step here also takes the
    exactly optimal span inside the one spanned by the current iterate, its
    alternating update and the previous iterate (a locally optimal block step,
    as in conjugate gradients / LOBPCG), which is much faster when eigenvalue
    gaps are small. Every step lowers the loss.

    Returns an orthonormal basis of the learned span in M's space (use
    :func:`principal_axes` for the feature-space axes) and the history.
    Training stops when the largest principal angle between successive
    iterates is below ``tol ** 2`` radians (or a few ulps), when the loss has
    been flat to that precision for ``n_iter_no_change`` steps, or after
    ``max_iter`` steps.
    """
    M = mom.matrix
    total = torch.diagonal(M).sum()
    scale = total.clamp_min(torch.finfo(M.dtype).tiny)
    k = n_components
    start = torch.randn(M.shape[0], k, generator=generator, dtype=M.dtype, device=generator.device)
    Q = torch.linalg.qr(M @ start.to(M.device)).Q
    previous = None
    flat = 0
    history = History()
    # below a few ulps the angle between successive iterates is rounding noise
    rounding = 10 * torch.finfo(M.dtype).eps
    threshold = max(config.tol**2, rounding)
    with interruptible() as interrupt:
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
    history.best_loss = min(history.loss_curve, default=math.inf)
    return Q, history


def leading_subspace(
    mom: Moments,
    n_components: int,
    config: TrainingConfig,
    generator: torch.Generator,
    log: Callable[[str], None] = print,
) -> tuple[torch.Tensor, torch.Tensor, History]:
    """:func:`fit_principal_subspace`, then its principal axes and variances."""
    Q, history = fit_principal_subspace(mom, n_components, config, generator, log)
    axes, variances = principal_axes(mom, _to_feature_space(mom, Q))
    return axes, variances, history


def spectrum(mom: Moments) -> torch.Tensor:
    """All the variances along the principal axes (ddof=0), decreasing.

    ``min(n_samples, n_features)`` of them, as many as PCA's full SVD gives:
    the eigenvalues of ``mom.matrix`` (the covariance or the Gram matrix),
    clipped at zero against rounding.
    """
    return torch.linalg.eigvalsh(mom.matrix).flip(0).clamp_min(0)


def discarded_variance(mom: Moments, kept: torch.Tensor) -> float:
    """Mean variance (ddof=0) of the principal directions beyond the ``kept`` ones.

    Probabilistic PCA's maximum-likelihood noise variance, as PCA computes
    it: the variance not captured by the kept directions (whose variances are
    ``kept``), shared by the ``min(n_samples, n_features) - len(kept)`` others;
    0 when there are none.
    """
    rest = mom.size - len(kept)
    return max(mom.total_variance - float(kept.sum()), 0.0) / rest if rest > 0 else 0.0
