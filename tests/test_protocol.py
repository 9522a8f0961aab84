"""The model protocol: a model written here, in the tests, trains and runs through
an estimator front that only says how to build it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from torch import nn

from skvae import Autoencoder
from skvae.metrics import max_principal_angle

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]


class TiedLinear(nn.Module):
    """z = W'(x - m) / s, x_hat = s W z + m: one weight matrix both ways.

    The verbs skvae calls, and nothing else: draw_parameters, set_scaling,
    start_at_pca, loss, row_loss, loss_in_data_units, encode/code, decode,
    score_rows, score_copies.
    """

    def score_copies(self, n_importance=1):
        return 1

    def __init__(self, n_features: int, n_components: int, dtype: torch.dtype):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_features, n_components, dtype=dtype))
        self.register_buffer("offset", torch.zeros(n_features, dtype=dtype))
        self.register_buffer("scale", torch.ones((), dtype=dtype))

    @torch.no_grad()
    def draw_parameters(self, generator):
        self.weight.normal_(0.0, 0.3, generator=generator)

    @torch.no_grad()
    def set_scaling(self, X, max_rows=4096, mean=None):
        self.offset.copy_(X[:].mean(0) if mean is None else mean)
        self.scale.fill_(float(X[:].std()) or 1.0)

    @torch.no_grad()
    def start_at_pca(self, components, variances=None, noise_variance=None):
        self.weight.zero_()
        self.weight[:, : components.shape[1]] = components

    def _standardised(self, x):
        return (x - self.offset) / self.scale

    def encode(self, x):
        return self._standardised(x) @ self.weight

    code = encode

    def decode(self, z):
        return z @ self.weight.T * self.scale + self.offset

    def loss(self, x):
        xs = self._standardised(x)
        return ((xs @ self.weight @ self.weight.T - xs) ** 2).mean()

    def row_loss(self, x):
        xs = self._standardised(x)
        return ((xs @ self.weight @ self.weight.T - xs) ** 2).mean(1)

    def loss_in_data_units(self, loss):
        return loss * float(self.scale) ** 2

    def score_rows(self, x, n_importance=1):
        return -((self.decode(self.encode(x)) - x) ** 2).mean(1)


class TiedAutoencoder(Autoencoder):
    """An estimator front for TiedLinear: it says how to build the model, no more."""

    def _build_module(self, n_features, dtype):
        return TiedLinear(n_features, self.n_components_, dtype)


def _spiked(n=500, d=10, seed=0):
    rng = np.random.RandomState(seed)
    basis, _ = np.linalg.qr(rng.randn(d, 3))
    return (rng.randn(n, 3) * [5.0, 3.0, 2.0]) @ basis.T + 0.3 * rng.randn(n, d) + 7.0


def test_a_model_written_in_the_tests_trains_and_runs_through_the_front():
    X = _spiked()
    pca = PCA(n_components=3).fit(X)
    # started at PCA and kept there: the front hands the model PCA's solution
    started = TiedAutoencoder(n_components=3, random_state=0, learning_rate=1e-300, max_iter=1)
    started.fit(X)
    assert max_principal_angle(started.module_.weight.detach().numpy().T, pca) < 1e-6
    # from random weights, training alone comes within a few degrees of it
    ae = TiedAutoencoder(n_components=3, init="random", random_state=0, max_iter=300).fit(X)
    assert max_principal_angle(ae.module_.weight.detach().numpy().T, pca) < 5.0
    Z = ae.transform(X)
    error = np.mean((ae.inverse_transform(Z) - X) ** 2)
    pca_error = np.mean((pca.inverse_transform(pca.transform(X)) - X) ** 2)
    assert Z.shape == (len(X), 3) and error < 1.02 * pca_error
    np.testing.assert_allclose(
        ae.score_samples(X), -np.mean((ae.inverse_transform(Z) - X) ** 2, 1)
    )
    assert ae.sample(5, random_state=0).shape == (5, X.shape[1])
    assert ae.loss_curve_[-1] == pytest.approx(ae.best_loss_ or ae.loss_curve_[-1])
