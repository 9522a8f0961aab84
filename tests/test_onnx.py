"""ONNX: the converted graphs, run by onnxruntime, agree with scikit-learn."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import Autoencoder, VariationalAutoencoder
from skvae.onnx import export_decoder, export_encoder, register_converters

from ._deploy import tiny
from .conftest import ESTIMATORS, single_thread

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
skl2onnx = pytest.importorskip("skl2onnx")
pytest.importorskip("onnxscript")

# the models train for a few epochs on purpose
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with single_thread():
        yield


BATCHES = [1, 1000]  # one row, and more rows than the exporter ever saw
ids = [cls.__name__ for cls in ESTIMATORS]


def run(model, inputs: np.ndarray) -> list:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: inputs})


@pytest.fixture(scope="module")
def digits32():
    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32), y


@pytest.fixture(scope="module", params=ESTIMATORS, ids=ids)
def pipeline(request, digits32):
    """StandardScaler -> estimator -> LogisticRegression, trained in float32."""
    X, y = digits32
    register_converters()
    pipe = make_pipeline(
        StandardScaler(), tiny(request.param, n_components=6), LogisticRegression(max_iter=300)
    )
    return pipe.fit(X[:1000], y[:1000])


@pytest.fixture(scope="module")
def converted(pipeline, digits32):
    """The whole pipeline in ONNX; labels and probabilities as plain tensors."""
    options = {id(pipeline[-1]): {"zipmap": False}}
    return skl2onnx.to_onnx(pipeline, digits32[0][:1], options=options)


@pytest.mark.parametrize("n_rows", BATCHES)
def test_pipeline_gives_the_same_labels(pipeline, converted, digits32, n_rows):
    X, _ = digits32
    labels, probabilities = run(converted, X[-n_rows:])
    np.testing.assert_array_equal(labels, pipeline.predict(X[-n_rows:]))
    np.testing.assert_allclose(probabilities, pipeline.predict_proba(X[-n_rows:]), atol=1e-5)


def test_codes_match_transform(pipeline, digits32):
    X, _ = digits32
    scaled = pipeline[0].transform(X).astype(np.float32)
    estimator = pipeline[1]
    model = skl2onnx.to_onnx(estimator, scaled[:1])  # the converter alone
    for n_rows in BATCHES:
        (codes,) = run(model, scaled[-n_rows:])
        assert codes.shape == (n_rows, estimator.n_components_)
        assert codes.dtype == np.float32
        np.testing.assert_allclose(codes, estimator.transform(scaled[-n_rows:]), rtol=0, atol=1e-5)


def test_decoder_matches_inverse_transform(pipeline, digits32, tmp_path):
    X, _ = digits32
    estimator = pipeline[1]
    codes = pipeline[:2].transform(X)
    path = tmp_path / "decoder.onnx"
    export_decoder(estimator, path)
    model = onnx.load(path)
    for n_rows in BATCHES:
        (rows,) = run(model, codes[-n_rows:])
        expected = estimator.inverse_transform(codes[-n_rows:])
        np.testing.assert_allclose(rows, expected, rtol=0, atol=1e-5)


def test_bernoulli_decoder_gives_probabilities(digits32):
    X, _ = digits32
    vae = tiny(VariationalAutoencoder, likelihood="bernoulli").fit(X[:300] / 16)
    codes = vae.transform(X[:50] / 16)
    (rows,) = run(export_decoder(vae), codes)
    assert rows.min() >= 0 and rows.max() <= 1
    np.testing.assert_allclose(rows, vae.inverse_transform(codes), rtol=0, atol=1e-5)


def test_float64_models_and_inputs(digits32):
    X = digits32[0][:300].astype(np.float64) / 16
    vae = tiny(VariationalAutoencoder).fit(X)
    register_converters()
    (codes,) = run(skl2onnx.to_onnx(vae, X[:1]), X)  # a double graph
    assert codes.dtype == np.float64
    np.testing.assert_allclose(codes, vae.transform(X), rtol=0, atol=1e-12)
    (codes32,) = run(export_encoder(vae), X.astype(np.float32))  # weights cast to float32
    np.testing.assert_allclose(codes32, vae.transform(X), rtol=0, atol=1e-5)


def test_refusals(digits32):
    X, _ = digits32
    with pytest.raises(NotFittedError):
        export_encoder(Autoencoder())
    with pytest.raises(TypeError, match="expected a skvae estimator"):
        export_decoder(StandardScaler().fit(X))
    fitted = tiny(Autoencoder, max_iter=1).fit(X[:50])
    register_converters()
    with pytest.raises(ValueError, match="target_opset>=18"):
        skl2onnx.to_onnx(fitted, X[:1], target_opset=15)


def test_a_start_exports_inside_inference_mode():
    """A model that ended at its PCA start exports whole even where the caller
    is in inference mode, in which scores skip the start's zero corrections."""
    X = np.random.RandomState(0).rand(200, 8)
    ae = Autoencoder(2, hidden_layer_sizes=(8,), max_iter=1, learning_rate=1e-300, random_state=0)
    ae.fit(X)  # steps too small to move a weight: the start is kept
    with torch.inference_mode():
        program = export_encoder(ae)
    (codes,) = run(program, X.astype(np.float32))
    np.testing.assert_allclose(codes, ae.transform(X), rtol=0, atol=1e-5)
