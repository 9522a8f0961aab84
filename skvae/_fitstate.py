"""What one call of ``fit`` or ``partial_fit`` shares between its steps."""

from __future__ import annotations

from dataclasses import dataclass

from ._distributed import LOCAL, Ranks
from ._subspace import Moments


@dataclass
class FitState:
    """The state of one fit, handed from step to step and dropped at its end.

    ``ranks`` are the processes training together; ``incremental`` says
    whether this is a ``partial_fit`` pass (each rank with its own chunk,
    Adam's state kept for the next call) or a ``fit`` (every rank holds all
    of X). The other fields are filled by the steps that compute
    them, for the later steps and the fitted attributes.
    """

    ranks: Ranks = LOCAL
    incremental: bool = False
    #: Adam's state after a partial_fit pass (CPU tensors), kept for the next call
    optimizer_state: dict | None = None
    #: the parameters the networks were built with, when new ones were built
    network_params: dict | None = None
    #: LinearAutoencoder: the moments of the rows, read once per call
    moments: Moments | None = None
    #: LinearAutoencoder's ALS solver: its principal axes and history
    axes: tuple | None = None
    #: LinearAutoencoder: whether X has missing entries (NaN), then EM's model
    missing: bool = False
    ppca: object | None = None
    #: VariationalAutoencoder(n_components="auto"): what chose the width
    active_units: dict | None = None
    #: a deep model on data with missing entries: its probabilistic-PCA start's
    #: weights and imputation model (latent mean, covariance, noise variance),
    #: and whether the fit ends there
    start: tuple | None = None
    kept_start: bool = False
