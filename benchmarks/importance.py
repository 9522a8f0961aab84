"""The VAE's importance-weighted score against its ELBO and PCA's log-likelihood.

Run ``python -m benchmarks.importance`` (``--quick`` for a smoke run). For each
data set of :mod:`benchmarks.datasets` and each k of the comparison's grid, it
fits the default :class:`~skvae.VariationalAutoencoder` (``random_state=0``)
on the training rows and scores the test rows with ``n_importance`` K in
``--K`` (K=1 is the ELBO), timing ``score`` (median of ``--repeats`` rounds,
each timing every K in turn).
Prints the curve of score against K, then a PASS/FAIL summary of the targets:

* at the default K, the held-out score is at least the ELBO and at least
  ``PCA.score - 0.002 d``, on every set and k;
* on digits at k=10, at least 2 nats above the ELBO;
* ``score`` at the default K takes at most 3x the ELBO's time.

It also says whether each fit left its probabilistic-PCA start (its kept
held-out score differs from the start's, ``validation_scores_[0]``). Writes
``importance.csv`` into ``--out`` (default ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA

from skvae import VariationalAutoencoder
from skvae._variational import DEFAULT_IMPORTANCE

from . import datasets as _datasets
from .compare import DEFAULT_KS, QUICK

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
KS_IMPORTANCE = (1, 4, 16, DEFAULT_IMPORTANCE, 64, 256)


def _timed_scores(model, X, Ks, repeats: int) -> dict:
    """{K: (score, median seconds)} over ``repeats`` rounds, each timing every K
    in turn, so that a change in the machine's load touches every K alike."""
    times, scores = {K: [] for K in Ks}, {}
    for _ in range(repeats):
        for K in Ks:
            model.set_params(n_importance=K)
            start = time.perf_counter()
            scores[K] = model.score(X)
            times[K].append(time.perf_counter() - start)
    return {K: (scores[K], float(np.median(times[K]))) for K in Ks}


def run(quick=False, names=None, n_importance=KS_IMPORTANCE, repeats=5, progress=None):
    """The table: one row per (data set, k, K)."""
    rows = []
    for name in names or list(_datasets.DATASETS):
        data = _datasets.load(name, QUICK.n_samples if quick else None)
        d = data.n_features
        for k in (QUICK.ks if quick else DEFAULT_KS)[name]:
            pca_score = PCA(k).fit(data.X_train).score(data.X_test)
            start = time.perf_counter()
            max_iter = QUICK.max_iter if quick else None
            vae = VariationalAutoencoder(k, random_state=0, max_iter=max_iter)
            vae.fit(data.X_train)
            fit_time = time.perf_counter() - start
            left = vae.best_validation_score_ != vae.validation_scores_[0]
            Ks = sorted(set(n_importance) | {1, DEFAULT_IMPORTANCE})
            vae.score(data.X_test[:8])  # warm
            timed = _timed_scores(vae, data.X_test, Ks, repeats)
            model_rows = [
                {
                    "dataset": name,
                    "k": k,
                    "d": d,
                    "K": K,
                    "score": score,
                    "seconds": seconds,
                    "pca_score": pca_score,
                    "left_start": left,
                    "fit_seconds": fit_time,
                }
                for K, (score, seconds) in timed.items()
            ]
            rows += model_rows
            if progress:
                best = model_rows[-1]
                progress(f"{name} k={k}: PCA {pca_score:.3f}, K={best['K']} {best['score']:.3f}")
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> tuple[str, bool]:
    """The targets, one line each; and whether all pass."""
    lines, ok = [], True
    for (name, k), group in table.groupby(["dataset", "k"], sort=False):
        by_K = group.set_index("K")
        elbo, iw = by_K.loc[1], by_K.loc[DEFAULT_IMPORTANCE]
        floor = iw["pca_score"] - 0.002 * iw["d"]
        ratio = iw["seconds"] / elbo["seconds"]
        rounding = 1e-9 * abs(elbo["score"])  # at an exact posterior they are equal
        checks = [iw["score"] >= elbo["score"] - rounding, iw["score"] >= floor, ratio <= 3.0]
        if name == "digits" and k == 10:
            checks.append(iw["score"] >= elbo["score"] + 2.0)
        passed = all(checks)
        ok &= passed
        lines.append(
            f"{'PASS' if passed else 'FAIL'} {name:8s} k={k:<3d} ELBO {elbo['score']:9.3f}  "
            f"IWAE(K={DEFAULT_IMPORTANCE}) {iw['score']:9.3f}  PCA {iw['pca_score']:9.3f}  "
            f"time x{ratio:.2f}  left start: {'yes' if iw['left_start'] else 'no'}"
        )
    return "\n".join(lines), ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.importance", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer rows and epochs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--datasets", nargs="+", choices=list(_datasets.DATASETS), default=None)
    parser.add_argument("--K", nargs="+", type=int, default=list(KS_IMPORTANCE))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    table = run(args.quick, args.datasets, args.K, args.repeats, log)
    curve = table.pivot_table(index=["dataset", "k"], columns="K", values="score", sort=False)
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print("Held-out score (nats per row) against K importance samples (K=1: the ELBO)")
        print(curve.to_string())
    text, ok = summary(table)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "importance.csv", index=False)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
