"""
================================================
Linear autoencoder components next to PCA's
================================================

A linear autoencoder trained on squared error learns the same subspace as
PCA (Baldi & Hornik, 1989), but not the same basis: any invertible mixing of
its latent coordinates reconstructs equally well. This example trains the
same linear network twice on the 8x8 digits, once as a plain
:class:`~skvae.Autoencoder` with ``hidden_layer_sizes=()`` and once as a
:class:`~skvae.LinearAutoencoder`, which after training rotates its basis to
ordered principal directions (Plaut, 2018), and compares both with
:class:`~sklearn.decomposition.PCA`.
"""

# %%
# Three fits
# ----------
# Both networks are trained by full-batch L-BFGS from the same random start,
# with a tight tolerance so that they reach the optimum closely.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from skvae import Autoencoder, LinearAutoencoder
from skvae.metrics import linear_basis, max_principal_angle, principal_angles

X = load_digits().data / 16
k = 8

pca = PCA(n_components=k).fit(X)
training = dict(n_components=k, solver="lbfgs", tol=1e-6, max_iter=2000, random_state=0)
plain = Autoencoder(hidden_layer_sizes=(), **training).fit(X)
linear = LinearAutoencoder(**training).fit(X)

# the plain network's basis: the columns of its decoder, normalised
plain_basis = linear_basis(plain)
plain_basis = plain_basis / np.linalg.norm(plain_basis, axis=1, keepdims=True)

bases = {
    "PCA\ncomponents_": pca.components_,
    "Autoencoder\n(linear, plain)": plain_basis,
    "LinearAutoencoder\ncomponents_": linear.components_,
}

# %%
# The bases as images
# -------------------
# Each basis vector has 64 entries, one per pixel, shown as an 8x8 image
# (red positive, blue negative, on a common scale per row).
fig, axes = plt.subplots(3, k, figsize=(11, 4.4), layout="constrained")
for i, (name, basis) in enumerate(bases.items()):
    scale = np.abs(basis).max()
    for j, ax in enumerate(axes[i]):
        ax.imshow(basis[j].reshape(8, 8), cmap="RdBu_r", vmin=-scale, vmax=scale)
        ax.set_xticks([])
        ax.set_yticks([])
        if j == 0:
            ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=10)
        if i == 0:
            ax.set_title(f"{j + 1}")
plt.show()

# %%
# The first and last rows are the same images, up to the sign PCA's
# convention fixes for both. The middle row looks like none of them: each of
# the plain network's basis vectors is a blend of several principal
# components, and the blend depends on the random start.
#
# Same subspace, different bases
# ------------------------------
# Principal angles compare the subspaces regardless of basis, so they are
# the same for both networks, which span the same subspace (one is a rotation
# of the other), and they are a small fraction of a degree. The cosine
# between each basis vector and the PCA component of the same rank tells the
# bases apart: 1 for the rotated basis, much less for the plain one.
angles = principal_angles(linear, pca)
cosines = {
    name: np.abs(np.sum(basis * pca.components_, axis=1))
    for name, basis in list(bases.items())[1:]
}
print(f"largest principal angle, plain network: {max_principal_angle(plain, pca):.3f} degrees")
print(f"largest principal angle, LinearAutoencoder: {angles.max():.3f} degrees")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
ax1.bar(np.arange(1, k + 1), angles, color="tab:gray")
ax1.set_xlabel("principal angle (largest first)")
ax1.set_ylabel("degrees")
ax1.set_title("Subspace vs PCA's: principal angles")
width = 0.4
labels = ["plain (Autoencoder)", "rotated (LinearAutoencoder)"]
for offset, label, cos in zip((-width / 2, width / 2), labels, cosines.values(), strict=True):
    ax2.bar(np.arange(1, k + 1) + offset, cos, width, label=label)
ax2.set_ylim(0, 1.3)
ax2.set_yticks(np.linspace(0, 1, 6))
ax2.set_xlabel("basis vector / PCA component")
ax2.set_ylabel("|cosine|")
ax2.set_title("Basis vectors vs PCA's components")
ax2.legend(loc="upper center", ncol=2)
plt.show()

# %%
# The angles that remain show where training stopped. Tilting the subspace
# from the 8th principal direction towards the 9th, whose variances are close,
# barely changes the loss, so gradient training converges slowly along that
# tilt: how close a trained linear autoencoder gets to PCA is a matter of how
# well it was trained.
print("variances along principal directions 8 and 9:", PCA(k + 1).fit(X).explained_variance_[-2:])

# %%
# The default solver of :class:`~skvae.LinearAutoencoder`, alternating least
# squares, solves the same problem without gradients and gets much closer:
als = LinearAutoencoder(n_components=k, random_state=0).fit(X)
print(
    f"alternating least squares: {als.n_iter_} steps, largest angle "
    f"{max_principal_angle(als, pca):.1e} degrees"
)
print(
    "explained variance ratios match PCA's:",
    np.allclose(als.explained_variance_ratio_, pca.explained_variance_ratio_, rtol=1e-4),
)
