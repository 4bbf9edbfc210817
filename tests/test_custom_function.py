"""A user-defined op, written the way a user would, and property-tested with the library's own
gradcheck and hypothesis strategies. The block between the two EXAMPLE markers is self-contained
and is meant to be copied into the documentation as it stands."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from conftest import DEVICES

# ----------------------------------------------------------------- EXAMPLE: a custom Function
import tinygrad_cnn
from tinygrad_cnn import Function, Tensor
from tinygrad_cnn.testing import gradcheck
from tinygrad_cnn.testing import strategies as S


class Softplus(Function):
    """softplus(x) = log(1 + exp(x)), a smooth relu. logaddexp(0, x) never overflows."""
    def forward(self, x):
        self.x = x                               # saved for backward; freed after it runs
        return self.xp.logaddexp(0, x)           # self.xp is numpy on "cpu", cupy on "cuda"

    def backward(self, grad):
        return grad * (0.5 * self.xp.tanh(0.5 * self.x) + 0.5)   # d softplus / dx = sigmoid(x)


class SquaredDifference(Function):
    """(a - b) ** 2 for two tensors. Gradients may keep the broadcast shape of the output:
    the engine sums them back to each input's shape."""
    def forward(self, a, b):
        self.diff = a - b
        return self.diff * self.diff

    def backward(self, grad):
        grad_a = 2 * grad * self.diff
        return grad_a, -grad_a                   # one gradient per input, in input order


@given(x=S.arrays(S.shapes(max_side=4)))
def test_softplus_gradient(x):
    assert gradcheck(Softplus.apply, [Tensor(x, requires_grad=True)])


@given(shapes=S.broadcastable_shapes(max_side=4), data=st.data())
def test_squared_difference_gradient(shapes, data):
    a = data.draw(S.arrays(shapes[0]))
    b = data.draw(S.arrays(shapes[1]))
    assert gradcheck(SquaredDifference.apply, [Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)])


def test_softplus_in_a_model():
    x = tinygrad_cnn.randn(4, 3)
    w = tinygrad_cnn.randn(3, 2, requires_grad=True)
    loss = Softplus.apply(x @ w).mean()
    loss.backward()
    assert w.grad.shape == w.shape
# ----------------------------------------------------------------- end of EXAMPLE


@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data())
def test_softplus_matches_numpy_and_gradcheck_on_every_device(device, data):
    x = data.draw(S.arrays(S.shapes(max_side=4), min_value=-30, max_value=30), label="x")
    out = Softplus.apply(Tensor(x, device=device))
    assert out.device == tinygrad_cnn.device.canonical_device(device) and out.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), np.log1p(np.exp(x)), rtol=1e-12, atol=1e-12)
    assert gradcheck(Softplus.apply, [Tensor(x, device=device, requires_grad=True)])


@pytest.mark.parametrize("device", DEVICES)
def test_softplus_keeps_float32_and_does_not_overflow(device):
    x = Tensor(np.array([-1e4, -1.0, 0.0, 1.0, 1e4], dtype=np.float32), device=device, requires_grad=True)
    y = Softplus.apply(x)
    y.backward(tinygrad_cnn.ones_like(y))
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    assert np.all(np.isfinite(y.numpy())) and np.all(np.isfinite(x.grad.numpy()))
    assert y.numpy()[0] == 0.0 and y.numpy()[-1] == 1e4
    np.testing.assert_array_equal(x.grad.numpy()[[0, 2, 4]], np.array([0.0, 0.5, 1.0], dtype=np.float32))


def test_a_users_function_builds_the_graph_like_the_builtins():
    x = Tensor(np.array([0.5, -1.0]), requires_grad=True)
    y = Softplus.apply(x)
    assert y.requires_grad and isinstance(y.grad_fn, Softplus) and y.grad_fn.parents == (x,)
    with tinygrad_cnn.no_grad():
        z = Softplus.apply(x)
    assert not z.requires_grad and z.is_leaf
    y.sum().backward()
    assert not hasattr(y.grad_fn, "x"), "what forward saved is freed after backward"


def test_a_constant_input_to_a_users_function_gets_no_gradient():
    a = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = Tensor(np.array([0.5]))
    SquaredDifference.apply(a, b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), 2 * (a.numpy() - 0.5))
    assert b.grad is None
