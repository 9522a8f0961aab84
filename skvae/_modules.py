"""Plain PyTorch building blocks: MLPs, encoders and decoders.

Nothing here knows about scikit-learn. Every module is created without touching
torch's global random state; weights are drawn from the ``torch.Generator`` handed
to :func:`init_parameters`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._conditional import ImportanceImputation
from ._placement import sparse_spread

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "logistic": nn.Sigmoid,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "identity": nn.Identity,
}


def _linear(n_in: int, n_out: int, dtype: torch.dtype) -> nn.Linear:
    # skip_init builds the layer without drawing from torch's global RNG; on the
    # default device (the CPU, or "meta" inside `with torch.device("meta")`, where
    # skvae.load sizes the networks before it allocates them), not always the CPU
    device = torch.empty(0).device
    return torch.nn.utils.skip_init(nn.Linear, n_in, n_out, dtype=dtype, device=device)


def mlp(sizes: Sequence[int], activation: str, dtype: torch.dtype) -> nn.Sequential:
    """Linear layers between consecutive ``sizes``, ``activation`` between them.

    The last layer has no activation, so ``mlp([a, b], ...)`` is one affine map.
    """
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i > 0:
            layers.append(ACTIVATIONS[activation]())
        layers.append(_linear(n_in, n_out, dtype))
    return nn.Sequential(*layers)


def unread(*layers: nn.Linear) -> bool:
    """Whether these layers' weights are all zero, so that their output is their
    bias and their input needs no computing (a PCA start's corrections and
    heads). Checked only in inference mode (scores and codes: no gradient
    needs that input) while no export traces the graph (which must hold the
    layers whatever their weights), and on the CPU, where it costs
    microseconds against the milliseconds of the layers it saves (on a GPU
    it would wait for the device)."""
    return (
        torch.is_inference_mode_enabled()
        and not _traced()
        and all(layer.weight.device.type == "cpu" and _zero(layer.weight) for layer in layers)
    )


def _traced() -> bool:
    """Whether torch.export (TorchDynamo) or the TorchScript tracer is recording."""
    compiling = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3
    return torch.jit.is_tracing() or (compiling is not None and compiling())


def _zero(weight: torch.Tensor) -> bool:
    if weight.numel() == 0:
        return True
    if weight[0].any():  # a drawn or trained layer: told by its first row
        return False
    low, high = torch.aminmax(weight)  # a pass, a sixth of the time of any()
    return bool(low == 0) and bool(high == 0)


def init_parameters(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default ``nn.Linear`` initialisation, drawn from ``generator``.

    Weights and biases are uniform on +-1/sqrt(fan_in) (what ``reset_parameters``
    gives), but the draws come from a local generator, so fits are reproducible
    and torch's global RNG is left alone.
    """
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            bound = 1.0 / math.sqrt(max(sub.in_features, 1))
            nn.init.uniform_(sub.weight, -bound, bound, generator=generator)
            nn.init.uniform_(sub.bias, -bound, bound, generator=generator)
        elif hasattr(sub, "draw_parameters"):  # a model's own parameters
            sub.draw_parameters(generator)


class ScaledIO(nn.Module):
    """Networks that see standardised data and answer in the data's units.

    The buffers ``offset`` (per-feature mean) and ``scale`` (one scalar, the
    root mean variance) are set from the training data by :meth:`set_scaling`;
    inputs enter as (x - offset) / scale and outputs leave as y * scale + offset.
    The estimators compute their training losses in these standardised units
    too, so optimisation is the same whatever the data's location and units:
    X, 1e-3 X and 1e3 X train identically up to rounding, Adam's epsilon and
    any absolute tolerance mean the same on any data, and an offset of 100
    cannot overflow a log-variance head. Losses and scores are reported in the
    data's units.
    """

    def _init_scaling(self, n_features: int, dtype: torch.dtype) -> None:
        self.register_buffer("offset", torch.zeros(n_features, dtype=dtype))
        self.register_buffer("scale", torch.ones((), dtype=dtype))

    @torch.no_grad()
    def set_scaling(
        self, X: torch.Tensor, max_rows: int = 4096, mean: torch.Tensor | None = None
    ) -> None:
        """Per-feature mean of ``X`` (or ``mean``, when the caller has it already);
        root mean variance (1 for constant data), of the observed entries where
        X has NaN.

        The scale only conditions the optimisation, so it comes from at most
        ``max_rows`` evenly spaced rows: a column-wise variance of all of X
        would cost a few percent of a short fit.
        """
        self.offset.copy_(X.mean(dim=0) if mean is None else mean)
        step = max(1, -(-len(X) // max_rows))  # at most max_rows rows
        if getattr(X, "sparse", False):  # from the entries: 4096 dense rows can be 60 MiB
            self.scale.fill_(sparse_spread(X, step) or 1.0)
            return
        rows = X[::step]
        spread = torch.sqrt(rows.var(dim=0, correction=0).mean())
        if torch.isnan(spread):  # missing entries (NaN): the observed entries' spread
            centred = rows - torch.nanmean(rows, dim=0)
            spread = torch.sqrt(torch.nanmean(torch.nanmean(centred**2, dim=0)))
        self.scale.copy_(spread if spread > 0 and torch.isfinite(spread) else 1.0)

    def fill_missing(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows with their missing entries (NaN) at ``offset`` (0 once
        standardised: the zero-filled input the networks train on), and the mask
        of observed entries."""
        mask = ~torch.isnan(x)
        return torch.where(mask, x, self.offset), mask

    def scale_in(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.offset) / self.scale

    def scale_out(self, y: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.offset, y, self.scale)  # y * scale + offset, one kernel


class LinearPlusMLP(nn.Module):
    """y = A x + b + g(x): an affine map plus an MLP correction g.

    Without hidden layers there is no correction and the map is affine. After
    :meth:`start_linear` the correction's last layer is zero, so the map starts
    as exactly the affine map it contains and training learns a nonlinear
    correction on top of it.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        hidden_layer_sizes: Sequence[int],
        activation: str,
        dtype: torch.dtype,
    ) -> None:
        super().__init__()
        hidden = list(hidden_layer_sizes)
        self.linear = _linear(n_in, n_out, dtype)
        self.correction = mlp([n_in, *hidden, n_out], activation, dtype) if hidden else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        if self.correction is None:
            return y
        last = self.correction[-1]
        return y + last.bias if unread(last) else y + self.correction(x)

    @torch.no_grad()
    def start_linear(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        """Set the affine map to (weight, bias) and the correction to zero."""
        self.linear.weight.copy_(weight)
        if bias is None:
            self.linear.bias.zero_()
        else:
            self.linear.bias.copy_(bias)
        if self.correction is not None:
            self.correction[-1].weight.zero_()
            self.correction[-1].bias.zero_()


def padded(rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    """``rows`` with zero rows appended up to ``n_rows``."""
    out = rows.new_zeros((n_rows, *rows.shape[1:]))
    out[: len(rows)] = rows
    return out


class AutoencoderModule(ImportanceImputation, ScaledIO):
    """A deterministic encoder z = g(x) and decoder x_hat = f(z).

    Each is an affine map plus an MLP correction (:class:`LinearPlusMLP`), and
    both work in standardised units (see :class:`ScaledIO`).
    """

    def __init__(
        self,
        n_features: int,
        n_components: int,
        hidden_layer_sizes: Sequence[int],
        activation: str,
        dtype: torch.dtype,
    ) -> None:
        super().__init__()
        hidden = list(hidden_layer_sizes)
        self.encoder = LinearPlusMLP(n_features, n_components, hidden, activation, dtype)
        self.decoder = LinearPlusMLP(n_components, n_features, hidden[::-1], activation, dtype)
        self._init_scaling(n_features, dtype)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.scale_in(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.scale_out(self.decoder(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    # the model protocol's verbs (see VAEModule for the VAE's)
    def loss(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The training loss of a batch: its mean squared error, standardised units
        (over the entries ``mask`` marks observed, if given)."""
        xs = self.scale_in(x)
        if mask is None:
            return F.mse_loss(self.decoder(self.encoder(xs)), xs)
        sq = (self.decoder(self.encoder(xs)) - xs) ** 2
        return (sq * mask).sum() / mask.sum().clamp_min(1)

    def row_loss(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Each row's loss (standardised units), by which held-out rows judge a model."""
        xs = self.scale_in(x)
        return _row_mean((self.decoder(self.encoder(xs)) - xs) ** 2, mask)

    def score_copies(self, n_importance: int = 1) -> int:
        """Network passes per row of :meth:`score_rows`: one."""
        return 1

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic code of each row (``transform``)."""
        return self.encode(x)

    def score_rows(self, x: torch.Tensor, n_importance: int = 1, mask=None) -> torch.Tensor:
        """Minus the mean squared reconstruction error of each row, data units
        (a point code has nothing to importance-sample); with ``mask``, over the
        row's observed entries (0 for a row with none)."""
        return -_row_mean((self(x) - x) ** 2, mask)

    def score_entries(self, x: torch.Tensor, n_importance: int = 1) -> torch.Tensor:
        """Each entry's share of :meth:`score_rows`: minus its squared error over d."""
        return -((self(x) - x) ** 2) / x.shape[-1]

    def loss_in_data_units(self, loss: float, observed: float = 1.0) -> float:
        """A training loss (mean squared error, standardised) in the data's units
        (a mean per entry, whatever share of the entries was ``observed``)."""
        return loss * float(self.scale) ** 2

    @torch.no_grad()
    def start_at_pca(self, components: torch.Tensor, variances=None, noise_variance=None) -> None:
        """Start as PCA: encoder V'x, decoder V z, corrections zero.

        ``components`` (n_features x k', k' <= n_components) are orthonormal
        principal axes of the standardised data; latent dimensions beyond k'
        start unused.
        """
        V = padded(components.T, self.encoder.linear.out_features)
        self.encoder.start_linear(V)
        self.decoder.start_linear(V.T)


class CountAutoencoderModule(AutoencoderModule):
    """A point autoencoder whose decoder gives a likelihood family's log-rates.

    ``Autoencoder(loss="poisson")``: the family (a
    :class:`~skvae._likelihoods.Poisson`, the VAE's own) says what the
    encoder reads (log1p of the counts, standardised), how the decoder starts
    at PCA of those and calibrates its biases, what the decoded mean is (the
    rates), and the log-likelihood that the loss and the scores read. The
    loss is the negative log-likelihood of the counts in nats per row, in the
    data's own units (counts have no scale to remove).
    """

    def __init__(
        self,
        n_features: int,
        n_components: int,
        hidden_layer_sizes: Sequence[int],
        activation: str,
        family: nn.Module,
        dtype: torch.dtype,
    ) -> None:
        super().__init__(n_features, n_components, hidden_layer_sizes, activation, dtype)
        self.family = family

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.scale_in(self.family.encoder_input(x)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.family.mean(self.decoder(z))

    def sample_around(self, means, rng):
        """Counts drawn around decoded ``means`` (a NumPy array), by the family."""
        return self.family.sample(means, rng, float(self.scale))

    def loss(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The mean negative log-likelihood of a batch's rows, nats per row."""
        return self.row_loss(x, mask).mean()

    def row_loss(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Each row's negative log-likelihood (nats)."""
        return -self.score_rows(x, mask=mask)

    def score_rows(self, x: torch.Tensor, n_importance: int = 1, mask=None) -> torch.Tensor:
        """The log-likelihood of each row given its code, nats."""
        return self.family.log_prob(x, self.decoder(self.encode(x)), mask)

    def score_entries(self, x: torch.Tensor, n_importance: int = 1) -> torch.Tensor:
        """Each entry's log-likelihood given the row's code: rows sum to :meth:`score_rows`."""
        return self.family.log_prob_entries(x, self.decoder(self.encode(x)))

    def loss_in_data_units(self, loss: float, observed: float = 1.0) -> float:
        return loss  # already a log-likelihood of the data itself

    def check_support(self, X) -> None:
        """Raise a ``ValueError`` naming the loss for rows that are not counts."""
        self.family.check(X, "loss", "squared_error")

    @torch.no_grad()
    def set_scaling(self, X, max_rows=4096, mean=None) -> None:
        super().set_scaling(X, max_rows, mean)
        self.family.on_scaling(float(self.scale))

    @torch.no_grad()
    def start_at_pca(self, components: torch.Tensor, variances=None, noise_variance=None) -> None:
        """Encoder V'x of the standardised log1p counts, decoder from V through
        the family (log-rates; the biases come in :meth:`calibrate`)."""
        V = padded(components.T, self.encoder.linear.out_features)
        self.encoder.start_linear(V)
        self.family.start(self.decoder, V.T, 0.0 if noise_variance is None else noise_variance)

    @torch.no_grad()
    def calibrate(self, rows: torch.Tensor) -> None:
        """Each feature's baseline rate matched to its counts in ``rows``, given
        the start's codes (the family's Poisson maximum likelihood of the bias)."""
        self.family.calibrate(self.decoder, rows, self.encode(rows))


def _row_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Each row's mean, over the entries ``mask`` marks (0 for a row with none)."""
    if mask is None:
        return values.mean(-1)
    return (values * mask).sum(-1) / mask.sum(-1).clamp_min(1)
