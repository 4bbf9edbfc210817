"""PyTorch spellings (issue 26): dim=/keepdim= wherever axis=/keepdims= are, Sequential(*layers), Tensor.view,
eager weights from in_features/in_channels (an optimizer before the first forward pass), and a clear error
for Conv2D arguments in PyTorch's (in, out, kernel, stride) order."""
import importlib
import itertools

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import nn, optim
from tinygrad_cnn.nn import functional as F


def test_dim_and_keepdim_are_accepted_wherever_axis_and_keepdims_are():
    a = np.random.default_rng(0).standard_normal((2, 3, 4))
    x = tg.Tensor(a)
    for name in ("sum", "mean", "max", "min", "logsumexp", "argmax", "argmin"):
        ours = getattr(x, name)(dim=1, keepdim=True)
        ours = (ours.values if name in ("max", "min") else ours).numpy()  # torch's (values, indices) pair
        np.testing.assert_array_equal(ours, getattr(x, name)(axis=1, keepdims=True).numpy())
        assert ours.shape == (2, 1, 4)
    for fn in (x.softmax, x.log_softmax, lambda **k: F.softmax(x, **k), lambda **k: F.log_softmax(x, **k)):
        np.testing.assert_array_equal(fn(dim=0).numpy(), fn(axis=0).numpy())
    assert x.flatten(start_dim=1).shape == (2, 12) and x[:, :1].squeeze(dim=1).shape == (2, 4)
    assert x.unsqueeze(dim=0).shape == (1, 2, 3, 4)
    assert tg.concatenate([x, x], dim=1).shape == (2, 6, 4) and tg.stack([x, x], dim=0).shape == (2, 2, 3, 4)
    with pytest.raises(TypeError, match="both dim= and axis="):
        x.sum(dim=1, axis=1)


def test_view_is_reshape():
    x = tg.Tensor(np.arange(6.0), requires_grad=True)
    y = x.view(2, 3)
    assert y.shape == (2, 3) and x.view(-1, 2).shape == (3, 2)
    (y * tg.Tensor(np.arange(6.0).reshape(2, 3))).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.arange(6.0))


def test_sequential_takes_layers_as_arguments():
    a, b = nn.Dense(3), nn.ReLU()
    model = nn.Sequential(a, b, nn.Dense(2))
    assert model.layers[:2] == [a, b] and model(np.ones((1, 4), "float32")).shape == (1, 2)
    assert nn.Sequential([nn.Dense(2)], (4,)).built  # the list and a positional input_shape, as before
    with pytest.raises(TypeError, match="input_shape= by keyword"):
        nn.Sequential([nn.Dense(2)], (4,), (5,))


def test_eager_weights_let_the_optimizer_come_first():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Conv2D(4, 3, in_channels=1, activation="relu"), nn.Flatten(),
                          nn.Dense(10, in_features=4 * 6 * 6))
    assert [p.shape for p in model.parameters()] == [(4, 1, 3, 3), (4,), (10, 144), (10,)]
    opt = optim.SGD(model.parameters(), lr=0.1)  # before any forward pass, as in PyTorch
    x, y = tg.Tensor(np.random.default_rng(0).random((5, 1, 8, 8)).astype("float32")), tg.Tensor(np.arange(5))
    before = model.parameters()[0].numpy().copy()
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert not np.array_equal(before, model.parameters()[0].numpy())
    with pytest.raises(ValueError, match=r"Dense.*144 input features"):
        nn.Dense(10, in_features=144)(np.zeros((2, 100), "float32"))
    dense = tg.keras.layers.Dense(3, input_dim=5)  # Keras 2's spelling builds at once too
    assert dense.weight.shape == (3, 5) and dense.keras_input_shape == (5,)


def test_conv2d_in_pytorch_order_is_refused_with_the_pytorch_order_named():
    with pytest.raises(TypeError, match=r"Conv2D\(1, 5, 3, 1\).*PyTorch's Conv2d\(in_channels, out_channels, "
                                        r"kernel_size, stride\).*Conv2D\(5, 3, strides=1\)"):
        nn.Conv2D(1, 5, 3, 1)
    with pytest.raises(TypeError, match=r"padding must be 'valid' or 'same' \(Keras\).*PyTorch"):
        tg.keras.layers.Conv2D(1, 5, 3, 1)
    with pytest.raises(TypeError, match="at most 4 positional"):
        nn.Conv2D(1, 5, 3, "same", "relu")
    assert nn.Conv2D(5, 3, 1, "same").padding == "same"  # Keras' positional padding is a string
    layer = nn.Conv2D(5, 3, padding=1)  # explicit zero padding by keyword, PyTorch style
    assert layer(np.zeros((2, 1, 28, 28), "float32")).shape == (2, 5, 28, 28)


# ---------------------------------------------------------------- names (issue 24)

NAMESPACES = ["tinygrad_cnn", "tinygrad_cnn.nn", "tinygrad_cnn.torch_nn", "tinygrad_cnn.nn.functional",
              "tinygrad_cnn.ops", "tinygrad_cnn.conv", "tinygrad_cnn.keras", "tinygrad_cnn.keras.layers",
              "tinygrad_cnn.optim"]


def _classes(module_name):
    module = importlib.import_module(module_name)
    return {name: value for name, value in vars(module).items() if not name.startswith("_") and isinstance(value, type)}


@pytest.mark.parametrize("module_name", NAMESPACES)
def test_no_two_classes_of_a_namespace_differ_only_by_case(module_name):
    names = sorted(_classes(module_name))
    clashes = [(a, b) for a, b in itertools.combinations(names, 2) if a.lower() == b.lower()]
    assert not clashes, f"{module_name}: {clashes}"


def test_no_op_and_layer_differ_only_by_case():
    ops = {**_classes("tinygrad_cnn.ops"), **_classes("tinygrad_cnn.conv")}
    layers = {**_classes("tinygrad_cnn.nn"), **_classes("tinygrad_cnn.torch_nn")}
    clashes = [(a, b) for a in ops for b in layers if a != b and a.lower() == b.lower()]
    assert not clashes


def test_pytorch_order_layers_live_in_torch_nn():
    import tinygrad_cnn.torch_nn as torch_nn
    assert torch_nn.Conv2d(1, 4, 3, 1).weight.shape == (4, 1, 3, 3)  # (in, out, kernel, stride)
    assert torch_nn.Linear(6, 2).weight.shape == (2, 6)
    assert torch_nn.Module is tg.nn.Module and issubclass(torch_nn.Sequential, tg.nn.Sequential) and torch_nn.F is tg.nn.F
    assert not hasattr(torch_nn, "Conv2D") and not hasattr(torch_nn, "Dense")  # Keras' order stays in nn
    for name, keras_name in (("Conv2d", "Conv2D"), ("Linear", "Dense")):
        with pytest.raises(AttributeError, match=rf"tinygrad_cnn.nn has no {name}: .*tinygrad_cnn.torch_nn.{name} "
                                                 rf".*tinygrad_cnn.nn.{keras_name}\("):
            getattr(tg.nn, name)
    with pytest.raises(AttributeError, match="has no attribute 'Conv3d'"):
        tg.nn.Conv3d
