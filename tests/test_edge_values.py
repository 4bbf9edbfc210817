"""Values and gradients at edges where the formulas break down, as PyTorch gives them (issue 14
item 6, issue 12 item 5): x ** p and 0 ** x at 0, 0-d tensors given an axis, means and losses
over nothing, logsumexp of -inf only. Each expected value is the limit or PyTorch's convention,
written out; when torch is installed it is also asked directly."""
import warnings

import numpy as np
import pytest

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor
from tinygrad_cnn.nn import functional as F

from conftest import DEVICES

device_param = pytest.mark.parametrize("device", DEVICES)
INF, NAN = np.inf, np.nan


def leaf(values, device="cpu", dtype=np.float64):
    return Tensor(np.asarray(values, dtype=dtype), device=device, requires_grad=True)


def value_and_grad(fn, *arrays, device="cpu"):
    inputs = [leaf(a, device) for a in arrays]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 0 ** -1 divides by zero, as in NumPy
        out = fn(*inputs)
        out.backward(tc.ones_like(out))
    return out.numpy(), [t.grad.numpy() for t in inputs]


# ---------------------------------------------------------------- powers at 0

# d/dx x**p at x = 0 and x = 1: p * 0**(p-1), with 0 for p = 0 (x**0 is the constant 1)
POWER_AT_0 = [(0.0, 1.0, 0.0), (0.5, 0.0, INF), (1.0, 0.0, 1.0), (1.5, 0.0, 0.0), (2.0, 0.0, 0.0),
              (2, 0.0, 0.0), (3.0, 0.0, 0.0), (2.5, 0.0, 0.0), (-1.0, INF, -INF), (-2, INF, -INF)]


@device_param
@pytest.mark.parametrize("p, value, grad", POWER_AT_0, ids=lambda v: repr(v))
def test_power_of_zero_base_tensor(device, p, value, grad):
    out, (gx,) = value_and_grad(lambda x: x ** p, [0.0, 1.0], device=device)
    np.testing.assert_array_equal(out, [value, 1.0])
    np.testing.assert_array_equal(gx, [grad, p])


@device_param
def test_zero_to_a_tensor_power(device):
    """0 ** x: 1 at x = 0, 0 for x > 0, inf for x < 0; the gradient is 0 where x >= 0 (PyTorch)."""
    out, (gx,) = value_and_grad(lambda x: 0.0 ** x, [0.0, 1.0, 2.5, -1.0], device=device)
    np.testing.assert_array_equal(out, [1.0, 0.0, 0.0, INF])
    np.testing.assert_array_equal(gx, [0.0, 0.0, 0.0, -INF])


@device_param
def test_tensor_power_tensor_at_zero_base(device):
    out, (ga, gb) = value_and_grad(lambda a, b: a ** b, [0.0, 0.0, 0.0, 1.0], [0.0, 2.0, -1.0, 0.0],
                                   device=device)
    np.testing.assert_array_equal(out, [1.0, 0.0, INF, 1.0])
    np.testing.assert_array_equal(ga, [0.0, 0.0, -INF, 0.0])
    np.testing.assert_array_equal(gb, [0.0, 0.0, -INF, 0.0])


def test_powers_at_zero_match_torch():
    torch = pytest.importorskip("torch")
    a_values, b_values = [0.0, 0.0, 0.0, 0.0, 1.0, 2.0], [0.0, 0.5, 2.0, -1.0, 0.0, 3.0]
    out, (ga, gb) = value_and_grad(lambda a, b: a ** b, a_values, b_values)
    a = torch.tensor(a_values, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(b_values, dtype=torch.float64, requires_grad=True)
    y = a ** b
    y.sum().backward()
    np.testing.assert_array_equal(out, y.detach().numpy())
    np.testing.assert_array_equal(ga, a.grad.numpy())
    np.testing.assert_array_equal(gb, b.grad.numpy())


# ---------------------------------------------------------------- 0-d tensors with an axis

REDUCTIONS = ["sum", "mean", "max", "min", "logsumexp"]


@device_param
@pytest.mark.parametrize("op", REDUCTIONS)
@pytest.mark.parametrize("axis", [None, 0, -1, (0,), (-1,)], ids=repr)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions_of_0d_tensor_over_its_axis(device, op, axis, keepdims):
    """A 0-d tensor takes axis 0 or -1 (PyTorch's dim rule): the result is 0-d, the gradient passes."""
    x = leaf(1.5, device)
    y = getattr(x, op)(axis=axis, keepdims=keepdims)
    assert y.shape == ()
    np.testing.assert_allclose(y.numpy(), 1.5, rtol=1e-15)
    y.backward(Tensor(np.float64(2.0), device=device))
    assert x.grad.shape == ()
    np.testing.assert_allclose(x.grad.numpy(), 2.0, rtol=1e-15)


@device_param
@pytest.mark.parametrize("op", ["argmax", "argmin"])
@pytest.mark.parametrize("axis", [None, 0, -1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_argmax_of_0d_tensor_is_0d(device, op, axis, keepdims):
    out = getattr(Tensor(np.float64(1.5), device=device), op)(axis=axis, keepdims=keepdims)
    assert out.shape == () and int(out.numpy()) == 0


@device_param
@pytest.mark.parametrize("op", ["squeeze", "softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [0, -1])
def test_axis_ops_of_0d_tensor(device, op, axis):
    x = leaf(1.5, device)
    y = getattr(x, op)(axis)
    assert y.shape == ()
    expected = {"squeeze": 1.5, "softmax": 1.0, "log_softmax": 0.0}[op]
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-15)
    y.backward(Tensor(np.float64(2.0), device=device))
    np.testing.assert_allclose(x.grad.numpy(), {"squeeze": 2.0, "softmax": 0.0, "log_softmax": 0.0}[op], atol=1e-15)


@pytest.mark.parametrize("axis", [1, -2, (0, -1)], ids=repr)
def test_0d_tensor_refuses_other_axes(axis):
    with pytest.raises(ValueError, match="axis"):
        Tensor(np.float64(1.5)).sum(axis=axis)


def test_0d_tensor_swapaxes_and_concatenate():
    x = Tensor(np.float64(1.5))
    assert x.swapaxes(0, -1).shape == ()
    with pytest.raises(ValueError, match="0-d"):
        tc.concatenate([x, x])


def test_0d_axis_ops_match_torch():
    torch = pytest.importorskip("torch")
    z = torch.tensor(1.5, dtype=torch.float64)
    x = Tensor(np.float64(1.5))
    for axis in (0, -1):
        assert x.argmax(axis=axis, keepdims=True).shape == tuple(z.argmax(dim=axis, keepdim=True).shape)
        assert x.sum(axis=axis, keepdims=True).shape == tuple(z.sum(dim=axis, keepdim=True).shape)
        assert x.squeeze(axis).shape == tuple(z.squeeze(axis).shape)
        assert x.mean(axis=axis).shape == tuple(z.mean(dim=axis).shape)


# ---------------------------------------------------------------- means and losses over nothing

@device_param
@pytest.mark.parametrize("axis, shape", [(None, ()), (0, (3,)), ((0, 1), ())], ids=repr)
def test_mean_over_an_empty_axis_is_nan_without_a_warning(device, axis, shape):
    """nan, and silent, as PyTorch's torch.empty(0, 3).mean() (NumPy's mean warns "Mean of empty slice")."""
    x = leaf(np.zeros((0, 3)), device)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = x.mean(axis=axis)
        y.backward(tc.ones_like(y))
    assert y.shape == shape and np.all(np.isnan(y.numpy()))
    assert x.grad.shape == (0, 3)


def test_mean_over_a_nonempty_axis_of_an_empty_tensor_is_empty_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = Tensor(np.zeros((0, 3))).mean(axis=1)
    assert y.shape == (0,)


def _empty_losses(device):
    z = lambda *s: leaf(np.zeros(s), device)
    labels = Tensor(np.zeros(0, dtype=np.int64), device=device)
    return {"mse": lambda: F.mse_loss(z(0, 3), z(0, 3)),
            "bce": lambda: F.binary_cross_entropy(z(0), z(0)),
            "bce_with_logits": lambda: F.binary_cross_entropy_with_logits(z(0), z(0)),
            "nll": lambda: F.nll_loss(z(0, 3), labels),
            "cross_entropy": lambda: F.cross_entropy(z(0, 3), labels)}


@device_param
@pytest.mark.parametrize("loss", ["mse", "bce", "bce_with_logits", "nll", "cross_entropy"])
def test_mean_losses_of_an_empty_batch_are_nan(device, loss):
    """The mean of no losses is nan, as in PyTorch (0.0 would look like a perfect batch), and as silent."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = _empty_losses(device)[loss]()
        out.backward()
    assert out.shape == () and np.isnan(out.numpy())


# ---------------------------------------------------------------- logsumexp at -inf

@device_param
def test_logsumexp_of_only_minus_inf_is_minus_inf(device):
    x = leaf([[-INF, -INF], [-INF, 1.0], [INF, 1.0]], device)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for the -inf rows
        y = x[:2].logsumexp(axis=1)
        y.backward(tc.ones_like(y))
    np.testing.assert_array_equal(y.numpy(), [-INF, 1.0])
    g = x.grad.numpy()
    assert np.all(np.isnan(g[0]))  # PyTorch's: exp(-inf - -inf)
    np.testing.assert_array_equal(g[1], [0.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf / inf in the saved softmax: nan, as in PyTorch
        assert Tensor(np.array([INF, 1.0])).logsumexp().numpy() == INF
    assert Tensor(np.array([-INF, -INF])).logsumexp().numpy() == -INF


def test_logsumexp_at_inf_matches_torch():
    torch = pytest.importorskip("torch")
    rows = [[-INF, -INF], [-INF, 1.0], [2.0, 1.0]]
    x = leaf(rows)
    y = x.logsumexp(axis=1)
    y.backward(tc.ones_like(y))
    t = torch.tensor(rows, dtype=torch.float64, requires_grad=True)
    ty = t.logsumexp(1)
    ty.sum().backward()
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-15, equal_nan=True)
