"""
===============================================
Sampling and interpolating in the latent space
===============================================

Generating new data means decoding latent points that no training row was
encoded to. That works when the latent space is *continuous* (nearby codes
decode to similar images) and *complete* (points drawn from a known
distribution decode to plausible images). This example compares an
:class:`~skvae.Autoencoder` and a :class:`~skvae.VariationalAutoencoder` on
the 8x8 digits: decoding a grid of latent points, decoding random draws with
``sample()`` as the latent space grows, and decoding straight paths between
the codes of two real images.
"""

# %%
# The data and the models
# -----------------------
# The pixels are scaled to [0, 1], so the VAE uses a Bernoulli decoder, which
# models each pixel as the probability of ink. Both kinds of model get the
# same hidden layers and stopping rule, and are fitted with latent spaces of
# 2, 8 and 16 dimensions.

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import norm
from sklearn.datasets import load_digits
from sklearn.neighbors import NearestNeighbors

from skvae import Autoencoder, VariationalAutoencoder
from skvae.metrics import reconstruction_error

digits = load_digits()
X, y = digits.data / 16, digits.target

latent_sizes = [2, 8, 16]
params = dict(hidden_layer_sizes=(128, 64), random_state=0)
models = {
    k: {
        "Autoencoder": Autoencoder(n_components=k, **params).fit(X),
        "VariationalAutoencoder": VariationalAutoencoder(
            n_components=k, likelihood="bernoulli", **params
        ).fit(X),
    }
    for k in latent_sizes
}


def tile(images, n_cols):
    """Arrange 8x8 images in a grid with a one-pixel white border."""
    images = np.clip(np.asarray(images).reshape(-1, 8, 8), 0, 1)
    n_rows = int(np.ceil(len(images) / n_cols))
    canvas = np.zeros((n_rows * 9 + 1, n_cols * 9 + 1))
    for i, image in enumerate(images):
        r, c = divmod(i, n_cols)
        canvas[1 + 9 * r : 9 * (r + 1), 1 + 9 * c : 9 * (c + 1)] = image
    return canvas


def show(ax, canvas, title):
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])


# %%
# A two-dimensional latent space, decoded
# ---------------------------------------
# With two latent dimensions the whole latent space can be looked at: decode
# a regular grid of points. For the VAE, the grid covers the central 90% of
# the prior along each axis (the quantiles of :math:`\mathcal{N}(0, 1)` from
# 5% to 95%). The autoencoder has no prior, so its grid covers the same
# share of its training codes along each axis.
n = 15
quantiles = np.linspace(0.05, 0.95, n)
ae2, vae2 = models[2]["Autoencoder"], models[2]["VariationalAutoencoder"]
Z_ae = ae2.transform(X)
grids = {
    "Autoencoder": [np.quantile(Z_ae[:, j], quantiles) for j in range(2)],
    "VariationalAutoencoder": [norm.ppf(quantiles)] * 2,
}

fig, axes = plt.subplots(1, 2, figsize=(11, 5.8), layout="constrained")
for ax, (name, model) in zip(axes, models[2].items(), strict=True):
    g1, g2 = grids[name]
    # rows from top to bottom: decreasing z_2; columns: increasing z_1
    Z = np.array([[a, b] for b in g2[::-1] for a in g1])
    show(ax, tile(model.inverse_transform(Z), n), name)
    ax.set_xlabel("$z_1$ →")
    ax.set_ylabel("$z_2$ →")
plt.show()

# %%
# Both grids change gradually from one digit to the next: on this small
# problem the autoencoder's decoder is smooth too. The difference is in how
# the grid was chosen. The VAE's decoder was trained so that the prior's
# region decodes to digits, and the grid comes straight from the prior; for
# the autoencoder we first had to look at where its codes landed, and nothing
# in its training made that region a simple, known shape. With two dimensions
# that is easy to work around. With more, it is not, as the next section
# shows.
#
# Random samples as the latent space grows
# ----------------------------------------
# ``sample()`` decodes random latent points: for the VAE, draws from the prior
# :math:`\mathcal{N}(0, I)`; for the autoencoder, draws from a Gaussian fitted
# to its training codes, the best simple guess of where its codes lie. We
# look at the decoded means (``noise=False``): the Bernoulli decoder's full
# samples would be black-and-white pixels drawn around them. A
# crude measure of how realistic the samples are is the distance from each
# sample to the nearest real image, compared here with the same distance for
# the reconstructions of the training images.
nearest_real = NearestNeighbors(n_neighbors=1).fit(X)


def median_distance(images):
    return float(np.median(nearest_real.kneighbors(images)[0]))


print("    k  model                   reconstruction error  sample distance")
distances = {name: [] for name in models[2]}
for k in latent_sizes:
    for name, model in models[k].items():
        distances[name].append(median_distance(model.sample(500, random_state=0, noise=False)))
        error = reconstruction_error(model, X)
        print(f"{k:5d}  {name:22s}  {error:20.4f}  {distances[name][-1]:15.3f}")

# %%
# With two dimensions the autoencoder's samples are the closer ones. As
# :math:`k` grows, it reconstructs better and better, but its samples move
# further away from real digits: nothing in its training shaped the codes
# into something a single Gaussian describes, so more and more draws land
# where no training image was encoded, and the decoder's output there is an
# unlikely image. The VAE reconstructs less well, the price of its
# regulariser, but its samples stay as close to the data at every size,
# because the prior its decoder was trained to cover is exactly the
# distribution ``sample()`` draws from.
fig = plt.figure(figsize=(12, 4.4), layout="constrained")
left, right = fig.subfigures(1, 2, width_ratios=[1, 2])
ax = left.subplots()
for name, marker in [("Autoencoder", "s"), ("VariationalAutoencoder", "o")]:
    ax.plot(latent_sizes, distances[name], marker=marker, label=name)
ax.set_xscale("log", base=2)
ax.set_xticks(latent_sizes, [str(k) for k in latent_sizes])
ax.set_xlabel("n_components")
ax.set_ylabel("median distance to nearest real image")
ax.set_title("Samples")
ax.legend()
for ax, (name, model) in zip(right.subplots(1, 2), models[16].items(), strict=True):
    show(ax, tile(model.sample(48, random_state=0, noise=False), 8), f"{name}, k=16")
plt.show()

# %%
# Interpolations
# --------------
# A straight line between the codes of two real images, decoded at evenly
# spaced points, with the 16-dimensional models. The first and last images
# of each row are the reconstructions of the two endpoints.
pairs = [(0, 6), (1, 7), (2, 3), (4, 9)]
rng = np.random.RandomState(0)
endpoints = [
    (rng.choice(np.flatnonzero(y == a)), rng.choice(np.flatnonzero(y == b))) for a, b in pairs
]
weights = np.linspace(0, 1, 10)[:, None]

fig, axes = plt.subplots(1, 2, figsize=(11, 2.7), layout="constrained")
for ax, (name, model) in zip(axes, models[16].items(), strict=True):
    rows = []
    for i, j in endpoints:
        z_start, z_end = model.transform(X[[i, j]])
        rows.append(model.inverse_transform((1 - weights) * z_start + weights * z_end))
    show(ax, tile(np.concatenate(rows), len(weights)), name)
    ax.set_yticks([4.5 + 9 * r for r in range(len(pairs))], [f"{a} → {b}" for a, b in pairs])
plt.show()

# %%
# Here both models interpolate smoothly, and the autoencoder's endpoints are
# sharper, since it reconstructs better. A straight path between the codes of
# two real images stays close to codes of other real images, where any
# decoder has been trained. The autoencoder's weakness lies elsewhere: in the
# parts of its latent space that no path between training codes visits but
# random draws do, as the samples above showed. The VAE has no such parts,
# so one sampling recipe, the prior, serves at every latent size.
