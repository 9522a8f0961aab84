"""
=============================================
Two-dimensional latent spaces of the digits
=============================================

PCA, an :class:`~skvae.Autoencoder` and a
:class:`~skvae.VariationalAutoencoder` each compress the 64 pixels of the 8x8
digits into two numbers. Plotting the codes, coloured by the digit they
encode, shows how each model arranges its latent space: PCA projects onto the
plane of largest variance, the autoencoder places the codes wherever
reconstruction is easiest, and the VAE's prior pulls them into a compact
cloud around the origin.
"""

# %%
# Fitting the three models
# ------------------------
# Pixels are scaled to [0, 1]. The two networks have the same hidden layers,
# start at PCA's solution and stop when their held-out rows stop improving.

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from skvae import Autoencoder, VariationalAutoencoder
from skvae.metrics import reconstruction_error

digits = load_digits()
X, y = digits.data / 16, digits.target

models = {
    "PCA": PCA(n_components=2),
    "Autoencoder": Autoencoder(n_components=2, hidden_layer_sizes=(128, 64), random_state=0),
    "VariationalAutoencoder": VariationalAutoencoder(
        n_components=2, hidden_layer_sizes=(128, 64), random_state=0
    ),
}
codes = {name: model.fit_transform(X) for name, model in models.items()}

# %%
# How much of the class structure survives in two numbers? The
# cross-validated accuracy of a 5-nearest-neighbour classifier on the codes
# measures it; the reconstruction error measures what is lost. (The codes were
# learned on all the images, so the accuracy only compares the three spaces.)
for name, model in models.items():
    accuracy = cross_val_score(KNeighborsClassifier(5), codes[name], y, cv=5).mean()
    print(
        f"{name:>22}: reconstruction error {reconstruction_error(model, X):.4f}, "
        f"5-NN accuracy on the codes {accuracy:.2f}"
    )

# %%
# The latent spaces
# -----------------
# Each point is one image; the large digits mark the median code of each
# class. The dashed circle on the VAE's panel has radius 2, which holds about
# 86% of the mass of its prior :math:`\mathcal{N}(0, I)`.
fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), layout="constrained")
cmap = plt.get_cmap("tab10")
for ax, (name, Z) in zip(axes, codes.items(), strict=True):
    ax.scatter(Z[:, 0], Z[:, 1], c=y, cmap=cmap, vmin=-0.5, vmax=9.5, s=6, alpha=0.7)
    for digit in range(10):
        cx, cy = np.median(Z[y == digit], axis=0)
        ax.text(
            cx,
            cy,
            str(digit),
            fontsize=15,
            fontweight="bold",
            ha="center",
            va="center",
            color=cmap(digit),
            bbox=dict(boxstyle="circle,pad=0.15", fc="white", ec=cmap(digit), alpha=0.85),
        )
    ax.set_title(name)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_aspect("equal", adjustable="datalim")
axes[2].add_patch(plt.Circle((0, 0), 2, fill=False, ls="--", color="0.4"))
plt.show()

# %%
# Reading the plots
# -----------------
# PCA's classes overlap heavily: two linear directions of largest variance
# are not enough to tell ten digits apart. The autoencoder separates the
# classes better and reconstructs better, but where its codes go is decided
# by reconstruction alone: clusters of various shapes and sizes, at a scale
# set by nothing in particular, with empty space between them, and nothing
# says what a point in that empty space should decode to. The VAE's codes
# fill a disc around the origin whose size is set by the prior, with
# neighbouring classes touching rather than separated by gaps:
# this is the regular latent space that makes sampling and interpolation
# work (see :ref:`sphx_glr_auto_examples_plot_sampling_interpolation.py`).
# Regularity has a price, visible in the numbers above: the VAE reconstructs
# less well than the autoencoder and its classes overlap more. The weight of
# the prior against reconstruction, set by the decoder variance and by
# ``beta``, decides where the balance lies.
