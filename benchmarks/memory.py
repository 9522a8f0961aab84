"""Peak memory of inference: transform, inverse_transform and score_samples run
in chunks, so the extra memory they take beyond their output does not grow with
the number of rows. And the peak memory ``fit`` adds on a sparse matrix, which is
densified a block of rows at a time.

Run ``python -m benchmarks.memory``. Each measurement runs in a fresh process
resets the kernel's peak resident size (VmHWM, via /proc/self/clear_refs),
and reports the peak during the call minus the resident size before it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

_CHILD = r"""
import json, sys, warnings
import numpy as np
from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder
warnings.simplefilter("ignore")
name, method, n_rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
cls = {"LinearAutoencoder": LinearAutoencoder, "Autoencoder": Autoencoder,
       "VariationalAutoencoder": VariationalAutoencoder}[name]
rng = np.random.RandomState(0)
params = {} if cls is LinearAutoencoder else {"hidden_layer_sizes": (256, 128), "max_iter": 1}
est = cls(n_components=2, random_state=0, device="cpu", **params).fit(
    rng.rand(2000, 64).astype(np.float32))
width = 2 if method == "inverse_transform" else 64
X = np.empty((n_rows, width), dtype=np.float32)
for i in range(0, n_rows, 100_000):  # no float64 copy of the whole input
    X[i : i + 100_000] = rng.rand(len(X[i : i + 100_000]), width)
def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current resident size
before = status("VmRSS:")
out = getattr(est, method)(X)
peak = status("VmHWM:")
print(json.dumps({"extra_mib": (peak - before) / 1024, "output_mib": out.nbytes / 2**20}))
"""


def measure(name: str, method: str, n_rows: int) -> dict:
    res = subprocess.run(
        [sys.executable, "-c", _CHILD, name, method, str(n_rows)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


_SPARSE_CHILD = r"""
import json, sys, warnings
import numpy as np, scipy.sparse as sp
from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder
warnings.simplefilter("ignore")
name, density = sys.argv[1], float(sys.argv[4])
n_rows, n_features = int(sys.argv[2]), int(sys.argv[3])
cls = {"LinearAutoencoder": LinearAutoencoder, "Autoencoder": Autoencoder,
       "VariationalAutoencoder": VariationalAutoencoder}[name]
params = {} if cls is LinearAutoencoder else {"hidden_layer_sizes": (64,), "max_iter": 1}
est = cls(n_components=10, random_state=0, device="cpu", **params)
X = sp.random(n_rows, n_features, density=density, format="csr", dtype=np.float64,
              random_state=0)
matrix = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))
est.fit(X[:1000])  # torch and the code paths warmed up on a small fit
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current resident size
before = status("VmRSS:")
est.fit(X)
peak = status("VmHWM:")
batch = getattr(est, "batch_size", 128) * n_features * 8
print(json.dumps({"extra_mib": (peak - before) / 1024, "matrix_mib": matrix / 2**20,
                  "dense_batch_mib": batch / 2**20, "dense_mib": n_rows * n_features * 8 / 2**20}))
"""


def measure_sparse_fit(name: str, n_rows: int, n_features: int, density: float) -> dict:
    """Peak memory that ``fit`` adds on a CSR matrix, in a fresh process."""
    res = subprocess.run(
        [sys.executable, "-c", _SPARSE_CHILD, name, str(n_rows), str(n_features), str(density)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--sparse",
        type=float,
        nargs=3,
        default=[100_000, 2_000, 0.01],
        metavar=("ROWS", "FEATURES", "DENSITY"),
        help="the CSR matrix of the sparse-fit section",
    )
    args = parser.parse_args(argv)
    import pandas as pd

    rows = []
    for name in ("LinearAutoencoder", "Autoencoder", "VariationalAutoencoder"):
        methods = ["transform", "inverse_transform"]
        if name == "VariationalAutoencoder":
            methods.append("score_samples")
        for method in methods:
            for n in args.rows:
                print(f"[memory] {name}.{method} on {n} rows", file=sys.stderr, flush=True)
                m = measure(name, method, n)
                rows.append({"model": name, "method": method, "rows": n, **m})
    table = pd.DataFrame(rows)
    table["extra_minus_output_mib"] = table["extra_mib"] - table["output_mib"]
    print("Peak memory added by one inference call (MiB; input 64 float32 features):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))

    n_rows, n_features, density = int(args.sparse[0]), int(args.sparse[1]), args.sparse[2]
    fits = []
    for name in ("LinearAutoencoder", "Autoencoder", "VariationalAutoencoder"):
        print(f"[memory] {name}.fit on a sparse matrix", file=sys.stderr, flush=True)
        fits.append({"model": name, **measure_sparse_fit(name, n_rows, n_features, density)})
    sparse_table = pd.DataFrame(fits)
    print(
        f"\nPeak memory added by fit on a {n_rows} x {n_features} CSR matrix at density "
        f"{density:g} (MiB; dense_mib is what densifying it whole would take):"
    )
    print(sparse_table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    return table, sparse_table


if __name__ == "__main__":
    main()
