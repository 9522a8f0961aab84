"""Defects found by using skvae as a user would: sampling, far-away rows,
Ctrl-C twice, where warnings point, models that move between machines."""

import pickle
import signal
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from skvae import Autoencoder, VariationalAutoencoder

from .conftest import ESTIMATORS, small

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.single_thread


def _spiked(n=2000, d=10, seed=0):
    rng = np.random.RandomState(seed)
    basis, _ = np.linalg.qr(rng.randn(d, 3))
    return (rng.randn(n, 3) * [4.0, 3.0, 2.0]) @ basis.T + rng.randn(n, d)


def test_autoencoder_score_samples_is_minus_each_rows_mse(blobs):
    ae = small(Autoencoder).fit(blobs)
    rows = np.mean((ae.inverse_transform(ae.transform(blobs)) - blobs) ** 2, axis=1)
    np.testing.assert_allclose(ae.score_samples(blobs), -rows, rtol=1e-10)
    assert ae.score(blobs) == pytest.approx(ae.score_samples(blobs).mean())


@pytest.mark.parametrize("cls", [VariationalAutoencoder, Autoencoder])
def test_samples_from_the_full_model_have_the_datas_spread(cls):
    """Decoder means lie on a k-dimensional surface and miss the noise; the full
    model's samples have about the data's total variance."""
    X = _spiked()
    est = cls(n_components=3, hidden_layer_sizes=(), random_state=0).fit(X)
    total = X.var(axis=0).sum()
    full = est.sample(20000, random_state=0)
    means = est.sample(20000, random_state=0, noise=False)
    assert full.var(axis=0).sum() == pytest.approx(total, rel=0.05)
    assert means.var(axis=0).sum() < 0.9 * total
    # the noise is the decoder's: isotropic, of variance noise_variance_
    residual = (full - means).var(axis=0)
    np.testing.assert_allclose(residual, est.noise_variance_, rtol=0.1)


def test_bernoulli_vae_samples_are_binary():
    X = (np.random.RandomState(0).rand(200, 8) > 0.5).astype(float)
    vae = small(VariationalAutoencoder, likelihood="bernoulli").fit(X)
    assert set(np.unique(vae.sample(50, random_state=0))) <= {0.0, 1.0}
    probabilities = vae.sample(50, random_state=0, noise=False)
    assert np.all((probabilities > 0) & (probabilities < 1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_far_away_rows_score_very_low_never_nan(dtype, digits):
    X = digits[0][:400].astype(dtype)
    vae = small(VariationalAutoencoder, n_components=4).fit(X)
    near = vae.score_samples(X[:5])
    for factor in (1e4, 1e8, 1e30):
        far = vae.score_samples(X[:5] * dtype(factor))
        assert not np.any(np.isnan(far)), factor
        assert np.all(far < near.min())  # very low, or -inf where it overflows


def test_a_second_ctrl_c_interrupts_fit(ctrl_c_at_step):
    """The first Ctrl-C asks training to stop after the batch; a second one, during
    that batch, raises KeyboardInterrupt out of fit (a GridSearchCV can be stopped)."""
    X = np.random.RandomState(0).normal(size=(400, 8))
    est = Autoencoder(n_components=2, hidden_layer_sizes=(8,), batch_size=40, max_iter=10_000)
    steps = ctrl_c_at_step(5, times=2)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X)
    assert len(steps) == 5  # it stopped in that step
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not hasattr(est, "module_")  # nothing half-fitted was kept
    # one Ctrl-C alone, at the same step, only stops training (in its first epoch
    # of 9 steps, which does not count)
    ctrl_c_at_step(5)
    with pytest.warns(UserWarning, match="interrupted"):
        est.fit(X)
    assert est.n_iter_ == 0 and est.transform(X).shape == (400, 2)


def test_convergence_warning_points_at_the_callers_line(blobs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Autoencoder(max_iter=1, hidden_layer_sizes=(4,), early_stopping=False).fit(blobs)
    (warning,) = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert warning.filename == __file__


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_a_model_whose_device_is_missing_runs_on_the_cpu(cls, blobs, monkeypatch):
    est = small(cls, n_components=2, device="cpu").fit(blobs)
    Z = est.transform(blobs)
    # as if fitted on a GPU machine and unpickled on one without a GPU
    moved = pickle.loads(pickle.dumps(est.set_params(device="cuda")))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="CPU"):
        np.testing.assert_array_equal(moved.transform(blobs), Z)
    with pytest.warns(UserWarning, match="CPU"):
        assert moved.sample(3, random_state=0).shape == (3, blobs.shape[1])
