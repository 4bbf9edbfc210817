"""The tutorial's Keras code, as written, with one changed line: `import tinygrad_cnn as tf`.

    python examples/keras_mnist.py
    python examples/keras_mnist.py --epochs 1 --limit-train 6000 --limit-test 1000   # a quick look

It trains the tutorial's CNN for 5 epochs (batch 32, Adam) on the bundled MNIST and evaluates it
on the 10,000 test images. tf.manual_seed(0) is the one line added, so that runs repeat; the flags
(the same as examples/mnist.py's) only shorten the run, the defaults are the tutorial's.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))  # run from a clone
sys.path.insert(0, HERE)

import tinygrad_cnn as tf  # noqa: E402
from mnist import at_least_1  # noqa: E402  (the same flag check as the main example)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=at_least_1, default=5, help="epochs to train (the tutorial's 5)")
    p.add_argument("--limit-train", type=at_least_1, default=None, help="use only the first N training images")
    p.add_argument("--limit-test", type=at_least_1, default=None, help="use only the first N test images")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    tf.manual_seed(0)

    # ------------------------------------------------------------ the tutorial's code from here on
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
    x_train, y_train = x_train[:args.limit_train], y_train[:args.limit_train]  # None: all of them
    x_test, y_test = x_test[:args.limit_test], y_test[:args.limit_test]
    history = model.fit(x_train[..., None] / 255.0, y_train, epochs=args.epochs,
                        validation_data=(x_test[..., None] / 255.0, y_test))
    return history, model.evaluate(x_test[..., None] / 255.0, y_test)


if __name__ == "__main__":
    main()
