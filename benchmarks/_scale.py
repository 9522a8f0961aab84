"""The data and the measurements of :mod:`benchmarks.scale`.

The parent process (``benchmarks.scale``) writes the data and starts child
processes; each child runs :func:`main`, which takes a JSON list of
measurement specs as its argument and prints a JSON list of results as the
last line of its stdout. skvae, torch and dask are imported in the children
only.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np

#: The generated data: a LATENT-D manifold curved through D features.
D, LATENT, NOISE = 64, 3, 0.05
#: Rows generated per random stream: chunk c of stream s is seeded by (s, c),
#: so any range of rows is the same whoever generates it, in whatever pieces.
CHUNK = 65_536
#: Latent width of every model; the deep models' architecture and epochs.
K = 3
DEEP = {"hidden_layer_sizes": (64,), "max_iter": 2}
MiB = 2**20


def curved_rows(start: int, stop: int, stream: int = 0, dtype=np.float32) -> np.ndarray:
    """Rows ``start:stop`` of the curved data set: each feature is
    ``sin(a . t + b)`` of a latent point t uniform on [-1, 1]^3, plus noise.
    The map (a, b) is the same for every stream; stream 1 gives held-out rows."""
    rng = np.random.RandomState(0)
    freq, phase = rng.standard_normal((LATENT, D)), rng.uniform(0, 2 * np.pi, D)
    out = np.empty((stop - start, D), dtype=dtype)
    for c in range(start // CHUNK, -(-stop // CHUNK)):
        rng = np.random.RandomState([stream, c])
        t = rng.uniform(-1, 1, (CHUNK, LATENT))
        block = np.sin(t @ freq + phase) + NOISE * rng.standard_normal((CHUNK, D))
        a, b = max(start, c * CHUNK), min(stop, (c + 1) * CHUNK)
        out[a - start : b - start] = block[a - c * CHUNK : b - c * CHUNK]
    return out


def write_memmap(path: Path, n_rows: int) -> None:
    """A float32 .npy file of ``n_rows`` curved rows, written a few chunks at a time."""
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_rows, D))
    for a in range(0, n_rows, 4 * CHUNK):
        X[a : a + 4 * CHUNK] = curved_rows(a, min(a + 4 * CHUNK, n_rows))
    X.flush()
    del X


def _status() -> dict[str, int]:
    """Fields of /proc/self/status in bytes (RssAnon, RssFile, VmRSS, VmHWM, VmData)."""
    with open("/proc/self/status") as f:
        lines = [line.split(":", 1) for line in f.read().splitlines()]
    fields = ("RssAnon", "RssFile", "VmRSS", "VmHWM", "VmData")
    return {k: int(v.split()[0]) * 1024 for k, v in lines if k in fields}


class Sampler:
    """Peak RssAnon and VmData, sampled every 2 ms by one thread that lives as
    long as the process (no new thread stack once a memory limit is set)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.peak = _status()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            now = _status()
            with self.lock:
                self.peak = {k: max(self.peak[k], now[k]) for k in self.peak}
            time.sleep(0.002)

    def measure(self) -> Measure:
        return Measure(self)


class Measure:
    """``with sampler.measure() as m:`` seconds, and the peaks above the start
    in MiB: ``anon`` (RssAnon, sampled), ``data`` (VmData, sampled) and ``hwm``
    (the kernel's VmHWM, reset at the start, minus VmRSS then)."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    def __enter__(self) -> Measure:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS
        with self.sampler.lock:
            self.before = self.sampler.peak = _status()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
        now = _status()
        with self.sampler.lock:
            peak = {k: max(self.sampler.peak[k], now[k]) for k in now}
        self.anon = (peak["RssAnon"] - self.before["RssAnon"]) / MiB
        self.data = (peak["VmData"] - self.before["VmData"]) / MiB
        self.hwm = (now["VmHWM"] - self.before["VmRSS"]) / MiB


def _model(name: str, **params):
    from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder

    common = {"n_components": K, "random_state": 0, "device": "cpu"}
    if name == "LinearAutoencoder":
        return LinearAutoencoder(**{**common, **params})
    cls = Autoencoder if name == "Autoencoder" else VariationalAutoencoder
    return cls(**{**common, **DEEP, **params})


def _mse(est, X) -> float:
    return float(np.mean((est.inverse_transform(est.transform(X)) - X) ** 2, dtype=np.float64))


def _memmap(path: str, rows: int) -> np.memmap:
    return np.load(path, mmap_mode="r")[:rows]


def throughput(spec: dict, sampler: Sampler) -> dict:
    """fit then transform on the first ``rows`` rows of the file, as a memmap or
    loaded in memory; the codes are saved for the parent to compare."""
    X = _memmap(spec["path"], spec["rows"])
    if spec["storage"] == "memory":
        X = np.array(X)
    # Warm up on a few rows: torch's first-call costs are no cost of the rows.
    _model(spec["model"]).fit(X[:2000]).transform(X[:2000])
    est = _model(spec["model"])
    with sampler.measure() as fit:
        est.fit(X)
    with sampler.measure() as tr:
        Z = est.transform(X)
    np.save(spec["codes"], Z)
    epochs = est.n_iter_ if spec["model"] != "LinearAutoencoder" else 1
    return {
        "epochs": epochs,
        "fit_s": fit.seconds,
        "fit_rows_per_s": spec["rows"] * epochs / fit.seconds,
        "fit_anon_mib": fit.anon,
        "fit_hwm_mib": fit.hwm,
        "transform_s": tr.seconds,
        "transform_rows_per_s": spec["rows"] / tr.seconds,
        "transform_anon_mib": tr.anon,
        "transform_hwm_mib": tr.hwm,
        "output_mib": Z.nbytes / MiB,
    }


def budget(spec: dict, sampler: Sampler) -> list[dict]:
    """Under RLIMIT_DATA = VmData now + ``budget_mib``: fit and transform on the
    memmap, then try to load the same rows into memory."""
    X = _memmap(spec["path"], spec["rows"])
    for name in spec["models"]:  # threads, allocator arenas: before the baseline
        _model(name, max_iter=1).fit(X[:2000]).transform(X[:2000])
    base = _status()["VmData"]
    old = resource.getrlimit(resource.RLIMIT_DATA)
    limit = base + spec["budget_mib"] * MiB
    common = {"rows": len(X), "file_mib": X.nbytes / MiB, "budget_mib": spec["budget_mib"]}
    common["baseline_vmdata_mib"] = base / MiB
    out = []
    resource.setrlimit(resource.RLIMIT_DATA, (limit, old[1]))
    try:
        for name in [*spec["models"], "np.array(memmap)"]:
            row = {"model": name, **common}
            try:
                if name == "np.array(memmap)":
                    with sampler.measure() as fit:
                        np.array(X)
                    row["storage"] = "memory"
                else:
                    row["storage"] = "memmap"
                    est = _model(name, max_iter=1)
                    with sampler.measure() as fit:
                        est.fit(X)
                    with sampler.measure() as tr:
                        Z = est.transform(X)
                    row["transform_anon_mib"], row["transform_data_mib"] = tr.anon, tr.data
                    row["output_mib"] = Z.nbytes / MiB
                    del Z
                row["result"] = "ok"
                row.update(fit_s=fit.seconds, fit_anon_mib=fit.anon, fit_data_mib=fit.data)
                row["fit_hwm_mib"] = fit.hwm
            except (MemoryError, RuntimeError) as exc:
                row["result"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:40]}"
            out.append(row)
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, old)
    return out


def partial(spec: dict, sampler: Sampler) -> dict:
    """Held-out error of fit on all rows against partial_fit over chunks of them,
    and, as the yardstick of noise, of fit with another seed."""
    X = curved_rows(0, spec["rows"])
    test = curved_rows(0, spec["test_rows"], stream=1)
    name, epochs, chunks = spec["model"], spec["epochs"], spec["chunks"]
    params, passes = {}, 1
    if name != "LinearAutoencoder":
        # The same epochs and batches either way, and no rows held out (fit's
        # early stopping would train on 90% of the rows and stop on its own).
        params = {"max_iter": epochs, "early_stopping": False, "n_iter_no_change": epochs + 1}
        passes = epochs
    _model(name, **params).fit(X[:2000])  # warm up
    with sampler.measure() as fit_time:
        fitted = _model(name, **params).fit(X)
    stream = _model(name, **params)
    order = np.random.RandomState(0)
    parts = np.array_split(np.arange(len(X)), chunks)
    with sampler.measure() as stream_time:
        for _ in range(passes):
            for i in order.permutation(chunks):
                stream.partial_fit(X[parts[i]])
    fit_mse, stream_mse = _mse(fitted, test), _mse(stream, test)
    other = _mse(_model(name, **{**params, "random_state": 1}).fit(X), test)
    return {
        "epochs": passes,
        "fit_mse": fit_mse,
        "partial_fit_mse": stream_mse,
        "ratio": stream_mse / fit_mse,
        "seed_ratio": other / fit_mse,
        "fit_s": fit_time.seconds,
        "partial_fit_s": stream_time.seconds,
    }


def _read(path: str, a: int, b: int) -> np.ndarray:
    return np.load(path, mmap_mode="r")[a:b]


def _seconds(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def dask_transform(spec: dict, sampler: Sampler) -> list[dict]:
    """transform in this process against skvae.dask.transform_blocks on a local
    cluster of two worker processes of one thread (threads if not
    ``processes``), each reading its blocks from the file. After a run that
    warms both up, ``repeats`` runs of each alternate, so that a change in
    the machine's load hits both; medians.
    Unless ``trim_only``, a second cluster's workers run without the
    MALLOC_TRIM_THRESHOLD_ that distributed sets in them by default."""
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    from skvae.dask import transform_blocks

    path, rows, block, repeats = spec["path"], spec["rows"], spec["block_rows"], spec["repeats"]
    X = _memmap(path, rows)
    est = _model(spec["model"]).fit(X[: min(rows, 100_000)])
    Z = est.transform(X)
    default = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    untrimmed = {k: v for k, v in default.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    processes = spec.get("processes", True)
    variants = [("2 workers" if processes else "2 worker threads", default)]
    if not spec["trim_only"]:
        variants.append(("2 workers, no MALLOC_TRIM_THRESHOLD_", untrimmed))
    saved, local, out = dict(os.environ), [], []
    for where, environ in variants:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
            cluster = LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=processes,
                dashboard_address=None,
            )
            try:
                with Client(cluster):
                    pieces = [
                        da.from_delayed(dask.delayed(_read)(path, a, b), (b - a, D), X.dtype)
                        for a, b in ((a, min(a + block, rows)) for a in range(0, rows, block))
                    ]
                    Xd = da.concatenate(pieces)
                    # Warm up: each worker imports torch and skvae on its first task.
                    transform_blocks(est, Xd).compute()
                    mine, theirs = [], []
                    for _ in range(repeats):
                        mine.append(_seconds(lambda: est.transform(X))[0])
                        seconds, Zd = _seconds(lambda Xd=Xd: transform_blocks(est, Xd).compute())
                        theirs.append(seconds)
            finally:
                cluster.close()
                # The nanny puts its variables into this process's environment,
                # where the next cluster's workers would inherit them.
                os.environ.clear()
                os.environ.update(saved)
        local += mine
        out.append(
            {
                "where": where,
                "seconds": float(np.median(theirs)),
                "speedup": float(np.median(mine) / np.median(theirs)),
                "max_abs_diff": float(np.max(np.abs(Zd - Z))),
            }
        )
    out.insert(0, {"where": "this process", "seconds": float(np.median(local)), "speedup": 1.0})
    out[0]["max_abs_diff"] = 0.0
    for row in out:
        row.update(blocks=-(-rows // block), rows_per_s=rows / row["seconds"])
    return out


def precision(spec: dict, sampler: Sampler) -> list[dict]:
    """The default (float64 on float64 data) against compute_dtype="float32":
    time per epoch and held-out error, the two interleaved ``repeats`` times."""
    if spec["dataset"] == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        X, test = train_test_split(load_digits().data / 16, test_size=0.25, random_state=0)
    else:
        X = curved_rows(0, spec["rows"], dtype=np.float64)
        test = curved_rows(0, spec["rows"] // 4, stream=1, dtype=np.float64)
    runs = {None: [], "float32": []}
    for _ in range(spec["repeats"]):
        for dtype, times in runs.items():
            params = {"hidden_layer_sizes": (256, 128), "max_iter": spec["epochs"]}
            est = _model(spec["model"], compute_dtype=dtype, **params)
            with sampler.measure() as fit:
                est.fit(X)
            times.append((fit.seconds / est.n_iter_, fit.seconds, est.n_iter_, _mse(est, test)))
    out = []
    for dtype, times in runs.items():
        per_epoch, seconds, epochs, mse = (float(np.median(v)) for v in zip(*times, strict=True))
        out.append(
            {
                "compute_dtype": dtype or "float64 (default)",
                "rows": len(X),
                "epochs": epochs,
                "fit_s": seconds,
                "s_per_epoch": per_epoch,
                "test_mse": mse,
            }
        )
    for row in out:
        row["time_ratio"] = row["s_per_epoch"] / out[0]["s_per_epoch"]
        row["mse_ratio"] = row["test_mse"] / out[0]["test_mse"]
    return out


KINDS = {
    "throughput": throughput,
    "budget": budget,
    "partial": partial,
    "dask": dask_transform,
    "precision": precision,
}


def main() -> None:
    """Child process: run the specs of ``sys.argv[1]``, print the results."""
    import torch

    specs = json.loads(sys.argv[1])
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    warnings.simplefilter("ignore")  # ConvergenceWarning at a few epochs is the point
    sampler = Sampler()
    results = [KINDS[spec["kind"]](spec, sampler) for spec in specs]
    print(json.dumps(results))
