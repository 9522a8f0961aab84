"""
==================================================
Unusual rows, and the features that make them so
==================================================

A probabilistic model of the data scores every row by its log-likelihood, so
the rows it finds least likely are candidates for anomalies. For
:class:`~skvae.LinearAutoencoder`, ``score_samples`` is probabilistic PCA's
exact log-likelihood; for :class:`~skvae.VariationalAutoencoder` it is an
importance-weighted estimate of log p(x) (``n_importance`` draws per row).
``score_features`` splits each row's score between its features, so it
says *where* a low-scoring row departs from the model, and
``transform(X, return_std=True)`` returns the spread of each row's posterior
beside its code.

Here both models are fitted on clean handwritten digits, and a block of
pixels is switched on in some held-out digits: the models should rank those
digits lowest and point at the block.
"""

# %%
# Clean digits for training, corrupted ones among the test rows
# -------------------------------------------------------------
# The 8x8 digits scaled to [0, 1]. In 60 of the 540 test digits a block of
# 2 x 3 pixels, placed at random, is set to 1 (full ink); the training digits
# stay clean.
import warnings

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from skvae import LinearAutoencoder, VariationalAutoencoder

X = load_digits().data / 16
X_train, X_test = train_test_split(X, test_size=0.3, random_state=0)

rng = np.random.RandomState(0)
n_corrupted, block = 60, (2, 3)
corrupted = rng.choice(len(X_test), n_corrupted, replace=False)
corners = np.column_stack(
    [rng.randint(0, 9 - block[0], n_corrupted), rng.randint(0, 9 - block[1], n_corrupted)]
)
in_block = np.zeros(X_test.shape, dtype=bool)  # the block's pixels, per row
for row, (top, left) in zip(corrupted, corners, strict=True):
    image = np.zeros((8, 8), dtype=bool)
    image[top : top + block[0], left : left + block[1]] = True
    in_block[row] = image.ravel()
X_corrupted = np.where(in_block, 1.0, X_test)
is_corrupted = in_block.any(axis=1)
changed = (in_block & (X_test < 1)).sum(axis=1)[corrupted]
print(
    f"{n_corrupted} corrupted digits of {len(X_test)}, "
    f"{changed.mean():.1f} of their 6 block pixels changed on average"
)

# %%
# Two models of clean digits
# --------------------------
# Ten latent dimensions each. The VAE is small (one hidden layer of 64 units)
# and stops at its default 200 epochs, before its loss stops improving: enough
# for this example, so the warning that says so is silenced.
lae = LinearAutoencoder(n_components=10, random_state=0).fit(X_train)
vae = VariationalAutoencoder(n_components=10, hidden_layer_sizes=(64,), random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    vae.fit(X_train)
models = {"LinearAutoencoder": lae, "VariationalAutoencoder": vae}

# %%
# Ranking the rows
# ----------------
# ``score_samples`` gives each test row its log-likelihood in nats (the VAE's
# is estimated with 64 importance draws, the default). Ranking rows by minus
# their score, the ROC AUC says how often a corrupted digit ranks below a
# clean one: 0.5 is chance, 1 a perfect separation.
scores = {name: model.score_samples(X_corrupted) for name, model in models.items()}
for name, score in scores.items():
    auc = roc_auc_score(is_corrupted, -score)
    print(
        f"{name:22s} ROC AUC {auc:.2f}; median log-likelihood: clean "
        f"{np.median(score[~is_corrupted]):.0f} nats, corrupted "
        f"{np.median(score[is_corrupted]):.0f} nats"
    )

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
for ax, (name, score) in zip(axes, scores.items(), strict=True):
    bins = np.linspace(np.percentile(score, 1), score.max(), 40)
    ax.hist(np.clip(score[~is_corrupted], bins[0], None), bins, alpha=0.6, label="clean")
    ax.hist(np.clip(score[is_corrupted], bins[0], None), bins, alpha=0.6, label="corrupted")
    ax.set_xlabel("score_samples (nats; the lowest 1% in the first bin)")
    ax.set_title(name)
axes[0].set_ylabel("test digits")
axes[0].legend()
plt.show()

# %%
# The pixels to blame
# -------------------
# ``score_features`` gives each pixel its share of the row's score: its
# expected log-density under the row's posterior, plus an equal share of the
# code's cost, so that each row sums to ``score_samples``. The pixels with the
# lowest shares are those the model explains worst. For each corrupted digit:
# what share of its six lowest-scoring pixels lie in the block (6 in 64, or
# 9%, at random), and is the lowest of all among them?
features = {name: model.score_features(X_corrupted) for name, model in models.items()}
for name, shares in features.items():
    assert np.allclose(shares.sum(axis=1), scores[name])
    lowest = np.argsort(shares[corrupted], axis=1)[:, :6]
    hits = np.take_along_axis(in_block[corrupted], lowest, axis=1)
    print(
        f"{name:22s} of the 6 lowest pixels {hits.mean():.0%} in the block "
        f"(chance {6 / 64:.0%}); the lowest in the block for {hits[:, 0].mean():.0%} "
        f"of the digits"
    )

# %%
# The score maps of five corrupted digits, with the block outlined. Darker
# is lower; each model's maps share one colour scale. Some pixels outside
# the block darken too: the block also pulls the row's code away from the
# digit's own, and strokes of the digit then fit less well.
shown = corrupted[:5]
fig, axes = plt.subplots(3, len(shown), figsize=(9, 5.8), layout="constrained")
rows = [("corrupted digit", X_corrupted, "gray_r", None)]
for name, shares in features.items():
    low, high = np.percentile(shares[shown], [1, 100])
    rows.append((f"{name}\nscore_features", shares, "magma", (low, high)))
for ax_row, (label, values, cmap, limits) in zip(axes, rows, strict=True):
    vmin, vmax = limits or (0, 1)
    for ax, row, (top, left) in zip(ax_row, shown, corners[: len(shown)], strict=True):
        image = ax.imshow(values[row].reshape(8, 8), cmap=cmap, vmin=vmin, vmax=vmax)
        ax.add_patch(
            Rectangle(
                (left - 0.5, top - 0.5),
                block[1],
                block[0],
                fill=False,
                edgecolor="tab:cyan",
                linewidth=2,
            )
        )
        ax.set_xticks([])
        ax.set_yticks([])
    ax_row[0].set_ylabel(label, fontsize=9)
    if limits:
        fig.colorbar(image, ax=ax_row, shrink=0.8, label="nats")
plt.show()

# %%
# The posterior's spread
# ----------------------
# ``transform(X, return_std=True)`` returns each row's code and the standard
# deviation of its posterior along each latent coordinate. For the
# LinearAutoencoder this is probabilistic PCA's exact posterior, whose spread
# depends on the component but not on the row; for the VAE it is the
# encoder's h(x), one per row.
_, lae_std = lae.transform(X_corrupted, return_std=True)
print(
    "LinearAutoencoder: the same spread for every row:",
    bool(np.all(lae_std == lae_std[0])),
    np.round(lae_std[0], 2),
)
codes, vae_std = vae.transform(X_corrupted, return_std=True)
_, vae_std_before = vae.transform(X_test, return_std=True)
spread, spread_before = vae_std.mean(axis=1), vae_std_before.mean(axis=1)
print(
    f"VAE mean posterior spread: clean {spread[~is_corrupted].mean():.3f}, "
    f"corrupted {spread[is_corrupted].mean():.3f} "
    f"(the same digits before corruption: {spread_before[corrupted].mean():.3f})"
)
narrower = spread[corrupted] < spread_before[corrupted]
print(f"the block narrowed the posterior of {narrower.mean():.0%} of the corrupted digits")
norms = np.linalg.norm(codes, axis=1)
print(
    f"VAE mean code norm: clean {norms[~is_corrupted].mean():.1f}, "
    f"corrupted {norms[is_corrupted].mean():.1f}"
)

# %%
# The corrupted digits come out with *narrower* posteriors, not wider ones.
# The block pushes their codes further from the origin (the code norms
# above), and this encoder, which has seen clean digits only, gives narrower
# posteriors to codes far out: off the training data its spread is an
# extrapolation, not a measure of doubt. The spread says how precisely a
# typical row pins down its code; how typical a row is, ``score_samples``
# says.
fig, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
bins = np.linspace(spread.min(), spread.max(), 30)
ax.hist(spread[~is_corrupted], bins, alpha=0.6, density=True, label="clean")
ax.hist(spread[is_corrupted], bins, alpha=0.6, density=True, label="corrupted")
ax.set_xlabel("mean posterior standard deviation of a row (VAE)")
ax.set_ylabel("density")
ax.legend()
plt.show()
