"""Peak memory of inference: transform, inverse_transform and score_samples run
in chunks, so the extra memory they take beyond their output does not grow with
the number of rows.

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


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
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
    return table


if __name__ == "__main__":
    main()
