import os

# Lets scikit-learn's check_array_api_input run (it is skipped without it): it
# checks that enabling array API dispatch leaves results on NumPy input unchanged.
# It must be set before scipy is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import contextlib  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder  # noqa: E402

ESTIMATORS = [LinearAutoencoder, Autoencoder, VariationalAutoencoder]


def small(cls, **params):
    """A quick-to-train instance: few epochs, small hidden layers, fixed seed."""
    defaults = {"random_state": 0}
    if cls is not LinearAutoencoder:
        defaults.update(hidden_layer_sizes=(16,), max_iter=20)
    defaults.update(params)
    return cls(**defaults)


@contextlib.contextmanager
def single_thread():
    """One torch thread and one BLAS thread: the models of the tests are small, so
    one thread is faster, and a busy machine cannot slow them down tenfold (on a
    loaded 2-core machine, two torch threads made one of scikit-learn's checks
    of a tiny VAE take 3 to 15 s instead of 0.6 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def one_thread():
    with single_thread():
        yield


@pytest.fixture(scope="session")
def digits():
    data = load_digits()
    return data.data / 16.0, data.target


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
