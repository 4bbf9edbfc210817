"""The reduction ops called directly (ops.Sum, ops.Max, ops.LogSumExp), with negative axes as NumPy
takes them: the Tensor methods normalise axes first, so only a direct call checks the ops' own
handling of them (issue 27). And sqrt's gradient at 0: inf, without a RuntimeWarning."""
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn import Tensor, ops
from tinygrad_cnn.testing import gradcheck
from tinygrad_cnn.testing import strategies as S

from conftest import DEVICES

REFERENCES = {ops.Sum: np.sum, ops.Max: np.max,
              ops.LogSumExp: lambda x, axis, keepdims: np.log(np.exp(x).sum(axis=axis, keepdims=keepdims))}


@st.composite
def negative_axes(draw):
    """A tie-free array of rank 1 to 3 and a negative axis, or a tuple holding at least one."""
    shape = draw(S.shapes(min_dims=1, max_dims=3, max_side=4))
    x = draw(S.tie_free_arrays(shape))
    ndim = len(shape)
    axes = draw(st.lists(st.integers(-ndim, ndim - 1), min_size=1, max_size=ndim, unique_by=lambda a: a % ndim))
    if all(a >= 0 for a in axes):
        axes[0] -= ndim
    return x, (axes[0] if len(axes) == 1 and draw(st.booleans()) else tuple(axes))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", list(REFERENCES), ids=lambda op: op.__name__)
@pytest.mark.parametrize("keepdims", [False, True])
@given(case=negative_axes())
def test_a_negative_axis_given_to_the_op_directly(op, keepdims, device, case):
    x, axis = case
    out = op.apply(Tensor(x, device=device), axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(out.numpy(), REFERENCES[op](x, axis=axis, keepdims=keepdims), rtol=1e-12)
    assert gradcheck(lambda t: op.apply(t, axis=axis, keepdims=keepdims), [Tensor(x, device=device, requires_grad=True)])


@pytest.mark.parametrize("device", DEVICES)
def test_sqrt_gradient_at_zero_is_inf_without_a_warning(device):
    x = Tensor(np.array([0.0, 4.0, 0.0]), device=device, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x.sqrt().backward(Tensor(np.array([1.0, 1.0, 0.0]), device=device))
    grad = x.grad.numpy()
    assert grad[0] == np.inf and grad[1] == 0.25 and np.isnan(grad[2])  # 0 * inf: nan, as in PyTorch


def test_anomaly_mode_still_names_sqrt_at_zero():
    x = Tensor(np.array([0.0, 1.0]), requires_grad=True)
    with tg.detect_anomaly(), pytest.raises(tg.AnomalyError, match="Sqrt"):
        x.sqrt().sum().backward()
