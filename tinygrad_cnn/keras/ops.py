"""keras.ops-style functions that take NumPy or CuPy arrays, lists or Tensors and return Tensors (with
.numpy()), as Keras' own do; `tf.argmax` and `tf.convert_to_tensor` are these too."""
from ..nn import functional as F
from ..spellings import torch_names
from ..tensor import Tensor


def convert_to_tensor(x, dtype=None):
    """A Tensor from an array, a list, a number or a Tensor (floats as float32 unless dtype says)."""
    if isinstance(x, Tensor):
        return x if dtype is None else x.astype(dtype)
    return Tensor(x, dtype=dtype)


def convert_to_numpy(x):
    """A NumPy array from a Tensor or anything array-like."""
    return convert_to_tensor(x).numpy()


@torch_names
def argmax(x, axis=None, keepdims=False):
    """Index of the maximum along `axis`, an integer Tensor; axis=None (Keras 3's default) indexes the
    flattened input."""
    return F.as_tensor(x, "argmax input").argmax(axis=axis, keepdims=keepdims)


@torch_names
def argmin(x, axis=None, keepdims=False):
    """Index of the minimum along `axis`, an integer Tensor; axis=None (Keras 3's default) indexes the
    flattened input."""
    return F.as_tensor(x, "argmin input").argmin(axis=axis, keepdims=keepdims)


@torch_names
def sum(x, axis=None, keepdims=False):  # noqa: A001 (Keras' name)
    """Sum over `axis` (all axes by default)."""
    return F.as_tensor(x, "sum input").sum(axis=axis, keepdims=keepdims)


@torch_names
def mean(x, axis=None, keepdims=False):
    """Mean over `axis` (all axes by default)."""
    return F.as_tensor(x, "mean input").mean(axis=axis, keepdims=keepdims)


@torch_names
def max(x, axis=None, keepdims=False):  # noqa: A001 (Keras' name)
    """Maximum over `axis` (all axes by default)."""
    return F.as_tensor(x, "max input").max(axis=axis, keepdims=keepdims)


@torch_names
def min(x, axis=None, keepdims=False):  # noqa: A001 (Keras' name)
    """Minimum over `axis` (all axes by default)."""
    return F.as_tensor(x, "min input").min(axis=axis, keepdims=keepdims)


def reshape(x, new_shape):
    """x in a new shape (one size may be -1)."""
    return F.as_tensor(x, "reshape input").reshape(new_shape)


def one_hot(x, num_classes):
    """Class indices as one-hot float32 rows (a Tensor)."""
    from .utils import to_categorical
    return Tensor(to_categorical(convert_to_numpy(x), num_classes))


relu, sigmoid, tanh, softmax, log_softmax = F.relu, F.sigmoid, F.tanh, F.softmax, F.log_softmax

__all__ = ["convert_to_tensor", "convert_to_numpy", "argmax", "argmin", "sum", "mean", "max", "min", "reshape",
           "one_hot", "relu", "sigmoid", "tanh", "softmax", "log_softmax"]
