"""The op table checked harder (issue 14 items 1, 3, 4, 5): every subset of a row's inputs requiring
a gradient (so each `needs_input_grad` branch runs), tolerances tight enough that a 1e-4 relative
error in any gradient fails (planted below), each row inside a graph that uses its output twice and
as a diamond, and the dtype and device of every gradient passed between ops."""
import itertools

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor, norms, ops
from tinygrad_cnn.device import canonical_device, device_of
from tinygrad_cnn.nn import functional as F
from tinygrad_cnn.testing import gradcheck
from tinygrad_cnn.testing.gradcheck import GradcheckError

from conftest import DEVICES, PROFILE
from op_specs import MULTI_INPUT, SPECS, TIGHT, tight

device_param = pytest.mark.parametrize("device", DEVICES)
pytestmark = pytest.mark.usefixtures("kernel_mode")  # every row with the kernels and on the reference ops
SPEC_BY_NAME = {s.name: s for s in SPECS}
MULTI = [s for s in SPECS if s.name in MULTI_INPUT]
# NOTE: in CI a few examples per row: each example already runs every subset of the row's inputs
few = settings(max_examples=4) if PROFILE == "ci" else settings()


def _tensors(case, device, wants):
    return [Tensor(a, device=device, requires_grad=w) for a, w in zip(case.arrays, wants)]


# ---------------------------------------------------------------- every subset of the inputs

@device_param
@pytest.mark.parametrize("spec", MULTI, ids=lambda s: s.name)
@few
@given(data=st.data())
def test_gradcheck_every_subset_of_inputs(spec, device, data):
    """Each proper, non-empty subset requires a gradient, the others are constants (test_ops checks all)."""
    case = data.draw(spec.inputs, label="case")
    n = len(case.arrays)
    assert n >= 2, f"{spec.name} is in MULTI_INPUT but drew {n} input"
    for k in range(1, n):
        for subset in itertools.combinations(range(n), k):
            wants = [i in subset for i in range(n)]
            inputs = _tensors(case, device, wants)
            try:
                gradcheck(lambda *ts: spec.fn(*ts, **case.params), inputs, **tight(spec))
            except GradcheckError as e:
                raise AssertionError(f"{spec.name}, only inputs {subset} requiring a gradient: {e}") from None
            out = spec.fn(*inputs, **case.params)
            out.backward(tc.ones_like(out))
            for t, w in zip(inputs, wants):
                assert (t.grad is not None) == w, "a constant input got a gradient, or a wanted one none"


@device_param
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("frozen", ["weight", "weight_and_bias", "bias"])
def test_frozen_linear_layer_input_gradient(device, bias, frozen):
    """A Dense layer whose weight needs no gradient (fine-tuning a frozen layer): the input's
    gradient takes its own branch in ops.Linear."""
    if frozen == "bias" and not bias:
        pytest.skip("no bias to freeze")
    rng = np.random.default_rng(3)
    layer = tc.nn.Dense(3, use_bias=bias, dtype="float64", device=device)
    layer.build((4, 5))
    for p in layer.parameters():
        p.data = p.xp.asarray(rng.standard_normal(p.shape))
    layer.weight.requires_grad = "weight" not in frozen
    if bias:
        layer.bias.requires_grad = frozen == "weight"
    x = Tensor(rng.standard_normal((4, 5)), device=device, requires_grad=True)
    params = [p for p in layer.parameters() if p.requires_grad]
    assert gradcheck(lambda x, *ps: layer(x), [x] + params, **TIGHT)
    layer(x).sum().backward()
    assert (layer.weight.grad is None) == ("weight" in frozen)


@pytest.mark.parametrize("frozen", [(1,), (0, 2), (1, 2), (0,)], ids=str)
def test_conv2d_with_frozen_inputs(frozen):
    """conv2d with a frozen weight (and/or bias, or a constant image): each needs_input_grad branch."""
    from test_conv_pool import conv_cases

    @settings(max_examples=3 if PROFILE == "ci" else 40)
    @given(case=conv_cases())
    def check(case):
        x, w, b, kwargs = case
        arrays = [x, w] + ([] if b is None else [b])
        wants = [i not in frozen for i in range(len(arrays))]
        assume(any(wants))
        inputs = [Tensor(a, requires_grad=want) for a, want in zip(arrays, wants)]
        assert gradcheck(lambda *t: F.conv2d(*t, **kwargs), inputs, **TIGHT)
    check()


# ---------------------------------------------------------------- a planted 1e-4 relative error

EPSILON = 1e-4
PLANTED = {  # op whose backward gets scaled by 1 + 1e-4 -> rows that must catch it
    ops.Mul: ["mul", "mul_scalar"], ops.Sum: ["sum_axis_none", "sum_axis_tuple_keepdims", "mean_axis_int"],
    ops.Exp: ["exp"], ops.Div: ["div", "rdiv_scalar"], ops.Pow: ["pow_tensor_tensor", "pow_scalar_int"],
    ops.MatMul: ["matmul_2d_2d", "matmul_batched"], ops.Linear: ["linear", "linear_no_bias", "linear_relu"],
    ops.Maximum: ["maximum"], ops.Tanh: ["tanh"], ops.Sigmoid: ["sigmoid"], ops.LogSumExp: ["logsumexp"],
    ops.Softmax: ["softmax"], ops.Max: ["max_axis_int"], ops.GetItem: ["getitem_int_array_repeated"],
    norms.Norm: ["norm_2.0_axis_int", "norm_3.0_axis_int", "norm_inf_axis_tuple"],
}
PLANTED_CASES = [(op, name) for op, names in PLANTED.items() for name in names]


def _scaled(backward, factor):
    def wrong(self, g):
        out = backward(self, g)
        if isinstance(out, tuple):
            return tuple(None if o is None else o * factor for o in out)
        return out * factor
    return wrong


@pytest.mark.parametrize("op, name", PLANTED_CASES, ids=[f"{o.__name__}-{n}" for o, n in PLANTED_CASES])
@settings(max_examples=5 if PROFILE == "ci" else 50)
@given(data=st.data())
def test_op_table_catches_a_planted_relative_error_of_1e4(op, name, data):
    """Every drawn case whose gradient is not tiny (where atol rules) fails gradcheck."""
    spec = SPEC_BY_NAME[name]
    case = data.draw(spec.inputs, label="case")
    inputs = [Tensor(a, requires_grad=True) for a in case.arrays]
    out = spec.fn(*inputs, **case.params)
    out.backward(Tensor(np.random.default_rng(0).standard_normal(out.shape)))
    assume(max(float(np.abs(t.grad.numpy()).max(initial=0)) for t in inputs) > 1e-2)
    fn = lambda *ts: spec.fn(*ts, **case.params)
    fresh = [Tensor(a, requires_grad=True) for a in case.arrays]
    assert gradcheck(fn, fresh, **tight(spec))  # the right gradient passes
    ran = tc.kernels.kernel_for(op, "cpu")  # the kernel that runs in its place, in the fast mode
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ran, "backward", _scaled(ran.backward, 1 + EPSILON))
        with pytest.raises(GradcheckError):
            gradcheck(fn, [Tensor(a, requires_grad=True) for a in case.arrays], **tight(spec))


# ---------------------------------------------------------------- output used twice, diamond

@device_param
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@few
@given(data=st.data())
def test_output_used_twice(spec, device, data):
    """y = f(x); y * y + y: y's gradient is accumulated from two ops before f's backward runs."""
    case = data.draw(spec.inputs, label="case")

    def twice(*ts):
        y = spec.fn(*ts, **case.params)
        return y * y + y
    assert gradcheck(twice, _tensors(case, device, [True] * len(case.arrays)), **spec.gradcheck_kwargs)


@device_param
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@few
@given(data=st.data())
def test_diamond(spec, device, data):
    """x reaches the output by two paths, f(x * 1 + 0) + f(x): two gradients meet at x.

    NOTE: x * 1 + 0 is x exactly, so every input stays inside the row's domain."""
    case = data.draw(spec.inputs, label="case")

    def diamond(*ts):
        return spec.fn(*[t * 1.0 + 0.0 for t in ts], **case.params) + spec.fn(*ts, **case.params)
    assert gradcheck(diamond, _tensors(case, device, [True] * len(case.arrays)), **tight(spec))


# ---------------------------------------------------------------- dtypes and devices between ops

def _check_every_backward(out):
    """Make each op of out's graph assert that its upstream gradient has its output's dtype and
    device, and that each gradient it returns has its input's dtype and device."""
    for node in tc.autograd.topological_order(out):
        fn = node.grad_fn
        if fn is None:
            continue

        def checked(g, _fn=fn, _node=node, _backward=fn.backward):
            name = type(_fn).__name__
            assert g.dtype == _node.dtype, f"{name}.backward got a {g.dtype} gradient for a {_node.dtype} output"
            assert device_of(g) == _node.device, f"{name}.backward got a gradient on {device_of(g)}"
            grads = _backward(g)
            for parent, pg in zip(_fn.parents, grads if isinstance(grads, tuple) else (grads,)):
                if pg is None:
                    continue
                assert pg.dtype == parent.dtype, f"{name}.backward returned {pg.dtype} for a {parent.dtype} input"
                assert device_of(pg) == parent.device, \
                    f"{name}.backward returned a gradient on {device_of(pg)} for an input on {parent.device}"
            return grads
        fn.backward = checked


@device_param
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@few
@given(data=st.data())
def test_float64_input_to_a_float32_op_gets_float64_gradients(spec, device, data):
    """float64 leaves cast to float32 for the op, the result cast back: every gradient passed
    between ops has the dtype of the tensor it belongs to (Cast.backward casts back)."""
    case = data.draw(spec.inputs, label="case")
    leaves = _tensors(case, device, [True] * len(case.arrays))
    y = spec.fn(*[t.astype(np.float32) for t in leaves], **case.params)
    out = y.astype(np.float64) * 2.0
    assert y.dtype == (spec.out_dtype or np.float32)
    _check_every_backward(out)
    out.backward(Tensor(np.random.default_rng(1).standard_normal(out.shape), device=device))
    for t in leaves:
        assert t.grad.dtype == np.float64


@pytest.mark.gpu
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@settings(max_examples=2 if PROFILE == "ci" else 20)
@given(data=st.data())
def test_gradients_come_back_across_devices(spec, data):
    """CPU leaves moved to cuda for the op: ToDevice.backward copies each gradient back to the CPU,
    and it equals the gradient computed on the CPU alone."""
    case = data.draw(spec.inputs, label="case")
    upstream = np.random.default_rng(2).standard_normal(spec.fn(*[Tensor(a) for a in case.arrays],
                                                                 **case.params).shape)
    cpu = _tensors(case, "cpu", [True] * len(case.arrays))
    spec.fn(*cpu, **case.params).backward(Tensor(upstream))
    moved = _tensors(case, "cpu", [True] * len(case.arrays))
    out = spec.fn(*[t.to("cuda") for t in moved], **case.params).to("cpu")
    _check_every_backward(out)
    out.backward(Tensor(upstream))
    for a, b in zip(cpu, moved):
        assert b.grad.device == canonical_device("cpu")
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-12, atol=1e-12)
