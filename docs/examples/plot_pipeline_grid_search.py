"""
=======================================================
Choosing the latent size of a VAE in a pipeline
=======================================================

A :class:`~skvae.VariationalAutoencoder` is a transformer, so it can sit
between a scaler and a classifier in a :class:`~sklearn.pipeline.Pipeline`
exactly where :class:`~sklearn.decomposition.PCA` would, and
:class:`~sklearn.model_selection.GridSearchCV` can tune its ``n_components``
through the usual ``step__parameter`` name. The classifier's held-out
accuracy decides how many latent dimensions to keep.
"""

# %%
# The data and the pipeline
# -------------------------
# The 8x8 digits, standardised, encoded by a VAE with one hidden layer of 128
# units, and classified by a logistic regression on the codes. Each fit
# stops when its held-out rows stop improving.

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skvae import VariationalAutoencoder

X, y = load_digits(return_X_y=True)

pipe = Pipeline(
    [
        ("scale", StandardScaler()),
        ("reduce", VariationalAutoencoder(hidden_layer_sizes=(128,), random_state=0)),
        ("classify", LogisticRegression(max_iter=2000)),
    ]
)

# %%
# The search
# ----------
# Three-fold cross-validation over the size of the latent space. The same
# search over PCA gives a reference: swapping the reducer is the only change.
param_grid = {"reduce__n_components": [2, 4, 8, 16]}
vae_search = GridSearchCV(pipe, param_grid, cv=3).fit(X, y)

pca_pipe = clone(pipe).set_params(reduce=PCA())
pca_search = GridSearchCV(pca_pipe, param_grid, cv=3).fit(X, y)

print("VAE: best", vae_search.best_params_, f"accuracy {vae_search.best_score_:.3f}")
print("PCA: best", pca_search.best_params_, f"accuracy {pca_search.best_score_:.3f}")

# %%
# The cross-validation results, side by side.
results = pd.DataFrame(
    {
        "n_components": param_grid["reduce__n_components"],
        "VAE accuracy": vae_search.cv_results_["mean_test_score"],
        "PCA accuracy": pca_search.cv_results_["mean_test_score"],
    }
).set_index("n_components")
results.round(3)

# %%
# Accuracy against the latent size
# ---------------------------------
# Error bars are one standard deviation over the three folds. With two to
# eight latent dimensions, the VAE's nonlinear codes keep more of what
# separates the classes than PCA's projections do. By 16 dimensions the
# linear classifier has enough to work with either way, and the two are
# level; the accuracy still rises with the latent size, so the search picks
# the largest value on the grid.
fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
ks = np.array(param_grid["reduce__n_components"])
for name, search, marker in [("VAE", vae_search, "o"), ("PCA", pca_search, "s")]:
    ax.errorbar(
        ks,
        search.cv_results_["mean_test_score"],
        yerr=search.cv_results_["std_test_score"],
        marker=marker,
        capsize=3,
        label=name,
    )
ax.set_xscale("log", base=2)
ax.set_xticks(ks, [str(k) for k in ks])
ax.set_xlabel("n_components")
ax.set_ylabel("cross-validated accuracy")
ax.set_title("Digits: scaler → reducer → logistic regression")
ax.legend(loc="lower right")
plt.show()
