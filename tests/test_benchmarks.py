"""The PCA comparison in benchmarks/: a tiny quick run, its table, CSV and figures."""

import ast
import contextlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
import torch
from sklearn.decomposition import PCA

import benchmarks
import skvae
from benchmarks import datasets
from benchmarks.__main__ import main
from benchmarks.compare import _TABLE_COLUMNS, MODELS, QUICK, run

MODEL_NAMES = [spec.name for spec in MODELS]
FIGURES = ["error_vs_k.png", "regularity.png", "latent_2d.png", "samples.png", "interpolation.png"]


@pytest.fixture(scope="module")
def quick_digits(tmp_path_factory):
    """One quick run of the command line on digits with k=2, output in a tmp dir."""
    out = tmp_path_factory.mktemp("benchmarks")
    stdout, stderr = io.StringIO(), io.StringIO()
    argv = ["--quick", "--datasets", "digits", "--k", "2", "--device", "cpu", "--out", str(out)]
    threads = torch.get_num_threads()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(argv)
    assert status == 0
    # the command line runs torch on one thread, then gives the caller its setting back
    assert torch.get_num_threads() == threads
    return {
        "out": out,
        "csv": pd.read_csv(out / "results.csv"),
        "stdout": stdout.getvalue(),
        "stderr": stderr.getvalue(),
    }


def test_csv_has_one_row_per_model_with_the_documented_columns(quick_digits):
    results = quick_digits["csv"]
    assert list(results["model"]) == MODEL_NAMES
    assert set(results["dataset"]) == {"digits"} and set(results["k"]) == {2}
    expected = {
        "dataset",
        "k",
        "model",
        "test_mse",
        "mse_ratio_to_pca",
        "max_angle_to_pca_deg",
        "test_log_likelihood",
        "fit_time_s",
        "transform_time_s",
        "device",
        "skvae_version",
        "torch_version",
        "sklearn_version",
        "numpy_version",
    }
    assert expected <= set(results.columns)
    assert (results["n_train"] == QUICK.n_samples * 3 // 4).all()
    # measured, not left at a default: every fit and transform takes some time
    times = results[["fit_time_s", "transform_time_s"]].to_numpy()
    assert np.isfinite(times).all() and (times > 0).all()


def test_versions_and_device_are_recorded(quick_digits):
    row = quick_digits["csv"].iloc[0]
    assert row["skvae_version"] == skvae.__version__
    assert row["torch_version"] == torch.__version__
    assert row["sklearn_version"] == sklearn.__version__
    assert row["numpy_version"] == np.__version__
    assert row["device"] == "cpu"
    assert row["torch_threads"] == 1


def test_pca_is_the_reference_and_the_linear_autoencoder_matches_it(quick_digits):
    results = quick_digits["csv"].set_index("model")
    assert results.loc["PCA", "mse_ratio_to_pca"] == 1.0
    assert results.loc["PCA", "max_angle_to_pca_deg"] == pytest.approx(0.0, abs=1e-3)
    # Baldi & Hornik: a linear autoencoder spans PCA's subspace
    assert results.loc["LinearAutoencoder", "max_angle_to_pca_deg"] < 1.0
    assert results.loc["LinearAutoencoder", "mse_ratio_to_pca"] == pytest.approx(1.0, rel=1e-3)
    # a nonlinear decoder spans no subspace: no angle
    deep = ["Autoencoder", "VariationalAutoencoder"]
    assert results.loc[deep, "max_angle_to_pca_deg"].isna().all()


def test_log_likelihood_only_where_defined_and_pca_is_exact(quick_digits):
    results = quick_digits["csv"].set_index("model")
    loglik = results["test_log_likelihood"]
    assert loglik[["LinearAutoencoder", "Autoencoder"]].isna().all()
    assert np.isfinite(loglik[["PCA", "VariationalAutoencoder"]]).all()
    data = datasets.load("digits", QUICK.n_samples)
    pca = PCA(n_components=2).fit(data.X_train)
    assert loglik["PCA"] == pytest.approx(pca.score(data.X_test), rel=1e-9)
    mse = np.mean((pca.inverse_transform(pca.transform(data.X_test)) - data.X_test) ** 2)
    assert results.loc["PCA", "test_mse"] == pytest.approx(mse, rel=1e-9)


def test_stdout_holds_only_the_table_and_progress_goes_to_stderr(quick_digits):
    table, summary = quick_digits["stdout"].strip().split("\n\n")
    lines = table.splitlines()
    assert len(lines) == 1 + len(MODEL_NAMES)
    assert "test MSE" in lines[0] and "angle to PCA" in lines[0]
    # the columns are right-aligned under their headers: cut each line there
    header, edges = lines[0], [0]
    for title, _ in _TABLE_COLUMNS.values():
        edges.append(header.index(title, edges[-1]) + len(title))
    cells = [
        [line[a:b].strip() for a, b in zip(edges, edges[1:], strict=False)] for line in lines[1:]
    ]
    assert [row[:3] for row in cells] == [["digits", "2", name] for name in MODEL_NAMES]
    # each cell is the CSV's value; undefined ones (no angle or likelihood for the
    # AE, no angle for the VAE) are blank
    csv = quick_digits["csv"]
    for row, (_, values) in zip(cells, csv.iterrows(), strict=True):
        for cell, (column, (_, fmt)) in zip(
            row[3:], list(_TABLE_COLUMNS.items())[3:], strict=True
        ):
            expected = "" if pd.isna(values[column]) else fmt.format(values[column])
            assert cell == expected, (values["model"], column)
    assert "nan" not in quick_digits["stdout"].lower()
    # the summary: the deep models against PCA, one line per data set and k
    summary = summary.splitlines()
    assert "Autoencoder / PCA" in summary[1] and "VAE ELBO - PCA.score" in summary[1]
    assert summary[2].split()[:2] == ["digits", "2"] and len(summary) == 3
    assert "fitting VariationalAutoencoder" in quick_digits["stderr"]


def test_figures_are_written_as_png(quick_digits):
    for name in FIGURES:
        path = quick_digits["out"] / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert path.stat().st_size > 10_000, name


def test_unknown_data_set_and_too_large_k():
    with pytest.raises(ValueError, match="nope"):
        run(datasets=["nope"])
    with pytest.raises(ValueError, match="positive integers"):
        run(datasets=["s_curve"], ks=[0])
    # s_curve has 12 features: k=13 is skipped, not an error
    results = run(datasets=["s_curve"], ks=[13], quick=True, device="cpu")
    assert results.empty and "test_mse" in results.columns


def test_data_sets_have_the_structure_they_claim():
    spiked = datasets.load("spiked")
    assert spiked.X_train.shape == (750, 50) and spiked.X_test.shape == (250, 50)
    eigenvalues = np.linalg.eigvalsh(np.cov(spiked.X_train, rowvar=False))[::-1]
    # five spikes (variances 25 down to 2.25) above a flat noise floor of 0.25
    assert eigenvalues[4] > 4 * eigenvalues[5]
    assert eigenvalues[5] / eigenvalues[-1] < 3
    curve = datasets.load("s_curve")
    eigenvalues = np.linalg.eigvalsh(np.cov(curve.X_train, rowvar=False))[::-1]
    # the S curve spans three directions; the other nine hold only the noise
    assert eigenvalues[2] > 50 * eigenvalues[3]
    digits = datasets.load("digits", 200)
    assert digits.X_train.shape == (150, 64) and digits.image_shape == (8, 8)
    assert 0 <= digits.X_train.min() and digits.X_train.max() <= 1
    # the same call gives the same data
    np.testing.assert_array_equal(datasets.load("spiked").X_test, spiked.X_test)


def test_the_speed_loops_train_the_estimators_networks():
    # benchmarks.speed's target compares a fit with a loop of the same network:
    # given the estimators' weights, the loops' networks compute the same codes,
    # reconstructions and VAE loss; the textbook ones lack the affine maps
    from benchmarks.speed import HIDDEN, K, VAENetwork, ae_network
    from skvae._likelihoods import Gaussian
    from skvae._modules import AutoencoderModule, init_parameters
    from skvae._vae_module import VAEModule

    d, f32 = 30, torch.float32
    x = torch.from_numpy(np.random.RandomState(0).randn(16, d).astype(np.float32))
    eps = torch.from_numpy(np.random.RandomState(1).randn(16, K).astype(np.float32))
    generator = torch.Generator().manual_seed(0)

    def copy(source, target):
        params = list(target.parameters())
        assert [p.shape for p in params] == [p.shape for p in source.parameters()]
        for p, q in zip(params, source.parameters(), strict=True):
            p.data.copy_(q.data)

    ae = AutoencoderModule(d, K, HIDDEN, "relu", f32)
    init_parameters(ae, generator)
    loop = ae_network(d)
    copy(ae.encoder.linear, loop[0].affine), copy(ae.encoder.correction, loop[0].mlp)
    copy(ae.decoder.linear, loop[1].affine), copy(ae.decoder.correction, loop[1].mlp)
    with torch.no_grad():
        torch.testing.assert_close(loop(x), ae.decoder(ae.encoder(x)))

    vae = VAEModule(d, K, HIDDEN, "relu", Gaussian(d, f32), f32)
    init_parameters(vae, generator)
    vae.family.log_noise_variance.fill_(-0.3)
    net = VAENetwork(d)
    copy(vae.body, net.body), copy(vae.skip, net.skip)
    copy(vae.mean_head, net.mu), copy(vae.logvar_head, net.logvar)
    copy(vae.decoder.linear, net.dec.affine), copy(vae.decoder.correction, net.dec.mlp)
    with torch.no_grad():
        net.log_c.fill_(-0.3)
        for mine, theirs in zip(net.encode(x), vae.encode(x), strict=True):
            torch.testing.assert_close(mine, theirs)
        elbo = vae.elbo(x, eps[None])  # offset 0, scale 1: standardised = x
        torch.testing.assert_close(net.loss(x, eps), -elbo.mean())

    def shapes(module):
        return sorted(tuple(p.shape) for p in module.parameters() if p.dim())

    affine = [(K, d), (K,), (d, K), (d,)]
    assert sorted(shapes(ae_network(d, False)) + affine) == shapes(ae)
    assert sorted(shapes(VAENetwork(d, False)) + affine) == shapes(vae)


@pytest.fixture(scope="module")
def quick_scale(tmp_path_factory):
    """One quick run of ``python -m benchmarks.scale`` (all in one child process)."""
    from benchmarks import scale

    out = tmp_path_factory.mktemp("scale")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        tables = scale.main(["--quick", "--out", str(out)])
    return {"out": out, "tables": tables, "stdout": stdout.getvalue()}


def test_scale_prints_every_section_and_writes_its_files(quick_scale):
    from benchmarks.scale import TITLES

    for name, title in TITLES.items():
        assert title in quick_scale["stdout"], name
        assert (quick_scale["out"] / f"scale_{name}.csv").exists(), name
    assert "load average" in quick_scale["stdout"]
    assert set(json.loads((quick_scale["out"] / "scale.json").read_text())) == {
        "meta",
        *TITLES,
    }


def test_scale_memmap_gives_the_in_memory_codes_at_sane_speeds(quick_scale):
    thr = quick_scale["tables"]["throughput"]
    assert len(thr) == 2 * 2 * 2  # models x storage x rows
    assert (thr.loc[thr["storage"] == "memmap", "z_diff"] == 0).all()
    rates = thr[["fit_rows_per_s", "transform_rows_per_s"]].to_numpy()
    assert np.isfinite(rates).all() and (rates > 100).all()
    assert (thr.loc[thr["model"] == "Autoencoder", "epochs"] == 2).all()


def test_scale_budget_fits_the_memmap_and_refuses_the_copy(quick_scale):
    budget = quick_scale["tables"]["budget"].set_index("model")
    assert budget.loc["LinearAutoencoder", "result"] == "ok"
    assert budget.loc["np.array(memmap)", "result"].startswith("MemoryError")
    assert (budget["file_mib"] > budget["budget_mib"]).all()


def test_scale_partial_fit_dask_and_precision_are_sane(quick_scale):
    tables = quick_scale["tables"]
    partial = tables["partial_fit"].set_index("model")
    assert partial.loc["LinearAutoencoder", "ratio"] == pytest.approx(1, abs=1e-4)  # exact
    assert 0.5 < partial.loc["Autoencoder", "ratio"] < 2
    dask = tables["dask"]
    assert list(dask["where"]) == ["this process", "2 worker threads"]  # --quick
    assert (dask["max_abs_diff"] < 1e-6).all() and (dask["rows_per_s"] > 0).all()
    precision = tables["precision"]
    assert len(precision) == 2 * 2 * 2  # data sets x models x dtypes
    assert np.isfinite(precision[["time_ratio", "mse_ratio"]].to_numpy()).all()


# ------------------------------------------------------------ the package's shape
BENCHMARKS = Path(benchmarks.__file__).resolve().parent


def _imported_benchmark_modules(path: Path) -> set[str]:
    """The benchmarks modules that ``path`` imports, inside functions too."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module is None:  # from . import x
                names.update(alias.name for alias in node.names)
            elif node.level == 1:  # from .x import y
                names.add(node.module.split(".")[0])
            elif node.module and node.module.startswith("benchmarks."):
                names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("benchmarks."):
                    names.add(alias.name.split(".")[1])
    return names


def test_benchmark_modules_import_one_another_without_a_cycle():
    graph = {p.stem: _imported_benchmark_modules(p) for p in BENCHMARKS.glob("*.py")}
    assert graph["compare"] >= {"regularity", "datasets"}  # the parser sees imports
    visiting, done = [], set()

    def visit(module):
        if module in visiting:
            pytest.fail(
                f"import cycle: {' -> '.join([*visiting[visiting.index(module) :], module])}"
            )
        if module in done or module not in graph:
            return
        visiting.append(module)
        for other in sorted(graph[module]):
            visit(other)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_only_the_figures_need_matplotlib():
    # the table and the CSV run without the bench extra: nothing that
    # benchmarks.compare imports, directly or not, imports matplotlib
    def imports_matplotlib(module):
        tree = ast.parse((BENCHMARKS / f"{module}.py").read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        return any(name.split(".")[0] == "matplotlib" for name in names)

    needed, todo = set(), ["compare"]
    while todo:
        module = todo.pop()
        if module not in needed and (BENCHMARKS / f"{module}.py").exists():
            needed.add(module)
            todo += _imported_benchmark_modules(BENCHMARKS / f"{module}.py")
    assert {"compare", "regularity", "datasets"} <= needed
    assert imports_matplotlib("plots")
    assert not [module for module in needed if imports_matplotlib(module)]


def test_every_entry_point_is_named_in_the_package_docstring():
    scripts = [
        p.stem for p in BENCHMARKS.glob("*.py") if '__name__ == "__main__"' in p.read_text()
    ]
    assert {"__main__", "speed", "memory", "scale", "peers"} <= set(scripts)
    for name in scripts:
        command = "python -m benchmarks" + ("" if name == "__main__" else f".{name}")
        assert f"``{command}``" in benchmarks.__doc__, name


def test_the_device_is_resolved_as_the_estimators_resolve_it(monkeypatch):
    # under torchrun on a 4-GPU node, rank 2 uses cuda:2 (as skvae's estimators
    # do), not cuda:0 with every other rank
    from benchmarks import compare

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(
        torch.cuda, "get_device_name", lambda d: f"GPU {torch.device(d).index or 0}"
    )
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert compare._device_and_name("auto") == ("cuda:2", "GPU 2")
    assert compare._device_and_name("cuda:1") == ("cuda:1", "GPU 1")
    monkeypatch.delenv("LOCAL_RANK")
    assert compare._device_and_name("auto") == ("cuda", "GPU 0")
    assert compare._device_and_name("cpu") == ("cpu", "cpu")
    with pytest.raises(ValueError, match="not a device torch knows"):
        run(datasets=["s_curve"], device="gpu7")


def _png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]  # the signature, then the IHDR chunk
    assert header[12:16] == b"IHDR"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def test_the_regularity_figure_of_a_whole_run_fits_a_screen(tmp_path):
    # the default run's table: 5 data sets x 3 k x 4 models, six measures
    from benchmarks.plots import plot_regularity
    from benchmarks.regularity import COLUMNS

    rng = np.random.RandomState(0)
    table = pd.DataFrame(
        [
            {"dataset": name, "k": k, "model": model, **{c: rng.rand() for c in COLUMNS}}
            for name in datasets.DATASETS
            for k in (1, 2, 5)
            for model in MODEL_NAMES
        ]
    )
    width, height = _png_size(plot_regularity(table, tmp_path))
    # it was 9864 x 768: 60 bars a panel, unreadable unless zoomed far out
    assert 1000 <= width <= 2000 and 600 <= height <= 2000, (width, height)
    assert 0.8 <= width / height <= 2.5, (width, height)


def test_a_default_fit_on_the_benchmark_data_ends_by_its_stopping_rule(one_thread):
    # s_curve at k=2 improved on its held-out rows until epoch 238 and stopped
    # at 272, but max_iter=200 cut it short with a ConvergenceWarning
    from sklearn.exceptions import ConvergenceWarning

    data = datasets.load("s_curve")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = skvae.Autoencoder(2, random_state=0, device="cpu").fit(data.X_train)
    assert model.n_iter_ < model.max_iter
    scores = model.validation_scores_
    # it stopped after its patience ran out, keeping the best epoch
    assert model.best_validation_score_ == max(scores) > scores[0]
    assert model.n_iter_ > 200  # the old cap
    assert model.n_iter_ - scores.index(max(scores)) >= model.n_iter_no_change


def test_impute_quick_run_writes_its_table_and_checks_its_targets(tmp_path, one_thread):
    from benchmarks import impute

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = impute.main(["--quick", "--datasets", "wine", "--out", str(tmp_path)])
    assert set(table["method"]) == {"LatentImputer", "mean", "KNN", "Iterative", "missForest"}
    assert set(table["pattern"]) == set(impute.PATTERNS)
    assert np.isfinite(table["rmse"]).all() and (table["seconds"] >= 0).all()
    # the column means score near 1 in standardised units, the model better
    means = table[table["method"] == "mean"]["rmse"]
    assert ((means > 0.8) & (means < 1.3)).all()
    assert pd.read_csv(tmp_path / "impute.csv").shape == table.shape
    printed = stdout.getvalue()
    assert printed.count("PASS: ") + printed.count("FAIL: ") == 5


def test_impute_mar_pattern_depends_on_an_observed_column():
    from benchmarks import impute

    X = impute.curved(2000)
    hidden = impute.mask(X, "MAR", 0)
    assert 0.1 < hidden.mean() < 0.3  # 30% of about half the columns
    observed = np.flatnonzero(~hidden.any(axis=0))
    assert len(observed) >= X.shape[1] // 2
    # for some always-observed column, the rate differs between its halves
    gaps = []
    for j in observed:
        high = X[:, j] > np.median(X[:, j])
        gaps.append(abs(hidden[high].mean() - hidden[~high].mean()))
    assert max(gaps) > 0.1
