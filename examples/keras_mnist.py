"""The tutorial's Keras code, as written, with one changed line: `import tinygrad_cnn as tf`.

    python examples/keras_mnist.py

It trains the tutorial's CNN for 5 epochs (batch 32, Adam) on the bundled MNIST and evaluates it
on the 10,000 test images. tf.manual_seed(0) is the one line added, so that runs repeat.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a clone

import tinygrad_cnn as tf  # noqa: E402

tf.manual_seed(0)

# ---------------------------------------------------------------- the tutorial's code from here on
model = tf.keras.Sequential([
    tf.keras.layers.Conv2D(32, (3,3), padding='same', activation=tf.nn.relu, input_shape=(28, 28, 1)),
    tf.keras.layers.MaxPooling2D((2, 2), strides=2),
    tf.keras.layers.Conv2D(64, (3,3), padding='same', activation=tf.nn.relu),
    tf.keras.layers.MaxPooling2D((2, 2), strides=2),
    tf.keras.layers.Flatten(),
    tf.keras.layers.Dense(128, activation=tf.nn.relu),
    tf.keras.layers.Dense(10, activation=tf.nn.softmax)
])
model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
(x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data()
history = model.fit(x_train[..., None] / 255.0, y_train, epochs=5, validation_data=(x_test[..., None] / 255.0, y_test))
model.evaluate(x_test[..., None] / 255.0, y_test)
