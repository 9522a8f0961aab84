"""
=========================================
Training and encoding over a Dask array
=========================================

A dask array is a grid of NumPy blocks that may live on disk or on the
workers of a cluster. This example trains a
:class:`~skvae.VariationalAutoencoder` on the blocks of one with dask-ml's
:class:`~dask_ml.wrappers.Incremental`, which calls ``partial_fit`` on each
block in turn, then encodes and scores every block in parallel with
:func:`skvae.dask.transform_blocks`. It needs ``pip install "skvae[dask]"``;
see :ref:`scaling` for the details and the pitfalls.
"""

# %%
# A cluster and a blocked array
# -----------------------------
# Two workers in this process keep the example quick; a real cluster, or a
# :class:`~distributed.LocalCluster` of processes, runs the same code. The
# training digits become six blocks of 200 rows.
import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
from dask_ml.wrappers import Incremental
from distributed import Client, LocalCluster
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skvae import VariationalAutoencoder
from skvae.dask import transform_blocks

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16, y, train_size=1200, random_state=0)

cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
client = Client(cluster)
train_blocks = da.from_array(X_train, chunks=(200, 64))
test_blocks = da.from_array(X_test, chunks=(200, 64))
print(train_blocks)

# %%
# Training, one epoch per call
# ----------------------------
# Each call to the wrapper's ``partial_fit`` passes every block, in a shuffled
# order, to the model's ``partial_fit``: one pass of Adam over the block's
# rows. The trained model is the wrapper's ``estimator_``, and the held-out
# rows' mean estimated log-likelihood is the mean of their ``score_samples``,
# computed block by block on the workers. A learning rate of 0.01 keeps the example short.
vae = VariationalAutoencoder(
    n_components=2, hidden_layer_sizes=(64,), learning_rate=0.01, random_state=0
)
model = Incremental(vae, random_state=0)
held_out = []
for _ in range(10):
    model.partial_fit(train_blocks)
    scores = transform_blocks(model.estimator_, test_blocks, "score_samples")
    held_out.append(float(scores.mean().compute()))
print(f"held-out log-likelihood after 1 epoch: {held_out[0]:.1f}, after 10: {held_out[-1]:.1f}")

# %%
# Encoding over the blocks
# ------------------------
# ``transform_blocks`` returns a lazy array that already knows its width,
# ``n_components``, and its blocks; ``compute`` runs the encoder on every
# block. (dask-ml's own ``model.transform`` computes the same codes, but its
# lazy array claims the input's 64 columns.)
codes = transform_blocks(model.estimator_, test_blocks)
print(codes)
codes = codes.compute()

print("dask-ml's lazy transform claims the shape", model.transform(test_blocks).shape)

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
ax1.plot(np.arange(1, len(held_out) + 1), held_out, marker="o")
ax1.set_xlabel("epoch (one pass over the blocks)")
ax1.set_ylabel("held-out log-likelihood (nats per row)")
ax1.set_title("Training over the blocks")
points = ax2.scatter(codes[:, 0], codes[:, 1], c=y_test, cmap="tab10", s=8)
fig.colorbar(points, ax=ax2, label="digit")
ax2.set_xlabel("latent 1")
ax2.set_ylabel("latent 2")
ax2.set_title("Held-out digits, encoded block by block")
plt.show()

# %%
# The workers are done; close the client and the cluster.
client.close()
cluster.close()
