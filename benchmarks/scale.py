"""Scaling in rows: throughput, peak memory, out-of-core data, streaming, Dask
and compute precision, on this machine.

Run ``python -m benchmarks.scale`` (``--quick`` for a smoke run). Prints one
table per section and writes ``scale.json`` and one CSV per section into
``--out``. Every measurement runs in a fresh process (``--quick`` runs them
all in one), on ``--threads`` torch threads (default 1), and everything is
seeded. The data is generated: a 3-D manifold curved through 64 features
(:func:`benchmarks._scale.curved_rows`), written as a float32 ``.npy`` file
into a temporary directory that is deleted at the end.

Sections:

throughput
    LinearAutoencoder (ALS, the default) and Autoencoder (hidden (64,), 2
    epochs, early stopping as default) fitted and applied to 1e4, 1e5 and
    1e6 rows, in memory and as a memmap of the file. ``fit rows/s`` is rows
    x epochs / fit seconds (epochs = 1 for LinearAutoencoder, whose fit reads
    the rows to form their covariance and then iterates on that). ``us/row``
    is microseconds per row and epoch; constant down a column means linear
    cost. Each process warms up on 2000 rows first, so torch's first-call
    costs are not charged to the rows. ``Z diff`` is the largest difference
    between the memmap's codes and the in-memory ones. skvae reads rows in
    chunks of 2**22 values (65536 rows of 64), so the working memory grows
    up to that many rows and is flat beyond: compare 1e6 rows here with the
    4.2e6 of the budget section.
budget
    A float32 memmap of 4x a memory budget B (default 256 MiB: 4.2e6 rows) is
    fitted (the Autoencoder for one epoch; ``--quick``: LinearAutoencoder
    only, on 2x B) and transformed with the process's private memory capped
    at (its size after warming up) + B by
    ``setrlimit(RLIMIT_DATA)``, which counts private writable mappings
    (VmData) and not the read-only mapping of the file; loading the same rows
    into memory (``np.array(memmap)``) is then refused under that cap.
partial_fit
    Held-out reconstruction MSE of fit on 1e5 rows against partial_fit over
    10 chunks (in shuffled order each pass): one pass for LinearAutoencoder
    (exact streaming moments), as many passes as fit's 10 epochs for the
    Autoencoder (same batch size, no early stopping, so no rows held out).
    The MSE of fit with another seed, over fit's, says how far apart two
    equally good fits land.
dask
    ``transform`` of a memmap in this process (one thread) against
    :func:`skvae.dask.transform_blocks` on a LocalCluster of 2 worker
    processes of 1 thread, each reading its blocks of rows from the file.
    After a run that warms both up (the workers import torch), 5 runs of
    each alternate, so that the machine's changing load hits both; medians,
    and the speedup as the ratio of the medians of each cluster's own
    alternating runs. distributed starts its workers with
    MALLOC_TRIM_THRESHOLD_=65536, which makes glibc hand every large freed
    block back to the kernel, so each chunk's temporaries are fresh pages to
    fault in and zero: a second cluster runs without it. Two workers can only
    gain where two cores are free: compare the speedup with the load average
    printed. Needs the ``dask`` extra; skipped without it. ``--quick`` runs
    its two workers as threads of one process, and no second cluster.
precision
    Autoencoder and VariationalAutoencoder (hidden (256, 128), early stopping
    as default) on float64 data, the default (float64 compute) against
    ``compute_dtype="float32"``: fit seconds per epoch and held-out MSE, as
    medians of interleaved repeats, on digits and the curved set.

Memory. Each call's peak is reported two ways, in MiB above the start of the
call. ``anon`` is the peak of RssAnon, the resident memory the process itself
allocated (heap, arrays, tensors), sampled from /proc/self/status every 2 ms
by a thread (a peak shorter than that can be missed). ``hwm`` is the kernel's
exact peak resident size (VmHWM, reset through /proc/self/clear_refs) minus
the resident size at the start. For in-memory data both agree. For a memmap,
VmHWM also counts the file's pages as they are read (RssFile): page cache
that belongs to the file, is shared, and that the kernel drops whenever it
needs memory. It grows with the rows read, whatever skvae does, so it says
nothing of what the process needs; RssAnon is what must stay flat. Budget
rows also give ``data``, the sampled peak of VmData (what RLIMIT_DATA caps).
``anon - output`` is what transform holds beyond its output (0 when the
output lands in memory the process already held). glibc keeps some freed
blocks for reuse, so a call's peak depends on what earlier calls left and
varies by tens of MiB between runs: the claim is a bound set by the chunk
size, reached from about 65536 rows on, not a figure to the MiB.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ._scale import D, MiB, write_memmap

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
MODELS = ("LinearAutoencoder", "Autoencoder")
_CHILD = "from benchmarks._scale import main; main()"


def _children(groups: list[list[dict]], threads: int, log) -> list[list]:
    """Run each group of specs in a fresh process; their results, in order."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    out = []
    for specs in groups:
        log(f"[scale] {', '.join(_describe(s) for s in specs)}")
        res = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(specs)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
        )
        if res.returncode:
            names = ", ".join(_describe(s) for s in specs)
            raise RuntimeError(f"measurement {names} failed:\n{res.stderr[-3000:]}")
        out.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return out


def _describe(spec: dict) -> str:
    keys = ("kind", "model", "storage", "dataset", "rows")
    return " ".join(str(spec[k]) for k in keys if k in spec)


def _specs(args, path: Path, tmp: Path) -> dict[str, list[dict]]:
    """The measurements of each section."""
    quick, rows = args.quick, args.rows
    common = {"path": str(path)}
    sections = {"throughput": [], "budget": [], "partial_fit": [], "dask": [], "precision": []}
    for model in MODELS:
        for storage in ("memory", "memmap"):
            for n in rows:
                codes = str(tmp / f"{model}-{storage}-{n}.npy")
                spec = {"kind": "throughput", "model": model, "storage": storage, "rows": n}
                sections["throughput"].append({**common, **spec, "codes": codes})
    sections["budget"].append(
        {
            **common,
            "kind": "budget",
            "rows": _budget_rows(args),
            "budget_mib": args.budget_mib,
            # An Autoencoder epoch over 4.2e6 rows takes about a minute: not in a smoke run.
            "models": ["LinearAutoencoder"] if quick else list(MODELS),
        }
    )
    n = 4000 if quick else 100_000
    for model in MODELS:
        sections["partial_fit"].append(
            {
                "kind": "partial",
                "model": model,
                "rows": n,
                "test_rows": n // 4,
                "chunks": 4 if quick else 10,
                "epochs": 2 if quick else 10,
            }
        )
    n_dask = 4000 if quick else max(rows)
    if importlib.util.find_spec("distributed") is None:  # the dask extra
        del sections["dask"]
    else:
        sections["dask"].append(
            {
                **common,
                "kind": "dask",
                "model": "Autoencoder",
                "rows": n_dask,
                "block_rows": 1000 if quick else 100_000,
                "repeats": 1 if quick else 5,
                "trim_only": quick,  # a second cluster: seconds more for a smoke run
                # a smoke run's workers are threads: two processes importing torch
                # took 10 s of its 30 (tests/test_dask.py runs worker processes)
                "processes": not quick,
            }
        )
    for dataset, epochs in (("digits", 30), ("curved", 10)):
        for model in ("Autoencoder", "VariationalAutoencoder"):
            spec = {"kind": "precision", "dataset": dataset, "model": model}
            spec["epochs"], spec["repeats"] = (2, 1) if quick else (epochs, 3)
            if dataset == "curved":  # digits has its 1797 rows
                spec["rows"] = 1000 if quick else 10_000
            sections["precision"].append(spec)
    return sections


def _budget_rows(args) -> int:
    """Rows of 64 float32 features that make a file of 4x the budget (2x if quick)."""
    return args.ratio * args.budget_mib * MiB // (D * 4)


def _tables(sections: dict[str, list[dict]], results: dict[str, list]):
    import pandas as pd

    rows = [{**s, **r} for s, r in zip(sections["throughput"], results["throughput"], strict=True)]
    thr = pd.DataFrame(rows)
    thr["fit_us_per_row"] = 1e6 / thr["fit_rows_per_s"]
    thr["transform_us_per_row"] = 1e6 / thr["transform_rows_per_s"]
    thr["transform_extra_mib"] = (thr["transform_anon_mib"] - thr["output_mib"]).clip(lower=0)
    diffs = []
    for r in rows:
        if r["storage"] == "memmap":
            other = r["codes"].replace("-memmap-", "-memory-")
            diffs.append(float(np.max(np.abs(np.load(r["codes"]) - np.load(other)))))
        else:
            diffs.append(np.nan)
    thr["z_diff"] = diffs
    thr = thr.drop(columns=["kind", "path", "codes"])
    budget = pd.DataFrame(results["budget"][0]).drop(columns=["storage"], errors="ignore")
    if "output_mib" in budget:
        extra = budget["transform_anon_mib"] - budget["output_mib"]
        budget["transform_extra_mib"] = extra.clip(lower=0)
    partial = pd.DataFrame(
        [{**s, **r} for s, r in zip(sections["partial_fit"], results["partial_fit"], strict=True)]
    ).drop(columns=["kind"])
    precision = pd.DataFrame(
        [
            {"dataset": s["dataset"], "model": s["model"], **row}
            for s, r in zip(sections["precision"], results["precision"], strict=True)
            for row in r
        ]
    )
    tables = {"throughput": thr, "budget": budget, "partial_fit": partial}
    if "dask" in sections:
        n = sections["dask"][0]["rows"]
        tables["dask"] = pd.DataFrame([{"rows": n, **r} for r in results["dask"][0]])
    tables["precision"] = precision
    return tables


#: Printed columns of each table, and their headers.
COLUMNS = {
    "throughput": {
        "model": "model",
        "storage": "storage",
        "rows": "rows",
        "epochs": "epochs",
        "fit_rows_per_s": "fit rows/s",
        "fit_us_per_row": "fit us/row",
        "fit_anon_mib": "fit anon",
        "fit_hwm_mib": "fit hwm",
        "transform_rows_per_s": "transform rows/s",
        "transform_us_per_row": "transform us/row",
        "transform_anon_mib": "transform anon",
        "transform_hwm_mib": "transform hwm",
        "output_mib": "output",
        "transform_extra_mib": "anon - output",
        "z_diff": "Z diff",
    },
    "budget": {
        "model": "model",
        "rows": "rows",
        "file_mib": "file",
        "budget_mib": "budget",
        "result": "result",
        "fit_s": "fit s",
        "fit_anon_mib": "fit anon",
        "fit_data_mib": "fit data",
        "fit_hwm_mib": "fit hwm",
        "transform_anon_mib": "transform anon",
        "transform_data_mib": "transform data",
        "output_mib": "output",
        "transform_extra_mib": "anon - output",
    },
    "partial_fit": {
        "model": "model",
        "rows": "rows",
        "chunks": "chunks",
        "epochs": "epochs",
        "fit_mse": "fit MSE",
        "partial_fit_mse": "partial_fit MSE",
        "ratio": "ratio",
        "seed_ratio": "fit seed 1 / seed 0",
        "fit_s": "fit s",
        "partial_fit_s": "partial_fit s",
    },
    "dask": {
        "where": "where",
        "rows": "rows",
        "blocks": "blocks",
        "rows_per_s": "rows/s",
        "speedup": "speedup",
        "max_abs_diff": "max |diff|",
    },
    "precision": {
        "dataset": "dataset",
        "model": "model",
        "compute_dtype": "compute dtype",
        "rows": "rows",
        "epochs": "epochs",
        "s_per_epoch": "s/epoch",
        "time_ratio": "time ratio",
        "test_mse": "test MSE",
        "mse_ratio": "MSE ratio",
    },
}

TITLES = {
    "throughput": "Throughput and peak memory (MiB above the call's start) by rows",
    "budget": "A memmap larger than the memory budget (RLIMIT_DATA = VmData + budget; MiB)",
    "partial_fit": "partial_fit over chunks against fit: held-out MSE",
    "dask": "transform: in this process (1 thread) against transform_blocks on 2 workers",
    "precision": 'Compute precision on float64 data: default float64 against "float32"',
}


def _format(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


#: Ratios to compare with 1 (and the 2% of partial_fit): three decimals.
RATIOS = ("ratio", "seed_ratio", "time_ratio", "mse_ratio", "speedup")


def format_table(name: str, table) -> str:
    cols = [c for c in COLUMNS[name] if c in table.columns]
    formatters = {COLUMNS[name][c]: _format for c in cols}
    formatters.update({COLUMNS[name][c]: "{:.3f}".format for c in cols if c in RATIOS})
    shown = table[cols].rename(columns=COLUMNS[name])
    body = shown.to_string(index=False, na_rep="", formatters=formatters)
    return f"{TITLES[name]}:\n{body}"


def _load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, one process")
    parser.add_argument(
        "--budget-mib", type=int, default=256, help="memory budget B; the memmap is 4 B"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where results go")
    args = parser.parse_args(argv)
    args.ratio = 4
    if args.quick:  # a file of 2x the budget: the budget a fit needs, 4x over, is slow to write
        args.rows, args.budget_mib, args.ratio = [2000, 4000], 160, 2

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    start, load_start = time.perf_counter(), _load()
    with tempfile.TemporaryDirectory(prefix="skvae-scale-") as tmp:
        tmp = Path(tmp)
        path = tmp / "curved.npy"
        n_file = max(*args.rows, _budget_rows(args))
        log(f"[scale] writing {n_file} rows ({n_file * D * 4 / MiB:.0f} MiB) to {path}")
        write_memmap(path, n_file)
        sections = _specs(args, path, tmp)
        if "dask" not in sections:
            log('[scale] no dask section: it needs the dask extra (pip install -e ".[dask]")')
        if args.quick:  # one process for all: the budget, which caps memory, goes last
            names = [name for name in sections if name != "budget"] + ["budget"]
            flat = iter(_children([[s for n in names for s in sections[n]]], args.threads, log)[0])
            results = {name: [next(flat) for _ in sections[name]] for name in names}
        else:
            results = {
                name: [r[0] for r in _children([[s] for s in specs], args.threads, log)]
                for name, specs in sections.items()
            }
        tables = _tables(sections, results)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(args.out / f"scale_{name}.csv", index=False)
    elapsed = time.perf_counter() - start
    meta = {"seconds": elapsed, "load_start": load_start, "load_end": _load()}
    meta.update(threads=args.threads, quick=args.quick, cpus=os.cpu_count())
    payload = {"meta": meta, **{k: t.to_dict(orient="records") for k, t in tables.items()}}
    (args.out / "scale.json").write_text(json.dumps(payload, indent=1, default=str))
    print(f"{os.cpu_count()} CPUs, {args.threads} torch thread(s); {load_start} at the start")
    for name, table in tables.items():
        print()
        print(format_table(name, table))
    print(f"\n{elapsed:.0f} s; {_load()} at the end", flush=True)
    return tables


if __name__ == "__main__":
    main()
