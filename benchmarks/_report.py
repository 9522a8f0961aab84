"""The printed forms of :func:`benchmarks.compare.run`'s results."""

from __future__ import annotations

import pandas as pd

_VAE, _LL = "VariationalAutoencoder", "test_log_likelihood"

#: Columns of the printed table, with their headers and number formats.
_TABLE_COLUMNS: dict[str, tuple[str, str]] = {
    "dataset": ("dataset", "{}"),
    "k": ("k", "{}"),
    "model": ("model", "{}"),
    "test_mse": ("test MSE", "{:.4g}"),
    "mse_ratio_to_pca": ("MSE / PCA", "{:.3f}"),
    "max_angle_to_pca_deg": ("angle to PCA (deg)", "{:.3f}"),
    "test_log_likelihood": ("test log-lik (nats)", "{:.2f}"),
    "log_likelihood_minus_pca": ("log-lik - PCA", "{:+.3f}"),
    "test_elbo": ("ELBO (nats)", "{:.2f}"),
    "sample_realism": ("realism", "{:.2f}"),
    "latent_continuity": ("unevenness", "{:.3f}"),
    "latent_coverage": ("holes", "{:.2f}"),
    "fit_time_s": ("fit (s)", "{:.2f}"),
    "transform_time_s": ("transform (s)", "{:.4f}"),
}


def format_table(results: pd.DataFrame) -> str:
    """The comparison table printed by ``python -m benchmarks``.

    Parameters
    ----------
    results : pandas.DataFrame
        The output of :func:`run`.

    Returns
    -------
    table : str
        Fixed-width text, one line per row of ``results``; undefined values
        (angles of nonlinear decoders, likelihoods of the autoencoders) are
        left blank.
    """
    table = results[list(_TABLE_COLUMNS)].rename(
        columns={col: header for col, (header, _) in _TABLE_COLUMNS.items()}
    )
    formatters = {header: fmt.format for header, fmt in _TABLE_COLUMNS.values()}
    return table.to_string(index=False, na_rep="", formatters=formatters)


def format_summary(results: pd.DataFrame) -> str:
    """Never worse than PCA, in two numbers per data set and k.

    For each data set and k: the Autoencoder's and the VAE's held-out error
    as a ratio to PCA's, and the VAE's held-out ELBO and importance-weighted
    log-likelihood (its ``score``) minus PCA's held-out log-likelihood
    (``PCA.score``), in nats per row, the latter also per feature.

    Parameters
    ----------
    results : pandas.DataFrame
        The output of :func:`run`.

    Returns
    -------
    summary : str
    """
    wide = results.pivot_table(
        index=["dataset", "k"],
        columns="model",
        values=["mse_ratio_to_pca", "log_likelihood_minus_pca", "test_elbo", _LL],
        sort=False,
    )
    summary = pd.DataFrame(
        {
            "Autoencoder / PCA": wide[("mse_ratio_to_pca", "Autoencoder")],
            "VAE / PCA": wide[("mse_ratio_to_pca", "VariationalAutoencoder")],
            "VAE ELBO - PCA.score": wide[("test_elbo", _VAE)] - wide[(_LL, "PCA")],
            "VAE log-lik - PCA.score": wide[("log_likelihood_minus_pca", _VAE)],
        }
    )
    order = results[["dataset", "k"]].drop_duplicates()
    summary = summary.reindex(pd.MultiIndex.from_frame(order))
    features = results.groupby("dataset", sort=False)["n_features"].first()
    summary["per feature"] = (
        summary["VAE log-lik - PCA.score"]
        / features.reindex(summary.index.get_level_values("dataset")).to_numpy()
    )
    return "held-out, against PCA\n" + summary.reset_index().to_string(
        index=False, float_format=lambda v: f"{v:.3f}"
    )
