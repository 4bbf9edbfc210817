"""keras.ops-style functions that take NumPy or CuPy arrays, lists or Tensors and return Tensors (with
.numpy()), as Keras' own do; `tf.argmax` and `tf.convert_to_tensor` are these too."""
from ..nn import functional as F
from ..spellings import torch_names
from .. import tensor as _tensor
from ..tensor import Tensor
from .offered import not_offered


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


def ones(shape, dtype=None):
    """A Tensor of ones of `shape` (float32 unless dtype says)."""
    return _tensor.ones(shape, dtype=dtype or "float32")


def zeros(shape, dtype=None):
    """A Tensor of zeros of `shape` (float32 unless dtype says)."""
    return _tensor.zeros(shape, dtype=dtype or "float32")


def _binary(method):
    def op(x1, x2):
        x1 = F.as_tensor(x1, f"{method} input")
        return getattr(x1, f"__{method}__")(x2)
    op.__name__ = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "divide"}[method]
    op.__doc__ = f"Elementwise {op.__name__} (NumPy's broadcasting), a Tensor."
    return op


add, subtract, multiply, divide = _binary("add"), _binary("sub"), _binary("mul"), _binary("truediv")


def matmul(x1, x2):
    """Matrix product with NumPy's rules (1-D, 2-D and batched operands)."""
    return _tensor.matmul(F.as_tensor(x1, "matmul input"), F.as_tensor(x2, "matmul input"))


def _unary(name, doc):
    def op(x):
        return getattr(F.as_tensor(x, f"{name} input"), name)()
    op.__name__, op.__doc__ = name, doc
    return op


abs = _unary("abs", "Elementwise |x|.")  # noqa: A001 (Keras' name)
sqrt = _unary("sqrt", "Elementwise square root (nan below 0, as Keras).")
exp = _unary("exp", "Elementwise e**x.")
log = _unary("log", "Elementwise natural logarithm (nan below 0, -inf at 0, as Keras).")


def square(x):
    """Elementwise x * x."""
    x = F.as_tensor(x, "square input")
    return x * x


def shape(x):
    """The shape as a tuple of ints."""
    return tuple(F.as_tensor(x, "shape input").shape)


def cast(x, dtype):
    """x as `dtype` (a Tensor)."""
    return F.as_tensor(x, "cast input").astype(dtype)


def concatenate(xs, axis=0):
    """Join arrays along an existing axis."""
    return _tensor.concatenate([F.as_tensor(x, "concatenate input") for x in xs], axis=axis)


def stack(x, axis=0):
    """Join arrays of one shape along a new axis."""
    return _tensor.stack([F.as_tensor(t, "stack input") for t in x], axis=axis)


def expand_dims(x, axis):
    """x with a new axis of size 1 at `axis`."""
    return F.as_tensor(x, "expand_dims input").expand_dims(axis)


def squeeze(x, axis=None):
    """x without its axes of size 1 (or only `axis`)."""
    return F.as_tensor(x, "squeeze input").squeeze(axis)


def transpose(x, axes=None):
    """x with its axes reversed, or in the order `axes` gives."""
    x = F.as_tensor(x, "transpose input")
    return x.transpose() if axes is None else x.transpose(tuple(axes))


def _comparison(method, name):
    def op(x1, x2):
        return getattr(F.as_tensor(x1, f"{name} input"), method)(x2)
    op.__name__, op.__doc__ = name, f"Elementwise x1 {method.strip('_')} x2 (NumPy's broadcasting), a bool Tensor."
    return op


equal, not_equal = _comparison("__eq__", "equal"), _comparison("__ne__", "not_equal")
greater, greater_equal = _comparison("__gt__", "greater"), _comparison("__ge__", "greater_equal")
less, less_equal = _comparison("__lt__", "less"), _comparison("__le__", "less_equal")


def _logical(name):
    def op(x1, x2):
        x1 = F.as_tensor(x1, f"{name} input")
        x2 = x1._operand(x2, name)
        return Tensor.wrap(getattr(x1.xp, name)(x1.data, x2.data), x1.device)
    op.__name__, op.__doc__ = name, f"Elementwise {name.replace('_', ' ')} of truth values, a bool Tensor."
    return op


logical_and, logical_or = _logical("logical_and"), _logical("logical_or")


def logical_not(x):
    """Elementwise not of truth values, a bool Tensor."""
    x = F.as_tensor(x, "logical_not input")
    return Tensor.wrap(x.xp.logical_not(x.data), x.device)


def maximum(x1, x2):
    """Elementwise maximum (NumPy's broadcasting)."""
    return F.as_tensor(x1, "maximum input").maximum(x2)


def minimum(x1, x2):
    """Elementwise minimum (NumPy's broadcasting)."""
    return F.as_tensor(x1, "minimum input").minimum(x2)


def clip(x, x_min, x_max):
    """x clamped to [x_min, x_max]."""
    return F.as_tensor(x, "clip input").clip(x_min, x_max)


def where(condition, x1, x2):
    """x1 where condition holds, else x2."""
    return _tensor.where(condition, F.as_tensor(x1, "where input"), x2)


def broadcast_to(x, shape):
    """x broadcast to `shape` (NumPy's rules)."""
    return F.as_tensor(x, "broadcast_to input").broadcast_to(tuple(shape))


def divide_no_nan(x1, x2):
    """x1 / x2, 0 where x2 is 0 (Keras' safe division, as in precision = tp / (tp + fp))."""
    x1, x2 = F.as_tensor(x1, "divide_no_nan input"), F.as_tensor(x2, "divide_no_nan input")
    zero = x2 == 0
    return _tensor.where(zero, 0.0, x1 / _tensor.where(zero, 1.0, x2))


relu, sigmoid, tanh, softmax, log_softmax = F.relu, F.sigmoid, F.tanh, F.softmax, F.log_softmax

__all__ = ["convert_to_tensor", "convert_to_numpy", "argmax", "argmin", "sum", "mean", "max", "min", "reshape",
           "one_hot", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "ones", "zeros", "add", "subtract",
           "multiply", "divide", "matmul", "abs", "sqrt", "exp", "log", "square", "shape", "cast", "concatenate",
           "stack", "expand_dims", "squeeze", "transpose", "equal", "not_equal", "greater", "greater_equal", "less",
           "less_equal", "logical_and", "logical_or", "logical_not", "maximum", "minimum", "clip", "where",
           "broadcast_to", "divide_no_nan"]
__getattr__ = not_offered("keras.ops", __all__)
