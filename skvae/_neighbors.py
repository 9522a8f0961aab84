"""``LatentImputer``'s local correction: a model's fills pulled toward the
observed values of each row's nearest training rows.

A latent model's conditional mean is global: it misses structure that only
neighbouring rows share (clusters, a curved surface). The correction finds
each row's nearest "donor" rows, training rows completed by the model, by
Euclidean distance between completed rows (every column counts, observed or
not), and averages, column by column, the donors' observed values, as
``KNNImputer`` averages its donors'. A fill becomes
``model + weight * (neighbours - model)``, the weight in [0, 1] chosen on
observed entries hidden from the model's fit.

Nothing here imports torch.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

#: the donors are at most this many training rows, drawn at random: a
#: neighbour search costs in proportion to them for every row filled
DONORS = 5000

#: a query's neighbour table (rows x neighbours x features) holds at most
#: this many entries at a time
_CHUNK = 1 << 22


class Donors:
    """Training rows to borrow from: ``completed`` (the model's fills in the
    missing entries) to measure distances, ``values`` (NaN where missing) to
    average; at most DONORS of them, drawn with ``rng``."""

    def __init__(self, completed, values, n_neighbors: int, rng: np.random.RandomState):
        self.picked = slice(None)
        if len(values) > DONORS:
            self.picked = np.sort(rng.choice(len(values), DONORS, replace=False))
        self.values, self.n_neighbors = values[self.picked], n_neighbors
        self.search = NearestNeighbors().fit(completed[self.picked])

    def lend(self, values: np.ndarray) -> Donors:
        """These donors with ``values`` (of the same rows) to average."""
        self.values = values[self.picked]
        return self

    def local_means(self, completed: np.ndarray, own: np.ndarray | None = None) -> np.ndarray:
        """For each completed row, each column's mean over the observed values
        of its ``n_neighbors`` nearest donors (the row's own entry where none
        of them observes that column). ``own``: each row's index among the
        donors, a row that is not its own neighbour."""
        skip = own is not None
        m = min(self.n_neighbors, len(self.values) - skip)
        out = np.array(completed, dtype=np.float64, copy=True)
        if m < 1:
            return out
        step = max(1, _CHUNK // max(1, (m + skip) * completed.shape[1]))
        for a in range(0, len(completed), step):
            part = completed[a : a + step]
            near = self.search.kneighbors(part, m + skip, return_distance=False)
            if skip:  # the row itself moved last (or, if not found, the farthest), then cut
                order = np.argsort(near == own[a : a + step, None], axis=1, kind="stable")
                near = np.take_along_axis(near, order, axis=1)[:, :m]
            values = self.values[near]
            seen = ~np.isnan(values)
            count = seen.sum(axis=1)
            total = np.where(seen, values, 0.0).sum(axis=1)
            out[a : a + step] = np.where(count > 0, total / np.maximum(count, 1), part)
        return out


def lend(completed, rows, hidden, n_neighbors: int, rng) -> tuple[float, Donors | None]:
    """The weight of the correction and the donors that ``transform`` borrows
    from (None when the weight is 0): ``rows``, which lost their ``hidden``
    entries to the model's fit, ``completed`` by its conditional means. The
    weight is chosen on the hidden entries (the donors lend what remained
    observed); ``transform`` then borrows every observed value."""
    donors = Donors(completed, np.where(hidden, np.nan, rows), n_neighbors, rng)
    lost = np.flatnonzero(hidden.any(axis=1))
    at, model = hidden[lost], completed[lost]
    local = donors.local_means(model)
    weight = one_se_weight((local - model)[at], rows[hidden] - model[at])
    return weight, (donors.lend(rows) if weight > 0 else None)


def one_se_weight(step: np.ndarray, residual: np.ndarray) -> float:
    """The w minimising ||residual - w * step||^2, clipped to [0, 1], less its
    standard error (heteroscedasticity-consistent), and 0 if that is negative."""
    norm = float(step @ step)
    if not norm > 0:
        return 0.0
    w = float(np.clip(step @ residual / norm, 0.0, 1.0))
    error = float(np.sqrt(np.sum(step**2 * (residual - w * step) ** 2)) / norm)
    return max(0.0, w - error)
