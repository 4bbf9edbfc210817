"""A batch of zero images through every layer, functional op and loss, in both kernel modes and on both
devices: outputs are empty with the shapes a batch of two gives, gradients of weights are zeros of the
weights' shapes, and losses reduce as PyTorch's do (mean of nothing is nan, sum is 0) (issue 27: nothing
silently wrong, and no deep NumPy error, at the edges)."""
import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import nn
from tinygrad_cnn.nn import functional as F
from tests.conftest import DEVICES

# NOTE: a RuntimeWarning is an error here: PyTorch's mean of nothing is a silent nan, and so is ours
# (NumPy's mean warns "Mean of empty slice", and a 0 / 0 "invalid value encountered")
pytestmark = [pytest.mark.usefixtures("kernel_mode"),
              pytest.mark.filterwarnings("error::RuntimeWarning")]

try:
    import torch
except ImportError:  # the comparisons with PyTorch are skipped
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def tutorial():
    return nn.Sequential([
        nn.Conv2D(32, 3, padding="same", activation="relu"), nn.MaxPool2D(2, strides=2),
        nn.Conv2D(64, 3, padding="same", activation="relu"), nn.MaxPool2D(2, strides=2),
        nn.Flatten(), nn.Dense(128, activation="relu"), nn.Dense(10, activation="softmax")])


def batchnorm_eval():
    layer = nn.BatchNormalization()
    layer.eval()
    return layer


# name: (a fresh layer, one sample's shape); each runs on N = 0 and on N = 2
LAYERS = {
    "tutorial": (tutorial, (1, 28, 28)),
    "tutorial_channels_last": (lambda: nn.Sequential([
        nn.Conv2D(4, 3, padding="same", activation="relu", data_format="channels_last"),
        nn.MaxPool2D(2, data_format="channels_last"), nn.Flatten(), nn.Dense(3)]), (8, 8, 1)),
    "conv_same_1ch": (lambda: nn.Conv2D(4, 3, padding="same"), (1, 9, 9)),
    "conv_same_32ch": (lambda: nn.Conv2D(4, 3, padding="same", activation="relu"), (32, 8, 8)),
    "conv_valid": (lambda: nn.Conv2D(4, 3, activation="sigmoid"), (3, 9, 9)),
    "conv_strided": (lambda: nn.Conv2D(4, 3, strides=2, padding="same"), (3, 9, 9)),
    "conv_pool_1ch": (lambda: nn.Sequential([nn.Conv2D(4, 3, padding="same", activation="relu"), nn.MaxPool2D(2)]),
                      (1, 8, 8)),
    "conv_pool_32ch": (lambda: nn.Sequential([nn.Conv2D(4, 3, padding="same", activation="relu"),
                                              nn.MaxPool2D(2)]), (32, 8, 8)),
    "max_pool": (lambda: nn.MaxPool2D(2), (3, 8, 8)),
    "avg_pool": (lambda: nn.AvgPool2D(2), (3, 8, 8)),
    "flatten": (nn.Flatten, (3, 4, 4)),
    "dense": (lambda: nn.Dense(5, activation="relu"), (7,)),
    "relu": (nn.ReLU, (3, 4)),
    "sigmoid": (nn.Sigmoid, (3, 4)),
    "tanh": (nn.Tanh, (3, 4)),
    "softmax": (nn.Softmax, (6,)),
    "dropout_eval": (lambda: nn.Dropout(0.5), (6,)),
    "batchnorm_eval_images": (batchnorm_eval, (3, 4, 4)),
    "batchnorm_eval_features": (batchnorm_eval, (5,)),
    "global_avg": (nn.GlobalAveragePooling2D, (3, 4, 4)),
    "global_max": (nn.GlobalMaxPooling2D, (3, 4, 4)),
    "reshape": (lambda: nn.Reshape((4, -1)), (2, 3, 4)),
    "rescaling": (lambda: nn.Rescaling(1 / 255), (3, 4)),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_on_an_empty_batch(name, device):
    make, sample = LAYERS[name]
    tg.manual_seed(0)
    layer = make().to(device)
    if name == "dropout_eval":
        layer.eval()
    full = layer(tg.Tensor(np.random.default_rng(0).standard_normal((2,) + sample).astype(np.float32), device=device))
    x = tg.Tensor(np.zeros((0,) + sample, np.float32), device=device, requires_grad=True)
    out = layer(x)
    assert out.shape == (0,) + full.shape[1:] and out.dtype == np.float32 and out.device == x.device
    for p in layer.parameters():
        p.grad = None
    out.sum().backward()
    assert x.grad.shape == x.shape
    for p in layer.parameters():
        assert p.grad is not None and p.grad.shape == p.shape, p.name
        np.testing.assert_array_equal(p.grad.numpy(), np.zeros(p.shape, np.float32))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sample", [(3, 4, 4), (3,)])
def test_batchnorm_training_on_an_empty_batch_keeps_its_moving_statistics(sample, device):
    """As PyTorch's batch_norm: an empty output, and moving statistics left as they were (the mean of
    nothing is nan, which would otherwise poison them for good)."""
    layer = nn.BatchNormalization(moving_mean_initializer="ones", moving_variance_initializer="ones").to(device)
    layer.build(sample)
    layer.train()
    before = [b.numpy().copy() for b in (layer.moving_mean, layer.moving_variance)]
    x = tg.Tensor(np.zeros((0,) + sample, np.float32), device=device, requires_grad=True)
    out = layer(x)
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad.shape == x.shape
    for b, old in zip((layer.moving_mean, layer.moving_variance), before):
        np.testing.assert_array_equal(b.numpy(), old)
    for p in layer.parameters():
        np.testing.assert_array_equal(p.grad.numpy(), np.zeros(p.shape, np.float32))


def test_no_pieces_of_nothing():
    """The chunking that the CPU kernels share: an empty batch has no chunks, and work over no chunks
    runs once with nothing to draw (so an op's results, e.g. per-chunk gradient parts, are an empty list)."""
    from tinygrad_cnn.kernels import parallel
    assert parallel.pieces(0) == [] and parallel.pieces(0, least=4, most=2) == []
    assert parallel.pieces(3) == [slice(0, 1), slice(1, 2), slice(2, 3)]
    assert parallel.over_chunks(np, [], 1 << 30, lambda source: list(source)) == [[]]


# ---------------------------------------------------------------- functional ops, against PyTorch

def _conv(c):
    return lambda m, x, w, b: m.conv2d(x, w, b, padding=1), (c, 14, 14), [(4, c, 3, 3), (4,)]


def _conv_pool(c):
    def run(m, x, w, b):
        if m is F:
            return F.conv2d_max_pool2d(x, w, b, padding=1, pool_size=2, relu=True)
        return m.max_pool2d(m.relu(m.conv2d(x, w, b, padding=1)), 2)
    return run, (c, 14, 14), [(4, c, 3, 3), (4,)]


FUNCTIONAL = {
    "conv2d_1ch": _conv(1),
    "conv2d_32ch": _conv(32),
    "conv2d_max_pool2d_1ch": _conv_pool(1),
    "conv2d_max_pool2d_32ch": _conv_pool(32),
    "conv2d_strided": (lambda m, x, w: m.conv2d(x, w, stride=2), (3, 9, 9), [(4, 3, 3, 3)]),
    "max_pool2d": (lambda m, x: m.max_pool2d(x, 2), (3, 8, 8), []),
    "avg_pool2d": (lambda m, x: m.avg_pool2d(x, 2), (3, 8, 8), []),
    "linear": (lambda m, x, w, b: m.linear(x, w, b), (7,), [(5, 7), (5,)]),
    "softmax": (lambda m, x: m.softmax(x, 1), (6,), []),
    "log_softmax": (lambda m, x: m.log_softmax(x, 1), (6,), []),
}


@needs_torch
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(FUNCTIONAL))
def test_functional_op_on_an_empty_batch_as_pytorch(name, device):
    run, sample, weights = FUNCTIONAL[name]
    rng = np.random.default_rng(0)
    arrays = [np.zeros((0,) + sample, np.float32)] + [rng.standard_normal(s).astype(np.float32) for s in weights]
    ours = [tg.Tensor(a, device=device, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, expected = run(F, *ours), run(torch.nn.functional, *theirs)
    assert out.shape == tuple(expected.shape)
    out.sum().backward()
    expected.sum().backward()
    for a, b in zip(ours, theirs):
        assert a.grad.shape == tuple(b.grad.shape)
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())


# ---------------------------------------------------------------- reductions, against PyTorch

MEANS = [((0,), None), ((0, 3), None), ((0, 3), 0), ((0, 3), 1), ((2, 0), 1), ((2, 0, 3), (1, 2)), ((2, 0), 0)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape, axis", MEANS)
def test_mean_of_nothing_is_a_silent_nan_as_pytorch(shape, axis, device):
    """torch.empty(0).mean() is nan with no warning; ours gives the same values, shapes and (empty or
    zero-size) gradients, with no RuntimeWarning (an error in this module)."""
    x = tg.Tensor(np.zeros(shape, np.float32), device=device, requires_grad=True)
    out = x.mean(axis=axis)
    out.sum().backward()
    assert x.grad.shape == shape
    if torch is not None:
        expected = torch.zeros(shape).mean() if axis is None else torch.zeros(shape).mean(dim=axis)
        np.testing.assert_array_equal(out.numpy(), expected.numpy())
    else:
        assert np.isnan(out.numpy()).all()


# ---------------------------------------------------------------- losses, against PyTorch

LOSSES = {
    "cross_entropy": (F.cross_entropy, "cross_entropy", "classes"),
    "nll_loss": (F.nll_loss, "nll_loss", "classes"),
    "binary_cross_entropy": (F.binary_cross_entropy, "binary_cross_entropy", "binary"),
    "binary_cross_entropy_with_logits": (F.binary_cross_entropy_with_logits, "binary_cross_entropy_with_logits",
                                         "binary"),
    "mse_loss": (F.mse_loss, "mse_loss", "binary"),
}


def _empty_loss_arguments(kind):
    if kind == "classes":
        return np.zeros((0, 10), np.float32), np.zeros((0,), np.int64)
    return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_of_an_empty_batch(name, reduction, device):
    """mean of nothing is nan (0 / 0), sum is 0, none is empty; the input's gradient is empty."""
    ours, _, kind = LOSSES[name]
    x, t = _empty_loss_arguments(kind)
    logits = tg.Tensor(x, device=device, requires_grad=True)
    loss = ours(logits, tg.Tensor(t, device=device), reduction=reduction)
    value = loss.numpy()
    if reduction == "none":
        assert value.shape == ((0,) if kind == "classes" else (0, 3))
    else:
        assert value.shape == () and (np.isnan(value) if reduction == "mean" else value == 0), value
    loss.sum().backward()
    assert logits.grad.shape == x.shape


@needs_torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_of_an_empty_batch_as_pytorch(name, reduction):
    ours, theirs, kind = LOSSES[name]
    x, t = _empty_loss_arguments(kind)
    logits = tg.Tensor(x, requires_grad=True)
    loss = ours(logits, tg.Tensor(t), reduction=reduction)
    expected = getattr(torch.nn.functional, theirs)(torch.tensor(x), torch.tensor(t), reduction=reduction)
    np.testing.assert_array_equal(loss.numpy(), expected.numpy())


@pytest.mark.parametrize("name", ["SparseCategoricalCrossentropy", "CategoricalCrossentropy", "BinaryCrossentropy",
                                  "MeanSquaredError"])
def test_keras_loss_of_an_empty_batch_is_nan(name):
    """The Keras-style losses take the mean over the batch: of nothing, nan, as PyTorch's mean (Keras
    itself returns an empty tensor there, which is no loss at all)."""
    from tinygrad_cnn.keras import losses
    out = tg.Tensor(np.zeros((0, 10), np.float32), requires_grad=True)
    y = np.zeros((0,), np.int64) if name.startswith("Sparse") else np.zeros((0, 10), np.float32)
    loss = getattr(losses, name)()(y, out)
    assert loss.shape == () and np.isnan(loss.numpy())
    loss.backward()
    assert out.grad.shape == out.shape
