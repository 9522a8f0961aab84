"""Likelihood families: what a VAE's decoder distribution p(x | z) is.

Each family is one file; registering it here (its name to its class) makes it
a value of ``VariationalAutoencoder(likelihood=...)``. See
:class:`~skvae._likelihoods._family.Family` for the verbs a family defines.
"""

from ._bernoulli import Bernoulli
from ._family import Family
from ._gaussian import C_FLOOR, Gaussian
from ._negative_binomial import NegativeBinomial
from ._poisson import Poisson

#: likelihood name -> family class
FAMILIES: dict[str, type[Family]] = {
    family.name: family for family in (Gaussian, Bernoulli, Poisson, NegativeBinomial)
}

__all__ = ["C_FLOOR", "FAMILIES", "Family"]
