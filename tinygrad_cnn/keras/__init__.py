"""Keras' API over tinygrad_cnn: the tutorial's `tf.keras` code runs after `import tinygrad_cnn as tf`.

A thin front end: the layers are tinygrad_cnn.nn's with Keras' defaults (channels-last images),
and Sequential adds compile / fit / evaluate / predict. `datasets.mnist.load_data()` reads the
bundled MNIST files."""
from .. import datasets
from . import callbacks, layers, losses, metrics, models, ops, optimizers, utils
from .functional import Model
from .layers import Input
from .models import Sequential

models.Model = Model  # keras.models.Model, as in Keras (functional imports models, so it is attached here)

__all__ = ["Sequential", "Model", "Input", "layers", "models", "optimizers", "losses", "metrics", "callbacks",
           "datasets", "utils", "ops"]
