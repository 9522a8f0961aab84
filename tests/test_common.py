"""scikit-learn's own estimator checks, every one of them, on each estimator.

The deep estimators are checked with tiny networks and few epochs, as
scikit-learn checks its MLPs: the checks test the API's behaviour (input
validation, cloning, pickling, idempotence, invariances), which does not
depend on the width of the networks; at the default sizes a VAE's check took
about 20 s. The VAE that chooses its latent width (``n_components="auto"``)
fits three times, so it is kept as small.
"""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.single_thread

TINY = {"hidden_layer_sizes": (4,), "max_iter": 5}


@parametrize_with_checks(
    [
        LinearAutoencoder(),
        Autoencoder(**TINY),
        VariationalAutoencoder(**TINY),
        VariationalAutoencoder(n_components="auto", hidden_layer_sizes=(8,), max_iter=5),
    ]
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
