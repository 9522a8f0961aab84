"""Helpers shared by the tests of saving and exporting fitted models."""

from skvae import LinearAutoencoder


def tiny(cls, **params):
    """Three epochs of a network with one hidden layer of 8: fitted in milliseconds."""
    defaults = {"n_components": 3, "max_iter": 3, "random_state": 0}
    if cls is not LinearAutoencoder:
        defaults["hidden_layer_sizes"] = (8,)
    return cls(**{**defaults, **params})
