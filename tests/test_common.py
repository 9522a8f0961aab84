"""scikit-learn's own estimator checks, on default-constructed estimators."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder


@parametrize_with_checks([LinearAutoencoder(), Autoencoder(), VariationalAutoencoder()])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
