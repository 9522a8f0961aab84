"""scikit-learn's own estimator checks, on default-constructed estimators and on
the VAE that chooses its latent width (``n_components="auto"``: three fits, so
small networks and few epochs keep its checks to seconds)."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.single_thread


@parametrize_with_checks(
    [
        LinearAutoencoder(),
        Autoencoder(),
        VariationalAutoencoder(),
        VariationalAutoencoder(n_components="auto", hidden_layer_sizes=(8,), max_iter=5),
    ]
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
