"""skvae: neural dimensionality reduction with the scikit-learn API.

Three drop-in alternatives to :class:`sklearn.decomposition.PCA` whose encoder
and decoder are PyTorch networks.
"""

from ._autoencoder import Autoencoder
from ._distributed import single_process
from ._imputer import LatentImputer
from ._linear import LinearAutoencoder
from ._persistence import load, save
from ._variational import VariationalAutoencoder
from .onnx import register_converters as register_onnx_converters

__version__ = "0.1.0"

__all__ = [
    "Autoencoder",
    "LatentImputer",
    "LinearAutoencoder",
    "VariationalAutoencoder",
    "__version__",
    "load",
    "register_onnx_converters",
    "save",
    "single_process",
]
