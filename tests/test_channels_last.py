"""Channels-last layers (data_format), the library's activation functions as activation=, and the
errors that name what is really wrong (a wrong image size, a swapped channel order)."""
import sys
import types

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import nn, optim
from tinygrad_cnn.nn import functional as F
from tests.conftest import DEVICES


def tutorial(data_format, flatten_format=None, input_shape=None, softmax=True):
    return nn.Sequential([
        nn.Conv2D(32, 3, padding="same", activation="relu", data_format=data_format),
        nn.MaxPool2D(2, strides=2, data_format=data_format),
        nn.Conv2D(64, 3, padding="same", activation="relu", data_format=data_format),
        nn.MaxPool2D(2, strides=2, data_format=data_format),
        nn.Flatten(data_format=flatten_format),
        nn.Dense(128, activation="relu"),
        nn.Dense(10, activation="softmax" if softmax else None),
    ], input_shape=input_shape)


def copy_weights(source, target, dense_permutation=None):
    """target's parameters := source's, the first Dense's input columns reordered by the permutation."""
    for (name, p), (_, q) in zip(source.named_parameters(), target.named_parameters()):
        value = p.numpy()
        if name == "layers.5.weight" and dense_permutation is not None:
            value = value[:, dense_permutation]
        q.data = value.copy()


def nchw(n=4, seed=0):
    return np.random.default_rng(seed).random((n, 1, 28, 28), dtype=np.float32)


def test_a_channels_last_model_gives_the_nchw_models_outputs_and_gradients():
    tg.manual_seed(0)
    first = tutorial("channels_first", input_shape=(1, 28, 28))
    last = tutorial("channels_last", input_shape=(28, 28, 1))
    # the NCHW model flattens (C, H, W); the channels-last one (H, W, C): feature (h, w, c) of the
    # channels-last model is feature (c, h, w) of the NCHW one
    chw_index = np.arange(64 * 7 * 7).reshape(64, 7, 7)
    copy_weights(first, last, dense_permutation=chw_index.transpose(1, 2, 0).reshape(-1))
    x = nchw()
    y = tg.Tensor(np.array([1, 2, 3, 4]))
    out_first, out_last = first(tg.Tensor(x)).numpy(), last(tg.Tensor(x.transpose(0, 2, 3, 1))).numpy()
    np.testing.assert_allclose(out_last, out_first, rtol=1e-5, atol=1e-6)
    assert last.compute_output_shape((28, 28, 1)) == (10,)
    assert [layer.compute_output_shape(s) for layer, s in [(last.layers[0], (28, 28, 1)), (last.layers[1], (28, 28, 32))]] \
        == [(28, 28, 32), (14, 14, 32)]
    F.cross_entropy(first.logits(tg.Tensor(x)), y).backward()
    F.cross_entropy(last.logits(tg.Tensor(x.transpose(0, 2, 3, 1))), y).backward()
    for (name, p), (_, q) in zip(first.named_parameters(), last.named_parameters()):
        grad = p.grad.numpy()
        if name == "layers.5.weight":
            grad = grad[:, chw_index.transpose(1, 2, 0).reshape(-1)]
        np.testing.assert_allclose(q.grad.numpy(), grad, rtol=1e-4, atol=1e-6, err_msg=name)


def test_flatten_channels_first_orders_features_as_keras_so_the_same_weights_give_the_same_outputs():
    tg.manual_seed(0)
    last = tutorial("channels_last", input_shape=(28, 28, 1))
    first = tutorial("channels_first", flatten_format="channels_first", input_shape=(1, 28, 28))
    copy_weights(last, first)  # the same weights, Dense included: both flatten (H, W, C)
    x = nchw()
    np.testing.assert_allclose(first(tg.Tensor(x)).numpy(), last(tg.Tensor(x.transpose(0, 2, 3, 1))).numpy(),
                               rtol=1e-5, atol=1e-6)
    plain = tutorial("channels_first", input_shape=(1, 28, 28))
    copy_weights(last, plain)  # the default Flatten keeps (C, H, W): other features, other outputs
    assert not np.allclose(plain(tg.Tensor(x)).numpy(), last(tg.Tensor(x.transpose(0, 2, 3, 1))).numpy())


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_pooling_layers_channels_last_match_channels_first(padding):
    x = np.random.default_rng(1).standard_normal((2, 3, 7, 5)).astype(np.float32)
    for kind in (nn.MaxPool2D, nn.AvgPool2D):
        a = kind(2, padding=padding)(tg.Tensor(x)).numpy()
        b = kind(2, padding=padding, data_format="channels_last")(tg.Tensor(x.transpose(0, 2, 3, 1))).numpy()
        np.testing.assert_allclose(b, a.transpose(0, 2, 3, 1), rtol=1e-6)


def test_a_channels_last_softmax_conv_takes_softmax_over_the_last_axis():
    conv = nn.Conv2D(4, 1, activation="softmax", data_format="channels_last")
    out = conv(tg.rand(2, 3, 3, 2)).numpy()
    np.testing.assert_allclose(out.sum(axis=-1), 1, rtol=1e-5)


def test_library_activation_functions_are_known_by_name():
    """tf.nn.relu in the tutorial: nn.relu runs fused in the conv, nn.softmax over the channels and stripped by logits()."""
    conv = nn.Conv2D(4, 1, activation=nn.softmax)
    assert conv.activation_name == "softmax"
    np.testing.assert_allclose(conv(tg.rand(2, 3, 2, 2)).numpy().sum(axis=1), 1, rtol=1e-5)
    assert nn.Dense(3, activation=nn.relu).activation_name == "relu"
    tg.manual_seed(0)
    model = nn.Sequential([nn.Dense(3, activation=nn.softmax)], input_shape=(2,))
    x = tg.rand(4, 2)
    np.testing.assert_allclose(model.logits(x).softmax(axis=1).numpy(), model(x).numpy(), rtol=1e-6)


def test_bad_data_format_is_refused():
    for make in (lambda: nn.Conv2D(1, 3, data_format="NHWC"), lambda: nn.MaxPool2D(2, data_format="nhwc"),
                 lambda: nn.Flatten(data_format="last")):
        with pytest.raises(ValueError, match="data_format must be 'channels_first'"):
            make()


# ---------------------------------------------------------------- errors that say what is wrong (issue 12, item 9)

def test_a_wrong_image_size_says_so_instead_of_asking_for_a_flatten_the_model_has():
    model = tutorial("channels_first", input_shape=(1, 28, 28))
    with pytest.raises(ValueError) as info:
        model(tg.rand(2, 1, 32, 32))
    message = str(info.value)
    assert "built for inputs of shape (1, 28, 28) and got (1, 32, 32)" in message
    assert "Dense layer 'dense'" in message and "3136 input features" in message
    assert "Flatten" not in message


def test_channels_last_input_shape_for_an_nchw_model_points_at_the_channel_order():
    with pytest.raises(ValueError, match=r"looks channels-last \(H, W, C\).*input_shape=\(1, 28, 28\)"):
        tutorial("channels_first", input_shape=(28, 28, 1))
    model = tutorial("channels_first", input_shape=(1, 28, 28))
    with pytest.raises(ValueError, match=r"looks channels-last.*x.transpose\(0, 3, 1, 2\)"):
        model(tg.rand(2, 28, 28, 1))
    unbuilt = tutorial("channels_first")
    with pytest.raises(ValueError, match="looks channels-last"):
        unbuilt(tg.rand(2, 28, 28, 1))
    with pytest.raises(ValueError, match=r"looks channels-first \(C, H, W\).*input_shape=\(28, 28, 1\)"):
        tutorial("channels_last", input_shape=(1, 28, 28))


def test_a_dense_layer_given_flat_features_of_the_wrong_count_does_not_ask_for_flatten():
    dense = nn.Dense(2)
    dense(tg.rand(1, 4))
    with pytest.raises(ValueError) as info:
        dense(tg.rand(1, 5))
    assert "Flatten" not in str(info.value)
    with pytest.raises(ValueError, match="put a Flatten"):
        dense(tg.rand(1, 3, 5))


# ---------------------------------------------------------------- small conveniences (issue 13, item 8)

def test_float_and_int_of_a_one_element_tensor():
    assert float(tg.Tensor([2.5])) == 2.5 and isinstance(float(tg.Tensor(np.float32(1))), float)
    assert int(tg.Tensor([[7.9]])) == 7
    with pytest.raises(ValueError, match="one element"):
        float(tg.ones(2))


def test_an_optimizer_given_an_unbuilt_models_parameters_says_why_it_is_empty():
    model = nn.Sequential([nn.Dense(3)])
    with pytest.raises(ValueError, match="not built yet.*input_shape"):
        optim.Adam(model.parameters())


@pytest.mark.parametrize("device", DEVICES)
def test_module_cuda_and_cpu_move_the_parameters(device):
    model = nn.Sequential([nn.Dense(3)], input_shape=(2,))
    if device == "cpu":
        if tg.cuda_available():
            pytest.skip("this case checks the error without a GPU")
        with pytest.raises(tg.DeviceError):
            model.cuda()
        return
    assert model.cuda() is model and model.layers[0].weight.device == "cuda:0"
    assert model.cpu().layers[0].weight.device == "cpu"


def test_the_mnist_examples_bar_is_off_when_stderr_is_not_a_terminal(monkeypatch):
    from tests.test_examples import load_example
    example = load_example("mnist")
    fake = types.ModuleType("tqdm")
    fake.tqdm = lambda iterable, **kwargs: ("bar", iterable)
    monkeypatch.setitem(sys.modules, "tqdm", fake)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert example.progress([1], 1, "epoch", disable=False)[1] is None
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert example.progress([1], 1, "epoch", disable=False)[1] is not None
