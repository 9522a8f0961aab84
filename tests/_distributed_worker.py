"""One rank of tests/test_distributed.py: ``torchrun ... _distributed_worker.py OUT``.

Every rank fits the same estimators data-parallel over gloo and writes what
it ended with to ``OUT/rank<r>.npz`` (arrays) and ``OUT/rank<r>.json``
(everything else); the test compares the ranks with each other and with
single-process fits. The process group is destroyed whatever happens.
"""

import copy
import json
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

import skvae

# The estimators and data of each case, shared with the test's single-process
# fits. The autoencoder stops early, at epoch 48 of 100 (patience 10 epochs);
# the short one starts at random, away from the saddle that PCA's solution is
# (where rounding differences grow fast).
AE = {
    "hidden_layer_sizes": (16,),
    "n_components": 2,
    "batch_size": 64,
    "max_iter": 100,
    "n_iter_no_change": 2,
    "tol": 3e-3,
    "random_state": 0,
    "device": "cpu",
}
SHORT_AE = {**AE, "max_iter": 5, "init": "random"}
# 101 rows in batches of 50: the last batch's one row leaves rank 1 without any
TAIL_AE = {**SHORT_AE, "batch_size": 50, "early_stopping": False, "max_iter": 3}
N_TAIL = 101
VAE = {**AE, "max_iter": 8, "random_state": None}
LINEAR_VAE = {
    "hidden_layer_sizes": (),
    "n_components": 3,
    "init": "random",  # else it starts at its optimum and L-BFGS has nothing to do
    "max_iter": 20,
    "random_state": 0,
    "device": "cpu",
}
N_ROWS = 540


def data():
    from sklearn.datasets import load_digits

    return load_digits().data[:N_ROWS] / 16.0


def chunk(X, rank, world):
    """Rank ``rank``'s own chunk for partial_fit: uneven on purpose."""
    cuts = [0, 200, len(X)] if world == 2 else np.linspace(0, len(X), world + 1).astype(int)
    return X[cuts[rank] : cuts[rank + 1]]


def weights(model):
    return {k: v.numpy().copy() for k, v in model.module_.state_dict().items()}


def main(out: Path) -> None:
    rank, world = dist.get_rank(), dist.get_world_size()
    X = data()
    arrays, facts = {}, {}

    def keep(name, model):
        for key, value in weights(model).items():
            arrays[f"{name}/{key}"] = value
        facts[name] = {
            "n_iter": model.n_iter_,
            "loss_curve": model.loss_curve_,
            "validation_scores": model.validation_scores_,
        }

    ae = skvae.Autoencoder(**AE).fit(X)
    keep("ae", ae)
    # the fitted estimator holds no process-group state
    pickle.loads(pickle.dumps(ae))
    copy.deepcopy(ae)
    clone(ae).set_params(max_iter=1)
    keep("short_ae", skvae.Autoencoder(**SHORT_AE).fit(X))
    # the same rows read from disk as they are needed, each rank its own block
    path = out / f"X{rank}.f64"
    X.tofile(path)
    mapped = np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape)
    keep("short_ae_memmap", skvae.Autoencoder(**SHORT_AE).fit(mapped))
    lae_mapped = skvae.LinearAutoencoder(n_components=3, random_state=0, device="cpu").fit(mapped)
    arrays["lae_memmap/components"] = lae_mapped.components_
    del mapped
    keep("tail_ae", skvae.Autoencoder(**TAIL_AE).fit(X[:N_TAIL]))
    keep("ae_then_partial", skvae.Autoencoder(**AE).fit(X).partial_fit(chunk(X, rank, world)))
    keep("vae", skvae.VariationalAutoencoder(**VAE).fit(X))
    keep("linear_vae", skvae.VariationalAutoencoder(**LINEAR_VAE).fit(X))

    lae = skvae.LinearAutoencoder(n_components=3, random_state=0, device="cpu").fit(X)
    arrays["lae/components"] = lae.components_
    arrays["lae/explained_variance"] = lae.explained_variance_
    streamed = skvae.LinearAutoencoder(n_components=3, random_state=0, device="cpu")
    streamed.partial_fit(chunk(X, rank, world))
    arrays["lae_partial/components"] = streamed.components_
    arrays["lae_partial/explained_variance"] = streamed.explained_variance_

    # every rank runs the same search: each of its fits is data-parallel
    search = GridSearchCV(
        skvae.Autoencoder(**{**AE, "max_iter": 3}), {"n_components": [1, 2]}, cv=2
    ).fit(X)
    arrays["grid/scores"] = search.cv_results_["mean_test_score"]

    # one model per rank, on each rank's own rows
    with skvae.single_process():
        alone = skvae.LinearAutoencoder(n_components=2, random_state=0).fit(chunk(X, rank, world))
    arrays["alone/components"] = alone.components_

    # ranks that disagree about X raise on every rank instead of hanging
    try:
        skvae.Autoencoder(**AE).fit(X[: N_ROWS - rank])
    except ValueError as exc:
        facts["mismatch"] = str(exc)

    # one rank's data fails validation: it raises its error, the others say so
    bad = X.copy()
    bad[0, 0] = np.nan if rank == 1 else 0.0
    try:
        skvae.Autoencoder(**AE).fit(bad)
    except (ValueError, RuntimeError) as exc:
        facts["failure"] = f"{type(exc).__name__}: {exc}"

    np.savez(out / f"rank{rank}.npz", **arrays)
    (out / f"rank{rank}.json").write_text(json.dumps(facts))


if __name__ == "__main__":
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", ConvergenceWarning)
    dist.init_process_group("gloo")
    try:
        main(Path(sys.argv[1]))
    finally:
        dist.destroy_process_group()
