"""Tests that catch plausible bugs the suite once let through (issue 27), each planted by hand and seen to
fail here: keras losses called directly ignoring from_logits, binary accuracy thresholding logits at 0.5, a
safetensors header not padded to 8 bytes, and an optimizer step that leaves its parameters' versions alone."""
import struct

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import keras, optim
from tinygrad_cnn.checkpoint import save_arrays


# ---------------------------------------------------------------- keras losses as function objects

def log_sigmoid(z):
    return -np.logaddexp(0.0, -z)


def log_softmax(z):
    return z - np.logaddexp.reduce(z, axis=-1, keepdims=True)


LOGITS_2D = np.array([[2.0, -1.0, 0.5], [-0.3, 0.8, 3.0]])
SPARSE = np.array([0, 2])
ONE_HOT = np.eye(3)[SPARSE]
Z = np.array([[1.5], [-2.0], [0.3]])
B = np.array([[1.0], [0.0], [0.0]])

LOSSES = [
    ("binary", keras.losses.BinaryCrossentropy, Z, B,
     -np.mean(B * log_sigmoid(Z) + (1 - B) * log_sigmoid(-Z))),
    ("sparse", keras.losses.SparseCategoricalCrossentropy, LOGITS_2D, SPARSE,
     -np.mean(log_softmax(LOGITS_2D)[np.arange(2), SPARSE])),
    ("categorical", keras.losses.CategoricalCrossentropy, LOGITS_2D, ONE_HOT,
     -np.mean((ONE_HOT * log_softmax(LOGITS_2D)).sum(axis=1))),
]


@pytest.mark.parametrize("cls, logits, targets, expected", [row[1:] for row in LOSSES], ids=[r[0] for r in LOSSES])
def test_a_loss_object_called_directly_honours_from_logits(cls, logits, targets, expected):
    """loss(y_true, y_pred) as Keras users call it, outside fit(): from_logits=True must read y_pred as logits."""
    loss = cls(from_logits=True)(targets, tg.Tensor(logits))
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-6)


@pytest.mark.parametrize("cls, logits, targets, expected", [row[1:] for row in LOSSES], ids=[r[0] for r in LOSSES])
def test_a_loss_object_called_directly_on_probabilities(cls, logits, targets, expected):
    """The same loss from the probabilities, with from_logits=False: the same value (up to Keras' clip)."""
    probs = 1 / (1 + np.exp(-logits)) if cls is keras.losses.BinaryCrossentropy else np.exp(log_softmax(logits))
    loss = cls(from_logits=False)(targets, tg.Tensor(probs))
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-5)


# ---------------------------------------------------------------- binary accuracy of a logits model

def dense1_with_outputs(outputs):
    """A Dense(1) model (no activation) whose outputs on x = [[o, 1]] are o: weight (1, 0), bias 0."""
    model = keras.Sequential([keras.layers.Dense(1, input_shape=(2,))])
    model.set_weights([np.array([[1.0], [0.0]], np.float32), np.zeros(1, np.float32)])
    x = np.stack([np.asarray(outputs, np.float32), np.ones(len(outputs), np.float32)], axis=1)
    return model, x


@pytest.mark.parametrize("metric", ["accuracy", "binary_accuracy"])
def test_binary_accuracy_of_a_logits_model_thresholds_at_zero(metric):
    """sigmoid(z) > 0.5 exactly when z > 0: for a model trained with a logits loss, logits in (0, 0.5) are
    positive answers. Thresholding them at 0.5 (as for probabilities) would score these 0.5, not 1."""
    logits = [0.2, -0.3, 0.4, 0.1, -2.0, 3.0]
    labels = np.array([1, 0, 1, 1, 0, 1])
    model, x = dense1_with_outputs(logits)
    model.compile(optimizer="sgd", loss=keras.losses.BinaryCrossentropy(from_logits=True), metrics=[metric])
    loss, accuracy = model.evaluate(x, labels, verbose=0)
    assert accuracy == 1.0
    expected = np.mean(np.logaddexp(0, -np.array(logits)) * labels + np.logaddexp(0, logits) * (1 - labels))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_binary_accuracy_of_a_sigmoid_model_thresholds_probabilities_at_half():
    """The control: the same answers as probabilities (a sigmoid model, from_logits=False) agree."""
    logits = np.array([0.2, -0.3, 0.4, 0.1, -2.0, 3.0])
    labels = np.array([1, 0, 1, 0, 0, 1])   # one wrong answer: 0.1 > 0 says 1
    model, x = dense1_with_outputs(logits)
    model.add(keras.layers.Activation("sigmoid"))
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    _, accuracy = model.evaluate(x, labels, verbose=0)
    assert accuracy == pytest.approx(5 / 6)


# ---------------------------------------------------------------- safetensors alignment

@pytest.mark.parametrize("names", [["w"], ["a", "bb", "ccc"], ["weight_with_a_longer_name", "b"]])
def test_safetensors_data_start_8_byte_aligned(tmp_path, names):
    """The format pads the JSON header with spaces so that the data begin at a multiple of 8 bytes."""
    for extra in range(8):  # header lengths of every residue modulo 8
        path = tmp_path / f"m{extra}.safetensors"
        save_arrays(path, {name: np.zeros(3, np.float64) for name in names}, metadata={"k": "v" * extra})
        raw = path.read_bytes()
        (n,) = struct.unpack("<Q", raw[:8])
        assert n % 8 == 0 and (8 + n) % 8 == 0, (extra, n)
        assert raw[8:8 + n].rstrip(b" ").endswith(b"}")   # the padding is spaces after the JSON


# ---------------------------------------------------------------- optimizer steps bump versions

@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.1), lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
                                  lambda p: optim.Adam(p), lambda p: optim.AdamW(p)],
                         ids=["SGD", "SGD-momentum", "Adam", "AdamW"])
def test_backward_through_a_graph_whose_parameters_a_step_changed_raises(make):
    """backward(retain_graph=True), step(), backward(): the graph saved the old weights, so the second
    backward would silently return gradients of weights that no longer exist."""
    w = tg.Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    optimizer = make([w])
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    optimizer.step()
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_a_step_that_skips_a_parameter_without_gradient_leaves_its_graph_usable():
    """The control: a parameter the step does not change (no gradient) keeps its version."""
    w = tg.Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    v = tg.Tensor(np.array([3.0], np.float32), requires_grad=True)
    optimizer = optim.SGD([w, v], lr=0.1)
    (w * w).sum().backward()
    loss_v = (v * v).sum()
    optimizer.step()              # v has no gradient: untouched
    loss_v.backward()
    np.testing.assert_allclose(v.grad.numpy(), [6.0])
