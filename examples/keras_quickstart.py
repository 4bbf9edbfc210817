"""TensorFlow's "beginner quickstart" (tensorflow.org/tutorials/quickstart/beginner): MNIST with
Flatten, Dense, Dropout, Dense logits, SparseCategoricalCrossentropy(from_logits=True), 5 epochs of Adam,
then a probability model with Softmax. Its code as written, with one changed line:
`import tensorflow as tf` -> `import tinygrad_cnn as tf` (the sys.path line only lets it run from a clone).

    python examples/keras_quickstart.py
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a clone

import tinygrad_cnn as tf  # noqa: E402  (was: import tensorflow as tf)

# ---------------------------------------------------------------- the tutorial's code from here on
print("TensorFlow version:", tf.__version__)

mnist = tf.keras.datasets.mnist

(x_train, y_train), (x_test, y_test) = mnist.load_data()
x_train, x_test = x_train / 255.0, x_test / 255.0

model = tf.keras.models.Sequential([
  tf.keras.layers.Flatten(input_shape=(28, 28)),
  tf.keras.layers.Dense(128, activation='relu'),
  tf.keras.layers.Dropout(0.2),
  tf.keras.layers.Dense(10)
])

predictions = model(x_train[:1]).numpy()
predictions

tf.nn.softmax(predictions).numpy()

loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

loss_fn(y_train[:1], predictions).numpy()

model.compile(optimizer='adam',
              loss=loss_fn,
              metrics=['accuracy'])

model.fit(x_train, y_train, epochs=5)

model.evaluate(x_test,  y_test, verbose=2)

probability_model = tf.keras.Sequential([
  model,
  tf.keras.layers.Softmax()
])

probability_model(x_test[:5])
