"""Divergence, overflow, Ctrl-C, reproducibility, row independence, bounded chunks."""

import pickle
import signal

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import skvae._placement
from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder

from .conftest import ESTIMATORS, small

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.single_thread

X_DIGITS = load_digits().data[:400] / 16


@pytest.mark.parametrize(
    "est",
    [
        LinearAutoencoder(solver="adam", learning_rate=1e4, max_iter=20, random_state=0),
        Autoencoder(learning_rate=1e4, max_iter=20, random_state=0),
        VariationalAutoencoder(learning_rate=1e4, max_iter=20, random_state=0),
        VariationalAutoencoder(
            hidden_layer_sizes=(), solver="adam", learning_rate=1e4, max_iter=20, random_state=0
        ),
    ],
    ids=["linear-adam", "ae", "vae", "linear-vae-adam"],
)
def test_absurd_learning_rate_raises_and_keeps_previous_model(est):
    est.set_params(learning_rate=1e-3).fit(X_DIGITS)
    Z = est.transform(X_DIGITS)
    with pytest.raises(ValueError, match=r"diverged.*smaller learning_rate \(got 10000.0\)"):
        est.set_params(learning_rate=1e4).fit(X_DIGITS)
    np.testing.assert_array_equal(est.transform(X_DIGITS), Z)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_huge_finite_float64_data_trains_as_at_unit_scale(cls):
    """Data at 1e30 is finite in float64: training runs in standardised units, so
    the model is the unit-scale model, scaled; a float32 network would overflow
    on it, and is refused with a hint to rescale."""
    X = X_DIGITS * 1e30
    big = small(cls, n_components=3).fit(X)
    ref = small(cls, n_components=3).fit(X_DIGITS)
    assert big.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(
        big.inverse_transform(big.transform(X)) / 1e30,
        ref.inverse_transform(ref.transform(X_DIGITS)),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        big.sample(5, random_state=0) / 1e30, ref.sample(5, random_state=0), atol=1e-6
    )
    with pytest.raises(ValueError, match=r"overflow float32\. Rescale the data"):
        small(cls, n_components=3, compute_dtype="float32").fit(X)


@pytest.mark.parametrize("cls", [Autoencoder, VariationalAutoencoder])
@pytest.mark.parametrize(
    "step, epochs_kept",
    [(2 * 9 + 4, 2), (3 * 9, 3)],
    ids=["mid-epoch", "last-batch"],
)
def test_ctrl_c_stops_training_cleanly(cls, step, epochs_kept, ctrl_c_at_step):
    """Ctrl-C ends training after the batch it came in: an epoch cut short does
    not count, one whose last batch it came in does."""
    X = np.random.RandomState(0).normal(size=(400, 8))
    # 360 training rows (10% held out) in batches of 40: 9 steps an epoch
    est = cls(
        n_components=2,
        hidden_layer_sizes=(8,),
        batch_size=40,
        max_iter=10_000,
        tol=0,
        n_iter_no_change=10_000,
        random_state=0,
    )
    steps = ctrl_c_at_step(step)
    with pytest.warns(UserWarning, match="interrupted"):
        est.fit(X)
    assert len(steps) == step  # the batch in which it came was the last
    assert est.n_iter_ == len(est.loss_curve_) == epochs_kept
    assert len(est.validation_scores_) == epochs_kept + 1  # the start, then each epoch
    Z = est.transform(X)
    assert np.all(np.isfinite(Z)) and np.all(np.isfinite(est.inverse_transform(Z)))
    # the handler is restored: Ctrl-C outside fit is a KeyboardInterrupt again
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_same_seed_same_model_other_seed_other_model_global_rng_untouched(cls):
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = small(cls, n_components=2, random_state=0).fit(X_DIGITS)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = small(cls, n_components=2, random_state=0).fit(X_DIGITS)
    c = small(cls, n_components=2, random_state=1).fit(X_DIGITS)
    assert torch.equal(torch.random.get_rng_state(), state)
    np.testing.assert_array_equal(a.transform(X_DIGITS), b.transform(X_DIGITS))
    np.testing.assert_array_equal(a.loss_curve_, b.loss_curve_)
    # the seed changes the path (the deep models may still keep PCA's start, which
    # no seed changes, if no epoch beats it on held-out rows)
    assert a.loss_curve_ != c.loss_curve_
    if cls is not LinearAutoencoder:  # from random weights, another model
        d = small(cls, n_components=2, init="random", random_state=1).fit(X_DIGITS)
        assert not np.allclose(a.transform(X_DIGITS), d.transform(X_DIGITS))


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("dtype, atol", [(np.float32, 1e-6), (np.float64, 1e-12)])
def test_rows_do_not_depend_on_their_batch(cls, dtype, atol):
    X = X_DIGITS.astype(dtype)
    est = small(cls, n_components=3).fit(X)
    Z = est.transform(X)
    R = est.inverse_transform(Z)
    rows = [0, 7, 123, 399]
    for i in rows:
        np.testing.assert_allclose(est.transform(X[i : i + 1]), Z[i : i + 1], atol=atol)
        np.testing.assert_allclose(est.inverse_transform(Z[i : i + 1]), R[i : i + 1], atol=atol)
    if cls is VariationalAutoencoder:
        s = est.score_samples(X)
        # an ELBO sums d terms of order |log c| and more: rounding is relative to those
        tol = atol * X.shape[1] * max(1.0, float(np.abs(np.log(est.noise_variance_))))
        for i in rows:
            np.testing.assert_allclose(est.score_samples(X[i : i + 1]), s[i : i + 1], atol=tol)


def _record_chunk_sizes(monkeypatch, est, hook):
    """Replace est.<hook> by a wrapper that records how many rows each call gets."""
    seen = []
    original = getattr(est, hook)

    def spy(module, x):
        seen.append(len(x))
        return original(module, x)

    monkeypatch.setattr(est, hook, spy)
    return seen


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_inference_runs_in_bounded_chunks(cls, monkeypatch):
    X = np.random.RandomState(0).normal(size=(2000, 8))
    est = small(cls, n_components=2).fit(X)
    Z_whole = est.transform(X)
    S_whole = est.score(X)
    # room for 128 rows of the 8 features (64 rows of the deep models' 16-wide layer)
    monkeypatch.setattr(skvae._placement, "CHUNK_ELEMENTS", 16 * 64)
    seen = _record_chunk_sizes(monkeypatch, est, "_encode")
    np.testing.assert_allclose(est.transform(X), Z_whole, rtol=1e-12, atol=1e-12)
    assert max(seen) <= 128 and len(seen) >= len(X) // 128 and sum(seen) == len(X)
    assert est.score(X) == pytest.approx(S_whole, rel=1e-12)


@pytest.mark.parametrize("n_importance", [1, 100])
def test_monte_carlo_scoring_shrinks_its_chunks(monkeypatch, n_importance):
    """score_samples runs every row once per draw (the ELBO's fixed draws, or K
    importance samples): chunks are that much smaller, memory O(chunk x K)."""
    X = np.random.RandomState(0).normal(size=(600, 8))
    vae = small(VariationalAutoencoder, n_components=2, n_importance=n_importance).fit(X)
    copies = len(vae.module_.score_eps) if n_importance == 1 else n_importance
    monkeypatch.setattr(skvae._placement, "CHUNK_ELEMENTS", 16 * 64 * copies)
    seen = _record_chunk_sizes(monkeypatch, vae, "_score_rows")
    vae.score_samples(X)
    assert max(seen) == 64 and sum(seen) == len(X)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_pickled_weights_are_on_the_cpu(cls):
    est = small(cls, n_components=2).fit(X_DIGITS)
    restored = pickle.loads(pickle.dumps(est))
    assert all(p.device.type == "cpu" for p in restored.module_.parameters())
    assert all(b.device.type == "cpu" for b in restored.module_.buffers())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("cls", ESTIMATORS)
def test_gpu_fit_matches_cpu_fit_and_pickles_to_cpu(cls):
    X = X_DIGITS.astype(np.float32)
    gpu = small(cls, n_components=2, device="cuda").fit(X)
    assert all(p.device.type == "cpu" for p in gpu.module_.parameters())
    restored = pickle.loads(pickle.dumps(gpu))
    np.testing.assert_allclose(restored.transform(X), gpu.transform(X), atol=1e-5)
    restored.set_params(device="cpu")
    np.testing.assert_allclose(restored.transform(X), gpu.transform(X), atol=1e-4)
