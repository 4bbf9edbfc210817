"""Keras' "Simple MNIST convnet" (keras.io/examples/vision/mnist_convnet): two Conv2D + MaxPooling2D,
Dropout, a softmax Dense, one-hot labels from keras.utils.to_categorical, categorical cross-entropy, batch 128,
15 epochs with validation_split=0.1. Its code as written, with its import lines changed:
`import keras` -> `from tinygrad_cnn import keras`, `from keras import layers` -> `from tinygrad_cnn.keras
import layers` (the sys.path line only lets it run from a clone).

    python examples/keras_mnist_convnet.py
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a clone

import numpy as np  # noqa: E402
from tinygrad_cnn import keras  # noqa: E402  (was: import keras)
from tinygrad_cnn.keras import layers  # noqa: E402  (was: from keras import layers)

# ---------------------------------------------------------------- the tutorial's code from here on
# Model / data parameters
num_classes = 10
input_shape = (28, 28, 1)

# Load the data and split it between train and test sets
(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()

# Scale images to the [0, 1] range
x_train = x_train.astype("float32") / 255
x_test = x_test.astype("float32") / 255
# Make sure images have shape (28, 28, 1)
x_train = np.expand_dims(x_train, -1)
x_test = np.expand_dims(x_test, -1)
print("x_train shape:", x_train.shape)
print(x_train.shape[0], "train samples")
print(x_test.shape[0], "test samples")


# convert class vectors to binary class matrices
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

model = keras.Sequential(
    [
        keras.Input(shape=input_shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ]
)

model.summary()

batch_size = 128
epochs = 15

model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])

model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1)

score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", score[0])
print("Test accuracy:", score[1])
