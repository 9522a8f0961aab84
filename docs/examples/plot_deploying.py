"""
====================================================
Deploying a pipeline: a safe file, and ONNX
====================================================

A fitted :class:`~skvae.VariationalAutoencoder` inside a scikit-learn
:class:`~sklearn.pipeline.Pipeline` leaves Python in two ways. The model
alone goes to a safetensors file with :func:`skvae.save`, which
:func:`skvae.load` reads back without running any code from it. The whole
pipeline, scaler and classifier included, goes to one ONNX graph with
skl2onnx, once :func:`skvae.register_onnx_converters` has taught it the skvae
estimators; onnxruntime then serves it without scikit-learn or torch. This
example does both on the digits and checks that the predictions agree.
"""

# %%
# The pipeline
# ------------
# The 8x8 digits, standardised, encoded by a VAE into 16 latent dimensions
# and classified by a logistic regression on the codes. A short training run
# keeps the example fast; skvae warns when ``max_iter`` ends training early,
# which we silence here.
import os
import tempfile
import warnings

import matplotlib.pyplot as plt
import numpy as np
import onnxruntime
import skl2onnx
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skvae

warnings.filterwarnings("ignore", category=ConvergenceWarning)

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
pipe = make_pipeline(
    StandardScaler(),
    skvae.VariationalAutoencoder(
        n_components=16, hidden_layer_sizes=(64,), max_iter=40, random_state=0
    ),
    LogisticRegression(max_iter=2000),
).fit(X_train, y_train)
print(f"test accuracy: {pipe.score(X_test, y_test):.3f}")

# %%
# The model in a file without pickle
# ----------------------------------
# :func:`skvae.save` writes the networks' weights and the fitted arrays as
# tensors and the parameters as JSON; the loaded VAE gives the same codes,
# bit for bit, so the classifier sees exactly what it saw before.
vae = pipe[1]
path = os.path.join(tempfile.mkdtemp(), "vae.safetensors")
skvae.save(vae, path)
print(f"{os.path.getsize(path) / 1024:.0f} KiB written")

loaded = skvae.load(path)
scaled = pipe[0].transform(X_test)
print(
    "identical codes after loading:",
    np.array_equal(loaded.transform(scaled), vae.transform(scaled)),
)

# %%
# The whole pipeline in ONNX
# --------------------------
# ``X_test[:1]`` in float32 tells skl2onnx the input's type and width; the
# graph takes any number of rows. ``zipmap=False`` makes the classifier output
# its probabilities as one array.
skvae.register_onnx_converters()
X_test32 = X_test.astype(np.float32)
onx = skl2onnx.to_onnx(pipe, X_test32[:1], options={LogisticRegression: {"zipmap": False}})
session = onnxruntime.InferenceSession(onx.SerializeToString())
labels, probabilities = session.run(None, {"X": X_test32})

expected_labels = pipe.predict(X_test)
expected_probabilities = pipe.predict_proba(X_test)
difference = np.abs(probabilities - expected_probabilities)
print(f"ONNX graph: {len(onx.graph.node)} nodes, {len(onx.SerializeToString()) / 1024:.0f} KiB")
print(f"labels that agree: {np.mean(labels == expected_labels):.1%} of {len(labels)}")
print(f"largest probability difference: {difference.max():.1e}")

# %%
# How close the probabilities are
# -------------------------------
# ONNX runs in float32 and scikit-learn in float64, so the probabilities
# differ around float32's rounding error: far too little to change a label.
# Each test row counts once, with its largest difference over the ten classes.
row_difference = difference.max(axis=1)
fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
bins = np.logspace(np.log10(row_difference.min()), np.log10(row_difference.max()), 30)
ax.hist(row_difference, bins=bins, color="tab:blue")
ax.axvline(np.finfo(np.float32).eps, color="k", linestyle="--", label="float32 epsilon")
ax.set_xscale("log")
ax.set_xlabel("largest |ONNX probability - scikit-learn probability| of a row")
ax.set_ylabel("test rows")
ax.set_title("Digits pipeline: onnxruntime against scikit-learn")
ax.legend()
plt.show()
