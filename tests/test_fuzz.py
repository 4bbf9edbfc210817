"""Fuzz test of the public ops (issue 12): Hypothesis draws a Tensor op or an nn.functional call,
with random small shapes (0-d and zero-size included), dtypes (float32, float64, int64, int32,
uint8, bool), values (nan and inf included) and arguments, invalid ones among them (axes out of
range, floats for sizes, negative strides, shapes that do not broadcast).

Each call must either
- raise a TypeError or ValueError (or another error class of the project) with a message of
  its own, never IndexError, ZeroDivisionError, AttributeError, StopIteration, MemoryError, nor
  a message that is NumPy's or Python's internals ("could not be broadcast", "not supported
  between instances of", ...); getitem's out-of-range IndexError (NumPy's and Python's rule,
  which `for row in tensor` relies on) is the one IndexError allowed, with the project's message;
- or give what NumPy gives for the same computation: the same shape, the same kind of dtype and
  the same values (nan where NumPy has nan), computed in the result's dtype. Where the project
  follows PyTorch instead (a 0-d tensor takes axis 0, the mean of nothing is nan, the logsumexp
  of only -inf is -inf), the reference below says so.
A float result's backward must then run and give each input a gradient of its shape.

HYPOTHESIS_PROFILE=ci runs EXAMPLES_PER_FAMILY = 60 examples of each of the 11 families of ops
(660 calls); the thorough profile 3,000 of each (33,000)."""
import math
import re
import traceback
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor
from tinygrad_cnn.nn import functional as F

from conftest import PROFILE

# NOTE: 60 examples of each family in CI (11 families, about 6 s); 10x the profile's count otherwise
# (dev 600, thorough 3,000 per family)
EXAMPLES_PER_FAMILY = 60 if PROFILE == "ci" else 10 * settings.default.max_examples
FLOATS = [np.dtype("float32"), np.dtype("float64")]
DTYPES = FLOATS + [np.dtype(d) for d in ("int64", "int32", "uint8", "bool")]

# NOTE: these read as NumPy's or Python's internals, not as a message about the call
INTERNAL_MESSAGES = [
    "could not be broadcast", "out of bounds for array of dimension", "cannot reshape array of size",
    "not supported between instances of", "object is not subscriptable", "object is not iterable",
    "object cannot be interpreted as an integer", "unsupported operand type", "has no len()",
    "positional argument", "unexpected keyword argument", "zero-size array to reduction operation",
    "ufunc", "Cannot cast", "axes don't match array", "inhomogeneous", "only integers, slices",
    "setting an array element with a sequence", "must be real number", "object has no attribute",
    "index can't contain negative values", "Integers to negative integer powers", "operand",
]


# ---------------------------------------------------------------- drawing inputs

def shapes(min_dims=0, max_dims=4, max_side=4):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=max_side)


def elements(dtype, special=True):
    if dtype.kind == "f":
        finite = st.floats(-10, 10, width=32)
        if not special:
            return finite
        return st.one_of(finite, finite, finite, st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf]))
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind == "u":
        return st.integers(0, 9)
    return st.integers(-5, 5)


def array(draw, dtype=None, shape=None, special=True, dtypes=DTYPES, **shape_kwargs):
    dtype = np.dtype(dtype) if dtype is not None else draw(st.sampled_from(dtypes))
    shape = draw(shapes(**shape_kwargs)) if shape is None else tuple(shape)
    return draw(hnp.arrays(dtype, shape, elements=elements(dtype, special)))


def tensor(a):
    """A Tensor of a copy of `a` (so the reference is untouched), tracked when it is float."""
    return Tensor(a.copy(), requires_grad=a.dtype.kind == "f")


def axis_arg(draw, ndim):
    """An axis, valid or not: None, an int (out of range too), a tuple or list, or something else."""
    bad = st.sampled_from([1.0, "0", True, (0.0,), np.float64(0.0)])
    return draw(st.one_of(st.none(), st.integers(-ndim - 2, ndim + 1), st.integers(-ndim - 2, ndim + 1).map(np.int64),
                          st.lists(st.integers(-ndim - 1, ndim), max_size=3).map(tuple),
                          st.lists(st.integers(-ndim - 1, ndim), max_size=2), bad))


def int_arg(draw, low=-2, high=5):
    """An int-like argument, or a float or other wrong thing in its place."""
    return draw(st.one_of(st.integers(low, high), st.integers(low, high), st.integers(0, high).map(np.int64),
                          st.sampled_from([1.5, 2.0, None, "2", True])))


def pair_arg(draw, low=-1, high=4):
    return draw(st.one_of(st.just(int_arg(draw, low, high)),
                          st.tuples(st.integers(low, high), st.integers(low, high)),
                          st.tuples(st.integers(low, high)), st.sampled_from([(1, 2, 3), [1, 1], "x"])))


# ---------------------------------------------------------------- the NumPy side

class Refused(Exception):
    """NumPy refuses what the project accepted: a finding unless the reference says why."""


def numpy_call(fn, *args, **kwargs):
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)
    except (ValueError, TypeError, IndexError) as e:
        raise Refused(f"NumPy refuses it: {type(e).__name__}: {e}") from None


def torch_axis(a, axis):
    """The project's axis rule as NumPy sees it: a list is a tuple, and a 0-d tensor takes axis
    0 or -1 (as in PyTorch), which is no axis at all."""
    if isinstance(axis, list):
        axis = tuple(axis)
    if a.ndim == 0 and axis is not None:
        axes = axis if isinstance(axis, tuple) else (axis,)
        if all(int(x) in (0, -1) for x in axes) and len(axes) <= 1:
            return None
    return axis


def normal_axes(a, axis):
    axes = range(a.ndim) if axis is None else (axis,) if not isinstance(axis, tuple) else axis
    return tuple(int(x) % max(a.ndim, 1) for x in axes)


def stable_logsumexp(a, axis, keepdims):
    if a.size == 0 or any(a.shape[x] == 0 for x in normal_axes(a, axis)):
        return np.log(np.sum(np.exp(a), axis=axis, keepdims=keepdims))
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def stable_softmax(a, axis, log=False):
    """scipy.special.softmax's formula (PyTorch's values at inf and nan: a row with inf is all nan)."""
    if a.size == 0:
        return a.copy()
    m = np.max(a, axis=axis, keepdims=True)
    if log:
        return a - m - np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True))
    e = np.exp(a - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def windows(xp, kh, kw, stride, dilation):
    """(N, C, OH, OW, KH, KW) view of a padded (N, C, H, W) array."""
    n, c, h, w = xp.shape
    (sh, sw), (dh, dw) = stride, dilation
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    out = np.empty((n, c, oh, ow, kh, kw), dtype=xp.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = xp[:, :, i * sh: i * sh + dh * (kh - 1) + 1: dh, j * sw: j * sw + dw * (kw - 1) + 1: dw]
    return out


def as_pair(v):
    return (int(v), int(v)) if np.ndim(v) == 0 else tuple(int(x) for x in v)


def reference_conv2d(x, w, b, stride, padding, dilation):
    stride, dilation = as_pair(stride), as_pair(dilation)
    kh, kw = w.shape[2:]
    if padding == "valid":
        pads = ((0, 0), (0, 0))
    elif padding == "same":
        pads = tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip((kh, kw), dilation))
    else:
        ph, pw = as_pair(padding)
        pads = ((ph, ph), (pw, pw))
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    cols = windows(xp, kh, kw, stride, dilation)                     # N, C, OH, OW, KH, KW
    out = np.einsum("ncijkl,ockl->noij", cols, w.astype(x.dtype))
    return out + b[None, :, None, None] if b is not None else out


def reference_pool(x, kernel, stride, padding, fill, reduce):
    kernel = as_pair(kernel)
    stride = kernel if stride is None else as_pair(stride)
    ph, pw = as_pair(padding)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    return reduce(windows(xp, kernel[0], kernel[1], stride, (1, 1)), axis=(4, 5))


def lowest(dtype):
    return -np.inf if dtype.kind == "f" else False if dtype.kind == "b" else np.iinfo(dtype).min


# ---------------------------------------------------------------- the families of ops: each draws (call, reference)

def unary(draw):
    a = array(draw)
    name = draw(st.sampled_from(["neg", "abs", "exp", "log", "sqrt", "tanh", "relu", "sigmoid", "F.relu",
                                 "F.sigmoid", "F.tanh", "float", "double", "clip", "astype", "pos"]))
    t = tensor(a)
    ref = {"neg": np.negative, "abs": np.abs, "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh,
           "relu": lambda v: np.maximum(v, v.dtype.type(0)), "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
           "float": lambda v: v.astype(np.float32), "double": lambda v: v.astype(np.float64), "pos": lambda v: v}
    ref["F.relu"], ref["F.sigmoid"], ref["F.tanh"] = ref["relu"], ref["sigmoid"], ref["tanh"]
    if name == "clip":
        low, high = draw(st.one_of(st.none(), st.integers(-3, 3), st.floats(-3, 3))), \
            draw(st.one_of(st.none(), st.integers(-3, 3), st.floats(-3, 3)))
        return (lambda: t.clip(low, high)), (lambda: numpy_call(np.clip, a, low, high)), [t]
    if name == "astype":
        dtype = draw(st.sampled_from(DTYPES + ["float32", "int8", "complex64", "U3", object]))
        return (lambda: t.astype(dtype)), (lambda: numpy_call(a.astype, dtype)), [t]
    if name.startswith("F."):
        return (lambda: getattr(F, name[2:])(t)), (lambda: numpy_call(ref[name], a)), [t]
    call = (lambda: +t) if name == "pos" else (lambda: -t) if name == "neg" else (lambda: getattr(t, name)())
    return call, (lambda: numpy_call(ref[name], a)), [t]


BINARY = {"add": (lambda x, y: x + y, np.add), "sub": (lambda x, y: x - y, np.subtract),
          "mul": (lambda x, y: x * y, np.multiply), "div": (lambda x, y: x / y, np.true_divide),
          "pow": (lambda x, y: x ** y, np.power), "maximum": (lambda x, y: x.maximum(y), np.maximum),
          "minimum": (lambda x, y: x.minimum(y), np.minimum), "tc.maximum": (tc.maximum, np.maximum),
          "tc.minimum": (tc.minimum, np.minimum),
          "lt": (lambda x, y: x < y, np.less), "le": (lambda x, y: x <= y, np.less_equal),
          "gt": (lambda x, y: x > y, np.greater), "ge": (lambda x, y: x >= y, np.greater_equal),
          "eq": (lambda x, y: x == y, np.equal), "ne": (lambda x, y: x != y, np.not_equal)}


def broadcastable_shapes(draw):
    if draw(st.booleans()):
        shape_a, shape_b = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=3)).input_shapes
    else:
        shape_a, shape_b = draw(shapes(max_side=3)), draw(shapes(max_side=3))
    return shape_a, shape_b


def binary(draw):
    name = draw(st.sampled_from(sorted(BINARY)))
    ours, theirs = BINARY[name]
    shape_a, shape_b = broadcastable_shapes(draw)
    a = array(draw, shape=shape_a)
    kind = draw(st.sampled_from(["tensor", "tensor", "number", "reversed number", "list"]))
    t = tensor(a)
    if kind == "tensor":
        b = array(draw, shape=shape_b)
        u = tensor(b)
        return (lambda: ours(t, u)), (lambda: promoted(theirs, a, b)), [t, u]
    number = draw(st.one_of(st.integers(-3, 3), st.floats(-3, 3), st.sampled_from([0, 0.0, 2, -1, math.nan, True])))
    if kind == "list":
        b = array(draw, shape=shape_b, dtypes=FLOATS[:1] + DTYPES[2:3])
        return (lambda: ours(t, b.tolist())), (lambda: promoted(theirs, a, np.asarray(b.tolist()))), [t]
    if kind == "number":
        return (lambda: ours(t, number)), (lambda: promoted(theirs, a, number)), [t]
    if name.startswith("tc."):
        return (lambda: ours(number, t)), (lambda: promoted(theirs, number, a)), [t]
    reverse = {"add": "__radd__", "sub": "__rsub__", "mul": "__rmul__", "div": "__rtruediv__",
               "pow": "__rpow__", "lt": "__gt__", "le": "__ge__", "gt": "__lt__", "ge": "__le__", "eq": "__eq__",
               "ne": "__ne__", "maximum": "maximum", "minimum": "minimum"}[name]
    if reverse in ("maximum", "minimum"):
        return (lambda: getattr(t, reverse)(number)), (lambda: promoted(theirs, a, number)), [t]
    return (lambda: getattr(t, reverse)(number)), (lambda: promoted(theirs, number, a)), [t]


def promoted(fn, a, b):
    """NumPy's answer, computed in the dtype the project's result has (filled in by check()); for a
    bool result (a comparison) a Python number stays one, which NumPy casts to the array's dtype."""
    def cast(v, dtype):
        if dtype is not None and dtype.kind != "b":
            return np.asarray(v).astype(dtype)
        return v if isinstance(v, (int, float)) else np.asarray(v)
    return lambda dtype: numpy_call(fn, *[cast(v, dtype) for v in (a, b)])


def matmul(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shape_a = draw(shapes(max_dims=3, max_side=3))
    if draw(st.booleans()) and shape_a:  # matching inner sizes, mostly
        inner = shape_a[-1]
        shape_b = draw(st.sampled_from([(inner,), (inner, 2), (2, inner, 3), (1, inner, 0)]))
    else:
        shape_b = draw(shapes(max_dims=3, max_side=3))
    a, b = array(draw, dtype, shape_a, special=False), array(draw, draw(st.sampled_from(DTYPES)), shape_b,
                                                              special=False)
    t, u = tensor(a), tensor(b)
    call = draw(st.sampled_from(["@", "tc.matmul"]))
    ours = (lambda: t @ u) if call == "@" else (lambda: tc.matmul(t, u))
    return ours, (lambda: promoted(np.matmul, a, b)), [t, u]


def where(draw):
    shape_c, shape_a = broadcastable_shapes(draw)
    cond = array(draw, "bool", shape_c)
    a, b = array(draw, shape=shape_a), array(draw, shape=draw(st.sampled_from([shape_a, shape_c, ()])))
    t, u = tensor(a), tensor(b)
    c = Tensor(cond) if draw(st.booleans()) else cond
    return (lambda: tc.where(c, t, u)), (lambda: promoted(lambda x, y: np.where(cond, x, y), a, b)), [t, u]


REDUCTIONS = ["sum", "mean", "max", "min", "logsumexp", "argmax", "argmin"]


def reduction(draw):
    a = array(draw)
    name = draw(st.sampled_from(REDUCTIONS + ["softmax", "log_softmax", "F.softmax", "F.log_softmax", "any", "all"]))
    t = tensor(a)
    axis = axis_arg(draw, a.ndim)
    keepdims = draw(st.booleans())
    if name in ("any", "all"):
        return (lambda: getattr(t, name)()), (lambda: getattr(np, name)(a)), [t]
    if name.endswith("softmax"):
        if draw(st.booleans()):
            axis = draw(st.integers(-a.ndim - 1, a.ndim))
        method = name.split(".")[-1]
        ours = (lambda: getattr(F, method)(t, axis)) if name.startswith("F.") else (lambda: getattr(t, method)(axis))

        def reference():
            if a.dtype.kind != "f":
                raise Refused("softmax of a non-float tensor")
            ax = torch_axis(a, axis)  # None and tuples: over those axes together, as scipy.special.softmax
            numpy_call(np.sum, a, axis=ax)  # NumPy's axis check
            return stable_softmax(a, ax, log=method == "log_softmax")
        return ours, reference, [t]

    def reference():
        ax = torch_axis(a, axis)
        if name == "logsumexp":
            numpy_call(np.sum, a, axis=ax)
            return stable_logsumexp(a, ax, keepdims)
        if name in ("argmax", "argmin") and a.ndim == 0:
            return np.array(0)
        return numpy_call(getattr(np, name), a, axis=ax, keepdims=keepdims)
    return (lambda: getattr(t, name)(axis=axis, keepdims=keepdims)), reference, [t]


def new_shape(draw, size):
    """A shape with `size` elements (perhaps with a -1), or one without, or with a float in it."""
    dims = []
    rest = size
    for _ in range(draw(st.integers(0, 3))):
        d = draw(st.sampled_from([d for d in (1, 2, 3, 4) if rest % d == 0] or [1]))
        dims.append(d)
        rest //= d
    if rest != 1 or size == 0:
        dims.append(rest)
    choice = draw(st.sampled_from(["exact", "exact", "minus one", "wrong", "float"]))
    if choice == "minus one" and dims:
        dims[draw(st.integers(0, len(dims) - 1))] = -1
    elif choice == "wrong":
        dims = draw(st.lists(st.integers(-2, 4), max_size=4))
    elif choice == "float" and dims:
        dims[0] = float(dims[0]) + draw(st.sampled_from([0.0, 0.5]))
    return tuple(dims)


def movement(draw):
    a = array(draw)
    t = tensor(a)
    name = draw(st.sampled_from(["reshape", "reshape*", "transpose", "T", "swapaxes", "squeeze", "expand_dims",
                                 "flatten", "broadcast_to", "pad", "permute"]))
    nd = a.ndim
    if name in ("reshape", "reshape*"):
        shape = new_shape(draw, a.size)
        ours = (lambda: t.reshape(shape)) if name == "reshape" else (lambda: t.reshape(*shape))
        return ours, (lambda: numpy_call(np.reshape, a, shape)), [t]
    if name in ("transpose", "permute"):
        axes = draw(st.one_of(st.permutations(range(nd)).map(tuple), st.lists(st.integers(-nd - 1, nd + 1),
                                                                              max_size=nd + 1).map(tuple)))
        axes = tuple(draw(st.sampled_from([axes, tuple(x - nd if x >= 0 else x for x in axes)])))
        spread = draw(st.booleans()) and len(axes) > 0
        ours = (lambda: getattr(t, name)(*axes)) if spread else (lambda: getattr(t, name)(axes))
        if name == "transpose" and spread and len(axes) == 2:  # torch's transpose(dim0, dim1): a swap

            def swapped():
                if nd == 0 and axes[0] in (0, -1) and axes[1] in (0, -1):
                    return a
                return numpy_call(np.swapaxes, a, *axes)
            return ours, swapped, [t]
        return ours, (lambda: numpy_call(np.transpose, a, axes if axes else None)), [t]
    if name == "T":
        return (lambda: t.T), (lambda: a.T), [t]
    if name == "swapaxes":
        a1, a2 = draw(st.integers(-nd - 1, nd)), draw(st.integers(-nd - 1, nd))

        def reference():
            if nd == 0 and a1 in (0, -1) and a2 in (0, -1):
                return a
            return numpy_call(np.swapaxes, a, a1, a2)
        return (lambda: t.swapaxes(a1, a2)), reference, [t]
    if name == "squeeze":
        axis = axis_arg(draw, nd)
        return (lambda: t.squeeze(axis)), (lambda: numpy_call(np.squeeze, a, torch_axis(a, axis))), [t]
    if name == "expand_dims":
        axis = draw(st.one_of(st.integers(-nd - 2, nd + 1), st.just((0, 1)), st.just(1.0)))
        return (lambda: t.expand_dims(axis)), (lambda: numpy_call(np.expand_dims, a, axis)), [t]
    if name == "flatten":
        start, end = draw(st.integers(-nd - 1, nd)), draw(st.integers(-nd - 1, nd))

        def reference():
            if nd == 0:
                return a.reshape(1)
            if not (-nd <= start < nd and -nd <= end < nd) or start % nd > end % nd:
                raise Refused(f"flatten({start}, {end}) of shape {a.shape}")
            s, e = start % nd, end % nd
            return a.reshape(a.shape[:s] + (int(np.prod(a.shape[s:e + 1])),) + a.shape[e + 1:])
        return (lambda: t.flatten(start, end)), reference, [t]
    if name == "broadcast_to":
        shape = draw(st.one_of(hnp.broadcastable_shapes(a.shape, max_dims=5, max_side=3), shapes(max_side=3)))
        return (lambda: t.broadcast_to(shape)), (lambda: numpy_call(np.broadcast_to, a, shape)), [t]
    # pad: numpy's pad_width forms (an int, a (before, after) pair, a pair per axis) and wrong ones
    width = draw(st.one_of(st.integers(-1, 2), st.integers(0, 2).map(np.int64),
                           st.tuples(st.integers(0, 2), st.integers(0, 2)),
                           st.lists(st.tuples(st.integers(-1, 2), st.integers(0, 2)), min_size=nd, max_size=nd),
                           st.lists(st.integers(0, 2), min_size=1, max_size=max(nd, 1)), st.just([(1, 2)]),
                           st.sampled_from([1.5, "1", ((1, 2, 3),)])))
    value = draw(st.sampled_from([0.0, 1, -2.5, True]))

    def reference():
        if nd == 0:
            raise Refused("pad of a 0-d tensor")
        return numpy_call(np.pad, a, width, constant_values=value)
    return (lambda: t.pad(width, value)), reference, [t]


def index_item(draw, size):
    return draw(st.one_of(
        st.integers(-size - 2, size + 1),
        st.builds(slice, st.none() | st.integers(-size - 2, size + 2), st.none() | st.integers(-size - 2, size + 2),
                  st.none() | st.sampled_from([1, 2, -1, -2, 0])),
        st.lists(st.integers(-size - 1, size), max_size=3),
        st.sampled_from([None, Ellipsis, 1.0, "a"]),
        hnp.arrays(np.dtype(bool), (size,)),
        st.lists(st.integers(0, max(size - 1, 0)), max_size=2).map(lambda v: np.array(v, dtype=np.int64))))


def getitem(draw):
    a = array(draw, min_dims=0)
    t = tensor(a)
    count = draw(st.integers(1, 3))
    items = [index_item(draw, a.shape[i] if i < a.ndim else 1) for i in range(count)]
    index = tuple(items) if count > 1 or draw(st.booleans()) else items[0]
    as_tensor = draw(st.booleans())
    ours_index = tuple(Tensor(i) if as_tensor and isinstance(i, np.ndarray) else i for i in index) \
        if isinstance(index, tuple) else index
    return (lambda: t[ours_index]), (lambda: numpy_call(lambda: a[index])), [t]


def joining(draw):
    count = draw(st.integers(0, 3))
    first = array(draw, max_dims=3, max_side=3)
    others = st.sampled_from([first.shape, first.shape, (2,) + first.shape[1:], first.shape[::-1]])
    arrays = ([first] + [array(draw, shape=draw(others)) for _ in range(count - 1)]) if count else []
    tensors = [tensor(x) for x in arrays]
    axis = draw(st.integers(-4, 3))
    name = draw(st.sampled_from(["concatenate", "stack"]))

    def reference():
        if name == "concatenate" and arrays and arrays[0].ndim == 0:
            raise Refused("concatenate of 0-d tensors")
        return numpy_call(getattr(np, name), arrays, axis=axis)
    return (lambda: getattr(tc, name)(tensors, axis=axis)), reference, tensors


def conv_and_pool(draw):
    dtype = draw(st.sampled_from(FLOATS + FLOATS + DTYPES[2:]))
    n, c, h, w = draw(st.integers(0, 2)), draw(st.integers(0, 2)), draw(st.integers(0, 6)), draw(st.integers(0, 6))
    x = array(draw, dtype, (n, c, h, w), special=draw(st.booleans()))
    if draw(st.integers(0, 9)) == 0:  # a wrong rank now and then
        x = x.reshape((n * c,) + x.shape[2:])
    t = tensor(x)
    name = draw(st.sampled_from(["conv2d", "conv2d", "conv2d_max_pool2d", "max_pool2d", "max_pool2d",
                                 "avg_pool2d"]))
    if name in ("max_pool2d", "avg_pool2d"):
        kernel, stride = pair_arg(draw, 0, 3), draw(st.one_of(st.none(), st.just(pair_arg(draw, 0, 3))))
        padding = pair_arg(draw, -1, 2)

        def reference():
            if x.ndim != 4:
                raise Refused("pooling needs 4-D input")
            if name == "avg_pool2d":
                return numpy_call(reference_pool, x, kernel, stride, padding, 0, np.mean)
            return numpy_call(reference_pool, x, kernel, stride, padding, lowest(x.dtype), np.max)
        return (lambda: getattr(F, name)(t, kernel, stride, padding)), reference, [t]
    o, kh, kw = draw(st.integers(0, 2)), draw(st.integers(0, 3)), draw(st.integers(0, 3))
    wdtype = draw(st.sampled_from([dtype, dtype, np.dtype("float64"), np.dtype("int64")]))
    wa = array(draw, wdtype, (o, draw(st.sampled_from([c, c, c + 1])), kh, kw), special=False)
    wt = tensor(wa)
    ba = array(draw, dtype, draw(st.sampled_from([(o,), (o,), (o + 1,), ()])), special=False) \
        if draw(st.booleans()) else None
    bt = tensor(ba) if ba is not None else None
    stride, dilation = pair_arg(draw, 0, 3), pair_arg(draw, 0, 2)
    padding = draw(st.one_of(st.just(pair_arg(draw, -1, 2)), st.sampled_from(["same", "valid", "full"])))
    inputs = [t, wt] + ([bt] if bt is not None else [])
    if name == "conv2d":
        return (lambda: F.conv2d(t, wt, bt, stride, padding, dilation)), \
            (lambda: numpy_call(reference_conv2d, x, wa, ba, stride, padding, dilation)), inputs
    pool, relu = draw(st.one_of(st.integers(0, 3), st.just((1, 2)))), draw(st.booleans())

    def fused():
        conv = numpy_call(reference_conv2d, x, wa, ba, stride, padding, dilation)
        out = numpy_call(reference_pool, conv, pool, None, 0, -np.inf, np.max)
        return np.maximum(out, 0) if relu else out
    return (lambda: F.conv2d_max_pool2d(t, wt, bt, stride, padding, dilation, pool, relu)), fused, inputs


def losses(draw):
    name = draw(st.sampled_from(["linear", "cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy",
                                 "binary_cross_entropy_with_logits", "dropout"]))
    dtype = draw(st.sampled_from(FLOATS + FLOATS + DTYPES[2:]))
    reduction = draw(st.sampled_from(["mean", "mean", "sum", "none", "avg"]))
    if name == "linear":
        x = array(draw, dtype, draw(shapes(max_dims=3, max_side=3)), special=False)
        out_f, in_f = draw(st.integers(0, 3)), x.shape[-1] if x.ndim and draw(st.booleans()) else draw(st.integers(0, 3))
        wa = array(draw, dtype, (out_f, in_f), special=False)
        ba = array(draw, dtype, (out_f,), special=False) if draw(st.booleans()) else None
        t, wt, bt = tensor(x), tensor(wa), tensor(ba) if ba is not None else None

        def reference():
            if x.ndim == 0:
                raise Refused("linear of a 0-d input")
            out = numpy_call(np.matmul, x, wa.T)
            return out + ba if ba is not None else out
        return (lambda: F.linear(t, wt, bt)), reference, [t, wt] + ([bt] if bt is not None else [])
    if name in ("cross_entropy", "nll_loss"):
        n, c = draw(st.integers(0, 3)), draw(st.integers(0, 3))
        x = array(draw, dtype, (n, c), special=draw(st.booleans()))
        labels = np.array(draw(st.lists(st.integers(-1, c), min_size=n, max_size=n)), dtype=np.int64)
        if draw(st.integers(0, 5)) == 0:
            labels = labels.astype(draw(st.sampled_from([np.float32, np.int32, bool])))
        t = tensor(x)
        target = draw(st.sampled_from([Tensor(labels), labels, labels.tolist()]))

        def reference():
            if x.dtype.kind != "f" or labels.dtype.kind not in "iu" or (n and (labels.min() < 0 or labels.max() >= c)):
                raise Refused("bad targets or input dtype")
            logp = stable_softmax(x, 1, log=True) if name == "cross_entropy" else x
            picked = -logp[np.arange(n), labels]
            return reduce_like(picked, reduction)
        return (lambda: getattr(F, name)(t, target, reduction)), reference, [t]
    if name == "dropout":
        x = array(draw, dtype, draw(shapes(max_side=3)))
        t = tensor(x)
        p = draw(st.sampled_from([0.0, 0.5, 0.99, 1.0, -0.1, math.nan]))
        return (lambda: F.dropout(t, p, training=False)), \
            (lambda: x if 0 <= p < 1 else (_ for _ in ()).throw(Refused(f"p={p}"))), [t]
    shape = draw(shapes(max_side=3))
    x = array(draw, dtype, shape, special=draw(st.booleans()))
    y = array(draw, draw(st.sampled_from([dtype, np.dtype("float32")])),
              draw(st.sampled_from([shape, shape, shape[::-1], ()])), special=False)
    if name == "binary_cross_entropy" and draw(st.booleans()):  # mostly probabilities
        x = np.abs(np.nan_to_num(x)) % 1 if x.dtype.kind == "f" else x
        y = np.abs(y) % 1 if y.dtype.kind == "f" else y
    t = tensor(x)
    target = draw(st.sampled_from([tensor(y), y]))

    def reference():
        if x.dtype.kind != "f" and name != "mse_loss":
            raise Refused("non-float input")
        if y.shape != x.shape:
            raise Refused("target shape")
        yy = y.astype(x.dtype)
        if name == "mse_loss":
            return reduce_like((x - yy) ** 2, reduction)
        if name == "binary_cross_entropy_with_logits":
            return reduce_like(np.maximum(x, 0) - x * yy + np.log1p(np.exp(-np.abs(x))), reduction)
        inside = lambda v: np.all((v >= 0) & (v <= 1) | np.isnan(v))  # noqa: E731 - nan passes, as nan
        if x.size and not (inside(x) and inside(yy)):
            raise Refused("probabilities outside [0, 1]")
        eps = max(1e-7, float(np.finfo(x.dtype).epsneg))
        p = np.clip(x, eps, 1 - eps)
        return reduce_like(-(yy * np.log(p) + (1 - yy) * np.log(1 - p)), reduction)
    return (lambda: getattr(F, name)(t, target, reduction)), reference, [t] + \
        ([target] if isinstance(target, Tensor) and target.requires_grad else [])


def reduce_like(loss, reduction):
    if reduction not in ("mean", "sum", "none"):
        raise Refused(f"reduction {reduction!r}")
    return loss if reduction == "none" else np.sum(loss) if reduction == "sum" else \
        (np.mean(loss) if loss.size else np.array(np.nan))


def factories(draw):
    name = draw(st.sampled_from(["zeros", "ones", "full", "arange", "eye", "Tensor", "rand", "zeros_like"]))
    size = st.one_of(st.integers(-1, 3), st.integers(0, 3).map(np.int64), st.sampled_from([2.0, 2.5, "2", None]))
    if name in ("zeros", "ones", "rand"):
        shape = tuple(draw(st.lists(size, max_size=3)))
        spread = draw(st.booleans())
        ours = (lambda: getattr(tc, name)(*shape)) if spread else (lambda: getattr(tc, name)(shape))

        def reference():
            if any(isinstance(s, float) or s is None or isinstance(s, str) for s in shape):
                raise Refused("a size that is no int")
            out = numpy_call(np.zeros, shape, dtype=np.float32)
            return np.ones_like(out) if name == "ones" else out
        if name == "rand":
            return ours, (lambda: SHAPE_ONLY(reference())), []
        return ours, reference, []
    if name == "full":
        shape, value = draw(st.one_of(size, st.lists(size, max_size=3).map(tuple))), draw(st.sampled_from(
            [1.5, 2, True, math.nan, "x"]))
        # torch.full's dtype follows the value (bool, int64, else float32), as torch's
        dtype = np.bool_ if isinstance(value, bool) else np.int64 if isinstance(value, int) else np.float32
        return (lambda: tc.full(shape, value)), (lambda: numpy_call(np.full, shape, value, dtype=dtype)), []
    if name == "arange":
        # NOTE: no tiny float step: arange(0, 1, 1e-11) is a MemoryError of NumPy's own (427 GiB), not a bug
        args = draw(st.lists(st.one_of(st.integers(-3, 5), st.sampled_from([0.5, -0.5, 0.25, 1.5, -1.25, 2.5, 0.0])),
                             min_size=1, max_size=3))
        return (lambda: tc.arange(*args)), (lambda: numpy_call(
            np.arange, *args, dtype=np.int64 if all(isinstance(v, int) for v in args) else np.float32)), []
    if name == "eye":
        n, m = draw(size), draw(st.none() | size)
        return (lambda: tc.eye(n, m)), (lambda: numpy_call(np.eye, n, m, dtype=np.float32)), []
    if name == "zeros_like":
        a = array(draw)
        return (lambda: tc.zeros_like(tensor(a))), (lambda: np.zeros_like(a)), []
    data = draw(st.one_of(st.lists(st.integers(-3, 3), max_size=3), st.lists(st.lists(st.floats(-3, 3), max_size=2),
                                                                               max_size=3),
                          st.sampled_from([[[1, 2], [3]], [1, [2]], "abc", None, [1.0, None], {"a": 1}, 3, 2.5,
                                           True, [[True, False]], []])))

    def reference():
        out = numpy_call(np.asarray, data)
        if out.dtype.kind not in "biuf":
            raise Refused(f"dtype {out.dtype}")
        return out.astype(np.float32) if out.dtype.kind == "f" else out
    return (lambda: Tensor(data)), reference, []


class SHAPE_ONLY:  # noqa: N801 - a marker: compare shape and dtype kind only (random values)
    def __init__(self, expected):
        self.expected = expected


FAMILIES = {"unary": unary, "binary": binary, "matmul": matmul, "where": where, "reduction": reduction,
            "movement": movement, "getitem": getitem, "joining": joining, "conv_and_pool": conv_and_pool,
            "losses": losses, "factories": factories}


# ---------------------------------------------------------------- the check

def innermost_frame(error):
    frames = traceback.extract_tb(error.__traceback__)
    return frames[-1] if frames else None


def assert_allowed(error, family):
    """An exception of the project's: the right class, and a message of its own."""
    message = f"{type(error).__name__}: {error}"
    project_errors = (TypeError, ValueError, tc.DeviceError)
    from_getitem = isinstance(error, IndexError) and family == "getitem" and (
        str(error).startswith(("bad index for a tensor of shape", "index ", "tensor indices must be",
                               "array indices must be")))
    if from_getitem:  # NOTE: NumPy's own words after the project's "bad index for a tensor of shape ...:"
        return
    assert isinstance(error, project_errors) or from_getitem, f"wrong exception class: {message}"
    for phrase in INTERNAL_MESSAGES:
        assert phrase not in str(error), f"an internal message leaked out ({phrase!r}): {message}"
    frame = innermost_frame(error)
    assert frame is None or "numpy" not in frame.filename.replace("\\", "/").split("/site-packages/")[-1].split("/")[0], \
        f"raised inside NumPy ({frame.filename}:{frame.lineno}): {message}"


def compare(out, expected):
    if isinstance(expected, SHAPE_ONLY):
        assert isinstance(out, Tensor) and out.shape == expected.expected.shape
        return
    if not isinstance(out, Tensor):
        assert not isinstance(expected, np.ndarray) or expected.ndim == 0, (out, expected)
        assert out == expected, (out, expected)
        return
    expected = np.asarray(expected)
    got = out.numpy()
    assert got.shape == expected.shape, f"shape {got.shape}, NumPy {expected.shape}"
    assert got.dtype.kind == expected.dtype.kind or {got.dtype.kind, expected.dtype.kind} <= set("iu"), \
        f"dtype {got.dtype}, NumPy {expected.dtype}"
    if got.dtype.kind == "f":
        tight = got.dtype == np.float64 and expected.dtype == np.float64
        rtol, atol = (1e-9, 1e-9) if tight else (2e-4, 1e-4)
        np.testing.assert_allclose(got, expected.astype(got.dtype), rtol=rtol, atol=atol, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, expected)


def check(family, call, reference, inputs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 0/0, log(-1), mean of nothing: as in NumPy
        try:
            out = call()
        except Exception as e:  # noqa: BLE001 - every exception is judged here
            assert_allowed(e, family)
            return
        expected = reference()
        if callable(expected):  # computed in the result's dtype
            expected = expected(out.dtype if isinstance(out, Tensor) else None)
        compare(out, expected)
        if isinstance(out, Tensor) and out.requires_grad:
            out.backward(Tensor(np.ones(out.shape, dtype=out.dtype)))
            for t in inputs:
                assert t.grad is None or t.grad.shape == t.shape, f"gradient shape {t.grad.shape} for {t.shape}"


@pytest.mark.parametrize("family", sorted(FAMILIES))
@settings(max_examples=EXAMPLES_PER_FAMILY, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                   HealthCheck.filter_too_much])
@given(data=st.data())
def test_public_ops_raise_clear_errors_or_match_numpy(family, data):
    call, reference, inputs = FAMILIES[family](data.draw)
    try:
        check(family, call, reference, inputs)
    except Refused as e:
        raise AssertionError(f"the project accepted what NumPy refuses, without a rule saying why: {e}") from None


def test_the_fuzz_test_catches_what_it_should():
    """The checks themselves: an IndexError, a NumPy message and a wrong value are each caught."""
    with pytest.raises(AssertionError, match="wrong exception class"):
        assert_allowed(IndexError("list index out of range"), "reduction")
    with pytest.raises(AssertionError, match="internal message"):
        assert_allowed(ValueError("operands could not be broadcast together with shapes (2,) (3,)"), "binary")
    with pytest.raises(AssertionError):
        compare(Tensor(np.array([1.0, 2.0])), np.array([1.0, 2.5]))
    with pytest.raises(AssertionError, match="shape"):
        compare(Tensor(np.zeros((1,))), np.zeros(()))
    assert_allowed(ValueError("sum: axis 3 is out of range for a tensor of shape (2,)"), "reduction")
    compare(Tensor(np.array([np.nan, 1.0])), np.array([np.nan, 1.0]))
