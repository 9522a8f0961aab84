"""
=====================================
The PCA benchmark, in a quick run
=====================================

The repository's ``benchmarks`` package compares PCA with the three skvae
estimators on a few data sets and latent sizes: held-out reconstruction
error, the largest principal angle to PCA's subspace, the held-out
log-likelihood (or its lower bound, for the VAE) and fit times. The full
benchmark is a command::

    python -m benchmarks            # all data sets, full training
    python -m benchmarks --quick    # a smoke run

This example calls the same functions, :func:`benchmarks.compare.run` and
:func:`benchmarks.plots.plot_all`, in *quick* mode on the digits only, so
that it runs in seconds. Quick mode keeps a few hundred rows and trains the
deep models for a few epochs, far from convergence: the numbers below show
what the benchmark measures, not how well the deep models can do. Run the
command above for those.
"""

# %%
# Running the comparison
# ----------------------
# One line per model and latent size. ``run`` returns a
# :class:`pandas.DataFrame`; with ``return_models=True`` it also returns the
# fitted models, which the plots need.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from benchmarks.compare import QUICK, format_table, run
from benchmarks.plots import plot_all

print(f"quick mode: {QUICK.n_samples} rows, deep models trained for {QUICK.max_iter} epochs")

results, fitted = run(
    datasets=["digits"], ks=[2, 4, 8], quick=True, device="cpu", return_models=True
)
print(format_table(results))

# %%
# A few of the columns, as a table. ``converged`` is False for the deep
# models: quick mode stops them at ``max_iter`` before they converge.
columns = ["k", "model", "test_mse", "mse_ratio_to_pca", "max_angle_to_pca_deg", "converged"]
results[columns].round(4)

# %%
# What the table says, even in a quick run:
#
# * the :class:`~skvae.LinearAutoencoder` matches PCA: the same test error and
#   a principal angle of zero to PCA's subspace;
# * the deep models leave the angle blank, since a nonlinear decoder spans no
#   subspace, and, trained for only a few epochs, they still trail PCA;
# * only PCA and the VAE have a test log-likelihood: PCA's is the exact
#   probabilistic-PCA likelihood, the VAE's an importance-weighted estimate,
#   a lower bound in expectation (the table's ELBO column has the looser
#   bound that training maximises).
#
# The figures
# -----------
# ``plot_all`` writes the benchmark's figures as PNG files into a directory
# and returns their paths; here they go to a temporary directory and are
# displayed as they are.


def show_png(path):
    """Display a PNG file at its own resolution."""
    image = plt.imread(path)
    height, width = image.shape[:2]
    fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    fig.figimage(image)
    plt.show()


with tempfile.TemporaryDirectory() as out_dir:
    paths = plot_all(results, fitted, out_dir)
    print("\n".join(Path(p).name for p in paths))
    for path in paths:
        show_png(path)

# %%
# The first figure is the held-out error against the latent size; the others
# show the digits models at :math:`k = 2`: their latent spaces, decoded random
# draws (``sample()``; PCA, which has no ``sample``, decodes draws from the
# Gaussian of its codes), and decoded points on a straight line between the
# codes of two held-out digits.
#
# With so little training the deep models are far from their optimum, and it
# shows: their error does not fall with :math:`k` as PCA's does, and the VAE's
# decoder still returns nearly the same average digit wherever it is
# evaluated: its codes all sit close to the origin, barely moved from the
# prior. That is what
# an untrained VAE looks like, not what a trained one does: the gallery
# examples
# :ref:`sphx_glr_auto_examples_plot_latent_spaces.py` and
# :ref:`sphx_glr_auto_examples_plot_sampling_interpolation.py` look at the
# same questions with models trained for longer, and ``python -m benchmarks``
# gives the real numbers.
