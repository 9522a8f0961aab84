import os

# Lets scikit-learn's check_array_api_input run (it is skipped without it): it
# checks that enabling array API dispatch leaves results on NumPy input unchanged.
# It must be set before scipy is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import signal  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder  # noqa: E402
from skvae._training import Trainer  # noqa: E402
from skvae.conftest import single_thread  # noqa: E402, F401 - the tests' too

ESTIMATORS = [LinearAutoencoder, Autoencoder, VariationalAutoencoder]


def small(cls, **params):
    """A quick-to-train instance: few epochs, small hidden layers, fixed seed."""
    defaults = {"random_state": 0}
    if cls is not LinearAutoencoder:
        defaults.update(hidden_layer_sizes=(16,), max_iter=20)
    defaults.update(params)
    return cls(**defaults)


@pytest.fixture
def one_thread():
    with single_thread():
        yield


@pytest.fixture
def ctrl_c_at_step(monkeypatch):
    """Press Ctrl-C from inside training, so that where it lands cannot depend on
    the machine's speed or load: ``ctrl_c_at_step(n, times)`` sends SIGINT
    ``times`` times at the start of the ``n``-th optimiser step (counting from
    1) of the fits that follow. Returns the list of steps taken, one entry each."""

    def arm(step, times=1):
        original = Trainer.train_step
        steps = []

        def train_step(self, *args, **kwargs):
            steps.append(len(steps) + 1)
            if len(steps) == step:
                for _ in range(times):
                    # handled at once, in this thread, as a key press would be
                    signal.raise_signal(signal.SIGINT)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(Trainer, "train_step", train_step)
        return steps

    return arm


@pytest.fixture(scope="session")
def digits():
    data = load_digits()
    return data.data / 16.0, data.target


@pytest.fixture(scope="session")
def digits_split():
    """The digits in [0, 1], a quarter held out: ``X_train, X_test``."""
    X = load_digits().data / 16
    return train_test_split(X, test_size=0.25, random_state=0)


@pytest.fixture(scope="session")
def default_digits_autoencoder(digits_split):
    """A default ``Autoencoder(n_components=10)`` fitted on ``X_train`` of
    :func:`digits_split`, and the warnings its fit gave. Fitted once: the
    theory's and the stopping rule's tests ask different things of one fit."""
    X_train, _ = digits_split
    with single_thread(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ae = Autoencoder(n_components=10, random_state=0).fit(X_train)
    return ae, caught


@pytest.fixture(scope="session")
def blobs():
    rng = np.random.RandomState(0)
    return rng.normal(size=(60, 5)) @ rng.normal(size=(5, 5))


def assert_at_pca(est, pca, X, *, atol, rel):
    """``est`` is PCA's solution on ``X``: an Autoencoder reconstructs as
    ``pca`` does (to ``atol``), a VAE's ELBO is ``pca.score`` (to ``rel``)."""
    if isinstance(est, Autoencoder):
        np.testing.assert_allclose(
            est.inverse_transform(est.transform(X)),
            pca.inverse_transform(pca.transform(X)),
            atol=atol,
        )
    else:
        assert est.score(X) == pytest.approx(pca.score(X), rel=rel)


def pytest_collection_finish(session):
    """Start the docs build (tests/test_docs.py) at once if a collected test needs
    it: it runs beside the single-threaded tests instead of after them."""
    for item in session.items:
        if "built_docs" in getattr(item, "fixturenames", ()):
            build = getattr(item.module, "DocsBuild", None)
            if build is not None and not item.module.PREBUILT and build.possible():
                session.config.skvae_docs_build = build()
            return


def pytest_sessionfinish(session):
    build = getattr(session.config, "skvae_docs_build", None)
    if build is not None:
        build.stop()
