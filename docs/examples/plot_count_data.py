"""
=======================================================
Count data: a negative binomial VAE against NMF and PCA
=======================================================

Counts (gene expression, species tables, word counts) are non-negative
integers whose variance grows with their mean, often faster than a Poisson's.
:class:`~skvae.VariationalAutoencoder` with ``likelihood="negative_binomial"``
decodes each code to one rate per feature and learns one dispersion per
feature; its ``score`` estimates the count log-likelihood by importance
weighting (a lower bound in expectation, at least the evidence lower bound),
in nats per row.

Here it meets two classical reductions on overdispersed counts generated
from a curved 2-D manifold: non-negative matrix factorisation with the
Kullback-Leibler loss (Poisson matrix factorisation) and PCA of ``log1p``
counts mapped back through ``expm1``. Each is scored on held-out rows by the
negative binomial log-likelihood of its rates, with per-feature dispersions
fitted on the training rows by the method of moments. The repository's
``python -m benchmarks.counts`` runs the full comparison, with more latent
sizes and data sets.
"""

# %%
# Overdispersed counts on a curved manifold
# -----------------------------------------
# A 2-D code bends through 40 sinusoidal ridges into log-rates; each row has
# its own library size, and each feature a negative binomial dispersion
# (variance mu + mu^2 / theta, theta between 2 and 20).
import warnings

import matplotlib.pyplot as plt
import numpy as np
from scipy.special import gammaln
from sklearn.decomposition import NMF, PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skvae import VariationalAutoencoder

rng = np.random.RandomState(0)
n_samples, n_features = 1600, 40
z = rng.standard_normal((n_samples, 2))
baseline = rng.uniform(0, np.log(20), n_features)
amplitude = rng.uniform(0.5, 1.5, n_features)
directions = 1.2 * rng.standard_normal((2, n_features))
log_rate = baseline + amplitude * np.sin(z @ directions + rng.uniform(0, 2 * np.pi, n_features))
theta = np.exp(rng.uniform(np.log(2), np.log(20), n_features))
mu = np.exp(0.5 * rng.standard_normal((n_samples, 1)) + log_rate)
X = rng.negative_binomial(theta, theta / (theta + mu)).astype(float)
X_train, X_test, z_train, z_test = train_test_split(X, z, test_size=0.25, random_state=0)
print(f"mean count {X.mean():.1f}, variance / mean {X.var(0).mean() / X.mean(0).mean():.1f}")


# %%
# Scoring rates as negative binomial means
# ----------------------------------------
# One dispersion per feature by the method of moments on the training rows'
# reconstructions, then the log-likelihood of the test rows.
def nb_loglik(X, mu, theta):
    """Mean negative binomial log-likelihood per row, in nats."""
    mu = np.maximum(mu, 1e-10)
    ll = gammaln(X + theta) - gammaln(theta) - gammaln(X + 1)
    ll += theta * np.log(theta / (theta + mu)) + X * np.log(mu / (theta + mu))
    return ll.sum(1).mean()


def moment_theta(X, mu):
    excess = ((X - mu) ** 2 - mu).sum(0) / (mu**2).sum(0)
    return 1 / np.clip(excess, 1e-6, None)


def score_rates(train_rates, test_rates):
    train_rates = np.maximum(train_rates, 1e-10)
    return nb_loglik(X_test, test_rates, moment_theta(X_train, train_rates))


# %%
# Three models with two latent dimensions
# ---------------------------------------
# NMF's test codes are fitted to the test rows themselves
# (``nmf.transform``, with the dictionary fixed), the usual way to score it:
# a row's scale is free, so its depth costs NMF no component. The VAE gets
# the same freedom with ``library_size=True``, which scales each row's rates
# by its observed total (as scVI does): its codes then describe a row's
# composition and its likelihood is conditional on the row's total. Small
# networks and 60 epochs (training would go on) keep this example fast.
k = 2
pca = PCA(k).fit(np.log1p(X_train))


def pca_rates(X):
    return np.expm1(pca.inverse_transform(pca.transform(np.log1p(X))))


pca_ll = score_rates(pca_rates(X_train), pca_rates(X_test))
vae = VariationalAutoencoder(
    k,
    likelihood="negative_binomial",
    library_size=True,
    hidden_layer_sizes=(64, 32),
    max_iter=60,
    random_state=0,
)
with warnings.catch_warnings():  # both stop at max_iter here
    warnings.simplefilter("ignore", ConvergenceWarning)
    nmf = NMF(k, beta_loss="kullback-leibler", solver="mu", init="nndsvda", max_iter=500)
    W_train = nmf.fit_transform(X_train)
    nmf_ll = score_rates(W_train @ nmf.components_, nmf.transform(X_test) @ nmf.components_)
    vae.fit(X_train)
vae_ll = vae.score(X_test)

scores = {"NMF-KL": nmf_ll, "PCA on log1p": pca_ll, "NB VAE": vae_ll}
for name, value in scores.items():
    print(f"{name:14s} {value:8.2f} nats per row")
print(
    f"VAE validation score: {vae.validation_scores_[0]:.2f} at its PCA start, "
    f"{vae.best_validation_score_:.2f} kept"
)

# %%
# Held-out log-likelihood and the VAE's codes
# -------------------------------------------
# Left, each model's held-out log-likelihood (higher is better; the VAE's is a
# lower bound). Right, the VAE's codes of the test rows, coloured by the
# angle of the true 2-D code: the curved manifold is recovered as a smooth
# map of the plane.
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
names = list(scores)
left.barh(names, [scores[n] for n in names], color=["tab:gray", "tab:orange", "tab:green"])
lo = min(scores.values())
left.set_xlim(lo - 0.05 * abs(lo), max(scores.values()) + 0.02 * abs(lo))
left.set_xlabel("held-out log-likelihood (nats per row)")
left.set_title(f"negative binomial log-likelihood, k={k}")
codes = vae.transform(X_test)
right.scatter(*codes.T, c=np.arctan2(*z_test.T), cmap="twilight", s=8)
right.set_xlabel("code 1")
right.set_ylabel("code 2")
right.set_title("NB VAE codes of the test rows")
plt.show()
