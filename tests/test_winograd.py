"""Winograd F(2x2, 3x3) with bias, 2x2 max-pool and ReLU (kernels/winograd.py) against the plain
reference convolution, max-pool and ReLU (tinygrad_cnn/conv.py): values and all three gradients for
a random upstream gradient, ties routed to the first maximum, its float32 error against float64 no
worse than the direct kernel's, central differences, and where the dispatcher picks it."""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn import Tensor, conv as reference_conv, kernels
from tinygrad_cnn.kernels import conv as direct, winograd
from tinygrad_cnn.nn import functional as F
from tinygrad_cnn.testing import gradcheck

from conftest import PROFILE
from test_kernels import _no_near_ties

# NOTE: Winograd is not chosen by default (kernels/winograd.py, WINS_FROM_CHANNELS)
# and the one-channel kernel is not; these tests pin both choices, as a user would set them.

@pytest.fixture(scope="module", autouse=True)
def winograd_chosen():
    saved = winograd.WINS_FROM_CHANNELS, kernels.conv_few.MAX_CHANNELS
    winograd.WINS_FROM_CHANNELS, kernels.conv_few.MAX_CHANNELS = 32, 1
    yield
    winograd.WINS_FROM_CHANNELS, kernels.conv_few.MAX_CHANNELS = saved


def _kwargs(padding, relu):
    return dict(stride=(1, 1), padding=padding, dilation=(1, 1), pool=(2, 2), relu=relu)


@st.composite
def winograd_cases(draw):
    """Problems Winograd computes: any batch (chunks of 1 and 2 images with a shorter last one, see
    the test), odd channel counts, an even-sized output from any padding. Values on a grid of 1/2
    (weights) and integers (inputs), so that float64 sums are exact: windows tie often and
    pre-activations are often exactly 0 or negative, and both sides see the same ties."""
    n, c, o = draw(st.integers(1, 11)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    pads = draw(st.sampled_from([((1, 1), (1, 1)), ((0, 0), (0, 0)), ((2, 0), (1, 2)), ((0, 1), (1, 0))]))
    (top, bottom), (left, right) = pads
    th, tw = draw(st.integers(1, 3)), draw(st.integers(1, 3))  # pool windows = tiles
    h, w = 2 * th + 2 - top - bottom, 2 * tw + 2 - left - right
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    grid = lambda shape, lo, hi: rng.integers(lo, hi + 1, shape).astype(np.float64)  # noqa: E731
    x = grid((n, c, h, w), -2, 2)
    weight = grid((o, c, 3, 3), -2, 2) / 2
    bias = draw(st.none() | st.just(grid((o,), -2, 2) / 2))
    return x, weight, bias, pads


def _run(fn, arrays, upstream):
    inputs = [None if a is None else Tensor(a, requires_grad=True) for a in arrays]
    out = fn(*[t for t in inputs if t is not None])
    out.backward(Tensor(upstream))
    return out, [out.numpy()] + [t.grad.numpy() for t in inputs if t is not None]


def _winograd(kwargs):
    return lambda *t: winograd.WinogradConvPool.apply(*t, **kwargs)


def _reference(kwargs):
    def run(*t):
        with kernels.reference():
            return reference_conv.conv_pool_relu(*t, **kwargs)
    return run


@pytest.mark.parametrize("relu", [False, True])
@settings(max_examples=25 if PROFILE == "ci" else 200)
@given(case=winograd_cases(), seed=st.integers(0, 2**16))
def test_winograd_equals_the_reference_values_and_gradients(relu, case, seed):
    """Values, and the gradients of x, the weight and the bias for a random upstream gradient.

    NOTE: on these grids every float64 value of the forward pass is exact in both, so a tie is a tie
    on both sides, and the gradient must reach the same (first) maximum; a window whose maximum is
    <= 0 passes no gradient with ReLU."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(winograd, "CHUNK_BYTES", 1)  # one image a chunk up to 8 images, then 2, 2, ..., 1
        _check_against_reference(relu, case, seed)


@pytest.mark.parametrize("channels", [1, 3])
def test_unit_axes_do_not_mislead_numpy(channels):
    """One image, one row of tiles, one channel in and out: the input gradient's edge columns come
    from views whose last axes have length 1, which NumPy 2.4.6's `negative` read with the wrong
    strides in float64 (hypothesis found it: the last column's gradient came out as other tiles')."""
    rng = np.random.default_rng(3)
    x = rng.integers(-2, 3, (1, channels, 4, 6)).astype(np.float64)
    w = rng.integers(-2, 3, (1, channels, 3, 3)) / 2
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(winograd, "CHUNK_BYTES", 1)
        _check_against_reference(False, (x, w, None, ((0, 0), (0, 0))), 0)


def _check_against_reference(relu, case, seed):
    x, w, b, pads = case
    arrays = [x, w] + ([] if b is None else [b])
    kwargs = _kwargs(pads, relu)
    upstream = np.random.default_rng(seed).standard_normal(
        (x.shape[0], w.shape[0], (x.shape[2] + sum(pads[0]) - 2) // 2, (x.shape[3] + sum(pads[1]) - 2) // 2))
    out, fast = _run(_winograd(kwargs), arrays, upstream)
    assert type(out.grad_fn).__name__ == "WinogradConvPool"
    _, ref = _run(_reference(kwargs), arrays, upstream)
    np.testing.assert_array_equal(fast[0], ref[0], err_msg="value")
    for name, a, r in zip(["x", "weight", "bias"], fast[1:], ref[1:]):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12, err_msg=f"gradient of {name}")


def test_ties_go_to_the_first_maximum_and_relu_stops_the_gradient_at_or_below_zero():
    """A hand-made case: an identity kernel makes the conv output the input (plus the bias), so the
    windows' maxima and ties are known: each window's gradient reaches its first maximum in row-major
    order, and none where the maximum plus the bias is <= 0."""
    x = np.array([[[[0, 0, 5, 1], [5, 5, 1, 5], [-1, -2, 3, 3], [-3, -1, 3, 3]]]], dtype=np.float64)
    w = np.zeros((1, 1, 3, 3))
    w[0, 0, 1, 1] = 1.0
    b = np.array([1.0])
    kwargs = _kwargs(((1, 1), (1, 1)), True)
    out, (value, gx, gw, gb) = _run(_winograd(kwargs), [x, w, b], np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(value, [[[[6, 6], [0, 4]]]])  # max(-1, -2, -3, -1) + 1 = 0: ReLU
    expected = np.zeros_like(x)
    expected[0, 0, 1, 0] = expected[0, 0, 0, 2] = expected[0, 0, 2, 2] = 1  # first of each tie
    np.testing.assert_array_equal(gx, expected)
    np.testing.assert_array_equal(gb, [3.0])


@st.composite
def smooth_cases(draw):
    n, c, o = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    side = 2 * draw(st.integers(1, 3))
    return rng.standard_normal((n, c, side, side)), rng.standard_normal((o, c, 3, 3)), rng.standard_normal(o)


@pytest.mark.parametrize("relu", [False, True])
@given(case=smooth_cases())
def test_winograd_gradcheck(relu, case):
    """Central differences in float64, away from ties and ReLU's kink (where they do not exist)."""
    x, w, b = case
    kwargs = _kwargs(((1, 1), (1, 1)), relu)
    from hypothesis import assume
    from test_conv_pool import conv2d_loop
    assume(_no_near_ties(conv2d_loop(x, w, b, 1, 1, 1), (2, 2), relu, gap=1e-4))
    inputs = [Tensor(a, requires_grad=True) for a in (x, w, b)]
    assert gradcheck(_winograd(kwargs), inputs)


def _float32_errors(kernel, x, w, b, upstream, truth):
    """Each of value, dx, dW, db: the largest error against `truth` (float64), relative to the
    largest |value| of truth."""
    kwargs = _kwargs(((1, 1), (1, 1)), True)
    arrays = [a.astype(np.float32) for a in (x, w, b)]
    out, got = _run(lambda *t: kernel.apply(*t, **kwargs), arrays, upstream.astype(np.float32))
    return [float(np.abs(g - t).max() / np.abs(t).max()) for g, t in zip(got, truth)]


def test_float32_error_is_no_worse_than_the_direct_kernels():
    """The tutorial's conv2 block on 16 images: Winograd's float32 errors against float64 (the
    reference) are within 2x of the direct kernel's, for the value and each gradient, and no pool
    or ReLU decision differs from float64's."""
    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal((16, 32, 14, 14)), 0)  # a ReLU's output, as in the model
    w = rng.standard_normal((64, 32, 3, 3)) * np.sqrt(2 / (9 * 32))
    b = rng.standard_normal(64) * 0.1
    upstream = rng.standard_normal((16, 64, 7, 7))
    kwargs = _kwargs(((1, 1), (1, 1)), True)
    out, truth = _run(_reference(kwargs), [x, w, b], upstream)
    wino = _float32_errors(winograd.WinogradConvPool, x, w, b, upstream, truth)
    fused = _float32_errors(direct.FusedConvolution, x, w, b, upstream, truth)
    for name, e, d in zip(["value", "dx", "dW", "db"], wino, fused):
        assert e < 1e-5, (name, e)  # float32 rounding, not a changed decision (that would be O(1))
        assert e <= 2 * d, f"{name}: Winograd's relative error {e:.2e}, the direct kernel's {d:.2e}"


# ---------------------------------------------------------------- where it is chosen

@pytest.mark.parametrize("shape, kwargs, expected", [
    ((2, 32, 14, 14), dict(padding="same"), "WinogradConvPool"),  # the tutorial's conv2
    ((2, 32, 6, 6), dict(padding="valid"), "WinogradConvPool"),
    ((2, 16, 14, 14), dict(padding="same"), "FusedConvolution"),  # fewer channels than WINS_FROM_CHANNELS
    ((2, 1, 28, 28), dict(padding="same"), "FewChannelConvolution"),  # conv1: too few channels to win
    ((2, 32, 13, 13), dict(padding="same"), "FusedConvolution"),  # an odd output: windows are not tiles
    ((2, 32, 16, 16), dict(padding=1, stride=2), "FusedConvolution"),
    ((2, 32, 14, 14), dict(padding="same", dilation=2), "FusedConvolution"),
])
def test_the_dispatcher_picks_winograd_only_where_it_applies(shape, kwargs, expected):
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((4, shape[1], 3, 3)).astype(np.float32), requires_grad=True)
    assert type(F.conv2d_max_pool2d(x, w, pool_size=2, relu=True, **kwargs).grad_fn).__name__ == expected
    with kernels.reference():
        assert type(F.conv2d_max_pool2d(x, w, pool_size=2, relu=True, **kwargs).grad_fn).__name__ == "ReLU"


def test_the_model_uses_winograd_for_conv2_and_the_reference_switch_bypasses_it():
    code = ("import sys, numpy as np, tinygrad_cnn as tg\n"
            "if sys.argv[1] == 'on':\n"
            "    tg.kernels.winograd.WINS_FROM_CHANNELS, tg.kernels.conv_few.MAX_CHANNELS = 32, 1\n"
            "m = tg.nn.Sequential([tg.nn.Conv2D(32, 3, padding='same', activation='relu'), tg.nn.MaxPool2D(2),"
            " tg.nn.Conv2D(64, 3, padding='same', activation='relu'), tg.nn.MaxPool2D(2)], input_shape=(1, 28, 28))\n"
            "y = m(tg.Tensor(np.ones((2, 1, 28, 28), dtype=np.float32)))\n"
            "names = []\n"
            "node = y.grad_fn\n"
            "while node is not None:\n"
            "    names.append(type(node).__name__)\n"
            "    node = node.parents[0].grad_fn\n"
            "print(' '.join(names))\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def ops(mode, choice="on"):
        out = subprocess.run([sys.executable, "-c", code, choice], capture_output=True, text=True, timeout=120,
                             cwd=root, env=dict(env, TINYGRAD_CNN_KERNELS=mode))
        assert out.returncode == 0, out.stderr
        return out.stdout.split()
    assert ops("fast") == ["WinogradConvPool", "FewChannelConvolution"]
    # not chosen by default (kernels/winograd.py WINS_FROM_CHANNELS: slower on this machine's two cores)
    assert ops("fast", choice="default") == ["FusedConvolution", "FusedConvolution"]
    assert "WinogradConvPool" not in ops("reference") and "FusedConvolution" not in ops("reference")
