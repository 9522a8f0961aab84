"""Sparse input: fitted, encoded and scored a batch at a time, as dense rows would be."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning

from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder
from skvae._placement import CHUNK_ELEMENTS
from skvae.metrics import max_principal_angle

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.usefixtures("one_thread"),  # see conftest.single_thread
]


def _sparse_counts(n=600, d=40, density=0.1, seed=0):
    rng = np.random.default_rng(seed)
    return sp.random(
        n, d, density=density, format="csr", random_state=seed,
        data_rvs=lambda size: rng.poisson(3, size) + 1.0,
    )  # fmt: skip


def test_linear_autoencoder_on_sparse_matches_pca_of_the_same_matrix():
    X = _sparse_counts()
    lae = LinearAutoencoder(n_components=5).fit(X)
    pca = PCA(n_components=5, svd_solver="covariance_eigh").fit(X)
    assert max_principal_angle(lae, pca) < 0.01
    np.testing.assert_allclose(lae.score(X), pca.score(X.toarray()), rtol=1e-9)
    np.testing.assert_allclose(lae.explained_variance_, pca.explained_variance_, rtol=1e-8)


@pytest.mark.parametrize(
    "make",
    [
        lambda: LinearAutoencoder(n_components=3),
        lambda: Autoencoder(n_components=3, hidden_layer_sizes=(8,), max_iter=3, random_state=0),
        lambda: VariationalAutoencoder(
            n_components=3, hidden_layer_sizes=(8,), max_iter=3, random_state=0
        ),
        lambda: VariationalAutoencoder(
            n_components=3,
            likelihood="negative_binomial",
            hidden_layer_sizes=(8,),
            max_iter=3,
            random_state=0,
        ),  # fmt: skip
    ],
    ids=["linear", "autoencoder", "vae", "vae-nb"],
)
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_fits_and_scores_as_its_dense_rows(make, fmt):
    X = _sparse_counts(n=300)
    dense = make().fit(X.toarray())
    sparse = make().fit(X.asformat(fmt))
    # the same rows in the same batches; the linear model's moments are summed
    # in other chunks, so equal up to rounding
    Z_sparse, Z_dense = sparse.transform(X.asformat(fmt)), dense.transform(X.toarray())
    np.testing.assert_allclose(Z_sparse, Z_dense, rtol=1e-6, atol=1e-6)
    scores = sparse.score_samples(X), dense.score_samples(X.toarray())
    np.testing.assert_allclose(*scores, rtol=1e-8)
    assert sparse.transform(X.astype(np.float32)).dtype == np.float32


def test_sparse_is_never_densified_whole(monkeypatch):
    """Every densified block is a bounded block of rows, never the matrix."""
    X = _sparse_counts(n=4_500, d=1_000, density=0.01)
    rows = []
    original = sp.csr_matrix.toarray

    def recording(self, *args, **kwargs):
        rows.append(self.shape[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(sp.csr_matrix, "toarray", recording)
    for model in (
        LinearAutoencoder(n_components=3),
        VariationalAutoencoder(n_components=3, hidden_layer_sizes=(8,), max_iter=1),
    ):
        rows.clear()
        model.fit(X).transform(X)
        model.score_samples(X)
        # blocks of a bounded number of elements, however many rows X has
        assert rows and max(rows) * X.shape[1] <= CHUNK_ELEMENTS < X.shape[0] * X.shape[1]


def test_auto_width_on_sparse_shuffles_columns_without_densifying():
    from skvae._active_units import shuffled_columns

    X = _sparse_counts(n=200, d=6, density=0.3)
    shuffled = shuffled_columns(X, np.random.RandomState(0))
    assert sp.issparse(shuffled) and shuffled.nnz == X.nnz
    dense, after = X.toarray(), shuffled.toarray()
    for j in range(X.shape[1]):  # each column keeps its values, in other rows
        np.testing.assert_array_equal(np.sort(after[:, j]), np.sort(dense[:, j]))
    assert (after != dense).any()
    vae = VariationalAutoencoder(
        n_components="auto", hidden_layer_sizes=(8,), max_iter=3, random_state=0
    ).fit(X)
    assert 1 <= vae.n_components_ <= 3 and np.isfinite(vae.score(X))


@pytest.mark.parametrize("cls", [LinearAutoencoder, Autoencoder, VariationalAutoencoder])
def test_nan_stored_in_a_sparse_matrix_is_refused_with_what_to_do(cls):
    """NaN is a missing entry in dense arrays; in a sparse matrix, whose other
    entries are zeros, it is refused by fit and by transform, naming the way out."""
    X = _sparse_counts(n=60)
    holed = X.copy()
    holed.data[0] = np.nan
    with pytest.raises(ValueError, match=r"sparse matrix with NaN.*X\.toarray\(\)"):
        cls(n_components=2, random_state=0).fit(holed)
    params = {} if cls is LinearAutoencoder else {"hidden_layer_sizes": (4,), "max_iter": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = cls(n_components=2, random_state=0, **params).fit(X)
    with pytest.raises(ValueError, match="sparse matrix with NaN"):
        est.transform(holed)
    assert np.isfinite(est.transform(holed.toarray())).all()  # dense: NaN is missing


def test_nan_stored_in_a_sparse_matrix_is_refused_by_a_count_model():
    holed = _sparse_counts(n=60)
    holed.data[0] = np.nan
    est = VariationalAutoencoder(n_components=2, likelihood="poisson")
    with pytest.raises(ValueError, match="takes no missing entries"):
        est.fit(holed)


def test_the_covariance_operator_gives_pca_of_the_sparse_rows():
    """Lanczos on the covariance as an operator (a deep model's start on wide
    sparse rows) finds the axes, variances and noise the d x d matrix gives."""
    import torch

    from skvae._placement import Rows
    from skvae._subspace import (
        covariance_operator,
        discarded_variance,
        moments,
        principal_components,
    )

    rows = Rows(_sparse_counts(n=300, d=120, density=0.05), torch.float64)
    exact, operator = moments(rows, torch.device("cpu")), covariance_operator(rows)
    np.testing.assert_allclose(operator.mean, exact.mean, rtol=1e-12)
    np.testing.assert_allclose(operator.total_variance, exact.total_variance, rtol=1e-12)
    generator = torch.Generator().manual_seed(0)
    axes, variances = principal_components(exact, 5, generator)
    found, found_variances = principal_components(operator, 5, generator)
    np.testing.assert_allclose(found_variances, variances, rtol=1e-10)
    np.testing.assert_allclose(found, axes, atol=1e-8)  # PCA's signs on both
    np.testing.assert_allclose(
        discarded_variance(operator, found_variances), discarded_variance(exact, variances)
    )


def test_a_deep_start_on_wide_sparse_rows_is_the_dense_rows_start(monkeypatch):
    """With the operator in use (its width threshold lowered to these rows), a
    fit on the sparse matrix matches the fit on its dense rows."""
    import skvae._subspace

    calls = []
    original = skvae._subspace.covariance_operator
    monkeypatch.setattr(skvae._subspace, "OPERATOR_MIN_FEATURES", 20)
    monkeypatch.setattr(
        "skvae._base.covariance_operator", lambda X: calls.append(X.shape) or original(X)
    )
    X = _sparse_counts(n=300, d=40)
    make = lambda: Autoencoder(  # noqa: E731
        n_components=3, hidden_layer_sizes=(8,), max_iter=3, random_state=0
    )
    sparse, dense = make().fit(X), make().fit(X.toarray())
    assert calls == [X.shape]  # the sparse fit's start, not the dense one's
    np.testing.assert_allclose(sparse.transform(X), dense.transform(X.toarray()), atol=1e-6)
    np.testing.assert_allclose(
        sparse.score_samples(X), dense.score_samples(X.toarray()), rtol=1e-7
    )


def test_repeated_entries_are_checked_as_the_values_they_sum_to():
    """A non-canonical CSR matrix's repeated entries add up in each batch: the
    support checks see the sums, as a densified block would."""
    indptr, indices = np.arange(0, 41, 2), np.repeat(np.arange(20) % 5, 2)
    halves = sp.csr_matrix((np.full(40, 0.6), indices, indptr), shape=(20, 5))
    with pytest.raises(ValueError, match="needs data in"):  # 0.6 + 0.6 = 1.2
        VariationalAutoencoder(2, likelihood="bernoulli").fit(halves)
    counts = sp.csr_matrix((np.full(40, 0.5), indices, indptr), shape=(20, 5))  # 0.5 + 0.5
    VariationalAutoencoder(2, likelihood="poisson", max_iter=1, random_state=0).fit(counts)


@pytest.mark.parametrize("cls", [Autoencoder, VariationalAutoencoder])
def test_an_all_zero_wide_sparse_matrix_fits(cls):
    """Every direction of a zero covariance is principal: the operator's start
    takes any basis (Lanczos has no starting vector to work from)."""
    X = sp.csr_matrix((60, 600))
    est = cls(n_components=2, hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(X)
    assert np.isfinite(est.transform(X)).all()
    est.partial_fit(X)
