"""Helpers shared by the tests of saving and exporting fitted models."""

import torch
from threadpoolctl import threadpool_limits

from skvae import LinearAutoencoder


def tiny(cls, **params):
    """Three epochs of a network with one hidden layer of 8: fitted in milliseconds."""
    defaults = {"n_components": 3, "max_iter": 3, "random_state": 0}
    if cls is not LinearAutoencoder:
        defaults["hidden_layer_sizes"] = (8,)
    return cls(**{**defaults, **params})


def single_threaded():
    """Generator for a fixture: tiny models run faster on one thread, and a busy
    machine does not slow them down by orders of magnitude."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(threads)
