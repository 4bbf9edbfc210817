"""A custom Function is held to PyTorch's contract (issue 26): backward returns one gradient per input,
each of its input's shape (or a broadcast of it), and the op is called through .apply; each mistake is
an error naming the op, on both walks (backward() and backward(create_graph=True))."""
import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn.autograd import Function


class DropsAGradient(Function):
    """x * y whose backward forgets y's gradient."""

    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, grad):
        return grad * self.y  # one gradient for two inputs

    def backward_graph(self, grad, inputs, output):
        return grad * inputs[1]  # the same mistake, in Tensor ops


class WrongShape(Function):
    """sum of x whose backward returns a gradient of the wrong shape."""

    def forward(self, x):
        self.shape = x.shape
        return x.sum()

    def backward(self, grad):
        return self.xp.ones((self.shape[0] + 1,)) * grad

    def backward_graph(self, grad, inputs, output):
        return tg.Tensor(self.xp.ones((self.shape[0] + 1,))) * grad


class Broadcasts(Function):
    """x + 1 whose backward returns a gradient with an extra leading axis (summed back, as any broadcast)."""

    def forward(self, x):
        return x + 1

    def backward(self, grad):
        return self.xp.stack([grad, grad]) / 2


@pytest.mark.parametrize("create_graph", [False, True])
def test_too_few_gradients_is_an_error_naming_the_op(create_graph):
    x = tg.Tensor(np.ones(3), requires_grad=True)
    y = tg.Tensor(np.full(3, 2.0), requires_grad=True)
    out = DropsAGradient.apply(x, y).sum()
    with pytest.raises(RuntimeError, match=r"DropsAGradient\.backward returned 1 gradient\(s\) for 2 input\(s\)"):
        out.backward(create_graph=create_graph)


@pytest.mark.parametrize("create_graph", [False, True])
def test_a_gradient_of_the_wrong_shape_is_an_error_naming_the_op(create_graph):
    x = tg.Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"WrongShape\.backward returned a gradient of shape \(4,\) for input 0 "
                                           r"of shape \(3,\)"):
        WrongShape.apply(x).backward(create_graph=create_graph)


def test_a_broadcast_gradient_is_still_summed_back():
    x = tg.Tensor(np.arange(3.0), requires_grad=True)
    Broadcasts.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.ones(3))


def test_calling_an_instance_says_to_use_apply():
    x = tg.Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(TypeError, match=r"WrongShape is a Function: call WrongShape\.apply\(x, \.\.\.\)"):
        WrongShape()(x)
