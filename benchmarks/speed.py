"""Training-engine speed: skvae against a hand-written PyTorch loop, and
LinearAutoencoder against PCA.

Each deep estimator is fitted with its default training regime (the PCA
start; held-out scoring of the start and of every epoch, the best restored;
fused Adam) for a fixed number of epochs, and timed against a loop that
trains the same network as many epochs on all the rows, with torch's default
Adam. skvae's maps carry an affine path beside the MLPs (the encoder's mean
and the decoder), where PCA's solution lives; the loop's network has them
too, and the ``textbook`` loop, without them (plain MLPs; the VAE's mean and
log-variance heads on a shared body), shows what those paths cost.

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
from functools import partial

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


def ae_network(d, affine_paths=True, hidden=HIDDEN, k=K):
    """The Autoencoder's network: with ``affine_paths``, skvae's (an affine map
    beside each MLP); without, the plain MLPs of a textbook autoencoder."""
    block = _AffinePlusMLP if affine_paths else _mlp
    return nn.Sequential(block([d, *hidden, k]), block([k, *hidden[::-1], d]))


class VAENetwork(nn.Module):
    """A Gaussian VAE with a learned decoder variance c; with ``affine_paths``,
    skvae's network: an affine map of the input added to the posterior mean,
    and an affine map beside the decoder's MLP."""

    def __init__(self, d, affine_paths=True, hidden=HIDDEN, k=K):
        super().__init__()
        self.k = k
        self.body = nn.Sequential(_mlp([d, *hidden]), nn.ReLU())
        self.skip = nn.Linear(d, k) if affine_paths else None
        self.mu, self.logvar = nn.Linear(hidden[-1], k), nn.Linear(hidden[-1], k)
        self.dec = (_AffinePlusMLP if affine_paths else _mlp)([k, *hidden[::-1], d])
        self.log_c = nn.Parameter(torch.zeros(()))

    def encode(self, x):
        h = self.body(x)
        mean = self.mu(h) if self.skip is None else self.mu(h) + self.skip(x)
        return mean, self.logvar(h)

    def loss(self, x, eps):
        """Minus the mean ELBO of the rows ``x`` at the draws ``eps``."""
        m, lv = self.encode(x)
        z = m + torch.exp(0.5 * lv) * eps
        sq = ((self.dec(z) - x) ** 2).sum(1)
        d = x.shape[1]
        nll = 0.5 * sq * torch.exp(-self.log_c) + 0.5 * d * (math.log(2 * math.pi) + self.log_c)
        kl = 0.5 * (m**2 + lv.exp() - 1 - lv).sum(1)
        return (nll + kl).mean()


def plain_ae_loop(X, epochs, batch_size, lr, device, seed=0, **network):
    """What a user would write: randperm, tensor slicing, Adam, MSE (the
    network: :func:`ae_network` with the keywords ``network``)."""
    g = torch.Generator(device=device).manual_seed(seed)
    model = ae_network(X.shape[1], **network).to(device)
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


def plain_vae_loop(X, epochs, batch_size, lr, device, seed=0, **network):
    """The same for the VAE (:class:`VAENetwork`): one draw per row."""
    g = torch.Generator(device=device).manual_seed(seed)
    model = VAENetwork(X.shape[1], **network).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    X = X.to(device)
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=g, device=device)
        for i in range(0, len(X), batch_size):
            xb = X[perm[i : i + batch_size]]
            eps = torch.randn((len(xb), model.k), generator=g, device=device)
            loss = model.loss(xb, eps)
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


def _fit(cls, params, n_epochs, X):
    cls(**params, max_iter=n_epochs, n_iter_no_change=n_epochs + 1).fit(X)


def engine_vs_plain_loop(
    n_rows, epoch_counts, batch_size, repeats, device, log, hidden=HIDDEN, k=K
):
    """For each number of epochs in ``epoch_counts``: each estimator's fit
    against hand-written loops of as many epochs, of the same network
    (``ratio``, the target) and of the textbook one (``ratio_textbook``).

    The ratios are medians of each repeat's own (its three runs back to back,
    in an order that turns from one repeat to the next, so that a machine
    slowing down or speeding up weighs on each side alike)."""
    rng = np.random.RandomState(0)
    X = rng.rand(n_rows, 784).astype(np.float32)
    Xt = torch.from_numpy(X)
    dev = resolve_device(device)
    # tol=0 and patience beyond max_iter: both sides train every epoch
    params = dict(
        n_components=k,
        hidden_layer_sizes=hidden,
        batch_size=batch_size,
        learning_rate=1e-3,
        tol=0,
        random_state=0,
        device=device,
    )
    same, textbook = (dict(affine_paths=a, hidden=hidden, k=k) for a in (True, False))
    rows = []
    for name, cls, plain in (
        ("Autoencoder", Autoencoder, plain_ae_loop),
        ("VariationalAutoencoder", VariationalAutoencoder, plain_vae_loop),
    ):
        # torch's and LAPACK's first calls are no side's cost
        for network in (same, textbook):
            plain(Xt[: 4 * batch_size], 1, batch_size, 1e-3, dev, 0, **network)
        _fit(cls, params, 1, X[: 4 * batch_size])
        for n_epochs in epoch_counts:
            runs = {
                "skvae": partial(_fit, cls, params, n_epochs, X),
                "loop": partial(plain, Xt, n_epochs, batch_size, 1e-3, dev, 0, **same),
                "textbook": partial(plain, Xt, n_epochs, batch_size, 1e-3, dev, 0, **textbook),
            }
            times = {key: [] for key in runs}
            for r in range(repeats):
                log(f"[speed] {name}, {n_epochs} epochs: repeat {r + 1}/{repeats}")
                turn = r % len(runs)
                order = list(runs)[turn:] + list(runs)[:turn]
                for key in order:
                    times[key].append(_time(runs[key]))
            ratios = [a / b for a, b in zip(times["skvae"], times["loop"], strict=True)]
            over_textbook = [a / b for a, b in zip(times["skvae"], times["textbook"], strict=True)]
            rows.append(
                {
                    "model": name,
                    "epochs": n_epochs,
                    "skvae_s": statistics.median(times["skvae"]),
                    "loop_s": statistics.median(times["loop"]),
                    "ratio": statistics.median(ratios),
                    # the spread a busy or virtual machine puts on the median
                    "ratio_min": min(ratios),
                    "ratio_max": max(ratios),
                    "textbook_loop_s": statistics.median(times["textbook"]),
                    "ratio_textbook": statistics.median(over_textbook),
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


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument(
        "--epochs",
        type=_positive,
        nargs="+",
        default=[2, 10],
        help="fit lengths to time (default: 2 and 10 epochs)",
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--components", type=_positive, default=K, help=f"latent size (default: {K})"
    )
    parser.add_argument(
        "--hidden",
        type=_positive,
        nargs="+",
        default=list(HIDDEN),
        help=f"hidden layer sizes (default: {' '.join(map(str, HIDDEN))})",
    )
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
            args.rows,
            args.epochs,
            args.batch_size,
            args.repeats,
            args.device,
            log,
            tuple(args.hidden),
            args.components,
        )
    )
    sizes = "-".join(map(str, [784, *args.hidden, args.components]))
    print(
        f"\nFit vs a hand-written loop of the same network ({sizes} with skvae's "
        f"affine maps, float32, {args.rows} rows, batch {args.batch_size}; the "
        f"median of {args.repeats} repeats' ratios); textbook: the loop without them:"
    )
    print(engine.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    linear = pd.DataFrame(linear_vs_pca(args.repeats, args.device, log))
    print(f"\nLinearAutoencoder vs PCA(svd_solver='full') fit time (median of {args.repeats}):")
    print(linear.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return engine, linear


if __name__ == "__main__":
    main()
