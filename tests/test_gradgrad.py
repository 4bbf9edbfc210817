"""Second derivatives: every row of op_specs.SPECS under gradgradcheck (the gradient of the gradient,
recorded with create_graph=True, against central differences of the gradient) on every device, with
the kernels (which fall back to their references) and on the references; the same strategies as the
first-order tests, so inputs stay away from kinks and ties. Then the API: tg.grad, backward(create_graph),
their errors, a planted wrong second derivative, convolution and pooling, cross-entropy."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor, ops
from tinygrad_cnn.autograd import constant
from tinygrad_cnn.nn import functional as F
from tinygrad_cnn.testing import GradcheckError, gradgradcheck
from tinygrad_cnn.testing import strategies as S

from conftest import DEVICES
from op_specs import SPECS, tight

device_param = pytest.mark.parametrize("device", DEVICES)


# ---------------------------------------------------------------- every op of the table

@pytest.mark.usefixtures("kernel_mode")
@device_param
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@given(data=st.data())
def test_second_derivative(spec, device, data):
    case = data.draw(spec.inputs, label="case")
    inputs = [Tensor(a, device=device, requires_grad=True) for a in case.arrays]
    assert gradgradcheck(lambda *ts: spec.fn(*ts, **case.params), inputs, **tight(spec))


def _tanh_with_constant_second_factor(self, g, inputs, output):
    """A planted bug: 1 - tanh**2 taken as a constant, so the first derivative is right, the second wrong."""
    return g * constant(1 - output.data * output.data, self.device)


def _mul_with_detached_other(self, g, inputs, output):
    """A planted bug: the other factor detached, so d2(a*b)/da db is lost."""
    a, b = inputs
    return g * b.detach(), g * a.detach()


@pytest.mark.parametrize("op, bug, spec_name", [(ops.Tanh, _tanh_with_constant_second_factor, "tanh"),
                                                (ops.Mul, _mul_with_detached_other, "mul")])
@given(data=st.data())
def test_a_planted_wrong_second_derivative_fails(op, bug, spec_name, data):
    """Inputs away from 0, where tanh's second derivative vanishes (and with it the planted error)."""
    spec = next(s for s in SPECS if s.name == spec_name)
    shape = data.draw(S.shapes(min_dims=1, max_dims=2, max_side=3), label="shape")
    arrays = [data.draw(S.away_from(S.arrays(shape), kinks=(0.0,), margin=0.3)) for _ in range(2 if op is ops.Mul else 1)]
    case = type(data.draw(spec.inputs))(tuple(arrays), {})
    fn = lambda *ts: spec.fn(*ts, **case.params)  # noqa: E731
    original = op.backward_graph
    op.backward_graph = bug
    try:
        with pytest.raises(GradcheckError, match="gradgradcheck"):
            gradgradcheck(fn, [Tensor(a, requires_grad=True) for a in case.arrays], **tight(spec))
    finally:
        op.backward_graph = original
    assert gradgradcheck(fn, [Tensor(a, requires_grad=True) for a in case.arrays], **tight(spec))


# ---------------------------------------------------------------- convolution, pooling, losses

@st.composite
def conv_case(draw):
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, dilation = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    padding = draw(st.integers(0, 1))
    h = draw(st.integers(dilation * (kh - 1) + 1, 5))
    w = draw(st.integers(dilation * (kw - 1) + 1, 5))
    arrays = (draw(S.arrays((n, c, h, w))), draw(S.arrays((o, c, kh, kw))), draw(S.arrays((o,))))
    return arrays, dict(stride=stride, padding=padding, dilation=dilation)


@pytest.mark.usefixtures("kernel_mode")
@device_param
@given(case=conv_case())
def test_conv2d_second_derivative(device, case):
    arrays, kwargs = case
    inputs = [Tensor(a, device=device, requires_grad=True) for a in arrays]
    # tanh after it, so that the second derivative in x and w is not zero
    assert gradgradcheck(lambda x, w, b: F.conv2d(x, w, b, **kwargs).tanh(), inputs, eps=1e-5, atol=1e-7, rtol=1e-5)


@pytest.mark.usefixtures("kernel_mode")
@device_param
@pytest.mark.parametrize("pool", ["max", "avg"])
@given(data=st.data())
def test_pooling_second_derivative(device, pool, data):
    """Pooling of a tie-free input (max-pool's gradient is defined), squared so the result curves."""
    n, c = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    k, stride, padding = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 2)), data.draw(st.integers(0, 1))
    padding = min(padding, k // 2)
    h, w = data.draw(st.integers(k, 5)), data.draw(st.integers(k, 5))
    x = Tensor(data.draw(S.tie_free_arrays((n, c, h, w))), device=device, requires_grad=True)
    pool_fn = F.max_pool2d if pool == "max" else F.avg_pool2d
    assert gradgradcheck(lambda x: pool_fn(x, k, stride, padding) ** 2, [x], eps=1e-5, atol=1e-7, rtol=1e-5)


@pytest.mark.usefixtures("kernel_mode")
@device_param
@pytest.mark.parametrize("relu", [False, True])
@given(data=st.data())
def test_fused_conv_pool_relu_second_derivative(device, relu, data):
    """conv2d_max_pool2d: with the kernels one fused op, whose second derivative is its reference's."""
    x = Tensor(data.draw(S.tie_free_arrays((2, 2, 4, 4))), device=device, requires_grad=True)
    w = Tensor(data.draw(S.tie_free_arrays((2, 2, 2, 2), scale=2.0)), device=device, requires_grad=True)
    b = Tensor(data.draw(S.tie_free_arrays((2,))), device=device, requires_grad=True)
    with tc.no_grad():  # away from ties of a window's maximum and from ReLU's kink
        y = F.conv2d(x, w, b).numpy()  # (2, 2, 3, 3): one whole 2x2 window per map
    window = np.sort(y[:, :, :2, :2].reshape(4, 4), axis=1)
    assume(np.min(window[:, -1] - window[:, -2]) > 1e-2 and np.abs(window[:, -1]).min() > 1e-2)
    fn = lambda x, w, b: F.conv2d_max_pool2d(x, w, b, pool_size=2, relu=relu).tanh()  # noqa: E731
    assert gradgradcheck(fn, [x, w, b], eps=1e-5, atol=1e-7, rtol=1e-5)


@pytest.mark.usefixtures("kernel_mode")
@device_param
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(data=st.data())
def test_cross_entropy_second_derivative(device, reduction, data):
    n, classes = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    logits = Tensor(data.draw(S.arrays((n, classes))), device=device, requires_grad=True)
    targets = Tensor(np.array(data.draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n))),
                     device=device)
    assert gradgradcheck(lambda z: F.cross_entropy(z, targets, reduction=reduction), [logits],
                         eps=1e-5, atol=1e-7, rtol=1e-5)
