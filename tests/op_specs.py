"""One row per differentiable op: the op, a NumPy reference for its forward, and an input strategy.

test_ops.py runs every row on every device for the forward value (float64 and float32) and for
gradcheck. Inputs never sit on a point where the gradient is undefined: the strategies keep them
away from kinks (relu, abs, clip), ties (max, maximum) and non-positive bases (log, sqrt, pow),
so no tolerance is ever loosened for an op."""
import operator
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Optional

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_cnn as tc
from tinygrad_cnn.nn import functional as F
from tinygrad_cnn.testing import strategies as S


class Case(NamedTuple):
    """One drawn input: float64 arrays (each becomes a Tensor) and constant keyword parameters."""
    arrays: tuple
    params: dict


@dataclass(frozen=True)
class OpSpec:
    name: str
    fn: Callable            # (*tensors, **params) -> Tensor
    reference: Callable     # (*float64 arrays, **params) -> ndarray
    inputs: Any             # strategy of Case
    out_dtype: Optional[np.dtype] = None  # None: the inputs' dtype (float32 stays float32)
    # NOTE: only the astype round trip changes eps: a float32 detour rounds to ~1e-7, so the
    # central-difference step must be far above that. Tolerances are never changed (see TIGHT).
    gradcheck_kwargs: dict = field(default_factory=dict)

    def __repr__(self):  # hypothesis and pytest print this
        return f"OpSpec({self.name})"


# NOTE: gradcheck's tolerances for the table, tight enough that a 1e-4 relative error in any
# gradient element above ~1e-3 fails (test_op_table_strict plants one): in float64 a central
# difference with eps=1e-5 is off by ~1e-16 |f| / eps (rounding, ~1e-9 for these sizes) plus
# eps**2 |f'''| / 6 (truncation, ~1e-10 relative), far below rtol. Checked free of false alarms
# under HYPOTHESIS_PROFILE=thorough (docs/testing.md).
TIGHT = dict(eps=1e-5, atol=1e-7, rtol=1e-5)


def tight(spec):
    """TIGHT, with the row's own eps where it has one."""
    return {**TIGHT, **spec.gradcheck_kwargs}


# ---------------------------------------------------------------- input strategies

SIDE = 4       # NOTE: small, so that gradcheck's element-by-element differences stay fast
SHAPES = S.shapes(min_dims=0, max_dims=3, max_side=SIDE)
SHAPES_1 = S.shapes(min_dims=1, max_dims=3, max_side=SIDE)     # ops that need an axis
SHAPES_2 = S.shapes(min_dims=2, max_dims=3, max_side=SIDE)
PAIRS = S.broadcastable_shapes(min_dims=0, max_dims=3, max_side=SIDE)


def values(shape):
    return S.arrays(shape)


def nonzero(shape, margin=0.5):
    """Both signs, but at least `margin` from zero (denominators, abs, relu)."""
    return S.away_from(S.arrays(shape), kinks=(0.0,), margin=margin)


def positive(shape):
    return S.positive_arrays(shape)


def unary(make=values, shapes=SHAPES, **params):
    """Cases with one array; `params` maps names to strategies of constants."""
    return st.tuples(shapes.flatmap(make), st.fixed_dictionaries(params)).map(
        lambda t: Case((t[0],), t[1]))


def binary(make_a=values, make_b=values, pairs=PAIRS):
    """Cases with two arrays of mutually broadcastable shapes."""
    return pairs.flatmap(lambda p: st.tuples(make_a(p[0]), make_b(p[1]))).map(lambda ab: Case(ab, {}))


@st.composite
def tie_free_pair(draw, pairs=PAIRS):
    """Two arrays of broadcastable shapes with no element of one close to any element of the
    other: one tie-free array split in two, so maximum/minimum never meet a tie."""
    sa, sb = draw(pairs)
    na, nb = int(np.prod(sa)), int(np.prod(sb))
    flat = draw(S.tie_free_arrays((na + nb,)))
    return Case((flat[:na].reshape(sa), flat[na:].reshape(sb)), {})


def axis_args(ndim, kind):
    """Strategy for a reduction axis of one kind: None, an int (negative too) or a tuple."""
    if kind == "none":
        return st.none()
    if kind == "int":
        return st.integers(-ndim, ndim - 1)
    return st.lists(st.integers(-ndim, ndim - 1), min_size=1, max_size=ndim,
                    unique_by=lambda a: a % ndim).map(tuple)


@st.composite
def reduce_case(draw, kind, keepdims, tie_free=False):
    shape = draw(SHAPES_1)
    x = draw(S.tie_free_arrays(shape) if tie_free else values(shape))
    return Case((x,), dict(axis=draw(axis_args(len(shape), kind)), keepdims=keepdims))


@st.composite
def norm_case(draw, p, kind):
    """x.norm(p, dim, keepdim): |x| >= 0.5 and tie-free, away from the kinks at 0 (every p) and at ties (inf)."""
    shape = draw(SHAPES_1)
    t = draw(S.tie_free_arrays(shape))
    signs = draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([-1.0, 1.0])))
    return Case((signs * (0.5 + t - t.min()),), dict(p=p, axis=draw(axis_args(len(shape), kind)),
                                                    keepdims=draw(st.booleans())))


def np_norm(x, p, axis, keepdims):
    a = np.abs(x)
    if p == np.inf:
        return np.asarray(a.max(axis=axis, keepdims=keepdims))
    return np.asarray((a ** p).sum(axis=axis, keepdims=keepdims) ** (1 / p))


@st.composite
def softmax_case(draw, keepdims=None, allow_none=False):
    shape = draw(SHAPES_1)
    kinds = ["none", "int"] if allow_none else ["int"]
    params = dict(axis=draw(axis_args(len(shape), draw(st.sampled_from(kinds)))))
    if keepdims is not None:
        params["keepdims"] = draw(st.booleans())
    return Case((draw(values(shape)),), params)


@st.composite
def matmul_case(draw, a_rank, b_rank, batch=False):
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    ba, bb = draw(S.broadcastable_shapes(min_dims=0, max_dims=2, max_side=2)) if batch else ((), ())
    sa = {1: (k,), 2: (n, k)}[a_rank] if a_rank <= 2 else ba + (n, k)
    sb = {1: (k,), 2: (k, m)}[b_rank] if b_rank <= 2 else bb + (k, m)
    return Case((draw(values(sa)), draw(values(sb))), {})


@st.composite
def linear_case(draw, bias):
    """x (..., in) with 0 to 2 leading axes, weight (out, in), and a bias (out,) when asked."""
    lead = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    k, m = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    arrays = (draw(values(tuple(lead) + (k,))), draw(values((m, k))))
    return Case(arrays + ((draw(values((m,))),) if bias else ()), {})


def linear_reference(x, w, b=None):
    return x @ w.T + (0.0 if b is None else b)


def linear_relu_case(bias, margin=0.01):
    """linear_case with every pre-activation at least `margin` from ReLU's kink."""
    return linear_case(bias=bias).filter(lambda c: np.abs(linear_reference(*c.arrays)).min(initial=1.0) >= margin)


def linear_relu_reference(x, w, b=None):
    return np.maximum(linear_reference(x, w, b), 0.0)


@st.composite
def reshape_case(draw):
    shape = draw(SHAPES)
    size = int(np.prod(shape))
    new, left = [], size
    for _ in range(draw(st.integers(0, 3))):
        d = draw(st.sampled_from([d for d in range(1, left + 1) if left % d == 0]))
        new.append(d)
        left //= d
    new.append(left)
    if draw(st.booleans()):
        new[draw(st.integers(0, len(new) - 1))] = -1
    return Case((draw(values(shape)),), dict(shape=tuple(new)))


@st.composite
def transpose_case(draw):
    shape = draw(SHAPES_1)
    return Case((draw(values(shape)),), dict(axes=tuple(draw(st.permutations(range(len(shape)))))))


@st.composite
def flatten_case(draw):
    shape = draw(SHAPES_1)
    return Case((draw(values(shape)),), dict(start_axis=draw(st.integers(-len(shape), len(shape) - 1))))


@st.composite
def broadcast_case(draw):
    target = draw(SHAPES_1)
    drop = draw(st.integers(0, len(target)))
    source = tuple(1 if draw(st.booleans()) else s for s in target[drop:])
    return Case((draw(values(source)),), dict(shape=target))


@st.composite
def pad_case(draw):
    shape = draw(SHAPES_1)
    widths = tuple(draw(st.tuples(st.integers(0, 2), st.integers(0, 2))) for _ in shape)
    return Case((draw(values(shape)),), dict(pad_width=widths, value=draw(st.floats(-2, 2))))


@st.composite
def slice_case(draw):
    """Per axis: an int, or a slice with any start/stop (negative too) and a step of +-1 or +-2."""
    shape = draw(SHAPES_1)
    index = []
    for side in shape:
        if draw(st.booleans()):
            index.append(draw(st.integers(-side, side - 1)))
        else:
            bound = st.none() | st.integers(-side - 1, side + 1)
            index.append(slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, -1, -2]))))
    return Case((draw(values(shape)),), dict(index=tuple(index)))


@st.composite
def none_int_case(draw):
    """None (new axes), an int, Ellipsis and a reversed slice together."""
    shape = draw(SHAPES_2)
    i = draw(st.integers(-shape[0], shape[0] - 1))
    return Case((draw(values(shape)),), dict(index=(None, i, Ellipsis, None, slice(None, None, -1))))


@st.composite
def int_array_case(draw, as_list=False):
    """Integer-array indices along axis 0 with at least one repeat, so the gradient must accumulate."""
    shape = draw(SHAPES_1)
    picks = draw(st.lists(st.integers(-shape[0], shape[0] - 1), min_size=1, max_size=5))
    picks = picks + [picks[0]]
    return Case((draw(values(shape)),), dict(index=picks if as_list else np.array(picks)))


@st.composite
def int_arrays_case(draw):
    """A tuple of integer arrays (paired, with repeats) and a slice after an array."""
    shape = draw(SHAPES_2)
    n = draw(st.integers(1, 5))
    rows = draw(st.lists(st.integers(0, shape[0] - 1), min_size=n, max_size=n)) + [0, 0]
    cols = draw(st.lists(st.integers(0, shape[1] - 1), min_size=n, max_size=n)) + [0, 0]
    return Case((draw(values(shape)),), dict(index=(np.array(rows), np.array(cols))))


@st.composite
def slice_then_array_case(draw):
    shape = draw(SHAPES_2)
    cols = draw(st.lists(st.integers(0, shape[1] - 1), min_size=1, max_size=4))
    return Case((draw(values(shape)),), dict(index=(slice(None), np.array(cols + cols[:1]))))


@st.composite
def bool_mask_case(draw):
    shape = draw(SHAPES_1)
    mask_shape = shape[:draw(st.integers(1, len(shape)))]
    mask = draw(hnp.arrays(bool, mask_shape))
    return Case((draw(values(shape)),), dict(index=mask))


@st.composite
def concatenate_case(draw):
    shape = draw(SHAPES_1)
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    arrays = []
    for _ in range(draw(st.integers(2, 3))):
        s = list(shape)
        s[axis] = draw(st.integers(1, 3))
        arrays.append(draw(values(tuple(s))))
    return Case(tuple(arrays), dict(axis=axis))


@st.composite
def stack_case(draw):
    shape = draw(SHAPES)
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    return Case(tuple(draw(values(shape)) for _ in range(draw(st.integers(2, 3)))), dict(axis=axis))


@st.composite
def where_case(draw):
    sc, sa, sb = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3,
                                                        max_side=SIDE)).input_shapes
    return Case((draw(values(sa)), draw(values(sb))), dict(condition=draw(hnp.arrays(bool, sc))))


def clip_case(low, high):
    kinks = tuple(v for v in (low, high) if v is not None)
    return unary(lambda s: S.away_from(S.arrays(s), kinks=kinks, margin=0.1), low=st.just(low),
                 high=st.just(high))


# ---------------------------------------------------------------- references that NumPy lacks

def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


def np_softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def np_log_softmax(x, axis=-1):
    return x - np_logsumexp(x, axis=axis, keepdims=True)


def np_flatten(x, start_axis):
    start = start_axis % x.ndim
    return x.reshape(x.shape[:start] + (-1,))


# ---------------------------------------------------------------- the table

def _spec(name, fn, reference, inputs, **kw):
    return OpSpec(name, fn, reference, inputs, **kw)


SPECS = [
    # binary arithmetic over broadcastable shape pairs
    _spec("add", lambda a, b: a + b, np.add, binary()),
    _spec("sub", lambda a, b: a - b, np.subtract, binary()),
    _spec("mul", lambda a, b: a * b, np.multiply, binary()),
    _spec("div", lambda a, b: a / b, np.divide, binary(values, nonzero)),
    _spec("pow_tensor_tensor", lambda a, b: a ** b, np.power, binary(positive, values)),
    # a Python scalar on either side
    _spec("add_scalar", lambda x: x + 2.5, lambda x: x + 2.5, unary()),
    _spec("radd_scalar", lambda x: 2.5 + x, lambda x: 2.5 + x, unary()),
    _spec("sub_scalar", lambda x: x - 2, lambda x: x - 2, unary()),
    _spec("rsub_scalar", lambda x: 2 - x, lambda x: 2 - x, unary()),
    _spec("mul_scalar", lambda x: x * -1.5, lambda x: x * -1.5, unary()),
    _spec("rmul_scalar", lambda x: 3 * x, lambda x: 3 * x, unary()),
    _spec("div_scalar", lambda x: x / 3, lambda x: x / 3, unary()),
    _spec("rdiv_scalar", lambda x: 3 / x, lambda x: 3 / x, unary(nonzero)),
    _spec("pow_scalar_int", lambda x: x ** 3, lambda x: x ** 3, unary()),
    _spec("pow_scalar_square", lambda x: x ** 2, lambda x: x ** 2, unary()),
    _spec("pow_scalar_fraction", lambda x: x ** 0.5, np.sqrt, unary(positive)),
    _spec("pow_scalar_negative", lambda x: x ** -1.5, lambda x: x ** -1.5, unary(positive)),
    _spec("rpow_scalar", lambda x: 2 ** x, lambda x: 2.0 ** x, unary()),
    # unary
    _spec("neg", lambda x: -x, np.negative, unary()),
    _spec("exp", lambda x: x.exp(), np.exp, unary()),
    _spec("log", lambda x: x.log(), np.log, unary(positive)),
    _spec("sqrt", lambda x: x.sqrt(), np.sqrt, unary(positive)),
    _spec("abs", lambda x: x.abs(), np.abs, unary(nonzero)),
    _spec("tanh", lambda x: x.tanh(), np.tanh, unary()),
    _spec("relu", lambda x: x.relu(), lambda x: np.maximum(x, 0), unary(nonzero)),
    _spec("sigmoid", lambda x: x.sigmoid(), np_sigmoid, unary()),
    _spec("clip", lambda x, low, high: x.clip(low, high), lambda x, low, high: np.clip(x, low, high),
          clip_case(-1.0, 1.5)),
    _spec("clip_low", lambda x, low, high: x.clip(low=low), lambda x, low, high: np.maximum(x, low),
          clip_case(-0.5, None)),
    _spec("clip_high", lambda x, low, high: x.clip(high=high), lambda x, low, high: np.minimum(x, high),
          clip_case(None, 0.5)),
    # matmul in every NumPy arrangement
    _spec("matmul_1d_1d", lambda a, b: a @ b, np.matmul, matmul_case(1, 1)),
    _spec("matmul_1d_2d", lambda a, b: a @ b, np.matmul, matmul_case(1, 2)),
    _spec("matmul_2d_1d", lambda a, b: a @ b, np.matmul, matmul_case(2, 1)),
    _spec("matmul_2d_2d", lambda a, b: a @ b, np.matmul, matmul_case(2, 2)),
    _spec("matmul_batched", lambda a, b: tc.matmul(a, b), np.matmul, matmul_case(3, 3, batch=True)),
    _spec("matmul_1d_batched", lambda a, b: a @ b, np.matmul, matmul_case(1, 3, batch=True)),
    _spec("matmul_batched_1d", lambda a, b: a @ b, np.matmul, matmul_case(3, 1, batch=True)),
    _spec("matmul_batched_2d", lambda a, b: a @ b, np.matmul, matmul_case(3, 2, batch=True)),
    _spec("linear", lambda x, w, b: F.linear(x, w, b), linear_reference, linear_case(bias=True)),
    _spec("linear_no_bias", lambda x, w: F.linear(x, w), linear_reference, linear_case(bias=False)),
    _spec("linear_relu", lambda x, w, b: F.linear(x, w, b, relu=True), linear_relu_reference,
          linear_relu_case(bias=True)),
    _spec("linear_relu_no_bias", lambda x, w: F.linear(x, w, relu=True), linear_relu_reference,
          linear_relu_case(bias=False)),
    # elementwise of two tensors
    _spec("maximum", lambda a, b: tc.maximum(a, b), np.maximum, tie_free_pair()),
    _spec("minimum", lambda a, b: a.minimum(b), np.minimum, tie_free_pair()),
    _spec("where", lambda a, b, condition: tc.where(condition, a, b),
          lambda a, b, condition: np.where(condition, a, b), where_case()),
    # softmax family
    _spec("softmax", lambda x, axis: x.softmax(axis), np_softmax, softmax_case()),
    _spec("log_softmax", lambda x, axis: x.log_softmax(axis), np_log_softmax, softmax_case()),
    _spec("logsumexp", lambda x, axis, keepdims: x.logsumexp(axis, keepdims), np_logsumexp,
          softmax_case(keepdims=True, allow_none=True)),
    # movement
    _spec("reshape", lambda x, shape: x.reshape(shape), lambda x, shape: x.reshape(shape), reshape_case()),
    _spec("reshape_varargs", lambda x, shape: x.reshape(*shape), lambda x, shape: x.reshape(shape),
          reshape_case()),
    _spec("transpose_reverse", lambda x: x.transpose(), np.transpose, unary(shapes=SHAPES)),
    _spec("T", lambda x: x.T, lambda x: x.T, unary(shapes=SHAPES)),
    _spec("transpose_axes", lambda x, axes: x.transpose(axes), lambda x, axes: np.transpose(x, axes),
          transpose_case()),
    _spec("transpose_axes_varargs", lambda x, axes: x.transpose(*axes),   # two axes apart: torch's swap of them
          lambda x, axes: np.swapaxes(x, *axes) if len(axes) == 2 else np.transpose(x, axes), transpose_case()),
    _spec("permute", lambda x, axes: x.permute(*axes),   # the Permute op, under PyTorch's name
          lambda x, axes: np.transpose(x, axes), transpose_case()),
    _spec("flatten", lambda x, start_axis: x.flatten(start_axis), np_flatten, flatten_case()),
    _spec("broadcast_to", lambda x, shape: x.broadcast_to(shape), np.broadcast_to, broadcast_case()),
    _spec("expand", lambda x, shape: x.expand(*shape), np.broadcast_to, broadcast_case()),
    _spec("pad", lambda x, pad_width, value: x.pad(pad_width, value),
          lambda x, pad_width, value: np.pad(x, pad_width, constant_values=value), pad_case()),
    _spec("pad_int", lambda x: x.pad(1), lambda x: np.pad(x, 1), unary(shapes=SHAPES_1)),
    _spec("getitem_slices", lambda x, index: x[index], lambda x, index: x[index], slice_case()),
    _spec("getitem_none_int", lambda x, index: x[index], lambda x, index: x[index], none_int_case()),
    _spec("getitem_int_array_repeated", lambda x, index: x[index], lambda x, index: x[index],
          int_array_case()),
    _spec("getitem_list_repeated", lambda x, index: x[index], lambda x, index: x[np.array(index)],
          int_array_case(as_list=True)),
    _spec("getitem_int_arrays", lambda x, index: x[index], lambda x, index: x[index], int_arrays_case()),
    _spec("getitem_slice_then_array", lambda x, index: x[index], lambda x, index: x[index],
          slice_then_array_case()),
    _spec("getitem_bool_mask", lambda x, index: x[index], lambda x, index: x[index], bool_mask_case()),
    _spec("concatenate", lambda *ts, axis: tc.concatenate(ts, axis=axis),
          lambda *xs, axis: np.concatenate(xs, axis=axis), concatenate_case()),
    _spec("stack", lambda *ts, axis: tc.stack(ts, axis=axis), lambda *xs, axis: np.stack(xs, axis=axis),
          stack_case()),
    # dtype
    _spec("astype_float32_round_trip", lambda x: x.astype(tc.float32).astype(tc.float64) * 2,
          lambda x: x.astype(np.float32).astype(np.float64) * 2, unary(),
          out_dtype=np.dtype(np.float64), gradcheck_kwargs=dict(eps=1e-1)),  # NOTE: linear, so eps costs nothing
]

# reductions: every axis kind with keepdims both ways (max/min on tie-free inputs)
_REDUCTIONS = [("sum", np.sum, False), ("mean", np.mean, False), ("max", np.max, True), ("min", np.min, True)]
for _name, _ref, _tie_free in _REDUCTIONS:
    for _kind in ("none", "int", "tuple"):
        for _keep in (False, True):
            SPECS.append(_spec(
                f"{_name}_axis_{_kind}{'_keepdims' if _keep else ''}",
                lambda x, axis, keepdims, _n=_name: getattr(x, _n)(axis=axis, keepdims=keepdims),
                lambda x, axis, keepdims, _r=_ref: np.asarray(_r(x, axis=axis, keepdims=keepdims)),
                reduce_case(_kind, _keep, tie_free=_tie_free)))

# torch's vector norms: x.norm() (the 2-norm of all elements) and x.norm(p, dim, keepdim)
SPECS.append(_spec("norm_default", lambda x, p, axis, keepdims: x.norm(),
                   lambda x, p, axis, keepdims: np.asarray(np.sqrt((x * x).sum())), norm_case(2.0, "none")))
for _p, _kind in ((2.0, "int"), ("fro", "tuple"), (1.0, "int"), (np.inf, "tuple"), (np.inf, "none"), (3.0, "int"),
                  (0.5, "tuple")):
    SPECS.append(_spec(f"norm_{_p}_axis_{_kind}", lambda x, p, axis, keepdims: x.norm(p, dim=axis, keepdim=keepdims),
                       lambda x, p, axis, keepdims: np_norm(x, 2.0 if p == "fro" else p, axis, keepdims),
                       norm_case(_p, _kind)))

SPEC_NAMES = [s.name for s in SPECS]
# rows with more than one array input: test_op_table_strict checks each subset of them requiring a gradient
MULTI_INPUT = {"add", "sub", "mul", "div", "pow_tensor_tensor", "matmul_1d_1d", "matmul_1d_2d", "matmul_2d_1d",
               "matmul_2d_2d", "matmul_batched", "matmul_1d_batched", "matmul_batched_1d", "matmul_batched_2d",
               "linear", "linear_no_bias", "linear_relu", "linear_relu_no_bias", "maximum", "minimum", "where", "concatenate", "stack"}
assert MULTI_INPUT <= set(SPEC_NAMES)
assert len(set(SPEC_NAMES)) == len(SPEC_NAMES), "duplicate op spec names"


# ---------------------------------------------------------------- forward-only: no gradient

@dataclass(frozen=True)
class ForwardSpec:
    name: str
    fn: Callable
    reference: Callable
    inputs: Any

    def __repr__(self):
        return f"ForwardSpec({self.name})"


def small_ints(shape):
    """Whole numbers in [-2, 2] as floats, so that == and <= meet ties often."""
    return hnp.arrays(np.float64, shape, elements=st.integers(-2, 2).map(float))


def _compare(op):
    return ForwardSpec(op.__name__, op, op, binary(small_ints, small_ints))


@st.composite
def arg_case(draw):
    shape = draw(SHAPES_1)
    return Case((draw(S.tie_free_arrays(shape)),),
                dict(axis=draw(axis_args(len(shape), draw(st.sampled_from(["none", "int"])))),
                     keepdims=draw(st.booleans())))


def _np_arg(f):
    return lambda x, axis, keepdims: f(x, axis=axis, keepdims=keepdims)


FORWARD_ONLY = [_compare(op) for op in (operator.lt, operator.le, operator.gt, operator.ge,
                                        operator.eq, operator.ne)] + [
    ForwardSpec("gt_scalar", lambda x: x > 0.0, lambda x: x > 0.0, unary(small_ints)),
    ForwardSpec("rlt_scalar", lambda x: 1 < x, lambda x: 1 < x, unary(small_ints)),
    ForwardSpec("argmax", lambda x, axis, keepdims: x.argmax(axis, keepdims), _np_arg(np.argmax), arg_case()),
    ForwardSpec("argmin", lambda x, axis, keepdims: x.argmin(axis, keepdims), _np_arg(np.argmin), arg_case()),
]
