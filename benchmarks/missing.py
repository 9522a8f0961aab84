"""Missing entries: ``LinearAutoencoder``'s EM against scikit-learn's imputers.

Run ``python -m benchmarks.missing`` (``--quick`` for a smoke run). Each data
set is standardised (constant columns dropped), then a share of its entries
(``--rates``, missing completely at random, seed 0) is replaced by NaN. Each
method fills them, and the table gives the root mean squared error of the
filled entries against the hidden values (standardised units: 1.0 is what
the column means score) and the seconds the method took to fit and fill:

``mean``
    Column means of the observed entries.
``KNN``
    ``KNNImputer()``.
``Iterative``
    ``IterativeImputer(random_state=0)`` (Bayesian ridge regressions, 10
    rounds).
``LAE k``
    ``LinearAutoencoder(k, random_state=0).fit(X)._conditional_mean(X)``:
    EM for probabilistic PCA, stopped by 10% of the observed entries held out
    (the default), then E[x_miss | x_obs].
``AE k``, ``VAE k``
    ``Autoencoder(k)`` and ``VariationalAutoencoder(k)`` (defaults,
    ``random_state=0``) fitted on the observed entries, each missing entry
    then read off ``inverse_transform(transform(X))``: the decoded code of the
    row with its missing entries at the training mean (``--deep``).
``ML k``
    The same EM, run to convergence of the likelihood of all the observed
    entries (no held-out entries, ``tol=1e-4`` nats per entry): the
    maximum-likelihood model the default avoids, as it overfits.

Data sets: ``load_diabetes``, ``load_wine``, ``load_breast_cancer``,
``load_digits`` and ``curved``, 800 rows of a 2-D curved surface in 12
dimensions (seven nonlinear features of two uniform latents, mixed by a
random matrix, plus noise of standard deviation 0.05).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer
from sklearn.preprocessing import StandardScaler

from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder
from skvae._missing import conditional_mean, fit_em


def curved(n: int = 800, seed: int = 0) -> np.ndarray:
    rng = np.random.RandomState(seed)
    u, v = rng.uniform(-2, 2, size=(2, n))
    F = np.c_[np.sin(u), np.cos(u), np.sin(2 * v), u * v, v**2, u, v]
    return F @ rng.normal(size=(7, 12)) + 0.05 * rng.normal(size=(n, 12))


#: name -> (loader, the latent sizes k)
DATASETS = {
    "diabetes": (lambda: load_diabetes().data, (3, 6)),
    "wine": (lambda: load_wine().data, (3, 8)),
    "breast_cancer": (lambda: load_breast_cancer().data, (5, 15)),
    "digits": (lambda: load_digits().data, (10, 30)),
    "curved": (curved, (3, 6)),
}


def _timed(fill, X):
    start = time.perf_counter()
    out = fill(X)
    return out, time.perf_counter() - start


def _maximum_likelihood(k):
    def fill(X):
        generator = torch.Generator().manual_seed(0)
        Xt = torch.from_numpy(X)
        model, _ = fit_em(Xt, k, generator, validation_fraction=None)
        return conditional_mean(Xt, model).numpy()

    return fill


def _decoded(estimator):
    """Missing entries read off the decoded code of each row (observed kept)."""

    def fill(X):
        estimator.fit(X)
        return np.where(np.isnan(X), estimator.inverse_transform(estimator.transform(X)), X)

    return fill


def methods(ks, deep: bool = False) -> dict:
    found = {
        "mean": lambda X: np.where(np.isnan(X), np.nanmean(X, axis=0), X),
        "KNN": lambda X: KNNImputer().fit_transform(X),
        "Iterative": lambda X: IterativeImputer(random_state=0).fit_transform(X),
    }
    for k in ks:
        lae = LinearAutoencoder(k, random_state=0)
        found[f"LAE {k}"] = lambda X, lae=lae: lae.fit(X)._conditional_mean(X)
        found[f"ML {k}"] = _maximum_likelihood(k)
        if deep:
            found[f"AE {k}"] = _decoded(Autoencoder(k, random_state=0))
            found[f"VAE {k}"] = _decoded(VariationalAutoencoder(k, random_state=0))
    return found


def run(names, rates, quick: bool = False, deep: bool = False) -> pd.DataFrame:
    rows = []
    for name in names:
        load, ks = DATASETS[name]
        X = load().astype(np.float64)
        X = StandardScaler().fit_transform(X[:, X.std(axis=0) > 0])
        if quick:
            X, ks = X[:200], ks[:1]
        for rate in rates:
            hidden = np.random.RandomState(0).uniform(size=X.shape) < rate
            X_missing = np.where(hidden, np.nan, X)
            for method, fill in methods(ks, deep).items():
                filled, seconds = _timed(fill, X_missing)
                rmse = float(np.sqrt(np.mean((filled[hidden] - X[hidden]) ** 2)))
                rows.append((name, rate, method, rmse, seconds))
                print(f"{name:14s} {rate:.0%} {method:10s} {rmse:.3f} {seconds:7.2f}s", flush=True)
    return pd.DataFrame(rows, columns=["dataset", "rate", "method", "rmse", "seconds"])


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.missing", description=__doc__)
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--rates", nargs="+", type=float, default=[0.2, 0.5])
    parser.add_argument("--quick", action="store_true", help="200 rows, one k, a smoke run")
    parser.add_argument("--deep", action="store_true", help="Autoencoder and VAE too")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(args.threads):
        table = run(args.datasets, args.rates, args.quick, args.deep)
    wide = table.pivot_table(index=["dataset", "rate"], columns="method", values="rmse")
    print(wide[list(dict.fromkeys(table["method"]))].round(3).to_string())
    return table


if __name__ == "__main__":
    main()
