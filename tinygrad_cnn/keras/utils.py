"""keras.utils as tutorials use it: to_categorical, set_random_seed, normalize (and, as in Keras, the
register of your own classes that keras.saving also has)."""
import random as _python_random

import numpy

from ..tensor import Tensor, manual_seed
from .offered import not_offered
from .registry import (CustomObjectScope, custom_object_scope, get_custom_objects, get_registered_name,
                       get_registered_object, register_keras_serializable)


def _numpy(value, what):
    array = value.numpy() if isinstance(value, Tensor) else numpy.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be numeric, got dtype {array.dtype}")
    return array


def to_categorical(x, num_classes=None):
    """Class indices (any shape) as one-hot float32 rows: shape x.shape + (num_classes,); a trailing
    axis of size 1 is dropped first, as Keras does. num_classes defaults to max(x) + 1."""
    y = _numpy(x, "to_categorical: x")
    if y.dtype.kind == "f":
        if not numpy.all(numpy.isfinite(y)) or not numpy.all(y == numpy.round(y)):
            raise ValueError("to_categorical: x must hold whole class indices")
    y = y.astype("int64")
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    if y.size and y.min() < 0:
        raise ValueError(f"to_categorical: class indices must be >= 0, got {int(y.min())}")
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    elif isinstance(num_classes, bool) or not isinstance(num_classes, (int, numpy.integer)) or num_classes < 1:
        raise ValueError(f"to_categorical: num_classes must be a positive int, got {num_classes!r}")
    if y.size and y.max() >= num_classes:
        raise ValueError(f"to_categorical: class index {int(y.max())} is out of range for num_classes={num_classes}")
    out = numpy.zeros(y.shape + (int(num_classes),), dtype="float32")
    numpy.put_along_axis(out, y[..., None], 1.0, axis=-1)
    return out


def set_random_seed(seed):
    """Seed Python's random, NumPy's global generator and tinygrad_cnn's (weights, dropout, shuffling)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, numpy.integer)) or seed < 0:
        raise ValueError(f"set_random_seed: seed must be an int >= 0, got {seed!r}")
    _python_random.seed(int(seed))
    numpy.random.seed(int(seed) % 2 ** 32)
    manual_seed(int(seed))


def normalize(x, axis=-1, order=2):
    """x divided by its `order`-norm along `axis` (zero vectors stay zero), as a NumPy array."""
    array = _numpy(x, "normalize: x").astype("float32", copy=False) if not isinstance(x, Tensor) \
        else x.numpy()
    norm = numpy.linalg.norm(array, ord=order, axis=axis, keepdims=True)
    return array / numpy.where(norm == 0, 1, norm).astype(array.dtype)


__all__ = ["to_categorical", "set_random_seed", "normalize", "register_keras_serializable", "get_custom_objects",
           "get_registered_name", "get_registered_object", "CustomObjectScope", "custom_object_scope"]
__getattr__ = not_offered('keras.utils', __all__)
