"""The documented gradients at ties and bounds, exactly (issue 14 item 2).

The op table keeps its inputs away from kinks, where central differences are meaningless; these
tests sit on them: maximum/minimum split a tie's gradient 0.5/0.5, clip passes the gradient at its
bounds (bounds included), max/min reductions share it equally among tied elements, ReLU's gradient
at 0 is 0, and max-pooling sends a window's gradient to its first maximum (row-major)."""
import numpy as np
import pytest

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor
from tinygrad_cnn.nn import functional as F

from conftest import DEVICES

device_param = pytest.mark.parametrize("device", DEVICES)
G = np.array([1.0, 2.0, 4.0, 8.0])  # upstream gradient: powers of two, so every share is exact


def grads(fn, *arrays, upstream=None, device="cpu"):
    inputs = [Tensor(np.asarray(a, dtype=np.float64), device=device, requires_grad=True) for a in arrays]
    out = fn(*inputs)
    g = np.ones(out.shape) if upstream is None else np.asarray(upstream, dtype=np.float64)
    out.backward(Tensor(g, device=device))
    return out.numpy(), [t.grad.numpy() for t in inputs]


# ---------------------------------------------------------------- maximum / minimum

@device_param
@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_maximum_minimum_split_a_tie_in_halves(device, op):
    a, b = [1.0, 2.0, 3.0, -1.0], [1.0, 3.0, 2.0, -1.0]
    fn = (lambda x, y: tc.maximum(x, y)) if op == "maximum" else (lambda x, y: x.minimum(y))
    out, (ga, gb) = grads(fn, a, b, upstream=G, device=device)
    np.testing.assert_array_equal(out, getattr(np, op)(a, b))
    a_wins = [0.5, 0.0, 1.0, 0.5] if op == "maximum" else [0.5, 1.0, 0.0, 0.5]
    np.testing.assert_array_equal(ga, G * a_wins)
    np.testing.assert_array_equal(gb, G * (1 - np.array(a_wins)))


@device_param
@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_maximum_minimum_with_a_number_at_a_tie(device, op):
    out, (gx,) = grads(lambda x: getattr(x, op)(0.0), [0.0, 1.0, -1.0, 0.0], upstream=G, device=device)
    wins = [0.5, 1.0, 0.0, 0.5] if op == "maximum" else [0.5, 0.0, 1.0, 0.5]
    np.testing.assert_array_equal(gx, G * wins)


@device_param
def test_maximum_tie_under_broadcasting_sums_the_halves(device):
    """b (1,) ties with two of a's elements: it collects half of each of their gradients."""
    _, (ga, gb) = grads(lambda x, y: tc.maximum(x, y), [2.0, 2.0, 1.0, 3.0], [2.0], upstream=G, device=device)
    np.testing.assert_array_equal(ga, [0.5, 1.0, 0.0, 8.0])
    np.testing.assert_array_equal(gb, [0.5 + 1.0 + 4.0])


# ---------------------------------------------------------------- clip

@device_param
def test_clip_passes_the_gradient_at_its_bounds(device):
    x = [-1.0, 1.5, -1.0 - 1e-12, 1.5 + 1e-12, 0.0, -5.0, 5.0, 1.5]
    out, (gx,) = grads(lambda t: t.clip(-1.0, 1.5), x, device=device)
    np.testing.assert_array_equal(out, np.clip(x, -1.0, 1.5))
    np.testing.assert_array_equal(gx, [1, 1, 0, 0, 1, 0, 0, 1])


@device_param
@pytest.mark.parametrize("side", ["low", "high"])
def test_one_sided_clip_includes_its_bound(device, side):
    x = [0.5, 0.5 - 1e-12, 0.5 + 1e-12, 0.5]
    fn = (lambda t: t.clip(low=0.5)) if side == "low" else (lambda t: t.clip(high=0.5))
    _, (gx,) = grads(fn, x, upstream=G, device=device)
    inside = [1, 0, 1, 1] if side == "low" else [1, 1, 0, 1]
    np.testing.assert_array_equal(gx, G * inside)


# ---------------------------------------------------------------- max / min reductions

@device_param
@pytest.mark.parametrize("op", ["max", "min"])
def test_reduction_ties_share_equally(device, op):
    sign = 1.0 if op == "max" else -1.0
    x = sign * np.array([[3.0, 1.0, 3.0, 3.0], [2.0, 5.0, 5.0, 0.0], [7.0, 7.0, 7.0, 7.0]])
    _, (g_all,) = grads(lambda t: getattr(t, op)(), x, upstream=6.0, device=device)
    expected_all = np.zeros_like(x)
    expected_all[2] = 6.0 / 4  # 7 is the max of all, four times
    np.testing.assert_array_equal(g_all, expected_all)
    _, (g_rows,) = grads(lambda t: getattr(t, op)(axis=1), x, upstream=[3.0, 2.0, 4.0], device=device)
    np.testing.assert_array_equal(g_rows, [[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 1, 1]])
    _, (g_cols,) = grads(lambda t: getattr(t, op)(axis=0, keepdims=True), x, upstream=[[2.0, 2.0, 2.0, 2.0]],
                         device=device)
    np.testing.assert_array_equal(g_cols, [[0, 0, 0, 0], [0, 0, 0, 0], [2, 2, 2, 2]])


# ---------------------------------------------------------------- ReLU

@device_param
@pytest.mark.parametrize("relu", [lambda t: t.relu(), F.relu,
                                  lambda t: F.linear(t[:, None], tc.ones((1, 1), dtype=t.dtype, device=t.device),
                                                     relu=True)[:, 0]],
                         ids=["method", "functional", "linear"])
def test_relu_gradient_at_zero_is_zero(device, relu):
    _, (gx,) = grads(relu, [0.0, -0.0, 1e-300, -1e-300], upstream=G, device=device)
    np.testing.assert_array_equal(gx, [0.0, 0.0, 4.0, 0.0])


@pytest.mark.gpu
def test_the_relu_gradient_kernel_is_one_launch_with_the_cpus_bits():
    """kernels.dense.relu_gradient (ReLU's backward, and a non-pooling conv's with relu=True) fused on CuPy:
    g * (out > 0), so inf and NaN upstream become NaN where the output is not positive, as on the CPU."""
    import cupy
    from conftest import EMULATED
    from tinygrad_cnn.kernels.dense import relu_gradient as _relu_gradient
    out = np.array([[0.0, -0.0, 1e-300, -1.0], [np.nan, np.inf, 2.0, 0.0]])
    g = np.array([[1.0, np.inf, np.nan, -3.0], [5.0, -0.0, np.nan, np.inf]])
    expected = np.empty_like(g)
    with np.errstate(invalid="ignore"):
        _relu_gradient(expected, g, out)
        gpu = cupy.empty(g.shape)
        if EMULATED:
            from cupy_emulation import record
            with record() as counts:
                _relu_gradient(gpu, cupy.asarray(g), cupy.asarray(out))
            assert counts.launches == 1 and counts.syncs == 0
        else:
            _relu_gradient(gpu, cupy.asarray(g), cupy.asarray(out))
        np.testing.assert_array_equal(expected, g * (out > 0))
    np.testing.assert_array_equal(gpu.get().view(np.uint64), expected.view(np.uint64))


# ---------------------------------------------------------------- max-pooling

def _pool_input():
    """One 1x1x4x4 image; window (0, 0) ties in all four, (0, 1) at its last two, (1, 0) at its
    first and last, (1, 1) has one maximum."""
    return np.array([[[[1.0, 1.0, 0.0, 2.0],
                       [1.0, 1.0, 3.0, 3.0],
                       [5.0, 0.0, 0.0, 1.0],
                       [0.0, 5.0, 4.0, 0.0]]]])


POOL_GRAD = np.array([[[[1.0, 0.0, 0.0, 0.0],
                        [0.0, 0.0, 2.0, 0.0],
                        [4.0, 0.0, 0.0, 0.0],
                        [0.0, 0.0, 8.0, 0.0]]]])
UPSTREAM = np.array([[[[1.0, 2.0], [4.0, 8.0]]]])


@device_param
def test_max_pool_tie_goes_to_the_first_maximum(device):
    out, (gx,) = grads(lambda t: F.max_pool2d(t, 2), _pool_input(), upstream=UPSTREAM, device=device)
    np.testing.assert_array_equal(out, [[[[1.0, 3.0], [5.0, 4.0]]]])
    np.testing.assert_array_equal(gx, POOL_GRAD)


@device_param
@pytest.mark.parametrize("relu", [False, True])
def test_fused_conv_pool_tie_goes_to_the_first_maximum(device, relu):
    """conv2d_max_pool2d with a 1x1 identity kernel is max_pool2d (after ReLU): same ties."""
    x = _pool_input() - (1.0 if relu else 0.0)  # with ReLU: window (0, 0) is all 0, so no gradient
    w = np.ones((1, 1, 1, 1))
    fn = lambda t, k: F.conv2d_max_pool2d(t, k, pool_size=2, relu=relu)
    _, (gx, _) = grads(fn, x, w, upstream=UPSTREAM, device=device)
    expected = POOL_GRAD.copy()
    if relu:
        expected[0, 0, 0, 0] = 0.0
    np.testing.assert_array_equal(gx, expected)
