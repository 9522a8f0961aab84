"""Never worse than PCA: the deep models contain PCA's solution and start from it.

- ``init="pca"`` starts the Autoencoder at PCA's reconstruction and the VAE at
  probabilistic PCA, whose ELBO is ``PCA.score`` exactly;
- held-out rows decide which weights to keep, the start included, so the
  held-out error is at most PCA's and the held-out ELBO at least PCA.score;
- training runs in standardised units: the data's units change nothing.
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_moons, make_s_curve
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skvae import Autoencoder, VariationalAutoencoder
from skvae._training import (
    EXACT_CHECK_ROWS,
    SAMPLE_ROWS,
    Objective,
    Trainer,
    TrainingConfig,
    _significantly_better,
)
from skvae._vae_objective import minus_importance_bound
from skvae.metrics import reconstruction_error

from .conftest import assert_at_pca

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.single_thread

DEEP = [Autoencoder, VariationalAutoencoder]


def _spiked(n=400, d=12, rank=3, seed=0):
    rng = np.random.RandomState(seed)
    basis, _ = np.linalg.qr(rng.randn(d, rank))
    return (rng.randn(n, rank) * [4.0, 3.0, 2.0]) @ basis.T + 0.5 * rng.randn(n, d)


def _planar(n=600, d=10, seed=0):
    rng = np.random.RandomState(seed)
    X2, _ = make_moons(n, noise=0.1, random_state=seed)
    lift, _ = np.linalg.qr(rng.randn(d, 2))
    return X2 @ lift.T + 0.05 * rng.randn(n, d)


def _started(cls, X, k, **params):
    """What ``fit`` starts from, through the public API: one epoch of steps too
    small to move a weight (1e-300, lost in rounding) cannot beat the start on
    the held-out rows, so fit keeps the start."""
    est = cls(
        n_components=k,
        hidden_layer_sizes=(16,),
        learning_rate=1e-300,
        max_iter=1,
        random_state=0,
        **params,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X)
    assert est.best_validation_score_ == est.validation_scores_[0]  # the start's
    return est


@pytest.mark.parametrize("k", [1, 3, 5])
def test_autoencoder_starts_at_pca_reconstruction(k):
    X = _spiked() * 1e-3 + 50.0  # small units, far from the origin
    est = _started(Autoencoder, X, k)
    pca = PCA(k, svd_solver="full").fit(X)
    np.testing.assert_allclose(
        est.inverse_transform(est.transform(X)),
        pca.inverse_transform(pca.transform(X)),
        atol=1e-10,
    )


@pytest.mark.parametrize("k", [1, 3, 5])
def test_vae_starts_at_probabilistic_pca(k):
    """At the start the ELBO is pPCA's log-likelihood, row by row, with no
    Monte Carlo error (the balanced draws are exact for a linear decoder)."""
    X = _spiked() * 1e3
    est = _started(VariationalAutoencoder, X, k)
    pca = PCA(k, svd_solver="full").fit(X)
    X_new = _spiked(n=50, seed=1) * 1e3  # rows the start never saw
    np.testing.assert_allclose(est.score_samples(X_new), pca.score_samples(X_new), rtol=1e-9)
    assert est.noise_variance_ == pytest.approx(pca.noise_variance_, rel=1e-9)


def test_vae_start_handles_more_components_than_directions():
    X = np.random.RandomState(0).randn(6, 3)
    est = _started(VariationalAutoencoder, X, 5)  # k above min(n - 1, d)
    assert np.all(np.isfinite(est.score_samples(X)))
    ae = _started(Autoencoder, X, 5)
    np.testing.assert_allclose(ae.inverse_transform(ae.transform(X)), X, atol=1e-10)


@pytest.mark.parametrize(
    "name, X, k",
    [
        ("spiked", _spiked(), 3),
        ("planar", _planar(), 2),
        ("s_curve", make_s_curve(600, noise=0.05, random_state=0)[0], 2),
        ("digits", load_digits().data[:600] / 16, 8),
    ],
)
def test_never_worse_than_pca_on_held_out_rows(name, X, k):
    X_train, X_test = train_test_split(X, random_state=0)
    pca = PCA(k, svd_solver="full").fit(X_train)
    params = {"n_components": k, "hidden_layer_sizes": (64, 32), "random_state": 0}
    ae = Autoencoder(**params).fit(X_train)
    vae = VariationalAutoencoder(**params).fit(X_train)
    assert reconstruction_error(ae, X_test) <= 1.01 * reconstruction_error(pca, X_test)
    assert vae.score(X_test) >= pca.score(X_test) - 0.002 * X.shape[1]
    if name in ("s_curve", "digits"):  # curved: both gain
        assert reconstruction_error(ae, X_test) < 0.9 * reconstruction_error(pca, X_test)
        assert vae.score(X_test) > pca.score(X_test)


@pytest.mark.parametrize("cls", DEEP)
def test_on_linear_data_the_start_is_kept(cls):
    """No epoch beats PCA on held-out linear data by more than noise: PCA is kept."""
    X = _spiked()
    est = cls(n_components=3, hidden_layer_sizes=(32,), random_state=0).fit(X)
    assert est.best_validation_score_ == est.validation_scores_[0]
    assert_at_pca(est, PCA(3, svd_solver="full").fit(X), X, atol=1e-10, rel=1e-12)


def test_held_out_bound_is_exact_at_the_start():
    """At the start the encoder is pPCA's exact posterior: the importance-weighted
    bound by which held-out rows judge the VAE is PCA's log-likelihood, with two
    draws per row (each epoch) or all the fit's draws (start against best)."""
    X = _spiked()
    est = _started(VariationalAutoencoder, X, 3)
    pca = PCA(3, svd_solver="full").fit(X)
    module, x = est.module_, torch.from_numpy(_spiked(n=50, seed=1))
    for n_draws in (2, None):
        with torch.no_grad():
            bound = module.log_unit_change() - minus_importance_bound(module, x, n_draws)
        np.testing.assert_allclose(bound, pca.score_samples(x.numpy()), rtol=1e-9)


def _judged_trainer(judges, n=400):
    """A Trainer whose module's one weight says which candidate it holds (0: the
    start, 1: the best epoch), to run ``_beats`` with judges that read it."""
    module = torch.nn.Linear(1, 1, bias=False)
    trainer = Trainer(
        module,
        Objective(loss=None, row_loss=None, judges=judges, exact_start=True),
        TrainingConfig(batch_size=64),
        torch.Generator().manual_seed(0),
        torch.device("cpu"),
    )
    # each row holds its own index, by which the judges below look up its scores
    trainer.X, trainer.val_idx = torch.arange(n, dtype=torch.float64)[:, None], torch.arange(n)
    return trainer, {"weight": torch.zeros(1, 1)}, {"weight": torch.ones(1, 1)}


def _rows(mean, n=400, seed=0):
    return mean + torch.randn(
        n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


def _index(x):
    return x[:, 0].long()


def test_judges_run_in_turn_and_an_exact_start_is_not_rejudged():
    """The epochs' score puts the best epoch 0.1 short of the start; the first
    judge narrows that to 0.05, not clearly either way, and gained half of it,
    so the second runs and shows the best epoch better. The start, which every
    judge scores as the epochs did (an exact posterior), is scored on a few
    rows only."""
    start, noise = _rows(10.0), _rows(0.0, seed=1) * 0.1
    calls = []

    def judge(shift):
        def row_loss(module, x):
            held = "best" if float(module.weight) else "start"
            calls.append((held, len(x)))
            i = _index(x)
            return start[i] if held == "start" else start[i] + shift + noise[i]

        return row_loss

    trainer, at_start, at_best = _judged_trainer((judge(0.05), judge(-0.5)))
    assert trainer._beats((start + 0.1, at_best), (start, at_start))
    # both judges: 256 rows (4 batches of 64) first, then the other 144 (3)
    assert [h for h, _ in calls].count("best") == 2 * (4 + 3)
    assert calls.count(("start", EXACT_CHECK_ROWS)) == 1
    assert sum(n for h, n in calls if h == "start") == EXACT_CHECK_ROWS
    # the first judge alone leaves the start: 0.05 short is not a win
    calls.clear()
    trainer, at_start, at_best = _judged_trainer((judge(0.05),))
    assert not trainer._beats((start + 0.1, at_best), (start, at_start))


def test_a_judge_that_cannot_close_the_gap_ends_the_judging():
    """The best epoch is 1 short of the start after the first judge, whose
    tightening gained it only 0.2 on the start (1.2 - 0.5 + 0.5 = 0.7 for the
    best epoch, 0.5 for the start): that shows on the judge's first
    ``SAMPLE_ROWS`` rows, so neither the judge's other rows nor the second,
    dearer judge are scored, and the start is kept."""
    start = _rows(10.0)
    runs = {"second": 0, "start rows": 0}

    def first(module, x):
        i = _index(x)
        if not float(module.weight):
            runs["start rows"] += len(x)
            return start[i] - 0.5  # not the epochs' score: not exact
        return start[i] + 0.5  # 1 short of the judged start

    def second(module, x):
        runs["second"] += 1
        return start[_index(x)] - 10.0

    trainer, at_start, at_best = _judged_trainer((first, second))
    assert not trainer._beats((start + 1.2, at_best), (start, at_start))
    assert runs == {"second": 0, "start rows": EXACT_CHECK_ROWS + SAMPLE_ROWS}


def test_a_start_that_may_not_be_exact_is_judged_on_every_row():
    """A VAE fitted on rows with holes starts with an inference gap: its
    objective says so, and the start is judged on all the rows, not checked
    on a few."""
    start = _rows(10.0)
    seen = []

    def judge(module, x):
        if not float(module.weight):
            seen.append(len(x))
        return start[_index(x)]

    trainer, at_start, at_best = _judged_trainer((judge,))
    trainer.objective.exact_start = False
    trainer._beats((start + 1.0, at_best), (start, at_start))
    # checked first, it would have stopped at 64 (exact here); sampled first,
    # no row is scored twice
    assert sum(seen) == 400


def test_noisy_curved_data_leaves_the_start():
    """Issue 20: on a curved set with noise as large as its signal, the trained
    networks' inference gap hid their gain from the held-out ELBO, and the VAE
    kept pPCA; judged on log p(x) (importance-weighted) it leaves."""
    rng = np.random.RandomState(0)
    t = rng.uniform(-1, 1, (1500, 3))
    X = np.sin(t @ rng.randn(3, 40) + rng.uniform(0, 2 * np.pi, 40)) + rng.randn(1500, 40)
    X_train, X_test = train_test_split(X, random_state=0)
    vae = VariationalAutoencoder(3, hidden_layer_sizes=(64, 32), random_state=0).fit(X_train)
    assert vae.best_validation_score_ != vae.validation_scores_[0]  # left the start
    assert vae.score(X_test) > PCA(3).fit(X_train).score(X_test) + 0.1


@pytest.mark.parametrize("cls", DEEP)
def test_init_random_starts_elsewhere(cls):
    X = make_s_curve(300, noise=0.05, random_state=0)[0]
    params = {"n_components": 2, "hidden_layer_sizes": (16,), "max_iter": 1, "random_state": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pca_start = cls(**params).fit(X)
        random_start = cls(**params, init="random").fit(X)
    # PCA is a far better start than random weights on held-out rows
    assert pca_start.validation_scores_[0] > random_start.validation_scores_[0] + 0.1


@pytest.mark.parametrize("cls", DEEP)
@pytest.mark.parametrize("units", [1e-3, 1e3])
def test_units_change_nothing(cls, units):
    X = make_s_curve(400, noise=0.05, random_state=0)[0]
    params = {"n_components": 2, "hidden_layer_sizes": (16,), "max_iter": 30, "random_state": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = cls(**params).fit(X)
        scaled = cls(**params).fit(X * units)
    # the same training, step for step: the same codes, reconstructions in proportion
    assert scaled.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(scaled.transform(X * units), ref.transform(X), rtol=1e-6, atol=1e-8)
    rel = reconstruction_error(scaled, X * units) / units**2
    assert rel == pytest.approx(reconstruction_error(ref, X), rel=1e-6)
    if cls is VariationalAutoencoder:  # log-densities shift by d log(units)
        shift = X.shape[1] * np.log(units)
        assert scaled.score(X * units) == pytest.approx(ref.score(X) - shift, rel=1e-6)
        assert scaled.noise_variance_ == pytest.approx(ref.noise_variance_ * units**2, rel=1e-6)
    else:
        np.testing.assert_allclose(
            np.array(scaled.loss_curve_) / units**2, ref.loss_curve_, rtol=1e-6
        )


def test_lbfgs_tolerance_is_relative():
    """A gradient tolerance in the data's units would stop L-BFGS at once on small data."""
    X = load_digits().data[:300] / 16
    params = {"n_components": 4, "hidden_layer_sizes": (16,), "solver": "lbfgs", "max_iter": 20}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = Autoencoder(**params, init="random", random_state=0).fit(X)
        small = Autoencoder(**params, init="random", random_state=0).fit(X * 1e-3)
    assert small.n_iter_ == ref.n_iter_ > 5
    assert reconstruction_error(small, X * 1e-3) / 1e-6 == pytest.approx(
        reconstruction_error(ref, X), rel=1e-4
    )


def test_learned_decoder_variance_comes_from_the_whole_epoch():
    """A one-row last batch must not decide c: c is the epoch's mean squared error."""
    X = _spiked(n=143)  # 90% = 129 training rows: batches of 128 and 1
    vae = VariationalAutoencoder(
        n_components=3, hidden_layer_sizes=(), solver="adam", max_iter=200, random_state=0
    ).fit(X)
    # the optimum for the final networks over all rows: c = E_q||x - f(z)||^2 / d
    module = vae.module_
    with torch.no_grad():
        xs = module.scale_in(torch.from_numpy(X))
        mean, logvar = module.encode_standardised(xs)
        sq = module.family.expected_sq_error(module.decoder, xs, mean, logvar, None)
    c_star = float(sq.mean()) / X.shape[1] * float(module.scale) ** 2
    assert vae.noise_variance_ == pytest.approx(c_star, rel=0.1)


def test_significance_rule():
    rng = np.random.RandomState(0)
    start = torch.from_numpy(rng.rand(100))
    noise = torch.from_numpy(rng.randn(100) * 0.1)
    assert not _significantly_better(start + noise - 0.001, start)  # within noise
    assert _significantly_better(start + noise - 0.1, start)  # clearly lower losses
    assert not _significantly_better(start + 0.01, start)  # worse


def test_default_digits_fit_ends_by_its_stopping_rule(default_digits_autoencoder):
    ae, caught = default_digits_autoencoder
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert ae.n_iter_ < ae.max_iter


@pytest.mark.parametrize("cls", DEEP)
def test_a_start_skips_the_networks_it_does_not_read(cls):
    """At the PCA start the MLP corrections (and the VAE's heads on its body)
    are zero: scores and codes in inference mode skip those MLPs, and give
    what the whole networks give."""
    X = _spiked()
    module = _started(cls, X, 3).module_
    ran = []
    mlps = [m for m in module.modules() if isinstance(m, torch.nn.Sequential)]
    hooks = [m.register_forward_hook(lambda *args: ran.append(1)) for m in mlps]
    x = torch.from_numpy(X[:50])
    with torch.inference_mode():
        skipped = module.score_rows(x, 8), module.code(x)
    assert not ran
    with torch.no_grad():  # not inference mode: a graph may be traced (ONNX)
        whole = module.score_rows(x, 8), module.code(x)
    assert ran
    for h in hooks:
        h.remove()
    torch.testing.assert_close(skipped, whole, rtol=1e-12, atol=1e-12)
