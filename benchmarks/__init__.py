"""Benchmarks of skvae against PCA: tables and figures, run with ``python -m benchmarks``.

:mod:`benchmarks.datasets` holds the data sets, :mod:`benchmarks.compare` fits
and measures the models (:func:`benchmarks.compare.run`) and
:mod:`benchmarks.plots` draws the figures. ``python -m benchmarks --help``
lists the options of the command line.
"""
