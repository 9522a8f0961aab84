"""skvae's Autoencoder against the strongest peer measured, side by side in one run.

``python -m benchmarks.peers`` fits, on each benchmark data set and latent
size, skvae's default :class:`~skvae.Autoencoder` and a skorch autoencoder of
the same shape: encoder 256-128, mirrored decoder, ReLU, Adam at 1e-3,
batches of 128, at most as many epochs as skvae's default ``max_iter``
(500), trained on float32 with skorch's ``EarlyStopping`` on a 10%
validation split (patience 10, best weights restored). It prints, for
each, the held-out reconstruction error (and its ratio to PCA's) and the fit
time, then the ratios skvae / skorch.

Needs skorch (``pip install -e ".[peers]"``).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA
from torch import nn

from skvae import Autoencoder
from skvae.metrics import reconstruction_error

from . import datasets as _datasets

#: (data set, k) pairs compared by default: one curved and one linear k each.
DEFAULT_CASES = (
    ("digits", 10),
    ("spiked", 5),
    ("s_curve", 2),
    ("planar", 2),
    ("curved", 5),
)


class _MLPAutoencoder(nn.Module):
    """d -> 256 -> 128 -> k -> 128 -> 256 -> d with ReLU, as skvae's default shape."""

    def __init__(self, n_features: int, n_components: int) -> None:
        super().__init__()
        sizes = [n_features, 256, 128, n_components]
        enc, dec = [], []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            enc += [nn.Linear(a, b), nn.ReLU()]
        for a, b in zip(sizes[::-1][:-1], sizes[::-1][1:], strict=True):
            dec += [nn.Linear(a, b), nn.ReLU()]
        self.encoder = nn.Sequential(*enc[:-1])
        self.decoder = nn.Sequential(*dec[:-1])

    def forward(self, x):
        return self.decoder(self.encoder(x))


def skorch_autoencoder(n_features: int, n_components: int, seed: int = 0):
    """The peer: a skorch ``NeuralNetRegressor`` autoencoder with early stopping."""
    from skorch import NeuralNetRegressor
    from skorch.callbacks import EarlyStopping

    torch.manual_seed(seed)  # skorch initialises from torch's global generator
    return NeuralNetRegressor(
        _MLPAutoencoder,
        module__n_features=n_features,
        module__n_components=n_components,
        criterion=nn.MSELoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        batch_size=128,
        max_epochs=Autoencoder().max_iter,  # the same budget as skvae's default
        callbacks=[EarlyStopping(monitor="valid_loss", patience=10, load_best=True)],
        verbose=0,
    )


def _skorch_error(net, X: np.ndarray) -> float:
    X32 = X.astype(np.float32)
    return float(np.mean((net.predict(X32) - X32) ** 2))


def run(cases=DEFAULT_CASES, log=print) -> pd.DataFrame:
    """Fit both models on each (data set, k); one row per case."""
    rows = []
    for name, k in cases:
        data = _datasets.load(name)
        X_train, X_test = data.X_train, data.X_test
        pca = PCA(k, svd_solver="full").fit(X_train)
        pca_error = reconstruction_error(pca, X_test)

        start = time.perf_counter()
        ours = Autoencoder(k, random_state=0).fit(X_train)
        ours_time = time.perf_counter() - start
        ours_error = reconstruction_error(ours, X_test)

        net = skorch_autoencoder(data.n_features, k)
        X32 = X_train.astype(np.float32)
        start = time.perf_counter()
        net.fit(X32, X32)
        peer_time = time.perf_counter() - start
        peer_error = _skorch_error(net, X_test)
        log(f"{name}, k={k}: skvae {ours_time:.2f} s, skorch {peer_time:.2f} s")
        rows.append(
            {
                "dataset": name,
                "k": k,
                "skvae / PCA": ours_error / pca_error,
                "skorch / PCA": peer_error / pca_error,
                "error skvae / skorch": ours_error / peer_error,
                "skvae fit (s)": ours_time,
                "skorch fit (s)": peer_time,
                "time skvae / skorch": ours_time / peer_time,
                "skvae epochs": ours.n_iter_,
                "skorch epochs": len(net.history),
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of torch (default: 1)")
    args = parser.parse_args(argv)
    try:
        import skorch  # noqa: F401
    except ImportError:
        print('error: needs skorch: pip install -e ".[peers]"', file=sys.stderr)
        return 2
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        table = run(log=lambda m: print(m, file=sys.stderr, flush=True))
    finally:
        torch.set_num_threads(threads)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    totals = table[["skvae fit (s)", "skorch fit (s)"]].sum()
    print(
        f"total fit time: skvae {totals.iloc[0]:.1f} s, skorch {totals.iloc[1]:.1f} s "
        f"({totals.iloc[0] / totals.iloc[1]:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
