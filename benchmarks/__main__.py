"""Command line: ``python -m benchmarks [--quick] [--out DIR] [--datasets ...] [--k ...]``.

Prints the comparison table to stdout, progress to stderr, and writes
``results.csv`` and the PNG figures into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from .compare import format_summary, format_table, run
from .datasets import DATASETS

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Compare PCA with skvae's LinearAutoencoder, Autoencoder and "
        "VariationalAutoencoder: prints a table, writes results.csv and PNG figures.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: fewer rows, one k per data set, few epochs for the deep models",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="output directory (default: benchmarks/results/)",
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        choices=list(DATASETS),
        default=None,
        metavar="NAME",
        help=f"data sets to run, among {', '.join(DATASETS)} (default: all)",
    )
    parser.add_argument(
        "--k",
        nargs="+",
        type=int,
        default=None,
        help="latent sizes to compare on every data set (default: a grid per data set)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help='device of the skvae estimators: "auto", "cpu", "cuda" (default: auto)',
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads of torch (default: 1; 0 keeps torch's own choice, which "
        "follows OMP_NUM_THREADS). The networks are small: a second thread gains little, "
        "and on a busy machine a team of threads stalls whenever one is descheduled",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.threads < 0:
        parser.error(f"--threads must be 0 (torch's choice) or positive, got {args.threads}")
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:  # leave a caller's process (e.g. a test calling main) as it was
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> int:
    start = time.perf_counter()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        results, fitted = run(
            datasets=args.datasets,
            ks=args.k,
            quick=args.quick,
            device=args.device,
            log=log,
            return_models=True,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / "results.csv"
    results.to_csv(csv, index=False)
    paths = [csv]
    try:
        from .plots import plot_all
    except ImportError:  # matplotlib: the bench extra
        log('no figures: they need matplotlib (pip install -e ".[bench]")')
    else:
        paths += plot_all(results, fitted, args.out, log=log)
    print(format_table(results), flush=True)
    print(flush=True)
    print(format_summary(results), flush=True)
    log(f"wrote {', '.join(str(p) for p in paths)}")
    log(f"total {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
