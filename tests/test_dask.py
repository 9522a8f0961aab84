"""Dask: dask-ml's Incremental trains over the blocks of a dask array, on a local
cluster of threads and one of processes, and transform_blocks maps the fitted
methods over the blocks with the right output chunks.

The dask extra (``pip install "skvae[dask]"``) is part of the test extra; without
it, this module is skipped.
"""

import logging

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
wrappers = pytest.importorskip("dask_ml.wrappers")

from skvae import LinearAutoencoder  # noqa: E402
from skvae.dask import transform_blocks  # noqa: E402
from skvae.metrics import max_principal_angle, reconstruction_error  # noqa: E402

from .conftest import ESTIMATORS, small  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ROWS, WIDTH, BLOCK, K = 160, 6, 40, 2
METHODS = ["transform", "inverse_transform", "score_samples"]
ids = [cls.__name__ for cls in ESTIMATORS]


@pytest.fixture(scope="module")
def data():
    """Rows near a 3-dimensional subspace, and 40 held-out rows of the same law."""
    rng = np.random.RandomState(0)
    mixing = rng.normal(size=(3, WIDTH))
    rows = rng.normal(size=(ROWS + 40, 3)) @ mixing + 0.1 * rng.normal(size=(ROWS + 40, WIDTH))
    return rows[:ROWS], rows[ROWS:]


@pytest.fixture(scope="module", params=["threads", "processes"])
def client(request):
    """Two one-thread workers: in this process, or each in a process of its own,
    where everything that goes from one to the other is pickled."""
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=request.param == "processes",
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    with cluster, distributed.Client(cluster) as client:
        client.wait_for_workers(2)
        yield client


def _blocks_on_both_workers(client, X):
    """X as a dask array whose blocks are held by the workers, some by each."""
    X = client.persist(da.from_array(X, chunks=(BLOCK, WIDTH)))
    distributed.wait(X)
    holders = {worker for workers in client.who_has(X).values() for worker in workers}
    assert len(holders) == 2, holders
    return X


def _in_process(cls, X, passes):
    """What Incremental should give: partial_fit on the blocks in order, here."""
    model = small(cls, n_components=K)
    for _ in range(passes):
        for start in range(0, len(X), BLOCK):
            model.partial_fit(X[start : start + BLOCK])
    return model


def _assert_same_weights(a, b):
    torch.testing.assert_close(a.module_.state_dict(), b.module_.state_dict())


@pytest.mark.parametrize("cls", ESTIMATORS, ids=ids)
def test_incremental_trains_over_the_blocks_as_partial_fit_does(cls, client, data, one_thread):
    # Each block's partial_fit runs on the worker that holds the block, so the
    # model goes from worker to worker; between processes its weights and
    # optimiser state are pickled, and training must go on as if in one process.
    X = _blocks_on_both_workers(client, data[0])
    inc = wrappers.Incremental(small(cls, n_components=K), shuffle_blocks=False)
    with distributed.get_task_stream(client) as stream:
        inc.fit(X)  # dask-ml passes each block's partial_fit a tuple as y
    fit_workers = {t["worker"] for t in stream.data if str(t["key"]).startswith("('fit-")}
    assert len(fit_workers) == 2
    _assert_same_weights(inc.estimator_, _in_process(cls, data[0], passes=1))

    inc.partial_fit(X)  # a second pass, from the fitted estimator_
    _assert_same_weights(inc.estimator_, _in_process(cls, data[0], passes=2))
    assert inc.estimator_.n_features_in_ == WIDTH


def test_one_pass_of_incremental_gives_pcas_subspace(client, data, one_thread):
    # LinearAutoencoder's partial_fit streams the mean and covariance exactly.
    X = _blocks_on_both_workers(client, data[0])
    inc = wrappers.Incremental(LinearAutoencoder(n_components=K, random_state=0)).fit(X)
    assert max_principal_angle(inc.estimator_, PCA(K).fit(data[0])) < 0.01


@pytest.mark.parametrize("client", ["threads"], indirect=True)  # pickling is tested above
@pytest.mark.parametrize("cls", ESTIMATORS[1:], ids=ids[1:])
def test_incremental_training_learns(cls, client, data, one_thread):
    train, test = data
    X = _blocks_on_both_workers(client, train)
    # From random weights (the PCA start alone would pass), 4 Adam steps a block
    model = small(cls, n_components=3, init="random", batch_size=10)
    inc = wrappers.Incremental(model, random_state=0)
    for _ in range(10):  # passes, each over the blocks in a new order
        inc.partial_fit(X)
    baseline = np.mean((test - train.mean(axis=0)) ** 2)  # every row as the mean
    assert reconstruction_error(inc.estimator_, test) < 0.5 * baseline


@pytest.fixture(scope="module")
def fitted(data):
    return {cls: small(cls, n_components=K).fit(data[0]) for cls in ESTIMATORS}


def _input(model, method, X):
    return model.transform(X) if method == "inverse_transform" else X


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("cls", ESTIMATORS, ids=ids)
def test_transform_blocks_on_a_cluster(cls, method, client, fitted, data, one_thread):
    model, X = fitted[cls], data[0]
    expected = getattr(model, method)(_input(model, method, X))
    dX = client.persist(da.from_array(_input(model, method, X), chunks=(BLOCK, -1)))
    result = transform_blocks(model, dX, method)
    # the lazy array knows its shape before anything is computed
    assert result.shape == expected.shape
    assert result.chunks == ((BLOCK,) * (ROWS // BLOCK), *[(w,) for w in expected.shape[1:]])
    assert result.dtype == expected.dtype
    np.testing.assert_allclose(client.compute(result).result(), expected, rtol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_transform_blocks_keeps_float32_and_merges_column_chunks(method, fitted, data):
    model = fitted[LinearAutoencoder]
    X = _input(model, method, data[0]).astype(np.float32)
    result = transform_blocks(model, da.from_array(X, chunks=(50, 1)), method)
    assert result.chunks[0] == (50, 50, 50, 10)
    assert result.dtype == np.float32
    computed = result.compute(scheduler="sync")
    assert computed.dtype == np.float32
    np.testing.assert_allclose(computed, getattr(model, method)(X), rtol=1e-5)


def test_transform_blocks_takes_a_pipeline_and_numpy(fitted, data):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(StandardScaler(), small(LinearAutoencoder, n_components=K))
    pipe.fit(data[0])
    result = transform_blocks(pipe, data[1])  # NumPy: one block
    assert result.shape == (40, K) and result.numblocks == (1, 1)
    np.testing.assert_array_equal(result.compute(scheduler="sync"), pipe.transform(data[1]))


def test_transform_blocks_fails_early(fitted, data):
    X = da.from_array(data[0], chunks=(BLOCK, WIDTH))
    model = fitted[LinearAutoencoder]
    with pytest.raises(ValueError, match="method must be one of"):
        transform_blocks(model, X, "predict")
    with pytest.raises(ValueError, match="two-dimensional"):
        transform_blocks(model, X[:, 0])
    with pytest.raises(NotFittedError):
        transform_blocks(LinearAutoencoder(), X)
    with pytest.raises(ValueError, match="features"):
        transform_blocks(model, X[:, :3])  # raised now, not at compute time


def test_parallel_post_fit_computes_the_codes_but_reports_the_input_width(fitted, data):
    # Why transform_blocks exists; if dask-ml ever passes the output chunks, the
    # user guide's advice needs revisiting.
    model = fitted[LinearAutoencoder]
    X = da.from_array(data[0], chunks=(BLOCK, WIDTH))
    Z = wrappers.ParallelPostFit(model).transform(X)
    assert Z.shape == (ROWS, WIDTH)  # not (ROWS, K)
    np.testing.assert_allclose(Z.compute(scheduler="sync"), model.transform(data[0]))
