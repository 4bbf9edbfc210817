"""Every row of op_specs.SPECS on every device: forward against NumPy in float64 and float32,
gradcheck under hypothesis, float32 gradients; then forward-only ops and numerical stability."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor
from tinygrad_cnn.device import canonical_device
from tinygrad_cnn.testing import gradcheck
from tinygrad_cnn.testing import strategies as S

from conftest import DEVICES
from op_specs import FORWARD_ONLY, MULTI_INPUT, SPECS, np_log_softmax, np_logsumexp, np_softmax, tight

spec_param = pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
device_param = pytest.mark.parametrize("device", DEVICES)
pytestmark = pytest.mark.usefixtures("kernel_mode")  # every row with the kernels and on the reference ops


def _run(spec, case, device, dtype, requires_grad=False):
    inputs = [Tensor(a.astype(dtype), device=device, requires_grad=requires_grad) for a in case.arrays]
    return inputs, spec.fn(*inputs, **case.params)


@device_param
@spec_param
@given(data=st.data())
def test_forward_float64(spec, device, data):
    case = data.draw(spec.inputs, label="case")
    _, out = _run(spec, case, device, np.float64)
    expected = np.asarray(spec.reference(*case.arrays, **case.params))
    assert isinstance(out, Tensor)
    assert out.device == canonical_device(device)
    assert out.shape == expected.shape
    assert out.dtype == (spec.out_dtype or np.float64)
    assert not out.requires_grad, "no input required a gradient, so the result must not"
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


@device_param
@spec_param
@given(data=st.data())
def test_forward_float32_stays_float32(spec, device, data):
    case = data.draw(spec.inputs, label="case")
    _, out = _run(spec, case, device, np.float32)
    # the reference sees exactly the float32 values, computed in float64
    expected = np.asarray(spec.reference(*[a.astype(np.float32).astype(np.float64) for a in case.arrays],
                                         **case.params))
    assert out.dtype == (spec.out_dtype or np.float32), f"{spec.name} changed float32 into {out.dtype}"
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


@device_param
@spec_param
@given(data=st.data())
def test_gradcheck(spec, device, data):
    case = data.draw(spec.inputs, label="case")
    assert (len(case.arrays) > 1) == (spec.name in MULTI_INPUT), "op_specs.MULTI_INPUT is out of date"
    inputs = [Tensor(a, device=device, requires_grad=True) for a in case.arrays]
    assert gradcheck(lambda *ts: spec.fn(*ts, **case.params), inputs, **tight(spec))


@device_param
@spec_param
@given(data=st.data())
def test_backward_float32_matches_float64(spec, device, data):
    """float32 inputs get float32 gradients of their own shape, equal to the float64 gradients."""
    case = data.draw(spec.inputs, label="case")
    upstream = None
    grads = {}
    for dtype in (np.float64, np.float32):
        inputs, out = _run(spec, case, device, dtype, requires_grad=True)
        assert out.requires_grad
        if upstream is None:
            upstream = np.random.default_rng(0).standard_normal(out.shape)
        out.backward(Tensor(upstream.astype(out.dtype), device=device))
        for i, t in enumerate(inputs):
            assert t.grad is not None, f"input {i} got no gradient"
            assert t.grad.shape == t.shape
            assert t.grad.dtype == dtype
            assert t.grad.device == canonical_device(device)
        grads[dtype] = [t.grad.numpy() for t in inputs]
    for g64, g32 in zip(grads[np.float64], grads[np.float32]):
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- forward-only ops

@device_param
@pytest.mark.parametrize("spec", FORWARD_ONLY, ids=lambda s: s.name)
@given(data=st.data())
def test_forward_only_ops(spec, device, data):
    case = data.draw(spec.inputs, label="case")
    inputs = [Tensor(a, device=device, requires_grad=True) for a in case.arrays]
    out = spec.fn(*inputs, **case.params)
    expected = np.asarray(spec.reference(*case.arrays, **case.params))
    assert out.dtype == expected.dtype
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out.numpy(), expected)
    assert not out.requires_grad and out.is_leaf, f"{spec.name} must not join the graph"


NON_FLOAT = [np.uint8, np.int32, np.int64, np.bool_]


@device_param
@pytest.mark.parametrize("dtype", NON_FLOAT, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", ["max", "min", "argmax", "argmin"])
@given(data=st.data())
def test_reductions_of_integer_and_bool_tensors(op, dtype, device, data):
    """min/argmin must not be built on negation here: -x wraps for uint8 and fails for bool."""
    x = data.draw(hnp.arrays(dtype, S.shapes(max_side=4)), label="x")
    axis = data.draw(st.none() | st.integers(-x.ndim, x.ndim - 1), label="axis")
    keepdims = data.draw(st.booleans(), label="keepdims")
    out = getattr(Tensor(x, device=device), op)(axis=axis, keepdims=keepdims)
    expected = np.asarray(getattr(np, op)(x, axis=axis, keepdims=keepdims))
    assert out.dtype == expected.dtype and out.shape == expected.shape
    np.testing.assert_array_equal(out.numpy(), expected)


@device_param
@pytest.mark.parametrize("dtype", NON_FLOAT, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", ["maximum", "minimum"])
@given(data=st.data())
def test_maximum_minimum_of_integer_and_bool_tensors(op, dtype, device, data):
    sa, sb = data.draw(S.broadcastable_shapes(max_side=4), label="shapes")
    a = data.draw(hnp.arrays(dtype, sa), label="a")
    b = data.draw(hnp.arrays(dtype, sb), label="b")
    out = getattr(tc, op)(Tensor(a, device=device), Tensor(b, device=device))
    expected = getattr(np, op)(a, b)
    assert out.dtype == expected.dtype and out.shape == expected.shape
    np.testing.assert_array_equal(out.numpy(), expected)


# ---------------------------------------------------------------- numerical stability

BIG = 1e4


@device_param
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_saturates_without_overflow(device, dtype):
    x = Tensor(np.array([-BIG, -1e3, 0.0, 1e3, BIG], dtype=dtype), device=device, requires_grad=True)
    with np.errstate(all="raise"):  # an overflowing exp would raise here on the CPU
        y = x.sigmoid()
        y.backward(tc.ones_like(y))
    out = y.numpy()
    assert y.dtype == dtype
    assert out[0] == 0.0 and out[-1] == 1.0 and out[2] == 0.5
    assert np.all(np.isfinite(x.grad.numpy()))


STABLE_REFERENCES = {"softmax": np_softmax, "log_softmax": np_log_softmax,
                     "logsumexp": lambda x, axis: np_logsumexp(x, axis=axis)}


@device_param
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", sorted(STABLE_REFERENCES))
def test_softmax_family_is_stable_at_1e4(device, dtype, op):
    x64 = np.array([[BIG, -BIG, 0.0, BIG - 1.0], [-BIG, -BIG + 2.0, -BIG + 1.0, -BIG]])
    x = Tensor(x64.astype(dtype), device=device, requires_grad=True)
    with np.errstate(over="raise", invalid="raise"):  # an overflowing exp would raise here on the CPU
        y = getattr(x, op)(axis=1)
        y.backward(tc.ones_like(y) * 0.5)
    assert y.dtype == dtype
    assert np.all(np.isfinite(y.numpy())) and np.all(np.isfinite(x.grad.numpy()))
    expected = STABLE_REFERENCES[op](x64.astype(dtype).astype(np.float64), axis=1)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(y.numpy(), expected, rtol=rtol, atol=rtol)


# ---------------------------------------------------------------- astype

@device_param
@pytest.mark.parametrize("src, dst", [(np.float32, np.float64), (np.float64, np.float32)])
def test_astype_gradient_comes_back_in_the_source_dtype(device, src, dst):
    values = np.random.default_rng(1).standard_normal((2, 3))
    x = Tensor(values.astype(src), device=device, requires_grad=True)
    y = x.astype(dst)
    assert y.dtype == dst and y.requires_grad
    np.testing.assert_array_equal(y.numpy(), values.astype(src).astype(dst))
    upstream = np.random.default_rng(2).standard_normal((2, 3)).astype(dst)
    y.backward(upstream)
    assert x.grad.dtype == src
    np.testing.assert_array_equal(x.grad.numpy(), upstream.astype(src))


def test_astype_to_the_same_dtype_is_the_tensor_itself():
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    assert x.astype(np.float32) is x and x.float() is x
    assert x.double().dtype == np.float64


def test_astype_to_int_leaves_the_graph():
    x = Tensor(np.array([1.7, -2.2]), requires_grad=True)
    y = x.astype(np.int64)
    assert y.dtype == np.int64 and not y.requires_grad
    np.testing.assert_array_equal(y.numpy(), np.array([1.7, -2.2]).astype(np.int64))


REQUIRED_OPS = ["add", "sub", "mul", "div", "rsub_scalar", "rdiv_scalar", "div_scalar", "pow_scalar",
                "rpow_scalar", "pow_tensor_tensor", "neg", "exp", "log", "sqrt", "abs", "tanh", "relu",
                "sigmoid", "matmul_1d_1d", "matmul_1d_2d", "matmul_2d_1d", "matmul_2d_2d", "matmul_batched",
                "sum_axis_none", "sum_axis_int_keepdims", "sum_axis_tuple", "mean_axis_tuple_keepdims",
                "max_axis_none", "max_axis_tuple_keepdims", "min_axis_int", "reshape", "transpose_reverse",
                "transpose_axes", "flatten", "broadcast_to", "expand", "pad", "getitem_slices",
                "getitem_none_int", "getitem_int_array_repeated", "getitem_bool_mask", "concatenate",
                "stack", "where", "maximum", "minimum", "clip", "softmax", "log_softmax", "logsumexp",
                "astype"]


def test_the_table_covers_every_required_op():
    names = [spec.name for spec in SPECS]
    missing = [op for op in REQUIRED_OPS if not any(n == op or n.startswith(op + "_") for n in names)]
    assert not missing, f"op_specs.SPECS has no row for {missing}"
