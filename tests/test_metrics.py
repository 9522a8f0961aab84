"""The latent-regularity metrics of skvae.metrics on cases whose answer is known.

Most cases are PCA on Gaussian data, where probabilistic PCA is the true
model, and small duck-typed estimators whose encoder and decoder are written
out, so that a jump, a dead zone or a hole is exactly where the test puts it.
"""

import warnings

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression

from benchmarks.regularity import COLUMNS, regularity_columns
from skvae.metrics import (
    generate_samples,
    latent_continuity,
    latent_coverage,
    latent_gaussian,
    maximum_mean_discrepancy,
    nearest_neighbour_ratio,
    sample_realism,
)

from .conftest import ESTIMATORS, small

pytestmark = pytest.mark.usefixtures("one_thread")


class LatentModel:
    """A fitted-looking transformer whose encoder and decoder are given functions.

    ``latent_mean_`` and ``latent_covariance_`` (the Gaussian its latent draws
    come from, as on skvae's autoencoders) are set only when given.
    """

    def __init__(self, encode, decode, latent_mean=None, latent_covariance=None):
        self.encode, self.decode = encode, decode
        self.is_fitted_ = True
        if latent_mean is not None:
            self.latent_mean_ = np.asarray(latent_mean, dtype=float)
            self.latent_covariance_ = np.asarray(latent_covariance, dtype=float)

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return self.encode(np.asarray(X))

    def inverse_transform(self, Z):
        return self.decode(np.asarray(Z))


def rescaled(model, factor):
    """The same model with its latent space multiplied by ``factor``."""
    scaled = LatentModel(
        lambda X: factor * model.transform(X),
        lambda Z: model.inverse_transform(Z / factor),
    )
    if hasattr(model, "latent_mean_"):
        scaled.latent_mean_ = factor * model.latent_mean_
        scaled.latent_covariance_ = factor**2 * model.latent_covariance_
    return scaled


@pytest.fixture(scope="module")
def spiked():
    """Gaussian rows of 10 features with 3 strong directions: probabilistic PCA's model."""
    rng = np.random.RandomState(0)
    loadings = rng.normal(size=(3, 10)) * 2.0
    X = rng.normal(size=(900, 3)) @ loadings + 0.5 * rng.normal(size=(900, 10))
    return X[:600], X[600:]


@pytest.fixture(scope="module")
def pca(spiked):
    return PCA(n_components=3).fit(spiked[0])


# ---------------------------------------------------------------- completeness
def test_probabilistic_pca_samples_are_indistinguishable_from_its_own_data(spiked, pca):
    X_train, X_test = spiked
    samples = generate_samples(pca, len(X_test), random_state=0)
    assert abs(sample_realism(samples, X_test, random_state=0) - 0.5) < 0.07
    assert abs(maximum_mean_discrepancy(samples, X_test)) < 0.005
    assert 0.9 < nearest_neighbour_ratio(samples, X_train, X_test) < 1.1
    reverse = nearest_neighbour_ratio(
        samples, X_train, X_test, direction="data_to_samples", random_state=0
    )
    assert 0.9 < reverse < 1.1


def test_pca_without_its_noise_lies_too_close_to_the_data(spiked, pca):
    # Decoded latent draws lie on PCA's 3-D plane, without the noise of the data
    # around it: closer to the training rows than new real rows are.
    X_train, X_test = spiked
    mean, cov = latent_gaussian(pca)
    z = np.random.RandomState(0).multivariate_normal(mean, cov, size=len(X_test))
    samples = pca.inverse_transform(z)
    assert nearest_neighbour_ratio(samples, X_train, X_test) < 0.85
    # The 5-nearest-neighbour vote misses it: each real row's nearest rows are
    # samples (they lack its noise), each sample's are samples too, so half of
    # the rows are told right. One metric alone does not suffice.
    assert abs(sample_realism(samples, X_test, random_state=0) - 0.5) < 0.1


class ConstantSampler(LatentModel):
    """A decoder that ignores its input: every sample is the training mean."""

    def __init__(self, mean):
        super().__init__(lambda X: np.zeros((len(X), 2)), lambda Z: np.tile(mean, (len(Z), 1)))

    def sample(self, n_samples=1, random_state=None):
        return self.inverse_transform(np.zeros((n_samples, 2)))


def test_a_decoder_that_ignores_its_input_is_incomplete(spiked):
    X_train, X_test = spiked
    model = ConstantSampler(X_train.mean(axis=0))
    assert sample_realism(model, X_test, random_state=0) > 0.95
    assert maximum_mean_discrepancy(model.sample(300), X_test) > 0.2
    # every held-out row is far from the one point the samples sit on
    reverse = nearest_neighbour_ratio(
        model, X_train, X_test, direction="data_to_samples", random_state=0
    )
    assert reverse > 2.5
    # ... and that point, the mean, is itself no typical data point
    assert not 0.8 < nearest_neighbour_ratio(model, X_train, X_test) < 1.2


def test_copies_of_training_rows_look_memorised(spiked):
    X_train, X_test = spiked
    assert nearest_neighbour_ratio(X_train[:300], X_train, X_test) == 0.0
    reverse = nearest_neighbour_ratio(
        X_train[:300], X_train, X_test, direction="data_to_samples", random_state=0
    )
    assert 0.8 < reverse < 1.25  # they do cover the data


def test_knn_sees_a_change_of_spread_that_a_linear_classifier_misses():
    rng = np.random.RandomState(0)
    real, wide = rng.normal(size=(300, 4)), 2.0 * rng.normal(size=(300, 4))
    assert sample_realism(wide, real, random_state=0) > 0.75
    linear = LogisticRegression()
    assert abs(sample_realism(wide, real, classifier=linear, random_state=0) - 0.5) < 0.1
    assert sample_realism(wide + 3.0, real, classifier=linear, random_state=0) > 0.9


def test_mmd_grows_with_the_shift_and_is_symmetric():
    rng = np.random.RandomState(0)
    A, B = rng.normal(size=(200, 3)), rng.normal(size=(250, 3))
    values = [maximum_mean_discrepancy(A, B + shift) for shift in (0.0, 0.5, 1.0, 3.0)]
    assert abs(values[0]) < 0.01
    assert np.all(np.diff(values) > 0)
    assert maximum_mean_discrepancy(B, A) == pytest.approx(values[0])
    # the bandwidth sets the scale of what counts as different
    assert maximum_mean_discrepancy(A, B + 1.0, bandwidth=100.0) < values[2] / 10


# ----------------------------------------------------------------- continuity
def linear_decoder(pca):
    return pca.inverse_transform


def with_jump(pca):
    """PCA's decoder plus a jump of 20 in every feature where z_0 crosses 0."""
    return lambda Z: pca.inverse_transform(Z) + 20.0 * (Z[:, :1] > 0)


def with_dead_zone(pca):
    """Continuous, and constant on the half z_0 <= 0 of the latent space."""

    def decode(Z):
        on = np.maximum(Z[:, :1], 0.0)
        return pca.inverse_transform(np.hstack([on, on * Z[:, 1:]]))

    return decode


@pytest.mark.parametrize("make_decoder", [with_jump, with_dead_zone])
def test_continuity_catches_jumps_and_dead_zones(spiked, pca, make_decoder):
    _, X_test = spiked
    smooth = latent_continuity(pca, X_test, random_state=0)
    assert smooth < 1e-6  # a linear decoder changes at a constant rate
    broken = LatentModel(pca.transform, make_decoder(pca))
    assert latent_continuity(broken, X_test, random_state=0) > smooth + 0.1


def test_continuity_does_not_depend_on_the_latent_scale(spiked, pca):
    _, X_test = spiked
    for decoder in (with_jump(pca), with_dead_zone(pca)):
        model = LatentModel(pca.transform, decoder)
        score = latent_continuity(model, X_test, random_state=0)
        assert score > 0.05
        for factor in (100.0, 0.01):
            rescaled_score = latent_continuity(rescaled(model, factor), X_test, random_state=0)
            assert rescaled_score == pytest.approx(score, rel=1e-9)


def test_continuity_counts_a_constant_path_as_even(spiked):
    _, X_test = spiked
    model = ConstantSampler(np.ones(X_test.shape[1]))
    model.encode = lambda X: X[:, :2]
    assert latent_continuity(model, X_test, random_state=0) == 0.0


def test_more_steps_do_not_hide_a_jump(spiked, pca):
    # the score is normalised by its largest value, so it stays comparable
    _, X_test = spiked
    model = LatentModel(pca.transform, with_jump(pca))
    scores = [latent_continuity(model, X_test, n_steps=n, random_state=0) for n in (8, 32)]
    assert min(scores) > 0.1


# ------------------------------------------------------------------- coverage
def gaussian_codes(hole_radius: float) -> LatentModel:
    """A 2-D latent space of Gaussian codes, none within ``hole_radius`` of 0,
    sampled from N(0, I) as if the codes were Gaussian."""
    Z = np.random.RandomState(1).normal(size=(3000, 2))
    Z = Z[np.linalg.norm(Z, axis=1) >= hole_radius][:1500]
    model = LatentModel(lambda X: X, lambda Z: Z, np.zeros(2), np.eye(2))
    model.training_codes = Z
    return model


def test_a_hole_in_the_codes_is_found():
    full, holed = gaussian_codes(0.0), gaussian_codes(1.0)
    covered = latent_coverage(full, full.training_codes, random_state=0)
    assert covered < 0.1  # draws from the codes' own law: about 1 - 0.95
    # N(0, I) puts 1 - exp(-1/2) = 39% of its draws within radius 1 of 0
    in_hole = latent_coverage(holed, holed.training_codes, random_state=0)
    assert 0.3 < in_hole < 0.5  # less the rim, within the hole radius of a code
    # so does a model that draws where it should not, with no hole in its codes
    too_wide = LatentModel(lambda X: X, lambda Z: Z, np.zeros(2), 9.0 * np.eye(2))
    assert latent_coverage(too_wide, full.training_codes, random_state=0) > 0.5


def test_coverage_does_not_depend_on_the_latent_scale():
    holed = gaussian_codes(1.0)
    score = latent_coverage(holed, holed.training_codes, random_state=0)
    big = latent_coverage(rescaled(holed, 100.0), holed.training_codes, random_state=0)
    assert big == score


def test_coverage_of_given_latent_points():
    full = gaussian_codes(0.0)
    far = np.full((10, 2), 50.0)
    assert latent_coverage(full, full.training_codes, samples_z=far) == 1.0
    near = full.training_codes[:10] + 1e-9
    assert latent_coverage(full, full.training_codes, samples_z=near) == 0.0


# ------------------------------------------------------------ latent Gaussian
def test_latent_gaussian_follows_each_models_sampling(spiked):
    X_train, _ = spiked
    pca = PCA(n_components=2).fit(X_train)
    mean, cov = latent_gaussian(pca)
    np.testing.assert_allclose(cov, np.diag(pca.explained_variance_))
    np.testing.assert_allclose(latent_gaussian(PCA(2, whiten=True).fit(X_train))[1], np.eye(2))
    # a transformer with no law of its own: the Gaussian of its codes
    model = LatentModel(lambda X: X[:, :2] + 5.0, lambda Z: Z)
    mean, cov = latent_gaussian(model, X_train)
    np.testing.assert_allclose(mean, X_train[:, :2].mean(axis=0) + 5.0)
    np.testing.assert_allclose(cov, np.cov(X_train[:, :2], rowvar=False))
    with pytest.raises(ValueError, match="pass its training data X"):
        latent_gaussian(model)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_skvae_estimators_are_measured(cls, digits):
    X, _ = digits
    X_train, X_test = X[:200], X[200:300]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = small(cls, n_components=2, max_iter=5).fit(X_train)
    mean, cov = latent_gaussian(model)
    if cls.__name__ == "VariationalAutoencoder":  # its prior
        np.testing.assert_array_equal(mean, np.zeros(2))
        np.testing.assert_array_equal(cov, np.eye(2))
    else:  # the Gaussian its sample() draws from
        np.testing.assert_array_equal(mean, model.latent_mean_)
    columns = regularity_columns(model, X_train, X_test)
    assert set(columns) == set(COLUMNS)
    assert all(np.isfinite(value) for value in columns.values())
    assert columns == regularity_columns(model, X_train, X_test)  # seeded


# ----------------------------------------------------------------- benchmark
def test_regularity_columns_and_their_figure(spiked, pca, tmp_path):
    import pandas as pd

    from benchmarks.plots import plot_regularity

    X_train, X_test = spiked
    columns = regularity_columns(pca, X_train, X_test, random_state=0)
    assert abs(columns["sample_realism"] - 0.5) < 0.1
    assert columns["latent_continuity"] < 1e-6
    assert columns["latent_coverage"] < 0.15
    broken = LatentModel(pca.transform, with_jump(pca), np.zeros(3), np.eye(3))
    broken.sample = lambda n, random_state=None: ConstantSampler(X_train.mean(0)).sample(n)
    worse = regularity_columns(broken, X_train, X_test, random_state=0)
    assert worse["sample_realism"] > 0.9 and worse["latent_continuity"] > 0.1
    table = pd.DataFrame(
        [
            {"dataset": "spiked", "k": 3, "model": "PCA", **columns},
            {"dataset": "spiked", "k": 3, "model": "broken", **worse},
        ]
    )
    path = plot_regularity(table, tmp_path)
    assert path == tmp_path / "regularity.png" and path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="none of the regularity columns"):
        plot_regularity(table[["dataset", "model"]], tmp_path)


# ----------------------------------------------------------------- bad input
def test_bad_input_gets_a_clear_error(spiked, pca):
    X_train, X_test = spiked
    samples = generate_samples(pca, 50, random_state=0)
    with pytest.raises(ValueError, match="samples has 9 features.*has 10"):
        sample_realism(samples[:, :9], X_test)
    with pytest.raises(ValueError, match="NaN"):
        sample_realism(samples, np.full_like(X_test, np.nan))
    with pytest.raises(ValueError, match="X_real has 3 rows; .* at least 5"):
        sample_realism(samples, X_test[:3])
    with pytest.raises(ValueError, match="cv must be an integer >= 2"):
        sample_realism(samples, X_test, cv=1)
    with pytest.raises(ValueError, match="direction must be"):
        nearest_neighbour_ratio(samples, X_train, X_test, direction="both")
    with pytest.raises(ValueError, match="held-out rows duplicate training rows"):
        nearest_neighbour_ratio(samples, X_train, X_train)
    with pytest.raises(ValueError, match="bandwidth must be a positive number"):
        maximum_mean_discrepancy(samples, X_test, bandwidth=-1.0)
    with pytest.raises(ValueError, match="B has 9 features"):
        maximum_mean_discrepancy(samples, X_test[:, :9])
    with pytest.raises(ValueError, match="n_steps must be an integer >= 2"):
        latent_continuity(pca, X_test, n_steps=1)
    with pytest.raises(ValueError, match="X has 1 rows"):
        latent_continuity(pca, X_test[:1])
    with pytest.raises(ValueError, match="quantile must be in"):
        latent_coverage(pca, X_train, quantile=0.0)
    with pytest.raises(ValueError, match="samples_z has 2 features.*has 3"):
        latent_coverage(pca, X_train, samples_z=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="n_samples must be an integer >= 1"):
        generate_samples(pca, 0)


def test_unfitted_or_unsuitable_estimators_are_refused(spiked):
    X_train, X_test = spiked
    with pytest.raises(NotFittedError):
        latent_continuity(PCA(2), X_test)
    with pytest.raises(NotFittedError):
        sample_realism(PCA(2), X_test)
    with pytest.raises(TypeError, match="has no transform or inverse_transform method"):
        latent_continuity(object(), X_test)
    with pytest.raises(TypeError, match="can neither sample nor give a Gaussian"):
        generate_samples(LatentModel(lambda X: X, lambda Z: Z), 5)


def test_results_are_seeded(spiked, pca):
    X_train, X_test = spiked
    for metric, args in [
        (sample_realism, (pca, X_test)),
        (nearest_neighbour_ratio, (pca, X_train, X_test)),
        (latent_coverage, (pca, X_train)),
    ]:
        assert metric(*args, random_state=3) == metric(*args, random_state=3)
    assert sample_realism(pca, X_test, random_state=3) != sample_realism(
        pca, X_test, random_state=4
    )
