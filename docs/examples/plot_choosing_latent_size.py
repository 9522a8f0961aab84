"""
=====================================================
Choosing the latent size with the held-out likelihood
=====================================================

The ``score`` of a :class:`~skvae.VariationalAutoencoder` estimates the
log-likelihood of the rows, in nats per row (an importance-weighted bound,
at least the evidence lower bound, the ELBO), so
:class:`~sklearn.model_selection.GridSearchCV` with its default scoring
picks the latent size whose model explains held-out rows best. For a linear
VAE (``hidden_layer_sizes=()``) the ELBO reaches the log-likelihood of
probabilistic PCA, which :meth:`PCA.score <sklearn.decomposition.PCA.score>`
computes, and the estimate with it, so the two searches should agree: on
data made of a few latent factors plus noise, both curves peak at the true
number of factors.
"""

# %%
# Data with four latent factors
# -----------------------------
# 400 rows in 12 dimensions: four factors mixed by a random matrix, plus
# isotropic Gaussian noise.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV

from skvae import VariationalAutoencoder

rng = np.random.RandomState(0)
n_samples, n_features, rank = 400, 12, 4
X = rng.normal(size=(n_samples, rank)) @ rng.normal(size=(rank, n_features))
X += 0.5 * rng.normal(size=(n_samples, n_features))

# %%
# Two searches over the latent size
# ---------------------------------
# Three-fold cross-validation; each fold's score is the mean over the held-out
# rows of the VAE's estimated log-likelihood, or of PCA's exact one.
grid = {"n_components": list(range(1, 8))}
vae_search = GridSearchCV(
    VariationalAutoencoder(hidden_layer_sizes=(), max_iter=1000, random_state=0), grid, cv=3
).fit(X)
pca_search = GridSearchCV(PCA(), grid, cv=3).fit(X)

print("linear VAE picks", vae_search.best_params_)
print("PCA picks       ", pca_search.best_params_)

# %%
# The refitted best models agree on the noise level too: the VAE's learned
# decoder variance is PCA's estimate of the noise variance (the true value is
# 0.25).
best_vae, best_pca = vae_search.best_estimator_, pca_search.best_estimator_
print(f"decoder variance {best_vae.noise_variance_:.4f}")
print(f"PCA noise_variance_ {best_pca.noise_variance_:.4f}")

# %%
# The held-out scores against the latent size
# -------------------------------------------
# Left, the mean score over the folds (error bars: one standard deviation;
# the VAE's markers are shifted slightly to the left, or they would hide
# PCA's). Below the true rank, every missing factor costs several nats per
# row. Past it, each extra component fits a little of the training rows'
# noise and costs a little on new rows: too little to see on the left, where
# it is smaller than the spread between folds. The right panel shows it fold
# by fold, as each fold's score minus its score at the true rank: in no fold
# does a larger latent size do clearly better than the true rank, and in most
# it does worse, for both models.
ks = np.array(grid["n_components"])
past = ks >= rank
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
for name, search, marker, color, shift in [
    ("linear VAE: held-out score", vae_search, "o", "tab:blue", -0.08),
    ("PCA: held-out log-likelihood", pca_search, "s", "tab:orange", 0.0),
]:
    results = search.cv_results_
    ax1.errorbar(
        ks + shift,
        results["mean_test_score"],
        yerr=results["std_test_score"],
        marker=marker,
        color=color,
        capsize=3,
        label=name,
    )
    folds = np.array([results[f"split{i}_test_score"] for i in range(search.n_splits_)])
    gains = folds - folds[:, ks == rank]
    for i, gain in enumerate(gains):
        ax2.plot(
            ks[past],
            gain[past],
            marker=marker,
            color=color,
            alpha=0.6,
            label=name.split(":")[0] if i == 0 else None,
        )
for ax in (ax1, ax2):
    ax.axvline(rank, color="0.5", ls="--", lw=1)
    ax.set_xlabel("n_components")
ax1.set_ylabel("nats per row (higher is better)")
ax1.set_title("Cross-validated score")
ax1.legend(loc="lower right")
ax2.set_xticks(ks[past])
ax2.set_ylabel("score minus score at the true rank (nats)")
ax2.set_title("Past the true rank, fold by fold")
ax2.legend(loc="lower left")
plt.show()

# %%
# The two models' scores are close but not identical: the VAE is fitted by an
# iterative optimiser on each training fold and stops when its improvement
# falls below ``tol``, while PCA's solution is exact. The differences are far
# smaller than the drop below the true rank, and the searches make the same
# choice.
print("k   linear VAE      PCA")
for k, v, p in zip(
    ks,
    vae_search.cv_results_["mean_test_score"],
    pca_search.cv_results_["mean_test_score"],
    strict=True,
):
    print(f"{k}   {v:10.3f}   {p:8.3f}")

# %%
# Without a search: the active units
# ----------------------------------
# ``n_components="auto"`` fits the VAE once with an upper bound on its width
# (half the number of features here: 6), once more to the data with each
# column shuffled on its own, and keeps the units whose average KL to the
# prior beats every unit of the shuffled fit (see :ref:`active_units`). It
# finds the true rank, as Minka's evidence (``PCA(n_components="mle")``) does.
auto = VariationalAutoencoder(n_components="auto", hidden_layer_sizes=(), random_state=0).fit(X)
mle = PCA(n_components="mle").fit(X)
print("linear VAE, n_components='auto':", auto.n_components_)
print("PCA, n_components='mle':        ", mle.n_components_)
print("KL of each unit of the bound's fit:", np.round(auto.latent_kl_, 2))
print(f"threshold (largest on shuffled columns): {auto.kl_threshold_:.2f}")
