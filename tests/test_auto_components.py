"""``VariationalAutoencoder(n_components="auto")``: the active latent units.

The rank-5 data is scikit-learn's example "Model selection with Probabilistic
PCA and Factor Analysis (FA)": five factors of variance 1 in 25 features, plus
homoscedastic noise of variance 1, 500 rows. There PCA(n_components="mle")
finds 5, and so must the VAE, linear or deep.
"""

import contextlib
import warnings

import numpy as np
import pytest
from scipy import linalg
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning

from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder, _training
from skvae._active_units import upper_bound

pytestmark = pytest.mark.usefixtures("one_thread")

LINEAR = {"hidden_layer_sizes": ()}


def _rank5(seed=42, n_samples=500, n_features=25, rank=5, sigma=1.0):
    """scikit-learn's rank-5 data with homoscedastic noise, as its example draws it."""
    rng = np.random.RandomState(seed)
    U, _, _ = linalg.svd(rng.randn(n_features, n_features))
    X = np.dot(rng.randn(n_samples, rank), U[:, :rank].T)
    return X + sigma * rng.randn(n_samples, n_features)


@pytest.fixture(scope="module")
def rank5():
    return _rank5()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_vae_finds_the_rank_as_pca_mle_does(rank5, seed):
    vae = VariationalAutoencoder(n_components="auto", random_state=seed, **LINEAR).fit(rank5)
    assert PCA(n_components="mle").fit(rank5).n_components_ == 5
    assert vae.n_components_ == 5
    assert vae.latent_kl_.shape == vae.null_kl_.shape == (upper_bound(500, 25),) == (12,)
    assert vae.kl_threshold_ == vae.null_kl_[0]
    # five units clear the threshold, the sixth does not
    assert vae.latent_kl_[4] > vae.kl_threshold_ >= vae.latent_kl_[5]


def test_a_fixed_kl_threshold_would_keep_every_unit(rank5):
    """Why the threshold is calibrated: at probabilistic PCA's optimum the seven
    units beyond the rank carry KL well above zero (and above Burda's 0.01)."""
    vae = VariationalAutoencoder(n_components="auto", random_state=0, **LINEAR).fit(rank5)
    assert vae.latent_kl_.min() > 0.1
    bound = VariationalAutoencoder(n_components=12, random_state=0, **LINEAR).fit(rank5)
    activity = bound.transform(rank5).var(axis=0)  # Cov_x E_q[z_u]
    assert np.all(activity > 0.1)


def test_deep_vae_finds_the_rank(rank5):
    vae = VariationalAutoencoder(n_components="auto", random_state=0).fit(rank5)
    assert vae.n_components_ == 5


def test_auto_is_an_ordinary_fit_of_the_width_it_chose(rank5):
    vae = VariationalAutoencoder(n_components="auto", random_state=0, **LINEAR).fit(rank5)
    plain = VariationalAutoencoder(n_components=5, random_state=0, **LINEAR).fit(rank5)
    Z = vae.transform(rank5)
    assert Z.shape == (500, vae.n_components_)
    np.testing.assert_array_equal(Z, plain.transform(rank5))
    assert vae.score(rank5) == plain.score(rank5)
    names = vae.get_feature_names_out()
    assert len(names) == vae.n_components_
    assert names[0] == "variationalautoencoder0"
    assert vae.sample(3, random_state=0).shape == (3, 25)


def test_digits_count_is_stable_across_seeds(digits):
    """Measured: 19 active units for seeds 0, 1 and 2 (19 in nine seeds of ten,
    20 in the other), with an upper bound of 32; PCA's "mle" keeps 61."""
    X, _ = digits
    counts = [
        VariationalAutoencoder(n_components="auto", random_state=seed, **LINEAR)
        .fit(X)
        .n_components_
        for seed in (0, 1, 2)
    ]
    assert max(counts) - min(counts) <= 1
    assert 10 <= min(counts) and max(counts) < upper_bound(*X.shape)


def test_an_int_fit_after_auto_drops_the_auto_attributes(rank5):
    vae = VariationalAutoencoder(n_components="auto", random_state=0, **LINEAR).fit(rank5)
    assert clone(vae).get_params()["n_components"] == "auto"
    vae.set_params(n_components=3).fit(rank5)
    assert vae.n_components_ == 3
    assert vae.latent_kl_ is None and vae.null_kl_ is None and vae.kl_threshold_ is None


@pytest.mark.parametrize("bad", ["mle", "Auto", 0, 2.5, None])
def test_bad_n_components_names_the_parameter(rank5, bad):
    with pytest.raises(ValueError, match="n_components"):
        VariationalAutoencoder(n_components=bad, **LINEAR).fit(rank5[:50])


@pytest.mark.parametrize("cls", [Autoencoder, LinearAutoencoder])
def test_only_the_vae_has_auto(rank5, cls):
    with pytest.raises(ValueError, match="n_components"):
        cls(n_components="auto").fit(rank5[:50])


def test_unconverged_choice_warns_once_at_the_caller(rank5):
    vae = VariationalAutoencoder(
        n_components="auto", hidden_layer_sizes=(8,), max_iter=1, random_state=0
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vae.fit(rank5[:100])
    convergence = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    # one for the two fits that chose the width, one for the final fit
    assert len(convergence) == 2
    assert "choose the number of active units" in str(convergence[0].message)
    assert all(w.filename == __file__ for w in convergence)


def test_ctrl_c_while_choosing_stops_fit_and_keeps_the_old_model(rank5, monkeypatch):
    vae = VariationalAutoencoder(n_components=2, hidden_layer_sizes=(8,), random_state=0)
    vae.fit(rank5[:100])
    before = vae.transform(rank5[:5])
    real = _training.interruptible

    @contextlib.contextmanager
    def ctrl_c_at_once():  # as if Ctrl-C came during the first batch of every fit
        with real() as interrupt:
            interrupt.requested = True
            yield interrupt

    monkeypatch.setattr(_training, "interruptible", ctrl_c_at_once)
    with pytest.raises(KeyboardInterrupt):
        vae.set_params(n_components="auto").fit(rank5[:100])
    assert vae.n_components_ == 2
    np.testing.assert_array_equal(vae.transform(rank5[:5]), before)
