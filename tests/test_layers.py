"""Layers, Sequential and Module: shape inference and lazy building, the tutorial model's summary,
activations, whole-model gradients, parameter walking, modes, and checkpoints that fail loudly."""
import os

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn import nn
from tinygrad_cnn.checkpoint import CheckpointError, save_arrays
from tinygrad_cnn.nn import functional as F
from tinygrad_cnn.testing import gradcheck
from tests.conftest import DEVICES


def tutorial_model(**kwargs):
    return nn.Sequential([
        nn.Conv2D(32, 3, padding="same", activation="relu"),
        nn.MaxPool2D(2, strides=2),
        nn.Conv2D(64, 3, padding="same", activation="relu"),
        nn.MaxPool2D(2, strides=2),
        nn.Flatten(),
        nn.Dense(128, activation="relu"),
        nn.Dense(10, activation="softmax"),
    ], **kwargs)


def small_model(seed=0, dtype="float32", dropout=None):
    tg.manual_seed(seed)
    layers = [nn.Conv2D(3, 3, padding="same", activation="relu", dtype=dtype), nn.MaxPool2D(2), nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Dense(4, activation="softmax", dtype=dtype))
    return nn.Sequential(layers, input_shape=(2, 6, 6))


def images(n=3, shape=(2, 6, 6), seed=1, dtype=np.float32):
    return tg.Tensor(np.random.default_rng(seed).standard_normal((n,) + shape).astype(dtype))


# ---------------------------------------------------------------- shapes and building

def test_tutorial_model_has_421642_parameters_and_keras_summary(capsys):
    model = tutorial_model(input_shape=(1, 28, 28))
    assert model.count_params() == sum(p.size for p in model.parameters()) == 421_642
    text = model.summary()
    assert capsys.readouterr().out.strip() == text.strip()  # printed as well as returned
    assert "Total params: 421,642" in text and "Trainable params: 421,642" in text
    assert "Non-trainable params: 0" in text
    # Each row's output shape is what the layer really produces on a batch.
    x = tg.rand(2, 1, 28, 28)
    names = ["conv2d", "max_pool2d", "conv2d_1", "max_pool2d_1", "flatten", "dense", "dense_1"]
    rows = [line for line in text.splitlines() if line.startswith(" ") and "(None" in line]
    assert len(rows) == len(model) == len(names)
    for layer, name, row in zip(model, names, rows):
        x = layer(x)
        assert layer.name == name
        assert row.split()[:2] == [name, f"({type(layer).__name__})"]
        assert str((None,) + x.shape[1:]) in row
        assert row.rstrip().endswith(f"{layer.count_params():,}")
    assert x.shape == (2, 10)


def test_summary_of_expected_tutorial_shapes():
    text = tutorial_model(input_shape=(1, 28, 28)).summary(print_fn=None)
    for shape in ["(None, 32, 28, 28)", "(None, 32, 14, 14)", "(None, 64, 14, 14)", "(None, 64, 7, 7)",
                  "(None, 3136)", "(None, 128)", "(None, 10)"]:
        assert shape in text


def test_layers_build_lazily_on_first_call():
    dense = nn.Dense(5)
    assert not dense.built and dense.parameters() == []
    out = dense(tg.rand(4, 7))
    assert dense.built and dense.weight.shape == (5, 7) and dense.bias.shape == (5,)
    assert out.shape == (4, 5)
    model = tutorial_model()
    with pytest.raises(ValueError, match="needs the input shape"):
        model.summary()
    assert model(tg.rand(2, 1, 28, 28)).shape == (2, 10)
    assert model.count_params() == 421_642 and "Total params: 421,642" in model.summary(print_fn=None)


def test_compute_output_shape_matches_build_chain():
    model = tutorial_model(input_shape=(1, 28, 28))
    assert model.compute_output_shape((1, 28, 28)) == (10,)
    assert nn.Conv2D(8, 5).compute_output_shape((3, 28, 28)) == (8, 24, 24)
    assert nn.Conv2D(8, 3, strides=2, padding="same").compute_output_shape((3, 7, 8)) == (8, 4, 4)
    assert nn.MaxPool2D(2).compute_output_shape((4, 7, 7)) == (4, 3, 3)
    assert nn.MaxPool2D(2, padding="same").compute_output_shape((4, 7, 7)) == (4, 4, 4)
    assert nn.Flatten().compute_output_shape((5, 4, 4)) == (80,)


@given(data=st.data())
def test_real_output_shapes_match_compute_output_shape(data):
    c, h, w = data.draw(st.integers(1, 3)), data.draw(st.integers(3, 9)), data.draw(st.integers(3, 9))
    layer = data.draw(st.sampled_from([
        nn.Conv2D(2, (3, 2), strides=data.draw(st.sampled_from([1, 2, (2, 1)])),
                  padding=data.draw(st.sampled_from(["valid", "same", 1])),
                  dilation_rate=data.draw(st.sampled_from([1, (1, 2)]))),
        nn.MaxPool2D(data.draw(st.sampled_from([2, 3, (2, 3)])), strides=data.draw(st.sampled_from([None, 1, 2])),
                     padding=data.draw(st.sampled_from(["valid", "same"]))),
        nn.AvgPool2D(data.draw(st.sampled_from([2, 3])), strides=data.draw(st.sampled_from([None, 1, 2])),
                     padding=data.draw(st.sampled_from(["valid", "same"]))),
    ]))
    assert layer(tg.rand(2, c, h, w)).shape[1:] == layer.compute_output_shape((c, h, w))


def test_tutorial_5x5_valid_conv_gives_24x24():
    layer = nn.Conv2D(6, 5)
    assert layer(tg.rand(2, 1, 28, 28)).shape == (2, 6, 24, 24)
    assert layer.weight.shape == (6, 1, 5, 5)


@pytest.mark.parametrize("n2", [1, 3, 32])
def test_flatten_of_n2_maps_of_4x4_gives_16_n2_features(n2):
    x = tg.rand(5, n2, 4, 4)
    out = nn.Flatten()(x)
    assert out.shape == (5, 16 * n2)
    np.testing.assert_array_equal(out.numpy(), x.numpy().reshape(5, -1))


def test_sequential_add_index_len_iter():
    model = nn.Sequential([nn.Flatten()], input_shape=(2, 3))
    model.add(nn.Dense(4)).add(nn.Dense(2))
    assert model[1].built and model[1].weight.shape == (4, 6)  # built at once: the model is
    assert len(model) == 3 and [layer.name for layer in model] == ["flatten", "dense", "dense_1"]
    assert isinstance(model[1:], nn.Sequential) and len(model[1:]) == 2
    assert model(tg.rand(7, 2, 3)).shape == (7, 2)
    with pytest.raises(TypeError, match="Layer"):
        model.add(lambda x: x)


def test_slice_of_a_built_model_is_built_for_the_shape_that_reaches_it():
    model = tutorial_model(input_shape=(1, 28, 28))
    head, tail = model[:2], model[2:]
    assert head.built and head.input_shape == (1, 28, 28)
    assert tail.built and tail.input_shape == (32, 14, 14)
    assert head[0] is model[0] and head.count_params() + tail.count_params() == model.count_params()
    text = head.summary(print_fn=None)
    assert "(None, 32, 28, 28)" in text and "(None, 32, 14, 14)" in text and "Total params: 320" in text
    assert "(None, 10)" in tail.summary(print_fn=None)
    x = tg.rand(2, 1, 28, 28)
    np.testing.assert_array_equal(tail(head(x)).numpy(), model(x).numpy())
    lazy = tutorial_model()
    assert not lazy[:2].built  # a slice of an unbuilt model builds on its first call, as the model does
    lazy(x)
    assert lazy[4:].built and lazy[4:].input_shape == (64, 7, 7)
    assert not model[::2].built  # layers that are not consecutive need not chain


# ---------------------------------------------------------------- activations

@pytest.mark.parametrize("name, reference", [
    ("relu", lambda z: np.maximum(z, 0)),
    ("sigmoid", lambda z: 1 / (1 + np.exp(-z))),
    ("tanh", np.tanh),
    ("softmax", lambda z: np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)),
    ("linear", lambda z: z),
    (None, lambda z: z),
    (lambda t: t * 2.0, lambda z: 2 * z),
])
def test_dense_activations(name, reference):
    layer = nn.Dense(4, activation=name, dtype="float64")
    x = tg.Tensor(np.random.default_rng(0).standard_normal((3, 5)))
    out = layer(x).numpy()
    z = x.numpy() @ layer.weight.numpy().T + layer.bias.numpy()
    np.testing.assert_allclose(out, reference(z), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.pre_activation(x).numpy(), z, rtol=1e-12)


def test_conv_softmax_is_over_channels():
    out = nn.Conv2D(4, 3, padding="same", activation="softmax")(tg.rand(2, 3, 5, 5)).numpy()
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_activation_layers_match_functions():
    x = tg.Tensor(np.linspace(-3, 3, 12).reshape(3, 4))
    for layer, fn in [(nn.ReLU(), F.relu), (nn.Sigmoid(), F.sigmoid), (nn.Tanh(), F.tanh),
                      (nn.Softmax(), F.softmax)]:
        np.testing.assert_array_equal(layer(x).numpy(), fn(x).numpy())
    np.testing.assert_allclose(nn.Softmax(axis=1)(tg.rand(2, 3, 4)).numpy().sum(axis=1), 1.0, rtol=1e-6)


def test_unknown_activation_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"'gelu'.*'relu'.*'sigmoid'.*'softmax'.*'tanh'"):
        nn.Dense(3, activation="gelu")
    with pytest.raises(TypeError, match="activation"):
        nn.Conv2D(3, 3, activation=3)


def test_one_neuron_sigmoid_head_for_binary_classification():
    tg.manual_seed(0)
    model = nn.Sequential([nn.Dense(8, activation="relu"), nn.Dense(1, activation="sigmoid")], input_shape=(2,))
    x = tg.Tensor(np.random.default_rng(0).standard_normal((6, 2)).astype(np.float32))
    y = tg.Tensor(np.array([[0], [1], [1], [0], [1], [0]], dtype=np.float32))
    probs, logits = model(x), model.logits(x)
    assert probs.shape == logits.shape == (6, 1)
    assert np.all((probs.numpy() > 0) & (probs.numpy() < 1))
    np.testing.assert_allclose(probs.numpy(), 1 / (1 + np.exp(-logits.numpy())), rtol=1e-5)
    np.testing.assert_allclose(F.binary_cross_entropy_with_logits(logits, y).item(),
                               F.binary_cross_entropy(probs, y).item(), rtol=1e-4)


def test_package_exports():
    assert nn.F is F and nn.functional is F and callable(nn.init.glorot_uniform)
    assert nn.MaxPooling2D is nn.MaxPool2D and nn.AveragePooling2D is nn.AvgPool2D
    assert issubclass(nn.Sequential, nn.Layer) and issubclass(nn.Layer, nn.Module)


def test_logits_of_the_tutorial_model_are_the_softmax_inputs():
    model = tutorial_model(input_shape=(1, 28, 28))
    x = tg.rand(3, 1, 28, 28)
    np.testing.assert_allclose(F.softmax(model.logits(x)).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-7)


def test_logits_strips_only_a_final_softmax_or_sigmoid():
    x = tg.rand(2, 3)
    model = nn.Sequential([nn.Dense(4), nn.Softmax()], input_shape=(3,))
    np.testing.assert_array_equal(model.logits(x).numpy(), model[0](x).numpy())
    plain = nn.Sequential([nn.Dense(4)], input_shape=(3,))
    np.testing.assert_array_equal(plain.logits(x).numpy(), plain(x).numpy())
    with pytest.raises(ValueError, match="'relu'.*not logits"):
        nn.Sequential([nn.Dense(4, activation="relu")], input_shape=(3,)).logits(x)


# ---------------------------------------------------------------- 'same' pooling and strided 'same' conv

def same_pads(size, kernel, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("size, pool, stride", [(5, 2, 2), (6, 3, 2), (7, 3, 1), (4, 2, 3)])
def test_same_pooling_sees_only_real_pixels(kind, size, pool, stride):
    x = np.random.default_rng(size).standard_normal((1, 2, size, size - 1))
    layer = (nn.MaxPool2D if kind == "max" else nn.AvgPool2D)(pool, strides=stride, padding="same")
    out = layer(tg.Tensor(x)).numpy()
    (top, _), (left, _) = same_pads(size, pool, stride), same_pads(size - 1, pool, stride)
    expected = np.zeros((1, 2, -(-size // stride), -(-(size - 1) // stride)))
    for r in range(expected.shape[2]):
        for s in range(expected.shape[3]):
            r0, s0 = r * stride - top, s * stride - left
            window = x[0, :, max(r0, 0):r0 + pool, max(s0, 0):s0 + pool]
            expected[0, :, r, s] = window.max(axis=(1, 2)) if kind == "max" else window.mean(axis=(1, 2))
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_strided_same_conv_pads_like_keras():
    layer = nn.Conv2D(2, 3, strides=2, padding="same", dtype="float64")
    x = tg.Tensor(np.random.default_rng(0).standard_normal((1, 1, 6, 5)))
    out = layer(x)
    (top, bottom), (left, right) = same_pads(6, 3, 2), same_pads(5, 3, 2)
    padded = x.pad(((0, 0), (0, 0), (top, bottom), (left, right)))
    np.testing.assert_allclose(out.numpy(), F.conv2d(padded, layer.weight, layer.bias, stride=2).numpy())
    assert out.shape == (1, 2, 3, 3)


# ---------------------------------------------------------------- gradients of whole models

def test_whole_model_gradcheck_in_float64():
    model = small_model(dtype="float64")
    x = tg.Tensor(np.random.default_rng(2).standard_normal((2, 2, 6, 6)), requires_grad=True)
    y = tg.Tensor(np.array([1, 3]))
    params = model.parameters()
    assert all(p.dtype == np.float64 for p in params)
    assert gradcheck(lambda x, *p: model(x), [x, *params])
    assert gradcheck(lambda x, *p: F.cross_entropy(model.logits(x), y), [x, *params])


def test_same_padding_layers_gradcheck():
    tg.manual_seed(3)
    model = nn.Sequential([nn.Conv2D(2, 3, strides=2, padding="same", activation="tanh", dtype="float64"),
                           nn.MaxPool2D(2, strides=1, padding="same"), nn.AvgPool2D(3, strides=2, padding="same"),
                           nn.Flatten(), nn.Dense(2, dtype="float64")], input_shape=(1, 7, 6))
    x = tg.Tensor(np.random.default_rng(4).standard_normal((2, 1, 7, 6)), requires_grad=True)
    assert gradcheck(lambda x, *p: model(x), [x, *model.parameters()])


# ---------------------------------------------------------------- parameters, modes, devices

class Block(nn.Module):
    def __init__(self):
        self.blocks = [nn.Dense(3), nn.Dense(2)]
        self.head = nn.Dense(1)
        self.scale = tg.Tensor(np.ones(1, np.float32), requires_grad=True)
        self.constant = tg.Tensor(np.ones(1, np.float32))  # not trainable, not registered: ignored
        self.register_buffer("count", tg.Tensor(np.zeros(2, np.float32)))

    def forward(self, x):
        for layer in self.blocks:
            x = layer(x)
        return self.head(x) * self.scale


def test_named_parameters_walk_attributes_lists_and_sequentials():
    model = small_model()
    assert [n for n, _ in model.named_parameters()] == [
        "layers.0.weight", "layers.0.bias", "layers.3.weight", "layers.3.bias"]
    block = Block()
    block(tg.rand(2, 4))
    assert [n for n, _ in block.named_parameters()] == [
        "scale", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias", "head.weight", "head.bias"]
    assert [n for n, _ in block.named_buffers()] == ["count"]
    assert "count" in block.state_dict() and "constant" not in block.state_dict()
    shared = nn.Dense(2)
    twice = nn.Sequential([shared, shared], input_shape=(2,))
    assert len(twice.parameters()) == 2  # a shared layer is trained once


def test_zero_grad_clears_gradients():
    model = small_model()
    model(images()).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_train_and_eval_switch_dropout():
    model = small_model(dropout=0.5)
    x = images(8)
    model.eval()
    assert not any(m.training for m in model.modules())
    np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())
    flat = nn.Sequential(model.layers[:3])(x)
    dropout = model.layers[3]
    np.testing.assert_array_equal(dropout(flat).numpy(), flat.numpy())
    model.train()
    assert all(m.training for m in model.modules())
    dropped = dropout(flat).numpy()
    kept = dropped != 0
    assert 0.2 < kept.mean() < 0.8
    np.testing.assert_allclose(dropped[kept], 2.0 * flat.numpy()[kept], rtol=1e-6)


def test_manual_seed_reproduces_a_model():
    a, b, c = small_model(seed=5), small_model(seed=5), small_model(seed=6)
    for p, q, r in zip(a.parameters(), b.parameters(), c.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    assert not np.array_equal(a.parameters()[0].numpy(), c.parameters()[0].numpy())


@pytest.mark.parametrize("device", DEVICES)
def test_to_moves_parameters_in_place(device):
    model = small_model()
    before = model.parameters()
    values = [p.numpy().copy() for p in before]
    assert model.to(device) is model
    after = model.parameters()
    assert all(p is q for p, q in zip(before, after))
    for p, v in zip(after, values):
        assert p.device == tg.device.canonical_device(device) and p.is_leaf and p.requires_grad
        np.testing.assert_array_equal(p.numpy(), v)
    out = model(tg.Tensor(images().numpy(), device=device))
    out.sum().backward()
    assert all(p.grad.device == p.device for p in after)


def test_parameters_default_to_float32_and_accept_float64():
    assert all(p.dtype == np.float32 for p in small_model().parameters())
    assert all(p.dtype == np.float64 for p in small_model(dtype="float64").parameters())
    with pytest.raises(TypeError, match="floating-point"):
        nn.Dense(2, dtype="int32")


# ---------------------------------------------------------------- initialisers

def test_glorot_and_he_scales_use_keras_fans():
    tg.manual_seed(0)
    conv = nn.Conv2D(64, 3)
    conv.build((32, 10, 10))
    w = conv.weight.numpy()
    fan_in, fan_out = 32 * 9, 64 * 9  # receptive field times channels, as in Keras
    limit = np.sqrt(6 / (fan_in + fan_out))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    np.testing.assert_allclose(w.std(), limit / np.sqrt(3), rtol=0.03)
    assert np.all(conv.bias.numpy() == 0)
    he = nn.Dense(256, kernel_initializer="he_uniform")
    he.build((400,))
    assert np.abs(he.weight.numpy()).max() <= np.sqrt(6 / 400)
    np.testing.assert_allclose(he.weight.numpy().std(), np.sqrt(2 / 400), rtol=0.03)
    normal = nn.Dense(256, kernel_initializer="he_normal")
    normal.build((400,))
    np.testing.assert_allclose(normal.weight.numpy().std(), np.sqrt(2 / 400), rtol=0.03)
    assert np.abs(normal.weight.numpy()).max() <= 2 * np.sqrt(2 / 400) / 0.87962566103423978


def test_callable_and_unknown_initializers():
    layer = nn.Dense(3, kernel_initializer=lambda shape, dtype: np.full(shape, 0.5, dtype))
    layer.build((2,))
    np.testing.assert_array_equal(layer.weight.numpy(), np.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="glorot_uniform"):
        nn.Conv2D(3, 3, kernel_initializer="xavier")


# ---------------------------------------------------------------- input validation

def test_layers_name_themselves_and_the_shapes_in_errors():
    model = small_model()
    with pytest.raises(ValueError, match=r"Conv2D layer 'conv2d'.*2 input channels.*\(3, 3, 6, 6\)"):
        model(images(shape=(3, 6, 6)))
    with pytest.raises(ValueError, match=r"Conv2D.*4-D.*\(3, 6, 6\)"):
        model(tg.rand(3, 6, 6))
    dense = nn.Dense(2)
    dense(tg.rand(1, 4))
    with pytest.raises(ValueError, match=r"Dense.*4 input features.*\(1, 5\)"):
        dense(tg.rand(1, 5))
    with pytest.raises(ValueError, match=r"MaxPool2D.*larger than the input.*\(1, 1, 3, 3\)"):
        nn.MaxPool2D(4)(tg.rand(1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"Conv2D.*kernel 5x5.*\(1, 1, 4, 4\)"):
        nn.Conv2D(1, 5)(tg.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match="Flatten"):
        nn.Flatten()(tg.rand(3))
    with pytest.raises(ValueError, match="Softmax.*axis 0"):
        nn.Softmax(axis=0)(tg.rand(2, 3))
    with pytest.raises(TypeError, match="Dense.*Tensor or an array, got str"):
        nn.Dense(2)("x")
    with pytest.raises(TypeError, match="Dense.*numeric.*<U1"):
        nn.Dense(2)(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="Conv2D.*floating-point"):
        nn.Conv2D(1, 1)(tg.Tensor(np.zeros((1, 1, 2, 2), dtype=np.int64)))
    with pytest.raises(ValueError, match="input_shape"):
        nn.Sequential([nn.Dense(2)], input_shape=(0, 3))


@pytest.mark.parametrize("make", [
    lambda: nn.Conv2D(0, 3), lambda: nn.Conv2D(3, 0), lambda: nn.Conv2D(3, 3, strides=0),
    lambda: nn.Conv2D(3, 3, padding="full"), lambda: nn.MaxPool2D(2, padding=1), lambda: nn.Dense(-1),
    lambda: nn.Dropout(1.0), lambda: nn.AvgPool2D(2, strides=(1, 0)),
])
def test_bad_constructor_arguments(make):
    with pytest.raises(ValueError):
        make()


# ---------------------------------------------------------------- state and checkpoints

def test_state_dict_round_trip():
    a, b = small_model(seed=1), small_model(seed=2)
    x = images()
    assert not np.allclose(a(x).numpy(), b(x).numpy())
    state = a.state_dict()
    assert set(state) == {n for n, _ in a.named_parameters()}
    assert all(isinstance(v, np.ndarray) for v in state.values())
    state["layers.0.bias"] += 1.0  # a copy: changing it does not touch the model
    assert not np.allclose(a.layers[0].bias.numpy(), state["layers.0.bias"])
    state["layers.0.bias"] -= 1.0
    missing, unexpected = b.load_state_dict(state)
    assert missing == unexpected == []
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())


def test_load_state_dict_casts_to_the_parameter_dtype():
    model = small_model()
    state = {k: v.astype(np.float64) for k, v in small_model(seed=9).state_dict().items()}
    model.load_state_dict(state)
    assert all(p.dtype == np.float32 for p in model.parameters())
    np.testing.assert_allclose(model.parameters()[0].numpy(), state["layers.0.weight"], rtol=1e-6)


def test_save_load_round_trip(tmp_path):
    a, b = small_model(seed=1), small_model(seed=2)
    path = tmp_path / "model.npz"
    a.save(path)
    b.load(path)
    x = images()
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # no temporary file left behind


def test_corrupt_and_truncated_checkpoints_name_the_file(tmp_path):
    model = small_model()
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"this is not a zip archive at all" * 10)
    with pytest.raises(CheckpointError, match="corrupt.npz"):
        model.load(corrupt)
    good = tmp_path / "good.npz"
    model.save(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.npz"):
        model.load(truncated)
    lone = tmp_path / "lone.npz"
    with open(lone, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(CheckpointError, match="lone.npz"):
        model.load(lone)
    with pytest.raises(CheckpointError, match="missing.npz"):
        model.load(tmp_path / "missing.npz")


def test_mismatched_checkpoints_list_every_problem(tmp_path):
    model = small_model()
    state = model.state_dict()
    state["layers.0.weight"] = np.zeros((5, 2, 3, 3), np.float32)
    del state["layers.3.bias"]
    state["layers.9.weight"] = np.zeros(2, np.float32)
    path = tmp_path / "bad.npz"
    save_arrays(path, state)
    before = [p.numpy().copy() for p in model.parameters()]
    with pytest.raises(ValueError) as info:
        model.load(path)
    message = str(info.value)
    assert "bad.npz" in message
    assert "'layers.0.weight': checkpoint shape (5, 2, 3, 3), model shape (3, 2, 3, 3)" in message
    assert "missing key 'layers.3.bias'" in message
    assert "unexpected key 'layers.9.weight'" in message
    for p, v in zip(model.parameters(), before):  # nothing was half-loaded
        np.testing.assert_array_equal(p.numpy(), v)
    del state["layers.0.weight"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == ["layers.0.weight", "layers.3.bias"] and unexpected == ["layers.9.weight"]


def test_loading_into_an_unbuilt_model_says_to_build_it():
    with pytest.raises(ValueError, match="not built"):
        tutorial_model().load_state_dict(tutorial_model(input_shape=(1, 28, 28)).state_dict())


def test_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    old, new = small_model(seed=1), small_model(seed=2)
    path = tmp_path / "model.npz"
    old.save(path)

    def broken_savez(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        new.save(path)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    restored = small_model(seed=3)
    restored.load(path)
    x = images()
    np.testing.assert_array_equal(restored(x).numpy(), old(x).numpy())


@pytest.mark.kernels  # the plan that fuses Conv2D + MaxPool2D
@pytest.mark.parametrize("side", [6, 7])   # 7: the pooling leaves a row and a column out
@pytest.mark.parametrize("bias_shift", [0.0, -0.3, -50.0])   # -50: every window's maximum is below 0
def test_sequential_pools_before_relu_with_identical_values_and_gradients(bias_shift, side):
    """Sequential applies a Conv2D's ReLU after a following MaxPool2D (they commute); the output
    and every gradient must equal the plain layer-by-layer computation."""
    import numpy as np
    import tinygrad_cnn as tg
    from tinygrad_cnn import nn
    from tinygrad_cnn.nn import functional as F

    tg.manual_seed(3)
    model = nn.Sequential([nn.Conv2D(4, 3, padding="same", activation="relu", dtype="float64"),
                           nn.MaxPool2D(2), nn.Flatten(), nn.Dense(3, dtype="float64")], input_shape=(2, side, side))
    model.layers[0].bias.data += bias_shift
    x = tg.Tensor(np.random.default_rng(0).standard_normal((3, 2, side, side)))
    upstream = tg.Tensor(np.random.default_rng(1).standard_normal((3, 3)))

    def grads(run):
        model.zero_grad()
        out = run(x)
        out.backward(upstream)
        return out.numpy(), [p.grad.numpy().copy() for p in model.parameters()]

    def layer_by_layer(h):
        for layer in model.layers:
            h = layer(h)
        return h

    out_fused, grads_fused = grads(model)
    out_plain, grads_plain = grads(layer_by_layer)
    # the two paths may lay im2col out differently, so the GEMMs may round differently (1e-16)
    np.testing.assert_allclose(out_fused, out_plain, rtol=1e-12, atol=1e-12)
    for g_fused, g_plain in zip(grads_fused, grads_plain):
        np.testing.assert_allclose(g_fused, g_plain, rtol=1e-12, atol=1e-12)
    conv = model.layers[0]
    plain_pool = F.max_pool2d(conv.pre_activation(x).relu(), 2)
    pooled = model[:2](x)
    np.testing.assert_allclose(pooled.numpy(), plain_pool.numpy(), rtol=1e-12, atol=1e-12)
    op = pooled.grad_fn
    assert (type(op).__name__, op.pool, op.relu) == ("FusedConvolution", (2, 2), True), \
        "pooling, then ReLU, should run inside the convolution op"


def _bn_model():
    from tinygrad_cnn import torch_nn
    return tg.nn.Sequential([torch_nn.Conv2d(1, 4, 3), torch_nn.BatchNorm2d(4), tg.nn.Flatten(),
                             torch_nn.Linear(4 * 4 * 4, 3)], input_shape=(1, 6, 6))


def _summary_numbers(text):
    rows = [int(line.split()[-1].replace(",", "")) for line in text.splitlines() if "(None" in line]
    totals = {key: int(line.split(":")[1].replace(",", "")) for line in text.splitlines() if "params:" in line
              for key in [line.split(":")[0]]}
    return rows, totals


def test_summary_counts_running_statistics_but_not_torchs_batch_counter():
    """torch_nn.BatchNorm2d's num_batches_tracked (an int64 count of training batches) was counted as a
    non-trainable parameter (9 for 4 channels); a BatchNorm row showed only its trainable 8 and a frozen
    layer's row 0, so the rows did not add up to the total. As Keras: a row is all of the layer's weights
    (BatchNormalization: gamma, beta and the two moving statistics), the total their sum, no counter."""
    model = _bn_model()
    model.train()
    model(tg.rand(2, 1, 6, 6))  # the counter moves; the counts do not
    rows, totals = _summary_numbers(model.summary(print_fn=None))
    assert rows == [4 * 9 + 4, 4 * 4, 0, 64 * 3 + 3]
    assert totals == {"Total params": sum(rows), "Trainable params": 40 + 8 + 195, "Non-trainable params": 8}
    frozen = tg.nn.Sequential([tg.nn.Dense(4), tg.nn.Dense(2)], input_shape=(3,))
    for p in frozen.layers[0].parameters():
        p.requires_grad_(False)
    rows, totals = _summary_numbers(frozen.summary(print_fn=None))
    assert rows == [16, 10] and totals == {"Total params": 26, "Trainable params": 10, "Non-trainable params": 16}


def test_summary_counts_as_torch_and_keras_count(real_keras):
    """Side by side: Trainable params is torch's sum(p.numel() for p in model.parameters()) (no buffer), and
    every number of the table is Keras' for the same layers (its BatchNormalization row 16, total 251)."""
    import torch
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                 torch.nn.Linear(64, 3))
    theirs.train()(torch.rand(2, 1, 6, 6))
    rows, totals = _summary_numbers(_bn_model().summary(print_fn=None))
    assert totals["Trainable params"] == sum(p.numel() for p in theirs.parameters())
    assert totals["Non-trainable params"] == sum(b.numel() for b in theirs.buffers() if b.is_floating_point())
    k = real_keras
    keras_model = k.Sequential([k.Input((6, 6, 1)), k.layers.Conv2D(4, 3), k.layers.BatchNormalization(),
                                k.layers.Flatten(), k.layers.Dense(3)])
    assert rows == [layer.count_params() for layer in keras_model.layers]
    assert totals["Total params"] == keras_model.count_params()
    assert totals["Trainable params"] == sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights)
