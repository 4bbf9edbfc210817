"""Keras' API over tinygrad_cnn: the tutorial's `tf.keras` code runs after `import tinygrad_cnn as tf`.

A thin front end: the layers are tinygrad_cnn.nn's with Keras' defaults (channels-last images),
and Sequential adds compile / fit / evaluate / predict. `datasets.mnist.load_data()` reads the
bundled MNIST files."""
from .. import datasets
from . import backend, callbacks, config, layers, losses, metrics, models, ops, optimizers, saving, utils
from .functional import Model
from .layers import Input
from .models import Sequential
from .offered import not_offered

# keras.models.Model and keras.models.load_model, as in Keras (both modules import models: attached here)
models.Model, models.load_model = Model, saving.load_model

__all__ = ["Sequential", "Model", "Input", "layers", "models", "optimizers", "losses", "metrics", "callbacks",
           "datasets", "utils", "ops", "saving", "backend", "config"]
__getattr__ = not_offered("keras", __all__)
