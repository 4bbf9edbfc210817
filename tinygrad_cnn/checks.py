"""Argument checks for tensor.py: each takes what a caller passed to a Tensor method or function and
either returns it in the form the op takes (a shape tuple, a normalised axis, an index of arrays) or
raises the error that names the problem (shapes, dtypes, devices, argument names), never a deep NumPy
traceback or a silent wrong answer.

They live here, off the reading path (benchmarks/size.py), so that tensor.py reads as the operations,
each with a one-line call to its check. Nothing here computes a result or records a graph."""
import numbers
from collections.abc import Mapping

import numpy

from .autograd import is_grad_enabled
from .device import DeviceError, array_module, canonical_device, extremes, peek


class AxisError(ValueError, IndexError):
    """An axis outside a tensor's rank. Both a ValueError and an IndexError, as NumPy's AxisError, so
    code written for either (or for NumPy) catches it."""


# ---------------------------------------------------------------- kinds of values

def is_int(value):
    """A Python or NumPy integer, but not a bool (True is an int to Python, never a size or an axis here)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, numpy.bool_))


def seed(value, name="manual_seed"):
    """A seed is a Python or NumPy int >= 0 (NumPy's generators refuse the rest deep inside; None
    would seed from the operating system, silently unrepeatable)."""
    if not is_int(value):
        raise TypeError(f"{name}: seed must be an int >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{name}: seed must be an int >= 0, got {value!r}")


def is_float(dtype):
    """Whether `dtype` is a floating-point dtype (the only kind that carries gradients)."""
    return numpy.dtype(dtype).kind == "f"


def short(data, limit=60):
    """repr(data), cut to `limit` characters for an error message."""
    text = repr(data)
    return text if len(text) <= limit else text[:limit] + "..."


def tensor_data(data, dtype):
    """The constructor's data as an array (not yet on its device): nested lists must be rectangular, and
    only bool, int, uint and float values make a tensor; Python floats become float32 unless `dtype` is given."""
    if not hasattr(data, "dtype") or not hasattr(data, "shape"):
        try:
            array = numpy.asarray(data)
        except ValueError:  # NOTE: NumPy's "inhomogeneous shape" message does not say what to fix
            raise ValueError(f"Tensor needs rectangular data: the nested lists have rows of different "
                             f"lengths ({short(data)})") from None
        if array.dtype.kind == "f" and dtype is None:
            array = array.astype(numpy.float32)
        elif array.dtype.kind not in "biuf":
            raise TypeError(f"Tensor cannot hold {type(data).__name__} data of dtype {array.dtype}")
        return array
    if numpy.dtype(data.dtype).kind not in "biuf":
        raise TypeError(f"Tensor cannot hold arrays of dtype {data.dtype}")
    return data


def tensor_dtype(dtype, name="astype"):
    """A dtype a tensor can hold (as the constructor: complex, str and object are no tensor dtypes)."""
    dtype = numpy.dtype(dtype)
    if dtype.kind not in "biuf":
        raise TypeError(f"{name}: a Tensor holds bool, int, uint or float values, not {dtype}")
    return dtype


def can_require_grad(t, requires_grad):
    """Only a floating-point tensor can require a gradient, and only a leaf can stop requiring one."""
    if requires_grad and not is_float(t.dtype):
        raise TypeError(f"only floating-point tensors can require gradients, this one is {t.dtype.name}")
    if not requires_grad and t.grad_fn is not None:
        raise RuntimeError("requires_grad_(False) on a tensor produced by an op: use .detach() instead")


def number_argument(value, where, name):
    """A real number (int or float, not a bool), e.g. add_'s alpha."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, numpy.number)):
        raise TypeError(f"{where}: {name} must be a number, got {value!r}")


def deep_copyable(t):
    """copy.deepcopy takes leaves only (torch's rule): an op's result would lose its graph silently."""
    if t.grad_fn is not None:
        raise RuntimeError(f"copy.deepcopy: only tensors created explicitly by the user (graph leaves) can be "
                           f"deep-copied, this one was made by {type(t.grad_fn).__name__}; deep-copy "
                           f"t.detach() for its values, or the leaves it was computed from")


def one_element(t):
    """item()'s tensor holds one element."""
    if t.size != 1:
        raise ValueError(f"item() needs a tensor with one element, this one has shape {t.shape}")


def one_truth_value(t):
    """bool(t): only a tensor of one element is true or false."""
    if t.size != 1:
        raise ValueError(f"the truth value of a tensor with shape {t.shape} is ambiguous; use .any() or .all()")


def floating(t, name):
    """Ops defined on real numbers only (exp, log, softmax, ...) refuse integer and bool tensors."""
    if not is_float(t.dtype):
        raise TypeError(f"{name} needs a floating-point tensor, got {t.dtype.name}; use .float() first")


def not_bool(x, op_name, hint):
    """Arithmetic that bool tensors lack (subtraction, negation, relu), as in PyTorch."""
    if x.dtype.kind == "b":
        raise TypeError(f"{op_name} is not defined for bool tensors (shape {x.shape}): {hint}")


# ---------------------------------------------------------------- backward and in-place changes

def upstream_gradient(t, grad):
    """backward()'s `grad` as an array of t's shape, dtype and device; ones for a one-element t without one."""
    if grad is None:
        if t.size != 1:
            raise RuntimeError(f"backward() without a gradient needs a one-element tensor, this one has "
                               f"shape {t.shape}; pass backward(grad) with an upstream gradient")
        return t.xp.ones(t.data.shape, dtype=t.dtype)
    if isinstance(grad, tensor.Tensor):
        if grad.device != t.device:
            raise DeviceError(f"backward(): gradient is on {grad.device}, the tensor on {t.device}")
        grad = grad.data
    grad = t.xp.asarray(grad, dtype=t.dtype)
    if grad.shape != t.data.shape:
        raise ValueError(f"backward(): gradient shape {tuple(grad.shape)} does not match tensor shape {t.shape}")
    return grad


def can_change_in_place(t, name):
    """Refuse what PyTorch refuses: changing a tensor that autograd is tracking."""
    if not (is_grad_enabled() and t.requires_grad):
        return
    if t.grad_fn is None:
        raise RuntimeError(f"{name}: in-place change of a leaf tensor that requires grad; do it inside "
                           f"`with tg.no_grad():` (as an optimizer step does), or use the out-of-place op")
    raise RuntimeError(f"{name}: in-place change of a tensor computed with grad enabled (its graph would "
                       f"be wrong); use the out-of-place op, or do it under tg.no_grad()")


def no_grad_operand(other, name):
    """An in-place op's operand must not need a gradient: the op would drop its graph."""
    if is_grad_enabled() and other.requires_grad:
        raise RuntimeError(f"{name}: the operand requires grad; an in-place op would drop its graph; "
                           f"use the out-of-place op or tg.no_grad()")


def no_grad_value(value):
    """t[i] = value, where value must not need a gradient: the assignment would drop its graph."""
    if isinstance(value, tensor.Tensor) and is_grad_enabled() and value.requires_grad:
        raise RuntimeError("__setitem__: the value requires grad; assigning it would drop its graph; "
                           "use tg.where/concatenate, or tg.no_grad()")


def fits_in_place(t, values, name):
    """An in-place result keeps t's shape, and a float result does not go into an integer tensor."""
    if tuple(values.shape) != t.shape:
        raise ValueError(f"{name}: the result has shape {tuple(values.shape)}, which does not fit in place "
                         f"into a tensor of shape {t.shape}")
    float_into_int(t, values.dtype, f"{name}: a float result cannot be stored in place into")


def float_into_int(t, dtype, what):
    """Float values cannot be stored into an integer or bool tensor (they would be truncated)."""
    if numpy.dtype(dtype).kind == "f" and not is_float(t.dtype):
        raise TypeError(f"{what} a tensor of dtype {t.dtype}")


def one_fill_value(value):
    """fill_ takes one value."""
    if value.size != 1:
        raise ValueError(f"fill_: needs one value, got a tensor of shape {value.shape}; use copy_ for arrays")


def copy_source(t, src):
    """copy_'s source broadcast to t's shape."""
    try:
        return t.xp.broadcast_to(src.data, t.data.shape)
    except ValueError:
        raise ValueError(f"copy_: a source of shape {src.shape} does not broadcast to {t.shape}") from None


# ---------------------------------------------------------------- operands

def same_device(name, *tensors):
    """Tensors of one op live on one device."""
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise DeviceError(f"{name}: tensors live on different devices: {', '.join(sorted(devices))}")
    return tensors


def operand_device(t, other, op_name):
    """A binary op's other tensor lives on t's device."""
    if other.device != t.device:
        raise DeviceError(f"{op_name}: operands live on different devices, {t.device} and {other.device}")


def broadcastable(op_name, a, b):
    """Two shapes that broadcast together, checked before NumPy says it less clearly."""
    try:
        numpy.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op_name}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None


def int_power(a, b):
    """Integers to negative integer powers have no integer result (NumPy raises deep inside).
    `b` is a tensor or a Python int."""
    if a.dtype.kind not in "biu":
        return
    if isinstance(b, tensor.Tensor):
        # NOTE: an exponent tensor's values are read only where that costs no sync (device.peek)
        values = peek(b.data)
        if b.dtype.kind not in "iu" or values is None or not b.size:
            return
        b = int(values.min())
    if b < 0:
        raise ValueError(f"pow: an integer tensor ({a.dtype.name}) to a negative integer power ({b}) has no "
                         f"integer result; cast the base first, e.g. x.float() ** {b}")


def clip_bounds(t, low, high):
    """clip's bounds; on an integer tensor, integer bounds are brought into its dtype's range."""
    if low is None and high is None:
        raise ValueError("clip needs at least one of low and high")
    if t.dtype.kind in "iu" and all(b is None or is_int(b) for b in (low, high)):
        # NOTE: NumPy 2 raises OverflowError for an int bound outside the dtype's range; one on
        # the far side has no answer in the dtype, one on the near side changes nothing
        info = numpy.iinfo(t.dtype)
        if (high is not None and high < info.min) or (low is not None and low > info.max):
            raise ValueError(f"clip: bounds ({low}, {high}) leave no value of {t.dtype.name} "
                             f"({info.min} to {info.max}); cast the tensor first")
        low = None if low is None else max(int(low), info.min)
        high = None if high is None else min(int(high), info.max)
    return low, high


def matmul_operands(a, b):
    """Two tensors, neither 0-d, whose inner sizes match and whose batch axes broadcast (NumPy's rules)."""
    if not isinstance(a, tensor.Tensor) or not isinstance(b, tensor.Tensor):
        raise TypeError("matmul needs two tensors")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: scalars are not allowed, got shapes {a.shape} and {b.shape}; use *")
    inner_a = a.shape[-1]
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    batch_ok = True
    try:
        numpy.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        batch_ok = False
    if inner_a != inner_b or not batch_ok:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match "
                         f"(inner sizes {inner_a} and {inner_b})")
    same_device("matmul", a, b)


def where_shape(condition, cond, a, b):
    """The shape where's condition and values broadcast to; the condition on the values' device."""
    if isinstance(condition, tensor.Tensor) and condition.device != a.device:
        raise DeviceError(f"where: condition on {condition.device}, values on {a.device}")
    try:
        return numpy.broadcast_shapes(tuple(cond.shape), a.shape, b.shape)
    except ValueError:
        raise ValueError(f"where: shapes {tuple(cond.shape)}, {a.shape} and {b.shape} cannot be broadcast "
                         f"together") from None


# ---------------------------------------------------------------- shapes and axes

def shape(args):
    """Accept f(2, 3) and f((2, 3)) alike, as NumPy's reshape does; sizes must be integers
    (NOTE: int(6.7) would silently make 6)."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    bad = [s for s in args if not is_int(s)]
    if bad:
        raise TypeError(f"sizes and axes must be integers, got {bad[0]!r} in {args}")
    return tuple(int(s) for s in args)


def sizes(args, name):
    """A factory's shape: integers >= 0 (NOTE: NumPy says only "negative dimensions are not allowed")."""
    args = shape(args)
    if any(s < 0 for s in args):
        raise ValueError(f"{name}: sizes must be >= 0, got {args}")
    return args


def fill_value(value):
    """full's value: one real number."""
    if not isinstance(value, numbers.Number) or isinstance(value, complex):
        raise TypeError(f"full: fill_value must be a number, got {value!r}")


def arange_step(step):
    """arange's step: any number but 0."""
    if step == 0:
        raise ValueError("arange: step must not be 0")


def axis(t, axis):
    """Validate an axis argument (None, int or tuple) against t's rank: the axis as an int or a tuple of
    ints in [0, ndim), or None for all axes."""
    if axis is None:
        return None
    if not is_int(axis) and not (isinstance(axis, (tuple, list)) and all(is_int(a) for a in axis)):
        raise TypeError(f"axis must be None, an int or a tuple of ints, got {axis!r}")
    axis = int(axis) if is_int(axis) else tuple(int(a) for a in axis)
    axes = (axis,) if isinstance(axis, int) else axis
    rank = max(t.ndim, 1)  # NOTE: a 0-d tensor takes axis 0 or -1, as in PyTorch
    for a in axes:
        if not -rank <= a < rank:
            raise AxisError(f"axis {a} is out of range for a tensor of shape {t.shape}")
    normal = tuple(a % rank for a in axes)
    if len(set(normal)) != len(normal):
        raise ValueError(f"repeated axis in {axis}")
    if t.ndim == 0:
        return None  # reducing a 0-d tensor over its one "axis" is reducing it over all (none)
    return normal[0] if isinstance(axis, int) else normal


def something_to_pick(t, name, axis):
    """The max/min of no elements has no value (axis already checked); an empty tensor reduced
    over a non-empty axis is fine, an empty result."""
    if t.size == 0 and (axis is None or any(t.shape[a] == 0 for a in ((axis,) if isinstance(axis, int) else axis))):
        if axis is None:
            raise ValueError(f"{name} of an empty tensor (shape {t.shape}): there is no element to pick")
        raise ValueError(f"{name} over axis {axis} of shape {t.shape}: an axis of size 0 has no element "
                         f"to pick")


def norm_order(p):
    """norm's p as a float: "fro" (the default) and 2 the 2-norm, 1, inf or any other p > 0 (vector norms).
    NOTE: torch's matrix norms ("nuc", and p = -1, -2, -inf, 0 over two dims) are not offered: refused here."""
    if isinstance(p, str) and p == "fro":
        return 2.0
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not p > 0:
        raise ValueError(f"norm: p={p!r} is not offered; the vector norms are: p='fro' (the default, the 2-norm "
                         f"of the elements), 1, 2, float('inf') or any other p > 0 (matrix norms such as 'nuc', "
                         f"and p <= 0, are not)")
    return float(p)


def arg_axis(t, name, axis_arg):
    """argmax/argmin's axis: None or one int, over something to pick."""
    if isinstance(axis_arg, (tuple, list)):
        raise TypeError(f"{name}: axis must be None or an int (one axis), got {axis_arg!r}")
    axis_arg = axis(t, axis_arg)
    if t.size == 0 and (axis_arg is None or t.shape[axis_arg] == 0):
        where = "an empty tensor" if axis_arg is None else f"axis {axis_arg} of size 0"
        raise ValueError(f"{name} of {where} (shape {t.shape}): there is no element to pick")
    return axis_arg


def new_shape(t, args):
    """reshape's shape, with at most one -1, holding t's number of elements."""
    new = shape(args)
    known = [s for s in new if s != -1]
    size = 1
    for s in known:
        size *= s
    if new.count(-1) > 1 or any(s < -1 for s in new) or (
            -1 in new and (size == 0 or t.size % size)) or (-1 not in new and size != t.size):
        raise ValueError(f"cannot reshape a tensor of shape {t.shape} ({t.size} elements) into {new}")
    return new


def axis_span(t, start_axis, end_axis):
    """flatten's first and last axis, in order."""
    start, end = axis(t, start_axis), axis(t, end_axis)
    if start > end:
        raise ValueError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis}")
    return start, end


def permutation(t, args):
    """transpose's axes: a permutation of t's axes (reversed when none are given), counted from 0.
    Two distinct axes given apart, transpose(0, 1), swap those two, as torch's transpose(dim0, dim1) does.

    NOTE: only a 2-D tensor's transpose(0, 1) differs from NumPy's (an identity there); PyTorch code that
    wrote it meant x.T, and got x unchanged, silently. permute(...) and a tuple are NumPy's permutation."""
    if len(args) == 2 and all(is_int(a) for a in args) and t.ndim >= 2 and all(-t.ndim <= a < t.ndim for a in args):
        first, second = (a % t.ndim for a in args)
        if first != second:
            swapped = list(range(t.ndim))
            swapped[first], swapped[second] = second, first
            return tuple(swapped)
    axes = shape(args) if args else tuple(reversed(range(t.ndim)))
    # NOTE: range first: a % ndim alone would map axis 5 of a 2-D tensor onto axis 1
    out_of_range = any(not -t.ndim <= a < t.ndim for a in axes)
    if out_of_range or sorted(a % t.ndim for a in axes) != list(range(t.ndim)):
        raise (AxisError if out_of_range else ValueError)(
            f"axes {axes} are not a permutation of the {t.ndim} axes of shape {t.shape}")
    return tuple(a % t.ndim for a in axes)


def new_axis(t, axis_arg):
    """expand_dims' axis, counted in the result (of rank t.ndim + 1), from 0."""
    ndim = t.ndim + 1
    if not is_int(axis_arg):
        raise TypeError(f"expand_dims: axis must be an int, got {axis_arg!r}")
    if not -ndim <= axis_arg < ndim:
        raise AxisError(f"expand_dims: axis {axis_arg} out of range for a result of rank {ndim}")
    return axis_arg % ndim


def squeezable(t, axes):
    """squeeze's axes (already checked by axis()): each of size 1."""
    for a in axes:
        if t.shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} has size {t.shape[a]}, not 1, in shape {t.shape}")


def broadcast_target(t, args):
    """broadcast_to's shape, one that t's shape broadcasts to; -1 keeps that axis' size, as torch's
    x.expand(-1, 3) (only for an axis t has: its trailing axes line up with the target's)."""
    target = shape(args)
    lead = len(target) - t.ndim
    if -1 in target and lead >= 0 and all(s == -1 and i >= lead or s != -1 for i, s in enumerate(target)):
        target = tuple(t.shape[i - lead] if s == -1 else s for i, s in enumerate(target))
    try:
        if numpy.broadcast_shapes(t.shape, target) != target:
            raise ValueError
    except ValueError:
        raise ValueError(f"cannot broadcast shape {t.shape} to {target}") from None
    return target


def pad_width(t, width):
    """NumPy's pad_width (an int, a (before, after) pair for every axis, or a pair per axis) as one
    (before, after) pair of ints >= 0 per axis."""
    if t.ndim == 0:
        raise ValueError("pad: a 0-d tensor has no axes to pad; reshape it to 1-D first")
    ints = lambda p: isinstance(p, (tuple, list)) and all(is_int(v) for v in p)  # noqa: E731
    if is_int(width):
        width = [(width, width)] * t.ndim
    elif ints(width) and len(width) in (1, 2):  # (n,) or (before, after), for every axis
        width = [(width[0], width[-1])] * t.ndim
    elif isinstance(width, (tuple, list)) and width and all(ints(p) for p in width):
        width = [tuple(p) for p in width]
        if len(width) == 1:
            width = width * t.ndim
    else:
        raise TypeError(f"pad: pad_width must be an int, a (before, after) pair of ints, or one such pair "
                        f"per axis, got {width!r}")
    if len(width) != t.ndim or any(len(p) != 2 or min(p) < 0 for p in width):
        raise ValueError(f"pad: pad_width {width} does not fit a tensor of shape {t.shape}")
    return tuple((int(a), int(b)) for a, b in width)


def joinable(name, tensors):
    """concatenate's and stack's tensors: at least one, all on one device."""
    if not tensors:
        raise ValueError(f"{name} needs at least one tensor")
    same_device(name, *tensors)


def concatenate_axis(tensors, axis_arg):
    """The axis concatenate joins along, checked against the first tensor; the others agree off it."""
    first = tensors[0]
    if first.ndim == 0:
        raise ValueError("concatenate: 0-d tensors have no axis to join along; use stack")
    axis_n = axis(first, axis_arg)
    for t in tensors[1:]:
        if t.ndim != first.ndim or any(s != f for i, (s, f) in enumerate(zip(t.shape, first.shape)) if i != axis_n):
            raise ValueError(f"concatenate along axis {axis_arg}: shapes {first.shape} and {t.shape} differ off "
                             f"that axis")
    return axis_n


def one_shape(tensors):
    """stack's tensors share one shape."""
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack needs tensors of one shape, got {sorted(shapes)}")


# ---------------------------------------------------------------- indices

def index(index, t):
    """Turn Tensor/list indices into arrays on t's device; report whether any are arrays.

    NOTE: integer indices are checked to lie in [-n, n), since CuPy wraps them around silently: host
    ones before they are copied, those already on the device with one sync for all (device.extremes)."""
    items = index if isinstance(index, tuple) else (index,)
    out, advanced, checks = [], False, []
    for position, item in enumerate(items):
        if isinstance(item, tensor.Tensor):
            if item.device != t.device:
                raise DeviceError(f"index on {item.device} for a tensor on {t.device}")
            if is_float(item.dtype):
                raise IndexError(f"tensor indices must be integer or boolean, got {item.dtype.name}")
            item, advanced = item.data, True
        elif isinstance(item, (list, numpy.ndarray)) or hasattr(item, "__cuda_array_interface__"):
            if not hasattr(item, "__cuda_array_interface__"):
                item = numpy.asarray(item)
                if item.dtype.kind in "iu":
                    _in_range([(item, _axis_size(items, position, t))])
            item = t.xp.asarray(item)
            if item.dtype.kind not in "biu":
                raise IndexError(f"array indices must be integer or boolean, got {item.dtype}")
            advanced = True
        given = items[position]
        if (isinstance(given, tensor.Tensor) or hasattr(given, "__cuda_array_interface__")) and item.dtype.kind in "iu":
            checks.append((item, _axis_size(items, position, t)))
        out.append(item)
    _in_range(checks)
    return (tuple(out) if isinstance(index, tuple) else out[0]), advanced


def _axis_size(items, position, t):
    """The length of the axis that items[position] indexes (None when it cannot be told)."""
    def width(item):
        if item is None:
            return 0
        dtype = getattr(item.data if isinstance(item, tensor.Tensor) else item, "dtype", None)
        return item.ndim if dtype is not None and dtype.kind == "b" else 1
    if any(i is Ellipsis for i in items[:position]):  # count from the end
        axis_n = t.ndim - sum(width(i) for i in items[position:])
    else:
        axis_n = sum(width(i) for i in items[:position])
    return t.shape[axis_n] if 0 <= axis_n < t.ndim else None


def _in_range(indices):
    """Raise IndexError for integer indices outside [-n, n), as NumPy does (CuPy wraps them around)."""
    indices = [(a, n) for a, n in indices if n is not None and a.size]
    for (low, high), (_, n) in zip(extremes([a for a, _ in indices]), indices):
        if low < -n or high >= n:
            raise IndexError(f"index {high if high >= n else low} is out of bounds for an axis of size {n}")


def index_error(t, e):
    """NumPy's IndexError for a bad index, saying the tensor's shape."""
    return IndexError(f"bad index for a tensor of shape {t.shape}: {e}")


# NOTE: last, as tensor.py imports this module while it loads: the checks read tensor.Tensor only when called
from . import tensor  # noqa: E402


def optimizer_params(owner, params):
    """An optimizer's parameters: leaf Tensors, each once. A frozen one (requires_grad False) is taken, as
    torch takes model.parameters() after p.requires_grad_(False): it gets no gradient, so no step; but a
    list where none requires grad is refused, as the likely mistake of passing plain tensors."""
    for i, p in enumerate(params):
        if isinstance(p, Mapping):
            raise TypeError(f"{owner}: parameter {i} is a dict: torch's per-group options are not offered (an "
                            f"optimizer here has one parameter group); make one optimizer per group")
        if not isinstance(p, tensor.Tensor):
            raise TypeError(f"{owner}: parameter {i} is a {type(p).__name__}, not a Tensor")
        if not p.is_leaf:
            raise ValueError(f"{owner}: parameter {i} (shape {p.shape}) is not a leaf tensor (an op's result); "
                             f"give the tensor it was computed from")
        if any(p is q for q in params[:i]):
            raise ValueError(f"{owner}: parameter {i} (shape {p.shape}) appears twice")
    if not any(p.requires_grad for p in params):
        raise ValueError(f"{owner}: no parameter has requires_grad=True, so none would ever be updated")


def _is_dtype(value):
    """Whether `value` names a dtype (numpy.float32, tg.float64, "float32"; a device name is no dtype name)."""
    if isinstance(value, str):
        try:
            canonical_device(value)
            return False
        except ValueError:
            pass
    if isinstance(value, (str, numpy.dtype)) or (isinstance(value, type) and
                                                  issubclass(value, (numpy.generic, float, int, bool))):
        try:
            numpy.dtype(value)
            return True
        except TypeError:
            return False
    return False


def to_arguments(t, args, device, dtype):
    """Tensor.to's (device, dtype) from torch's spellings: (device), (dtype), (device, dtype), (tensor)."""
    if len(args) > 2:
        raise TypeError(f"to() takes a device and/or a dtype, got {len(args)} positional arguments")
    args = list(args)
    if args and isinstance(args[0], tensor.Tensor):
        if len(args) > 1 or device is not None or dtype is not None:
            raise TypeError("to(other): give only the tensor whose device and dtype to take")
        return args[0].device, args[0].dtype
    if args and _is_dtype(args[0]):
        if len(args) > 1:
            raise TypeError(f"to({args[0]!r}, {args[1]!r}): the device comes first, the dtype second")
        args.insert(0, None)
    if len(args) >= 1:
        if device is not None:
            raise TypeError("to() got the device twice (positional and device=)")
        device = args[0]
    if len(args) == 2:
        if dtype is not None:
            raise TypeError("to() got the dtype twice (positional and dtype=)")
        dtype = args[1]
    if device is not None:
        if not isinstance(device, str):
            raise TypeError(f"to(): {device!r} is neither a device (a name: 'cpu', 'cuda', 'cuda:N') nor a dtype "
                            f"(tg.float32, numpy.float64, 'int64')")
        device = canonical_device(device)
        if device != "cpu":  # NOTE: a GPU that cannot answer is a DeviceError naming it, not CUDA's deep inside the copy
            array_module(device)
    if dtype is not None:
        if not _is_dtype(dtype):
            raise TypeError(f"to(): dtype must be a dtype (tg.float32, numpy.float64, 'int64'), got {dtype!r}")
        dtype = tensor_dtype(dtype, "to")
    return device, dtype
