"""Training-engine speed: skvae against a hand-written PyTorch loop, and
LinearAutoencoder against PCA.

A default fit (held-out stopping on, so it trains on 90% of the rows, and the
PCA start) is timed against a loop that trains the same network for as many
epochs on all the rows. skvae's deep maps carry an affine path beside each
MLP, where PCA's solution lives; the loop's network has them too, and the
``textbook`` loop (the pytorch/examples shapes, without them) shows what
those paths cost.

Run ``python -m benchmarks.speed`` (``--quick`` for a smoke run). Every figure
is the median of ``--repeats`` runs, and each ratio compares runs interleaved in
the same process, so a busy machine slows both sides alike; ``ratio_min`` and
``ratio_max`` give the range of the repeats' own ratios.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from skvae import Autoencoder, LinearAutoencoder, VariationalAutoencoder
from skvae._placement import resolve_device
from skvae.metrics import max_principal_angle

HIDDEN = (512, 256)
K = 10


def _mlp(sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


class _AffinePlusMLP(nn.Module):
    """y = A x + b + mlp(x): an affine path beside the MLP, the shape of
    skvae's deep maps (the path is where PCA's solution lives)."""

    def __init__(self, sizes):
        super().__init__()
        self.affine = nn.Linear(sizes[0], sizes[-1])
        self.mlp = _mlp(sizes)

    def forward(self, x):
        return self.affine(x) + self.mlp(x)


def ae_network(d, pca_paths=True):
    """The Autoencoder's network: with ``pca_paths``, skvae's (an affine path
    beside each MLP); without, the plain MLPs of a textbook autoencoder."""
    block = _AffinePlusMLP if pca_paths else _mlp
    return nn.Sequential(block([d, *HIDDEN, K]), block([K, *HIDDEN[::-1], d]))


class VAENetwork(nn.Module):
    """The pytorch/examples VAE, with a learned Gaussian decoder variance; with
    ``pca_paths``, skvae's network: an affine map of the input added to the
    posterior mean, and an affine path beside the decoder's MLP."""

    def __init__(self, d, pca_paths=True):
        super().__init__()
        self.body = nn.Sequential(_mlp([d, *HIDDEN]), nn.ReLU())
        self.skip = nn.Linear(d, K) if pca_paths else None
        self.mu, self.logvar = nn.Linear(HIDDEN[-1], K), nn.Linear(HIDDEN[-1], K)
        self.dec = (_AffinePlusMLP if pca_paths else _mlp)([K, *HIDDEN[::-1], d])
        self.log_c = nn.Parameter(torch.zeros(()))

    def encode(self, x):
        h = self.body(x)
        mean = self.mu(h) if self.skip is None else self.mu(h) + self.skip(x)
        return mean, self.logvar(h)


def plain_ae_loop(X, epochs, batch_size, lr, device, seed=0, pca_paths=True):
    """What a user would write: randperm, tensor slicing, Adam, MSE."""
    g = torch.Generator(device=device).manual_seed(seed)
    model = ae_network(X.shape[1], pca_paths).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    X = X.to(device)
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=g, device=device)
        for i in range(0, len(X), batch_size):
            xb = X[perm[i : i + batch_size]]
            loss = F.mse_loss(model(xb), xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return model


def plain_vae_loop(X, epochs, batch_size, lr, device, seed=0, pca_paths=True):
    """The pytorch/examples VAE loop: reparameterisation, Gaussian NLL plus KL."""
    g = torch.Generator(device=device).manual_seed(seed)
    d = X.shape[1]
    model = VAENetwork(d, pca_paths).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    X = X.to(device)
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=g, device=device)
        for i in range(0, len(X), batch_size):
            xb = X[perm[i : i + batch_size]]
            m, lv = model.encode(xb)
            z = m + torch.exp(0.5 * lv) * torch.randn(m.shape, generator=g, device=device)
            sq = ((model.dec(z) - xb) ** 2).sum(1)
            log_c = model.log_c
            nll = 0.5 * sq * torch.exp(-log_c) + 0.5 * d * (math.log(2 * math.pi) + log_c)
            kl = 0.5 * (m**2 + lv.exp() - 1 - lv).sum(1)
            loss = (nll + kl).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return model


def _time(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def engine_vs_plain_loop(n_rows, epochs, batch_size, repeats, device, log):
    """Each estimator's default fit (held-out stopping on, PCA start) of
    ``epochs`` epochs against hand-written loops of as many epochs: of the same
    network (``ratio``, the target), and of the textbook network without the
    affine paths (``ratio_textbook``: what those paths cost besides)."""
    rng = np.random.RandomState(0)
    X = rng.rand(n_rows, 784).astype(np.float32)
    Xt = torch.from_numpy(X)
    dev = resolve_device(device)
    rows = []
    for name, cls, plain in (
        ("Autoencoder", Autoencoder, plain_ae_loop),
        ("VariationalAutoencoder", VariationalAutoencoder, plain_vae_loop),
    ):
        for paths in (True, False):  # torch's first calls are not the loops' cost
            plain(Xt[: 2 * batch_size], 1, batch_size, 1e-3, dev, 0, paths)
        for n_epochs in epochs:
            params = dict(
                n_components=K,
                hidden_layer_sizes=HIDDEN,
                batch_size=batch_size,
                learning_rate=1e-3,
                max_iter=n_epochs,
                tol=0,
                n_iter_no_change=n_epochs + 1,
                random_state=0,
                device=device,
            )
            ours, same, textbook = [], [], []
            for r in range(repeats):
                log(f"[speed] {name}, {n_epochs} epochs: repeat {r + 1}/{repeats}")
                for times, paths in ((same, True), (textbook, False)):
                    start = time.perf_counter()
                    plain(Xt, n_epochs, batch_size, 1e-3, dev, 0, paths)
                    times.append(time.perf_counter() - start)
                est = cls(**params)
                ours.append(_time(lambda e=est: e.fit(X)))
            t_ours, t_same = statistics.median(ours), statistics.median(same)
            rows.append(
                {
                    "model": name,
                    "epochs": n_epochs,
                    "skvae_s": t_ours,
                    "loop_s": t_same,
                    "ratio": t_ours / t_same,
                    # each repeat's own ratio (its runs back to back): the spread
                    # a busy or virtual machine puts on the median's
                    "ratio_min": min(a / b for a, b in zip(ours, same, strict=True)),
                    "ratio_max": max(a / b for a, b in zip(ours, same, strict=True)),
                    "textbook_loop_s": statistics.median(textbook),
                    "ratio_textbook": t_ours / statistics.median(textbook),
                }
            )
    return rows


def linear_vs_pca(repeats, device, log):
    digits = load_digits().data
    rng = np.random.RandomState(0)
    wide = {
        "digits (1797 x 64)": digits,
        "digits transposed (64 x 1797, wide)": np.ascontiguousarray(digits.T),
        "low rank + noise (252 x 752, wide)": rng.randn(252, 20) @ rng.randn(20, 752)
        + 0.5 * rng.randn(252, 752),
    }
    rows = []
    for name, X in wide.items():
        for k in (2, 10):
            ours, theirs = [], []
            for _ in range(repeats):
                theirs.append(_time(lambda X=X, k=k: PCA(k, svd_solver="full").fit(X)))
                lae = LinearAutoencoder(k, random_state=0, device=device)
                ours.append(_time(lambda lae=lae, X=X: lae.fit(X)))
            pca = PCA(k, svd_solver="full").fit(X)
            log(f"[speed] LinearAutoencoder on {name}, k={k}")
            rows.append(
                {
                    "data": name,
                    "k": k,
                    "lae_s": statistics.median(ours),
                    "pca_s": statistics.median(theirs),
                    "ratio": statistics.median(ours) / statistics.median(theirs),
                    "angle_deg": max_principal_angle(lae, pca),
                    "iterations": lae.n_iter_,
                }
            )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument(
        "--epochs",
        type=int,
        nargs="+",
        default=[2, 10],
        help="fit lengths to time (default: 2 and 10 epochs)",
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.epochs, args.repeats = 2000, [1], 1

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    import pandas as pd

    warnings.simplefilter("ignore", ConvergenceWarning)
    dev = resolve_device(args.device)
    print(f"device: {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    engine = pd.DataFrame(
        engine_vs_plain_loop(
            args.rows, args.epochs, args.batch_size, args.repeats, args.device, log
        )
    )
    print(
        "\nDefault fit vs a hand-written loop of the same network (784-512-256-10 "
        "with skvae's affine paths, float32, "
        f"{args.rows} rows, batch {args.batch_size}, median of {args.repeats}); "
        "textbook: the loop without the affine paths:"
    )
    print(engine.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    linear = pd.DataFrame(linear_vs_pca(args.repeats, args.device, log))
    print(f"\nLinearAutoencoder vs PCA(svd_solver='full') fit time (median of {args.repeats}):")
    print(linear.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return engine, linear


if __name__ == "__main__":
    main()
