"""
===========================================
Filling holes: LatentImputer on the digits
===========================================

:class:`~skvae.LatentImputer` fills each missing entry (NaN) with its
expectation given the row's observed entries under a latent-variable model:
by default factor analysis (probabilistic PCA with a noise variance per
feature) fitted by EM on the observed entries, with the latent size chosen
on hidden observed entries, each fill then moved toward the observed values
of the row's nearest training rows by a weight chosen on those entries; with
``estimator=VariationalAutoencoder(...)``, the VAE's own conditional mean, by
importance sampling, which can follow curved structure. Observed entries come
back exactly as they were.

Here 30% of the pixels of 400 digits go missing at random; each imputer
fills them, and the error of the fills is measured against the hidden
pixels. The repository's ``python -m benchmarks.impute`` runs the full
comparison (five data sets, three missing-data patterns, missForest).
"""

# %%
# Digits with holes
# -----------------
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

from skvae import LatentImputer, VariationalAutoencoder

warnings.simplefilter("ignore", ConvergenceWarning)  # IterativeImputer's, on few rounds

X = load_digits().data[:400] / 16
rng = np.random.RandomState(0)
hidden = rng.uniform(size=X.shape) < 0.3
X_missing = np.where(hidden, np.nan, X)

# %%
# Five imputers
# -------------
# The VAE gets the latent size the linear imputer chose; its fit is short here
# (40 epochs at most) to keep this page quick.
imputers = {
    "column mean": SimpleImputer(),
    "KNNImputer": KNNImputer(),
    "IterativeImputer": IterativeImputer(random_state=0),
    "LatentImputer": LatentImputer(random_state=0),
}
filled = {name: imp.fit_transform(X_missing) for name, imp in imputers.items()}
k = imputers["LatentImputer"].n_components_
vae = VariationalAutoencoder(max_iter=40, random_state=0)
filled["LatentImputer(VAE)"] = LatentImputer(vae, n_components=k, random_state=0).fit_transform(
    X_missing
)

rmse = {name: np.sqrt(np.mean((f[hidden] - X[hidden]) ** 2)) for name, f in filled.items()}
weight = imputers["LatentImputer"].neighbor_weight_
print(f"latent size chosen: k = {k}; weight of the neighbours' correction: {weight:.2f}")
for name, error in rmse.items():
    print(f"{name:20s} RMSE of the filled pixels: {error:.2f}")

# %%
# What the fills look like
# ------------------------
# Missing pixels are shown in red in the top row.
shown = ["column mean", "KNNImputer", "LatentImputer", "LatentImputer(VAE)"]
fig, axes = plt.subplots(len(shown) + 2, 6, figsize=(6, 1.1 * (len(shown) + 2)))
for j in range(6):
    holed = np.stack([X_missing[j]] * 3, axis=-1).reshape(8, 8, 3)
    holed = np.where(np.isnan(holed), [1.0, 0.0, 0.0], 1 - holed)
    axes[0, j].imshow(holed)
    for i, name in enumerate(shown, start=1):
        axes[i, j].imshow(filled[name][j].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    axes[-1, j].imshow(X[j].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
for ax, label in zip(axes[:, 0], ["with holes", *shown, "truth"], strict=True):
    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()

# %%
# The observed pixels are untouched by every imputer; only the holes differ.
# The linear model (factor analysis) fills them from the pixels it sees
# through a few linear factors of the digits, which blurs strokes, and the
# neighbours' correction pulls the fills toward the pixels of similar digits
# (``neighbor_weight_`` of the fitted imputer); the VAE,
# started at probabilistic PCA (the same linear model with one noise variance
# for all pixels), bends its fills towards the digits' shapes.
