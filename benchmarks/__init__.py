"""Benchmarks of skvae: against PCA, against a plain PyTorch loop, at scale.

Entry points, each a module run with ``python -m`` (``--help`` lists its options):

``python -m benchmarks``
    The main job: PCA against skvae's three estimators on every data set; a
    table and a summary on stdout, ``results.csv`` and PNG figures in
    ``benchmarks/results/``. :mod:`benchmarks.datasets` holds the data sets,
    :mod:`benchmarks.regularity` the latent-regularity measures,
    :mod:`benchmarks.compare` fits and measures the models
    (:func:`benchmarks.compare.run`) and :mod:`benchmarks.plots` draws the
    figures (it alone needs matplotlib).
``python -m benchmarks.speed``
    The training engine against a hand-written PyTorch loop, and
    ``LinearAutoencoder`` against PCA.
``python -m benchmarks.memory``
    Peak memory of inference, which runs in chunks.
``python -m benchmarks.scale``
    How costs grow with rows: in memory, as a memmap, under a memory budget,
    with ``partial_fit``, with Dask and with ``compute_dtype="float32"``.
``python -m benchmarks.peers``
    The default ``Autoencoder`` against a skorch autoencoder of the same shape
    (needs the ``peers`` extra).
``python -m benchmarks.counts``
    The Poisson and negative binomial VAEs against NMF with the
    Kullback-Leibler loss, TruncatedSVD and PCA of log1p counts: held-out
    log-likelihood and fit time on count data.
``python -m benchmarks.importance``
    The VAE's held-out importance-weighted score against K, the number of
    importance samples (K=1: the ELBO), with its cost, beside ``PCA.score``.
``python -m benchmarks.selection``
    One ``GridSearchCV`` over PCA, ``LinearAutoencoder`` and the VAE and the
    latent size, by held-out log-likelihood, on digits, a curved set and
    homoscedastic linear data.
``python -m benchmarks.impute``
    ``LatentImputer`` against ``SimpleImputer``, ``KNNImputer``,
    ``IterativeImputer`` and a missForest-like ``IterativeImputer`` of extra
    trees, under missing-completely-at-random and missing-at-random
    patterns: error of the filled entries and time.

A new entry point is listed here too; ``tests/test_benchmarks.py`` checks that
every module of the package that runs as a script is named above.

The modules import one another in one direction only, ``datasets`` and
``regularity`` <- ``_report`` <- ``compare`` <- ``importance``, ``selection``,
``plots`` <- ``__main__``, with no cycle.
"""
