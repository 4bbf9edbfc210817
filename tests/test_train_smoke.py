"""End to end on real MNIST: the tutorial's CNN, one epoch on a slice of the training set, must
classify held-out test digits well above chance (about 5 s on 2 CPU cores).

NOTE: the slice is 4,000 images with He initialisation. With 2,000 images and one epoch the
tutorial model (Keras' Glorot init) lands at 82-89% over seeds, and PyTorch's identical model
does the same, so a 90% bar there would test the seed rather than the framework."""
import time

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import nn, optim
from tinygrad_cnn.data import DataLoader
from tinygrad_cnn.datasets import mnist
from tinygrad_cnn.nn import functional as F

TRAIN_IMAGES, TEST_IMAGES, BATCH_SIZE, LR, SEED = 4000, 1000, 32, 1e-3, 0


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_one_epoch_of_the_tutorial_cnn_beats_90_percent(mode):
    """With the kernels (the default), and once on the reference ops (tinygrad_cnn.kernels.reference())."""
    with tg.kernels.enabled() if mode == "fast" else tg.kernels.reference():
        _one_epoch(mode)


def _one_epoch(mode):
    start = time.perf_counter()
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    tg.manual_seed(SEED)
    model = nn.Sequential([
        nn.Conv2D(32, 3, padding="same", activation="relu", kernel_initializer="he_uniform"),
        nn.MaxPool2D(2, strides=2),
        nn.Conv2D(64, 3, padding="same", activation="relu", kernel_initializer="he_uniform"),
        nn.MaxPool2D(2, strides=2),
        nn.Flatten(),
        nn.Dense(128, activation="relu", kernel_initializer="he_uniform"),
        nn.Dense(10, activation="softmax"),
    ], input_shape=(1, 28, 28))
    assert model.count_params() == 421_642
    optimizer = optim.Adam(model.parameters(), lr=LR)

    model.train()
    losses = []
    for xb, yb in DataLoader(x_train[:TRAIN_IMAGES], y_train[:TRAIN_IMAGES], batch_size=BATCH_SIZE,
                             shuffle=True, seed=SEED, transform=mnist.to_float_images):
        loss = F.cross_entropy(model.logits(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    model.eval()
    correct = 0
    with tg.no_grad():
        for xb, yb in DataLoader(x_test[:TEST_IMAGES], y_test[:TEST_IMAGES], batch_size=500,
                                 transform=mnist.to_float_images):
            probs = model(xb)
            correct += int((probs.numpy().argmax(axis=1) == yb.numpy()).sum())
    accuracy = correct / TEST_IMAGES
    elapsed = time.perf_counter() - start
    print(f"MNIST smoke test ({mode}): accuracy {accuracy:.3f} on {TEST_IMAGES} test images, {elapsed:.1f} s")
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:5])
    assert accuracy > 0.90, f"accuracy {accuracy:.3f} after one epoch on {TRAIN_IMAGES} images"


def test_the_reference_ops_train_the_tutorial_model_to_the_kernels_weights():
    """The tutorial's CNN in float64, a few Adam steps from the same start on the same batches: the
    reference path (plain ops, per-parameter Adam) ends at the weights of the fast path."""
    rng = np.random.default_rng(0)
    x, y = rng.random((48, 1, 28, 28)), rng.integers(0, 10, 48)
    weights = []
    for switch in (tg.kernels.enabled, tg.kernels.reference):
        tg.manual_seed(0)
        model = nn.Sequential([
            nn.Conv2D(32, 3, padding="same", activation="relu", dtype="float64"), nn.MaxPool2D(2, strides=2),
            nn.Conv2D(64, 3, padding="same", activation="relu", dtype="float64"), nn.MaxPool2D(2, strides=2),
            nn.Flatten(), nn.Dense(128, activation="relu", dtype="float64"), nn.Dense(10, dtype="float64"),
        ], input_shape=(1, 28, 28))
        optimizer = optim.Adam(model.parameters(), lr=1e-3)
        with switch():
            for step in range(3):
                batch = slice(16 * step, 16 * step + 16)
                loss = F.cross_entropy(model(tg.Tensor(x[batch])), y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            assert (optimizer.engine is None) == (switch is tg.kernels.reference)
        weights.append([p.numpy() for p in model.parameters()])
    for fast, reference in zip(*weights):
        np.testing.assert_allclose(reference, fast, rtol=1e-9, atol=1e-12)
