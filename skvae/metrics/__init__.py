"""Metrics for fitted reductions, PCA and the skvae estimators alike.

Two groups: comparing reductions with PCA (reconstruction error and subspace
alignment), and the regularity of a latent space (are generated samples
realistic, does decoding change smoothly along latent paths, do the model's
latent draws land where training data was encoded). The regularity metrics
use only the public API, ``transform``, ``inverse_transform`` and ``sample``,
so they apply to any fitted transformer; see :func:`generate_samples` for
models without ``sample``, such as PCA.
"""

from ._common import generate_samples, latent_gaussian
from ._comparison import linear_basis, max_principal_angle, principal_angles, reconstruction_error
from ._latent import latent_continuity, latent_coverage
from ._samples import maximum_mean_discrepancy, nearest_neighbour_ratio, sample_realism

__all__ = [
    "generate_samples",
    "latent_continuity",
    "latent_coverage",
    "latent_gaussian",
    "linear_basis",
    "max_principal_angle",
    "maximum_mean_discrepancy",
    "nearest_neighbour_ratio",
    "principal_angles",
    "reconstruction_error",
    "sample_realism",
]
