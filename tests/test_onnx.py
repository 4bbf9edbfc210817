"""ONNX export (issue 15 item 3): onnx.checker passes and onnxruntime gives our outputs to 1e-5 on the
tutorial model, a tinygrad_cnn.keras channels-last model and Hypothesis-generated layer stacks; a layer
with no export is named. Skipped with a reason where onnx or onnxruntime is absent (the `onnx` and `test`
extras install them)."""
import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn import keras, nn

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install 'tinygrad_cnn[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (the test extra)")
from tinygrad_cnn import onnx as tg_onnx  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def ours(model, x):
    model.eval()
    with tg.no_grad():
        return model(tg.Tensor(x)).numpy()


def check(model, shape, tmp_path, n=5, seed=0):
    path = tmp_path / "model.onnx"
    tg_onnx.export(model, path, shape)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    x = np.random.default_rng(seed).standard_normal((n,) + tuple(shape)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(path, x), ours(model, x), atol=1e-5, rtol=0)
    return path


def test_the_tutorial_model_runs_the_same_in_onnxruntime(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        import mnist as example
    finally:
        sys.path.remove(os.path.join(ROOT, "examples"))
    from tinygrad_cnn.datasets import mnist
    tg.manual_seed(0)
    model = example.build_model()
    path = check(model, (1, 28, 28), tmp_path)
    (_, _), (x, _) = mnist.load_data()
    x = mnist.to_float_images(x[:64])
    np.testing.assert_allclose(run_onnx(path, x), ours(model, x), atol=1e-5, rtol=0)
    assert run_onnx(path, x[:1]).shape == (1, 10)  # the batch axis is free


def test_a_keras_channels_last_model_runs_the_same(tmp_path):
    tg.manual_seed(1)
    model = keras.models.Sequential([
        keras.layers.Conv2D(4, (3, 3), activation="relu", input_shape=(11, 11, 2)),
        keras.layers.Conv2D(4, (3, 3), strides=2, padding="same", dilation_rate=1),
        keras.layers.AveragePooling2D((2, 2), padding="same"),  # 5x5 -> 3x3: windows that overhang the edge
        keras.layers.MaxPooling2D((2, 2), strides=1, padding="same"),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(6),
        keras.layers.Activation("tanh"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    check(model, (11, 11, 2), tmp_path)


@st.composite
def layer_stacks(draw):
    """A channels-first or channels-last stack of conv/pool/activation layers, a Flatten, then dense layers."""
    fmt = draw(st.sampled_from(["channels_first", "channels_last"]))
    c, size = draw(st.integers(1, 3)), draw(st.integers(6, 12))
    layers = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["conv", "max", "avg", "relu", "sigmoid", "softmax"]))
        if kind == "conv":
            k = draw(st.integers(1, 3))
            layers.append(nn.Conv2D(draw(st.integers(1, 4)), k, strides=draw(st.integers(1, 2)),
                                    padding=draw(st.sampled_from(["valid", "same", 1])),
                                    dilation_rate=draw(st.integers(1, 2)), use_bias=draw(st.booleans()),
                                    activation=draw(st.sampled_from([None, "relu", "sigmoid", "tanh", "softmax"])),
                                    data_format=fmt))
        elif kind in ("max", "avg"):
            cls = nn.MaxPool2D if kind == "max" else nn.AvgPool2D
            layers.append(cls(draw(st.integers(1, 2)), strides=draw(st.integers(1, 2)),
                              padding=draw(st.sampled_from(["valid", "same"])), data_format=fmt))
        elif kind == "softmax":
            layers.append(nn.Softmax(axis=-1 if fmt == "channels_last" else 1))
        else:
            layers.append(nn.ReLU() if kind == "relu" else nn.Sigmoid())
    layers.append(nn.Flatten(draw(st.sampled_from([None, "channels_first"])) if fmt == "channels_first" else None))
    if draw(st.booleans()):
        layers.append(nn.Dropout(0.5))
    layers.append(nn.Dense(draw(st.integers(1, 5)), activation=draw(st.sampled_from([None, "relu", "softmax"]))))
    shape = (c, size, size) if fmt == "channels_first" else (size, size, c)
    return layers, shape


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stack=layer_stacks(), seed=st.integers(0, 2 ** 16))
def test_generated_layer_stacks_run_the_same_in_onnxruntime(tmp_path, stack, seed):
    layers, shape = stack
    tg.manual_seed(seed)
    try:
        model = nn.Sequential(layers, input_shape=shape)
    except ValueError:  # a window larger than what reaches it: not a model
        return
    check(model, shape, tmp_path, seed=seed)


def test_a_layer_with_no_export_is_named(tmp_path):
    class Twice(nn.Layer):
        def forward(self, x):
            return x * 2
    model = nn.Sequential([nn.Flatten(), Twice(), nn.Dense(2)], input_shape=(4,))
    with pytest.raises(ValueError, match=r"layer 1 \(.*\): Twice has no ONNX export"):
        tg_onnx.export(model, tmp_path / "m.onnx", (4,))
    assert os.listdir(tmp_path) == []
    with pytest.raises(TypeError, match="Sequential"):
        tg_onnx.export(nn.Dense(3), tmp_path / "m.onnx", (4,))


@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_issue26_layers_run_the_same_in_onnxruntime(tmp_path, data_format):
    """BatchNormalization (moving statistics away from 0 and 1), the global poolings, Reshape, Rescaling."""
    tg.manual_seed(2)
    axis = -1 if data_format == "channels_last" else 1
    shape = (6, 6, 2) if data_format == "channels_last" else (2, 6, 6)
    model = nn.Sequential([nn.Rescaling(0.5, 0.25), nn.Conv2D(3, 3, data_format=data_format),
                           nn.BatchNormalization(axis=axis), nn.GlobalAveragePooling2D(data_format=data_format),
                           nn.Reshape((3, 1)), nn.BatchNormalization(axis=1), nn.Flatten(), nn.Dense(2)],
                          input_shape=shape)
    for _ in range(3):  # training steps move the statistics
        model(np.random.default_rng(3).standard_normal((8,) + shape) * 2 + 1)
    assert not np.allclose(model.layers[2].moving_mean.numpy(), 0)
    check(model, shape, tmp_path)
    pooled = nn.Sequential([nn.GlobalMaxPooling2D(data_format=data_format, keepdims=True), nn.Flatten()],
                           input_shape=shape)
    check(pooled, shape, tmp_path)
