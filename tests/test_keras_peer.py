"""tinygrad_cnn.keras against real Keras (issue 13): from the same initial weights and the same
batches, the tutorial's model trains to the same weights. Skipped where Keras 3 with its torch
backend is not installed (as in CI): `pip install keras torch==2.13.0`, then run with KERAS_BACKEND=torch."""
import os

import numpy as np
import pytest

import tinygrad_cnn as tf
from tinygrad_cnn import optim

pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")
os.environ.setdefault("KERAS_BACKEND", "torch")
real_keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install keras)")
if real_keras.backend.backend() != "torch":
    pytest.skip("Keras runs on another backend; set KERAS_BACKEND=torch", allow_module_level=True)

STEPS, BATCH = 3, 32  # NOTE: later, ties and rounding grow the drift (4e-4 after 4 steps, 2e-3 after 10)


def tutorial(layers, **first):
    return [layers.Conv2D(32, (3, 3), padding="same", activation="relu", **first),
            layers.MaxPooling2D((2, 2), strides=2),
            layers.Conv2D(64, (3, 3), padding="same", activation="relu"),
            layers.MaxPooling2D((2, 2), strides=2),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="softmax")]


def drift(ours, theirs):
    """Largest difference per weight array, relative to that array's largest value (get_weights gives
    Keras' layouts both sides)."""
    return max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in zip(theirs, ours))


@pytest.fixture(scope="module")
def trained():
    (x, y), _ = tf.keras.datasets.mnist.load_data()
    x, y = (x[:STEPS * BATCH, ..., None] / 255.0).astype("float32"), y[:STEPS * BATCH]
    real_keras.utils.set_random_seed(0)
    theirs = real_keras.Sequential([real_keras.Input((28, 28, 1))] + tutorial(real_keras.layers))
    theirs.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    start = theirs.get_weights()
    theirs.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    return x, y, start, theirs.get_weights()


def test_fit_follows_real_keras_from_the_same_start(trained):
    x, y, start, theirs = trained
    ours = tf.keras.Sequential(tutorial(tf.keras.layers, input_shape=(28, 28, 1)))
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ours.set_weights(start)
    ours.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    assert drift(ours.get_weights(), theirs) < 1e-4  # NOTE: measured 1.2e-5 on 2026-12-03 (float32 rounding)


def test_pytorch_placement_of_epsilon_drifts_from_keras(trained):
    """The check above can fail: PyTorch's Adam (eps after the bias correction) from the same start."""
    x, y, start, theirs = trained
    ours = tf.keras.Sequential(tutorial(tf.keras.layers, input_shape=(28, 28, 1)))
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ours.set_weights(start)
    ours.compile(optimizer=optim.Adam(ours.parameters(), lr=1e-3, eps=1e-7), loss="sparse_categorical_crossentropy")
    ours.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    assert drift(ours.get_weights(), theirs) > 1e-2
