"""Data-parallel training under torch.distributed: two CPU processes over gloo.

The ranks are launched once per module by ``torchrun --standalone`` running
``tests/_distributed_worker.py`` (and once more for the script of the docs);
each writes what it fitted, and the tests compare the ranks with each other
and with single-process fits here. A launch that hangs is killed with its
whole process group after ``TIMEOUT`` seconds.

How close is "the same fit" (float64; errors are each weight tensor's
distance divided by its norm): every rank ends bit-identical. A single process
fed the same batches differs only in the order in which each batch's gradient
is summed (two half-batches, then across the ranks), one part in 1e16 per
step. From a random start that is all (5 epochs: 5e-16). From the PCA start,
a saddle of the deep loss, such differences grow, as they do when X itself is
multiplied by 1 + 1e-15 in a single process: the early-stopped fit (48 epochs)
agrees to 5e-8, its held-out scores, which decide when to stop and which
epoch to keep, to 7e-11, so both stop at epoch 48 and keep the same. L-BFGS
runs whole on each rank: bit-identical to one process. The bounds below leave
a margin of 100 or more over these measurements.
"""

import json
import os
import re
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

import skvae
from skvae._distributed import LOCAL, Ranks, participants

from . import _distributed_worker as worker

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 180  # seconds for one launch; it takes about 20
DOCS_PAGE = ROOT / "docs" / "user_guide" / "scaling_torchrun.inc"

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="this torch has no torch.distributed with gloo",
)


def torchrun(script: Path, *args: str, cwd: Path) -> str:
    """Run ``script`` on 2 CPU ranks with torchrun; fail with its output if it
    fails or hangs (then killing every process it started)."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", str(script), *args]
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: killable as a whole
    )
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"torchrun did not finish in {TIMEOUT} s:\n{output[-5000:]}")
    assert proc.returncode == 0, output[-5000:]
    return output


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """What each of the two ranks of the worker fitted: [(arrays, facts)] * 2."""
    out = tmp_path_factory.mktemp("ranks")
    torchrun(Path(worker.__file__), str(out), cwd=out)
    return [
        (dict(np.load(out / f"rank{r}.npz")), json.loads((out / f"rank{r}.json").read_text()))
        for r in (0, 1)
    ]


@pytest.fixture(scope="module")
def X():
    return worker.data()


def _single(cls, params, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return cls(**params).fit(X)


def _relative_errors(arrays, name, model):
    """Each weight tensor's distance to ``model``'s, relative to its norm."""
    return {
        key: np.linalg.norm(arrays[f"{name}/{key}"] - value) / max(np.linalg.norm(value), 1e-300)
        for key, value in worker.weights(model).items()
    }


def test_every_rank_ends_with_the_same_model(ranks):
    (first, first_facts), (second, second_facts) = ranks
    shared = [key for key in first if not key.startswith("alone/")]
    assert shared and all(np.array_equal(first[k], second[k]) for k in shared)
    fitted = [key for key in first_facts if key != "failure"]  # that one differs on purpose
    # n_iter_, loss curves and held-out scores
    assert all(first_facts[key] == second_facts[key] for key in fitted)
    assert first_facts["ae"]["n_iter"] < worker.AE["max_iter"]  # early stopping decided


@pytest.mark.usefixtures("one_thread")
def test_autoencoder_matches_one_process_fed_the_same_batches(ranks, X):
    arrays, facts = ranks[0]
    short = _single(skvae.Autoencoder, worker.SHORT_AE, X)
    assert max(_relative_errors(arrays, "short_ae", short).values()) < 1e-12  # measured 5e-16
    tail = _single(skvae.Autoencoder, worker.TAIL_AE, X[: worker.N_TAIL])
    assert max(_relative_errors(arrays, "tail_ae", tail).values()) < 1e-12

    model = _single(skvae.Autoencoder, worker.AE, X)
    assert facts["ae"]["n_iter"] == model.n_iter_
    scores = facts["ae"]["validation_scores"]
    np.testing.assert_allclose(scores, model.validation_scores_, rtol=1e-8)  # measured 7e-11
    np.testing.assert_allclose(facts["ae"]["loss_curve"], model.loss_curve_, rtol=1e-8)
    assert max(_relative_errors(arrays, "ae", model).values()) < 1e-5  # measured 5e-8


def test_a_memmap_trains_as_its_rows_in_memory(ranks):
    arrays = ranks[0][0]
    memmap = {k: v for k, v in arrays.items() if k.startswith("short_ae_memmap/")}
    assert memmap
    for key, value in memmap.items():
        np.testing.assert_array_equal(value, arrays[key.replace("_memmap", "")])
    np.testing.assert_array_equal(arrays["lae_memmap/components"], arrays["lae/components"])


@pytest.mark.usefixtures("one_thread")
def test_partial_fit_is_one_pass_over_every_ranks_rows(ranks, X):
    # rank 0 passed X[:200], rank 1 X[200:]: the pass of one process over X
    model = _single(skvae.Autoencoder, worker.AE, X)
    model.partial_fit(X)
    assert ranks[0][1]["ae_then_partial"]["n_iter"] == model.n_iter_
    assert max(_relative_errors(ranks[0][0], "ae_then_partial", model).values()) < 1e-5


@pytest.mark.usefixtures("one_thread")
def test_lbfgs_runs_whole_on_every_rank(ranks, X):
    model = _single(skvae.VariationalAutoencoder, worker.LINEAR_VAE, X)
    assert ranks[0][1]["linear_vae"]["n_iter"] == model.n_iter_
    assert max(_relative_errors(ranks[0][0], "linear_vae", model).values()) < 1e-12


@pytest.mark.usefixtures("one_thread")
def test_linear_autoencoder_is_pca_from_sharded_moments(ranks, X):
    arrays = ranks[0][0]
    pca = PCA(3).fit(X)
    one = skvae.LinearAutoencoder(n_components=3, random_state=0).fit(X)
    # fit: each rank's block of rows; partial_fit: each rank's own chunk
    for name in ("lae", "lae_partial"):
        np.testing.assert_allclose(arrays[f"{name}/explained_variance"], pca.explained_variance_)
        np.testing.assert_allclose(arrays[f"{name}/components"], pca.components_, atol=1e-5)
        np.testing.assert_allclose(arrays[f"{name}/components"], one.components_, atol=1e-9)


@pytest.mark.usefixtures("one_thread")
def test_grid_search_in_the_process_group(ranks, X):
    params = {**worker.AE, "max_iter": 3}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(skvae.Autoencoder(**params), {"n_components": [1, 2]}, cv=2).fit(X)
    np.testing.assert_allclose(ranks[0][0]["grid/scores"], search.cv_results_["mean_test_score"])


@pytest.mark.usefixtures("one_thread")
def test_single_process_fits_a_model_per_rank(ranks, X):
    for rank, (arrays, _) in enumerate(ranks):
        alone = skvae.LinearAutoencoder(n_components=2, random_state=0)
        alone.fit(worker.chunk(X, rank, 2))
        np.testing.assert_array_equal(arrays["alone/components"], alone.components_)


def test_ranks_that_disagree_raise_on_every_rank(ranks):
    for _, facts in ranks:
        assert re.search(r"disagree on: n_samples, X's values", facts["mismatch"])
    # rank 1's X has a NaN: its own error there, a pointer to it on rank 0
    assert ranks[0][1]["failure"].startswith("RuntimeError: Another rank")
    assert re.match(r"ValueError: .*NaN", ranks[1][1]["failure"])


def test_the_script_of_the_docs_runs(tmp_path):
    lines = DOCS_PAGE.read_text().split(".. code-block:: python\n", 1)[1].splitlines()
    body = []
    for line in lines:
        if line.strip() and not line.startswith("    "):
            break  # the end of the indented block
        body.append(line[4:])
    script = tmp_path / "train.py"
    script.write_text("\n".join(body))
    output = torchrun(script, cwd=tmp_path)
    assert re.search(r"trained \d+ epochs", output)
    assert (tmp_path / "model.pkl").exists()


def test_outside_a_process_group_a_process_is_alone(monkeypatch):
    assert participants() == LOCAL and not LOCAL.active
    with skvae.single_process():
        with skvae.single_process():
            pass
        assert participants() == LOCAL
    # a torch built without torch.distributed
    monkeypatch.setattr(dist, "is_available", lambda: False)
    assert participants() == LOCAL
    t = torch.arange(3.0)
    assert LOCAL.sum_(t) is t and LOCAL.broadcast_seed(7) == 7
    n, mine = LOCAL.stacked(5)
    assert n == 5 and mine(t) is t
    assert Ranks(1, 2).share(torch.arange(6)).tolist() == [1, 3, 5]
    assert Ranks(1, 2).block(torch.arange(5)).tolist() == [2, 3, 4]
