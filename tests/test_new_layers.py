"""The layers of issue 26: BatchNormalization, GlobalAveragePooling2D, GlobalMaxPooling2D, Reshape and
Rescaling. Gradients against central differences (float64, random upstream gradient, hypothesis) on the
CPU and the (emulated) GPU; BatchNormalization's training and inference arithmetic against a NumPy
reference with Keras' momentum and epsilon; checkpoints; shape checks."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn import nn
from tinygrad_cnn.testing import gradcheck
from tinygrad_cnn.testing.strategies import tie_free_arrays
from tests.conftest import DEVICES


def tensor(a, device, grad=False):
    return tg.Tensor(np.asarray(a, np.float64), device=device, requires_grad=grad)


def batch_norm_reference(x, axis, gamma, beta, eps):
    others = tuple(a for a in range(x.ndim) if a != axis)
    mean, var = x.mean(axis=others, keepdims=True), x.var(axis=others, keepdims=True)
    shape = [1] * x.ndim
    shape[axis] = -1
    return (x - mean) / np.sqrt(var + eps) * gamma.reshape(shape) + beta.reshape(shape), mean.ravel(), var.ravel()


@st.composite
def bn_cases(draw):
    rank = draw(st.sampled_from([2, 4]))
    shape = tuple(draw(st.lists(st.integers(2, 4), min_size=rank, max_size=rank)))
    axis = draw(st.sampled_from([1, -1]))
    seed = draw(st.integers(0, 2 ** 16))
    return shape, axis, seed


@pytest.mark.parametrize("device", DEVICES)
@given(case=bn_cases(), training=st.booleans())
def test_batch_normalization_gradcheck(device, case, training):
    shape, axis, seed = case
    rng = np.random.default_rng(seed)
    layer = nn.BatchNormalization(axis=axis, dtype="float64", device=device)
    layer.build(shape[1:])
    layer.gamma.data = tensor(rng.uniform(0.5, 2, layer.gamma.shape), device).data
    layer.beta.data = tensor(rng.standard_normal(layer.beta.shape), device).data
    layer.moving_variance.data = tensor(rng.uniform(0.5, 2, layer.gamma.shape), device).data
    layer.train(training)
    x = tensor(rng.standard_normal(shape) * 2 + 1, device, True)
    assert gradcheck(lambda x, g, b: layer(x), [x, layer.gamma, layer.beta])


@pytest.mark.parametrize("device", DEVICES)
@given(case=bn_cases())
def test_batch_normalization_matches_numpy_and_follows_keras_momentum(device, case):
    shape, axis, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 3 + 2
    layer = nn.BatchNormalization(axis=axis, dtype="float64", device=device)
    out = layer(tensor(x, device), training=True)
    ref, mean, var = batch_norm_reference(x, axis % len(shape), np.ones(shape[axis]), np.zeros(shape[axis]), 1e-3)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-10)
    # Keras: moving = moving * 0.99 + batch * 0.01, from 0 and 1 (biased batch variance)
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.01 * mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.moving_variance.numpy(), 0.99 + 0.01 * var, rtol=1e-12)
    # inference uses the moving statistics, and leaves them alone
    before = layer.moving_mean.numpy().copy()
    out = layer(tensor(x, device), training=False).numpy()
    shape_c = [1] * len(shape)
    shape_c[axis] = -1
    expected = (x - layer.moving_mean.numpy().reshape(shape_c)) / np.sqrt(
        layer.moving_variance.numpy().reshape(shape_c) + 1e-3)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), before)
    assert layer.training  # training= changed this call only


def test_batch_normalization_statistics_are_buffers_saved_and_not_trained(tmp_path):
    model = nn.Sequential([nn.Conv2D(3, 3), nn.BatchNormalization(), nn.Flatten(), nn.Dense(2)], input_shape=(2, 5, 5))
    names = [n for n, _ in model.named_parameters()]
    assert "layers.1.gamma" in names and "layers.1.moving_mean" not in names
    assert [n for n, _ in model.named_buffers()] == ["layers.1.moving_mean", "layers.1.moving_variance"]
    model(np.random.default_rng(0).standard_normal((4, 2, 5, 5)))  # training mode: the statistics move
    moving = model.layers[1].moving_variance.numpy().copy()
    assert not np.allclose(moving, 1)
    model.save(str(tmp_path / "bn.safetensors"))
    other = nn.Sequential([nn.Conv2D(3, 3), nn.BatchNormalization(), nn.Flatten(), nn.Dense(2)], input_shape=(2, 5, 5))
    other.load(str(tmp_path / "bn.safetensors"))
    np.testing.assert_array_equal(other.layers[1].moving_variance.numpy(), moving)
    x = np.random.default_rng(1).standard_normal((3, 2, 5, 5))
    np.testing.assert_allclose(other(x, training=False).numpy(), model(x, training=False).numpy(), rtol=1e-6)


def test_batch_normalization_refuses_other_channel_counts_and_bad_arguments():
    layer = nn.BatchNormalization()
    layer.build((3, 4, 4))
    with pytest.raises(ValueError, match=r"BatchNormalization.*3 channels on axis 1.*\(2, 5, 4, 4\)"):
        layer(np.zeros((2, 5, 4, 4), np.float32))
    with pytest.raises(ValueError, match="axis 0 is not a feature axis"):
        nn.BatchNormalization(axis=0)(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNormalization(momentum=1.5)
    with pytest.raises(ValueError, match="epsilon"):
        nn.BatchNormalization(epsilon=0)


@st.composite
def pool_cases(draw):
    n, c, h, w = (draw(st.integers(1, 3)) for _ in range(4))
    return (n, c, h, w), draw(st.sampled_from(["channels_first", "channels_last"])), draw(st.booleans())


@pytest.mark.parametrize("device", DEVICES)
@given(case=pool_cases(), data=st.data())
def test_global_pooling_gradcheck_and_values(device, case, data):
    shape, data_format, keepdims = case
    x_np = data.draw(tie_free_arrays(shape))  # NOTE: no ties, so the max has one gradient
    for kind, reduce in ((nn.GlobalAveragePooling2D, np.mean), (nn.GlobalMaxPooling2D, np.max)):
        layer = kind(data_format=data_format, keepdims=keepdims)
        axes = (1, 2) if data_format == "channels_last" else (2, 3)
        x = tensor(x_np, device, True)
        out = layer(x)
        np.testing.assert_allclose(out.numpy(), reduce(x_np, axis=axes, keepdims=keepdims), rtol=1e-12)
        assert out.shape[1:] == layer.compute_output_shape(shape[1:])
        assert gradcheck(lambda x: layer(x), [x])


@pytest.mark.parametrize("device", DEVICES)
@given(seed=st.integers(0, 2 ** 16), target=st.sampled_from([(6,), (2, 3), (3, -1), (-1, 1, 2)]),
       scale=st.floats(-3, 3), offset=st.floats(-3, 3))
def test_reshape_and_rescaling_gradcheck_and_values(device, seed, target, scale, offset):
    x_np = np.random.default_rng(seed).standard_normal((2, 3, 2))
    x = tensor(x_np, device, True)
    reshape = nn.Reshape(target)
    out = reshape(x)
    np.testing.assert_array_equal(out.numpy(), x_np.reshape((2,) + target))
    assert out.shape[1:] == reshape.compute_output_shape((3, 2))
    assert gradcheck(lambda x: reshape(x), [x])
    rescale = nn.Rescaling(scale, offset)
    np.testing.assert_allclose(rescale(x).numpy(), x_np * scale + offset, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda x: rescale(x), [x])


def test_reshape_and_global_pooling_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"Reshape.*cannot reshape 6 values per sample into \(4,\)"):
        nn.Reshape(4)(np.zeros((2, 6), np.float32))
    with pytest.raises(ValueError, match="at most one -1"):
        nn.Reshape((-1, -1))
    with pytest.raises(ValueError, match=r"GlobalAveragePooling2D.*4-D"):
        nn.GlobalAveragePooling2D()(np.zeros((2, 6), np.float32))
    with pytest.raises(ValueError, match="finite"):
        nn.Rescaling(float("nan"))


def test_rescaling_takes_uint8_images_as_floats():
    out = tg.keras.layers.Rescaling(1 / 255)(np.full((1, 2, 2, 1), 255, np.uint8))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), 1.0)


def test_keras_layers_default_to_channels_last_and_keras_names():
    k = tg.keras.layers
    model = tg.keras.Sequential([k.Conv2D(4, 3, input_shape=(6, 6, 2)), k.BatchNormalization(),
                                 k.GlobalMaxPooling2D(), k.Reshape((2, 2)), k.Flatten(), k.Dense(2)])
    assert model.layers[1].moving_mean.shape == (4,)  # axis -1: the channels of (N, H, W, C)
    assert [layer.name for layer in model.layers][1:4] == ["batch_normalization", "global_max_pooling2d", "reshape"]
    assert model.predict(np.ones((3, 6, 6, 2)), verbose=0).shape == (3, 2)


@pytest.mark.parametrize("device", DEVICES)
@given(seed=st.integers(0, 2 ** 16), count=st.integers(2, 3), axis=st.sampled_from([1, 2, -1]))
def test_add_and_concatenate_gradcheck_and_values(device, seed, count, axis):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((2, 3, 2)) for _ in range(count)]
    xs = [tensor(a, device, True) for a in arrays]
    np.testing.assert_allclose(nn.Add()(xs).numpy(), sum(arrays), rtol=1e-12)
    assert gradcheck(lambda *t: nn.Add()(list(t)), xs)
    widths = [int(w) for w in rng.integers(1, 4, count)]
    parts = [rng.standard_normal((2, w, 2) if axis == 1 else (2, 3, w)) for w in widths]
    ys = [tensor(p, device, True) for p in parts]
    joined = nn.Concatenate(axis=axis)
    np.testing.assert_array_equal(joined(ys).numpy(), np.concatenate(parts, axis=axis))
    assert joined(ys).shape[1:] == joined.compute_output_shape([p.shape[1:] for p in parts])
    assert gradcheck(lambda *t: joined(list(t)), ys)


def test_merge_layers_name_the_problem():
    with pytest.raises(ValueError, match=r"Add.*one shape.*\(2, 3\), \(2, 4\)"):
        nn.Add()([np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32)])
    with pytest.raises(ValueError, match="Concatenate.*agree on every axis but -1"):
        nn.Concatenate()([np.zeros((2, 3, 1), np.float32), np.zeros((2, 4, 1), np.float32)])
    with pytest.raises(ValueError, match="batch axis"):
        nn.Concatenate(axis=0)([np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32)])
    with pytest.raises(TypeError, match="list of at least two"):
        nn.Add()(np.zeros((2, 3), np.float32))
