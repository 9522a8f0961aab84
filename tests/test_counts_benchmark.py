"""The count benchmark, benchmarks/counts.py: a tiny quick run, its CSV and summary,
and the log-likelihoods it scores the baselines with."""

import contextlib
import io

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import nbinom, poisson

from benchmarks import counts

COLUMNS = {"dataset", "k", "method", "loglik", "fit_time_s", "score_time_s"}
VAE_COLUMNS = {"start_val_elbo", "best_val_elbo", "n_iter"}
PLUG_IN_COLUMNS = {"loglik_poisson", "loglik_nb"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One quick run on 300 digits rows, k=2, 3 VAE epochs, output in a tmp dir."""
    out = tmp_path_factory.mktemp("counts")
    argv = ["--quick", "--datasets", "digits", "--ks", "2", "--rows", "300"]
    argv += ["--max-iter", "3", "--device", "cpu", "--out", str(out)]
    stdout, stderr = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        returned = counts.main(argv)
    assert torch.get_num_threads() == threads  # the caller's setting is given back
    return {
        "out": out,
        "csv": pd.read_csv(out / "counts.csv"),
        "returned": returned,
        "stdout": stdout.getvalue(),
    }


def test_csv_has_every_method_with_finite_scores(quick_run):
    results = quick_run["csv"]
    assert list(results["method"]) == list(counts.METHODS)
    assert set(results["dataset"]) == {"digits"} and set(results["k"]) == {2}
    assert COLUMNS | VAE_COLUMNS | PLUG_IN_COLUMNS <= set(results.columns)
    assert np.isfinite(results["loglik"]).all() and (results["loglik"] < 0).all()
    assert (results["fit_time_s"] > 0).all()
    # every method's rates are scored as the baselines' (plug-in)
    assert np.isfinite(results[list(PLUG_IN_COLUMNS)]).all().all()
    baselines = results[results["method"].isin(counts.BASELINES)]
    # a baseline's figure is the better of its Poisson and NB scores
    best = baselines[["loglik_poisson", "loglik_nb"]].max(axis=1)
    np.testing.assert_allclose(baselines["loglik"], best)
    pd.testing.assert_frame_equal(quick_run["returned"], results, check_dtype=False)
    assert (quick_run["out"] / "counts.png").stat().st_size > 1000


def test_vaes_end_at_least_at_their_start(quick_run):
    vaes = quick_run["csv"][quick_run["csv"]["method"].isin(list(counts.VAES))]
    assert len(vaes) == 2
    assert np.isfinite(vaes[list(VAE_COLUMNS)]).all().all()
    # held-out stopping keeps the PCA start as a candidate
    assert (vaes["best_val_elbo"] >= vaes["start_val_elbo"] - 1e-6).all()


def test_the_count_autoencoder_is_scored_plug_in_and_ends_at_least_at_its_start(quick_run):
    results = quick_run["csv"]
    aes = results[results["method"].isin(list(counts.AUTOENCODERS))]
    assert len(aes) == 1
    assert np.isfinite(aes[list(VAE_COLUMNS)]).all().all()
    np.testing.assert_allclose(aes["loglik"], aes[["loglik_poisson", "loglik_nb"]].max(axis=1))
    assert (aes["best_val_elbo"] >= aes["start_val_elbo"]).all()
    assert "AE-Poisson: validation log-lik" in quick_run["stdout"]


def test_stdout_has_the_table_and_one_line_per_target(quick_run):
    stdout = quick_run["stdout"]
    for method in counts.METHODS:
        assert method in stdout
    verdicts = [line for line in stdout.splitlines() if line.startswith(("PASS ", "FAIL "))]
    assert len(verdicts) == 3  # NB VAE vs NMF-KL and PCA-log1p, Poisson VAE vs NMF-KL
    assert "passed;" in stdout


def test_nb_loglik_matches_scipy_and_tends_to_poisson():
    rng = np.random.RandomState(0)
    mu = rng.uniform(0.5, 20, (50, 6))
    theta = rng.uniform(0.5, 10, 6)
    X = rng.poisson(mu).astype(float)
    expected = nbinom.logpmf(X, theta, theta / (theta + mu)).sum(axis=1)
    np.testing.assert_allclose(counts.nb_loglik(X, mu, theta), expected, rtol=1e-10)
    np.testing.assert_allclose(
        counts.nb_loglik(X, mu, np.full(6, np.inf)), poisson.logpmf(X, mu).sum(axis=1)
    )
    np.testing.assert_allclose(counts.poisson_loglik(X, mu), poisson.logpmf(X, mu).sum(axis=1))


def test_moment_theta_recovers_the_dispersion():
    rng = np.random.RandomState(0)
    mu = np.broadcast_to(rng.uniform(2, 20, 4), (20000, 4))
    theta = np.array([0.5, 2.0, 5.0, 10.0])
    X = rng.negative_binomial(theta, theta / (theta + mu)).astype(float)
    np.testing.assert_allclose(counts.moment_theta(X, mu), theta, rtol=0.15)
    # Poisson counts: no excess variance in the population, theta large or inf
    assert (counts.moment_theta(rng.poisson(mu).astype(float), mu) > 50).all()


def test_curved_counts_are_overdispersed_integers():
    X = counts.curved_counts(500, 20)
    assert X.shape == (500, 20) and (X >= 0).all() and np.array_equal(X, np.round(X))
    assert (X.var(axis=0) > X.mean(axis=0)).all()  # every feature overdispersed
