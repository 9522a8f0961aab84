"""Figures of the PCA comparison, written as PNG files.

Every function takes fitted models (or the results of
:func:`benchmarks.compare.run`) and an output directory, writes one PNG there
and returns its path. Figures are drawn on matplotlib's Agg canvas without
pyplot, so nothing is shown and no global figure state is touched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter
from sklearn.utils import check_random_state

from . import regularity
from .compare import MODELS, FittedModels

__all__ = [
    "draw_samples",
    "plot_all",
    "plot_error_vs_k",
    "plot_interpolation",
    "plot_latent_2d",
    "plot_regularity",
    "plot_samples",
]

#: One colour and marker per model, the same in every figure.
_STYLE = {
    "PCA": {"color": "black", "marker": "o", "linestyle": "-"},
    "LinearAutoencoder": {"color": "tab:orange", "marker": "x", "linestyle": "--"},
    "Autoencoder": {"color": "tab:blue", "marker": "s", "linestyle": "-"},
    "VariationalAutoencoder": {"color": "tab:green", "marker": "^", "linestyle": "-"},
}
_SHORT = {"LinearAutoencoder": "Linear AE", "Autoencoder": "AE", "VariationalAutoencoder": "VAE"}
_DPI = 120


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out_dir, filename: str) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / filename
    fig.savefig(path, dpi=_DPI, facecolor="white")
    return path


def _tile(images: np.ndarray, n_cols: int, pad: int = 1) -> np.ndarray:
    """Arrange images of shape (n, h, w) into one array, NaN between them."""
    n, h, w = images.shape
    n_rows = -(-n // n_cols)
    out = np.full((n_rows * (h + pad) - pad, n_cols * (w + pad) - pad), np.nan)
    for i, image in enumerate(images):
        r, c = divmod(i, n_cols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = image
    return out


def _image_kwargs() -> dict[str, Any]:
    # Digits are in [0, 1]: dark ink on white paper, the gaps between tiles white.
    return {"cmap": "gray_r", "vmin": 0.0, "vmax": 1.0, "interpolation": "nearest"}


def draw_samples(model, n_samples: int, random_state=0) -> np.ndarray:
    """Decode random latent points of a fitted model: the decoder's means.

    skvae estimators use their own ``sample(..., noise=False)``. A ``PCA``, which has none,
    decodes draws from the Gaussian of its training codes,
    ``N(0, diag(explained_variance_))`` (as :class:`skvae.LinearAutoencoder`
    does).

    Parameters
    ----------
    model : fitted estimator
        An skvae estimator, or a fitted ``PCA``.
    n_samples : int
        Number of samples.
    random_state : int, RandomState instance or None, default=0
        Seeds the latent draws.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    """
    if hasattr(model, "sample"):
        return np.asarray(model.sample(n_samples, random_state=random_state, noise=False))
    rng = check_random_state(random_state)
    z = rng.standard_normal((n_samples, model.n_components_)) * np.sqrt(model.explained_variance_)
    return model.inverse_transform(z)


def plot_error_vs_k(results: pd.DataFrame, out_dir, filename: str = "error_vs_k.png") -> Path:
    """Test reconstruction error against the latent size, one panel per data set.

    Parameters
    ----------
    results : pandas.DataFrame
        The output of :func:`benchmarks.compare.run`.
    out_dir : str or path-like
        Directory to write into (created if missing).
    filename : str, default="error_vs_k.png"
        Name of the PNG file.

    Returns
    -------
    path : pathlib.Path
        The written file.
    """
    names = list(dict.fromkeys(results["dataset"]))
    fig = _new_figure(4.0 * max(len(names), 1) + 2.4, 3.8)
    axes = fig.subplots(1, max(len(names), 1), squeeze=False)[0]
    order = [spec.name for spec in MODELS]
    models = sorted(set(results["model"]), key=lambda m: order.index(m) if m in order else 99)
    for ax, name in zip(axes, names, strict=False):
        subset = results[results["dataset"] == name]
        for model in models:
            rows = subset[subset["model"] == model].sort_values("k")
            ax.plot(
                rows["k"],
                rows["test_mse"],
                label=model,
                markersize=7,
                markerfacecolor="none",
                **_STYLE.get(model, {}),
            )
        ks = sorted(set(subset["k"]))
        ax.set_xticks(ks)
        if len(ks) > 1 and ks[-1] / ks[0] > 4:
            ax.set_xscale("log", base=2)
            ax.set_xticks(ks, [str(k) for k in ks])
            ax.minorticks_off()
        ax.set_yscale("log")
        # label 1, 2, 3 and 5 times each power of ten, whatever the range
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.2g"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        n_train, n_features = subset[["n_train", "n_features"]].iloc[0]
        ax.set_title(f"{name} ({n_train} train rows, {n_features} features)")
        ax.set_xlabel("latent size k")
        ax.set_ylabel("test reconstruction MSE (log scale)")
        ax.grid(True, which="major", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, title="model", loc="outside right center")
    fig.suptitle("Held-out reconstruction error vs. latent size (lower is better)")
    return _save(fig, out_dir, filename)


def plot_regularity(results_df: pd.DataFrame, out_dir, filename: str = "regularity.png") -> Path:
    """Bar charts of the latent-regularity columns: a row per metric, a column per data set.

    In each panel the bars are grouped by latent size ``k`` (when the table
    has that column), one bar per model, on the panel's own scale; a dashed
    line marks the metric's best value (:data:`benchmarks.regularity.IDEAL`).
    The figure grows downwards with the metrics and is at most about 16
    inches (some 1900 pixels) wide whatever the number of data sets, so that
    one metric's row can be read at once on a laptop screen.

    Parameters
    ----------
    results_df : pandas.DataFrame
        One row per fitted model, with columns ``dataset``, ``model``,
        optionally ``k``, and the columns of
        :func:`benchmarks.regularity.regularity_columns` (those present are
        drawn).
    out_dir : str or path-like
        Directory to write into (created if missing).
    filename : str, default="regularity.png"
        Name of the PNG file.

    Returns
    -------
    path : pathlib.Path
        The written file.
    """
    metrics = [name for name in regularity.COLUMNS if name in results_df.columns]
    if not metrics:
        raise ValueError(
            f"results_df has none of the regularity columns {list(regularity.COLUMNS)}; "
            "compute them with regularity_columns first."
        )
    has_k = "k" in results_df.columns
    names = list(dict.fromkeys(results_df["dataset"]))
    models = list(dict.fromkeys(results_df["model"]))
    panel_width = min(2.7, 13.5 / len(names))
    fig = _new_figure(2.6 + panel_width * len(names), 0.8 + 1.9 * len(metrics))
    axes = fig.subplots(len(metrics), len(names), squeeze=False)
    width = 0.8 / len(models)
    for col, name in enumerate(names):
        subset = results_df[results_df["dataset"] == name]
        ks = sorted(set(subset["k"])) if has_k else [None]
        positions = np.arange(len(ks))
        for row, metric in enumerate(metrics):
            ax = axes[row, col]
            table = subset.pivot_table(
                index="k" if has_k else "dataset", columns="model", values=metric
            ).reindex(columns=models)
            for i, model in enumerate(models):
                ax.bar(
                    positions + (i - (len(models) - 1) / 2) * width,
                    table[model].to_numpy(),
                    width,
                    label=_SHORT.get(model, model),
                    color=_STYLE.get(model, {}).get("color"),
                )
            ax.axhline(regularity.IDEAL[metric], color="grey", linestyle="--", linewidth=1)
            ax.set_xticks(positions, [f"k={k}" for k in ks] if has_k else [""])
            ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
            ax.tick_params(labelsize="small")
            ax.grid(True, axis="y", alpha=0.3)
            if row == 0:
                ax.set_title(name)
            if col == 0:
                ax.set_ylabel(regularity.COLUMNS[metric], fontsize="small")
    for row, metric in enumerate(metrics):
        # rounding noise (1e-16 where every model is linear) is drawn as zero:
        # each panel spans at least 5% of the largest value of its metric
        values = np.abs(results_df[metric].to_numpy(dtype=float))
        span = 0.05 * max(np.nanmax(values, initial=0.0), abs(regularity.IDEAL[metric]))
        for ax in axes[row]:
            bottom, top = ax.get_ylim()
            if top - bottom < span:
                ax.set_ylim(min(bottom, 0.0), max(top, bottom + span))
    handles, legend_labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, legend_labels, title="model", loc="outside right upper")
    fig.suptitle("Latent regularity on held-out rows, per data set (dashed: the best value)")
    return _save(fig, out_dir, filename)


def plot_latent_2d(
    models: Mapping[str, Any],
    X,
    y,
    out_dir,
    filename: str = "latent_2d.png",
    *,
    label: str = "digit class",
    title: str = "2-D latent space of held-out digits",
) -> Path:
    """Scatter the 2-D codes of ``X`` under each model, side by side, coloured by ``y``.

    Parameters
    ----------
    models : mapping of str to fitted estimator
        Models with ``n_components=2``, by name, in the order of the panels.
    X : array-like of shape (n_samples, n_features)
        Rows to encode (e.g. the test rows).
    y : array-like of shape (n_samples,)
        Integer classes (a discrete colour bar) or a continuous value.
    out_dir : str or path-like
        Directory to write into (created if missing).
    filename : str, default="latent_2d.png"
        Name of the PNG file.
    label : str, default="digit class"
        Label of the colour bar.
    title : str
        Title of the figure.

    Returns
    -------
    path : pathlib.Path
        The written file.
    """
    y = np.asarray(y)
    discrete = np.issubdtype(y.dtype, np.integer)
    if discrete:
        classes = np.unique(y)
        cmap = "tab10" if len(classes) <= 10 else "tab20"
        bounds = np.append(classes, classes[-1] + 1) - 0.5
        norm = BoundaryNorm(bounds, len(classes))
    else:
        cmap, norm = "viridis", None
    fig = _new_figure(4.0 * len(models) + 0.8, 4.0)
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, (name, model) in zip(axes, models.items(), strict=True):
        Z = np.asarray(model.transform(X))
        if Z.shape[1] != 2:
            raise ValueError(f"{name} has {Z.shape[1]} components; plot_latent_2d needs 2.")
        points = ax.scatter(Z[:, 0], Z[:, 1], c=y, cmap=cmap, norm=norm, s=12, alpha=0.8)
        ax.set_title(name)
        ax.set_xlabel("$z_1$")
        ax.set_ylabel("$z_2$")
    colorbar = fig.colorbar(points, ax=axes, label=label, shrink=0.9)
    if discrete:
        colorbar.set_ticks(classes)
    fig.suptitle(title)
    return _save(fig, out_dir, filename)


def plot_samples(
    models: Mapping[str, Any],
    image_shape: tuple[int, int],
    out_dir,
    filename: str = "samples.png",
    *,
    n_side: int = 6,
    random_state=0,
    title: str = "Digits generated by decoding random latent points",
) -> Path:
    """A grid of images decoded from random latent points, one panel per model.

    Parameters
    ----------
    models : mapping of str to fitted estimator
        Models by name; see :func:`draw_samples` for how each one samples.
    image_shape : tuple of int
        Shape of one row as an image, e.g. ``(8, 8)``.
    out_dir : str or path-like
        Directory to write into (created if missing).
    filename : str, default="samples.png"
        Name of the PNG file.
    n_side : int, default=6
        The grid is ``n_side`` x ``n_side`` images.
    random_state : int, default=0
        Seeds the latent draws (the same for every model).
    title : str
        Title of the figure.

    Returns
    -------
    path : pathlib.Path
        The written file.
    """
    fig = _new_figure(3.2 * len(models) + 0.8, 3.6)
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, (name, model) in zip(axes, models.items(), strict=True):
        X = draw_samples(model, n_side * n_side, random_state=random_state)
        image = ax.imshow(_tile(X.reshape(-1, *image_shape), n_side), **_image_kwargs())
        k = getattr(model, "n_components", "?")
        ax.set_title(f"{name}\n(k={k})", fontsize="medium")
        ax.set_axis_off()
    fig.colorbar(image, ax=axes, label="pixel intensity", shrink=0.8)
    fig.suptitle(title)
    return _save(fig, out_dir, filename)


def plot_interpolation(
    models: Mapping[str, Any],
    x_start,
    x_end,
    image_shape: tuple[int, int],
    out_dir,
    filename: str = "interpolation.png",
    *,
    n_steps: int = 9,
    title: str = "Interpolation in latent space",
) -> Path:
    """Decode points on the segment between the codes of two rows, one strip per model.

    For each model, ``z_a = transform(x_start)`` and ``z_b = transform(x_end)``,
    and the strip shows ``inverse_transform((1 - t) z_a + t z_b)`` for ``t``
    from 0 to 1. The first strip shows the two rows themselves.

    Parameters
    ----------
    models : mapping of str to fitted estimator
        Models by name.
    x_start, x_end : array-like of shape (n_features,)
        The two end points, in the data space.
    image_shape : tuple of int
        Shape of one row as an image, e.g. ``(8, 8)``.
    out_dir : str or path-like
        Directory to write into (created if missing).
    filename : str, default="interpolation.png"
        Name of the PNG file.
    n_steps : int, default=9
        Number of decoded points per strip, end points included.
    title : str
        Title of the figure.

    Returns
    -------
    path : pathlib.Path
        The written file.
    """
    ends = np.vstack([np.ravel(x_start), np.ravel(x_end)])
    t = np.linspace(0.0, 1.0, n_steps)
    blank = np.full((n_steps - 2, ends.shape[1]), np.nan)
    strips = {"input": np.vstack([ends[:1], blank, ends[1:]])}
    for name, model in models.items():
        z = np.asarray(model.transform(ends))
        path = (1 - t)[:, None] * z[0] + t[:, None] * z[1]
        strips[name] = np.asarray(model.inverse_transform(path.astype(z.dtype)))
    fig = _new_figure(0.75 * n_steps + 2.0, 0.85 * len(strips) + 1.0)
    axes = fig.subplots(len(strips), 1, squeeze=False)[:, 0]
    h, w = image_shape
    for ax, (name, strip) in zip(axes, strips.items(), strict=True):
        image = ax.imshow(_tile(strip.reshape(-1, h, w), n_steps), **_image_kwargs())
        ax.set_yticks([])
        ax.set_ylabel(
            _SHORT.get(name, name), rotation=0, ha="right", va="center", fontsize="medium"
        )
        ax.set_xticks([i * (w + 1) + (w - 1) / 2 for i in range(n_steps)], [])
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
    axes[-1].set_xticks(axes[-1].get_xticks(), [f"{v:.2g}" for v in t])
    axes[-1].set_xlabel("t  (decoded point: (1 - t) z_start + t z_end)")
    fig.colorbar(image, ax=axes, label="pixel intensity", shrink=0.8)
    fig.suptitle(title)
    return _save(fig, out_dir, filename)


def _pick_pair(y: np.ndarray, classes: tuple[int, int]) -> tuple[int, int]:
    """Indices of the first row of each of two classes (else the first two rows)."""
    try:
        return tuple(int(np.flatnonzero(y == c)[0]) for c in classes)
    except IndexError:
        return 0, 1


def plot_all(
    results: pd.DataFrame,
    fitted: Mapping[str, FittedModels],
    out_dir,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Every figure of the benchmark, from the output of ``run(return_models=True)``.

    Writes ``error_vs_k.png``, ``regularity.png`` and, when digits were run, ``latent_2d.png``
    (needs k=2), ``samples.png`` and ``interpolation.png`` (at k=2 when it was
    run, else the smallest k).

    Parameters
    ----------
    results : pandas.DataFrame
        The table returned by :func:`benchmarks.compare.run`.
    fitted : mapping of str to FittedModels
        The fitted models returned with ``return_models=True``.
    out_dir : str or path-like
        Directory to write into (created if missing).
    log : callable or None, default=None
        Called with one line for each figure that cannot be drawn.

    Returns
    -------
    paths : list of pathlib.Path
        The written files.
    """
    paths = []
    if len(results):
        paths += [plot_error_vs_k(results, out_dir), plot_regularity(results, out_dir)]
    digits = fitted.get("digits")
    if digits is None or not digits.models:
        if log is not None:
            log("no digits in this run: skipping the latent, sample and interpolation plots")
        return paths
    data = digits.dataset
    k = 2 if 2 in digits.models else min(digits.models)
    models = digits.models[k]
    if k == 2:
        shown = {name: models[name] for name in ("PCA", "Autoencoder", "VariationalAutoencoder")}
        paths.append(plot_latent_2d(shown, data.X_test, data.y_test, out_dir))
    elif log is not None:
        log("k=2 was not run on digits: skipping the 2-D latent space plot")
    paths.append(plot_samples(models, data.image_shape, out_dir))
    start, end = _pick_pair(data.y_test, (0, 1))
    paths.append(
        plot_interpolation(
            models,
            data.X_test[start],
            data.X_test[end],
            data.image_shape,
            out_dir,
            title=(
                f"Interpolation in latent space (k={k}) between a held-out "
                f"'{data.y_test[start]}' and a '{data.y_test[end]}'"
            ),
        )
    )
    return paths
