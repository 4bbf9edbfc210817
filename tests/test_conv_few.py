"""kernels/conv_few.py: FewChannelConvolution (conv + bias + max-pool + ReLU for inputs with few
channels, the first layer's) against the plain reference ops of tinygrad_cnn/conv.py (Convolution,
MaxPool, ReLU one after another), values and every gradient for a random upstream gradient, in
float64; against central differences; ties; the input gradient skipped when x needs none; the same
bits however many threads run it; and that conv_pool_relu picks it only where it applies."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn import Tensor, kernels
from tinygrad_cnn.kernels import conv as kernel_conv, conv_few, parallel
from tinygrad_cnn.nn import functional as F
from tinygrad_cnn.testing import gradcheck
from tinygrad_cnn.testing.strategies import arrays, tie_free_arrays

from conftest import PROFILE


@pytest.fixture(scope="module", autouse=True)
def one_channel_kernel_chosen():
    """NOTE: conv_few.MAX_CHANNELS is 0 by default (on a quiet machine the kernel loses); these tests
    turn the choice on, as a user would, and check what it then computes."""
    saved, conv_few.MAX_CHANNELS = conv_few.MAX_CHANNELS, 1
    yield
    conv_few.MAX_CHANNELS = saved
from test_conv_pool import as_pair, conv_pads


@st.composite
def cases(draw, channels=st.integers(1, 1), values=None):
    """A convolution and a pool window that fits its output: odd shapes, every padding form,
    strides, dilations; x, w and b on a grid of 0.5 (values=None: sums are exact in float64, so
    windows tie as often as the grid makes them, and both paths see the same ties), or `values`."""
    n, c, o = draw(st.integers(1, 3)), draw(channels), draw(st.integers(1, 5))
    kernel = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dilation = draw(st.sampled_from([1, 2, (1, 2)]))
    padding = draw(st.sampled_from(["valid", "same", 1, (0, 2)]))
    stride = 1 if padding == "same" else draw(st.sampled_from([1, 2, (2, 1)]))
    (top, bottom), (left, right) = conv_pads(padding, kernel, as_pair(dilation))
    reach = [d * (k - 1) + 1 for k, d in zip(kernel, as_pair(dilation))]
    h = draw(st.integers(max(1, reach[0] - top - bottom), 9))
    w = draw(st.integers(max(1, reach[1] - left - right), 9))
    (sh, sw), (dh, dw) = as_pair(stride), as_pair(dilation)
    out_h = (h + top + bottom - dh * (kernel[0] - 1) - 1) // sh + 1
    out_w = (w + left + right - dw * (kernel[1] - 1) - 1) // sw + 1
    pool = draw(st.integers(1, min(out_h, 3))), draw(st.integers(1, min(out_w, 3)))
    grid = values or (lambda shape: arrays(shape).map(lambda a: np.round(a * 2) / 2))
    x, weight = draw(grid((n, c, h, w))), draw(grid((o, c) + kernel))
    bias = draw(st.none() | grid((o,)))
    relu = draw(st.booleans())
    return x, weight, bias, dict(stride=stride, padding=padding, dilation=dilation, pool_size=pool, relu=relu)


def _results(x, w, b, kwargs, x_grad, upstream_seed=0, reference=False):
    """conv2d_max_pool2d's value and the gradients of x (when x_grad), w and b, and the op that made it."""
    inputs = [Tensor(x, requires_grad=x_grad), Tensor(w, requires_grad=True)]
    inputs += [] if b is None else [Tensor(b, requires_grad=True)]
    if reference:
        with kernels.reference():
            out = F.conv2d_max_pool2d(*inputs, **kwargs)
    else:
        out = F.conv2d_max_pool2d(*inputs, **kwargs)
    upstream = np.random.default_rng(upstream_seed).standard_normal(out.shape)
    if reference:
        with kernels.reference():
            out.backward(Tensor(upstream))
    else:
        out.backward(Tensor(upstream))
    grads = [t.grad.numpy() if t.requires_grad else t.grad for t in inputs]
    return [out.numpy()] + grads, type(out.grad_fn).__name__


@settings(max_examples=30 if PROFILE == "ci" else 200, deadline=None)
@given(case=cases(), x_grad=st.booleans(), seed=st.integers(0, 2**16))
def test_values_and_gradients_equal_the_reference_ops(case, x_grad, seed):
    x, w, b, kwargs = case
    fast, ran = _results(x, w, b, kwargs, x_grad, seed)
    assert ran == "FewChannelConvolution"
    ref, ran_ref = _results(x, w, b, kwargs, x_grad, seed, reference=True)
    assert ran_ref == ("ReLU" if kwargs["relu"] else "MaxPool")
    names = ["value", "x gradient", "weight gradient", "bias gradient"]
    for name, a, r in zip(names, fast, ref):
        if r is None:  # x needs no gradient: none made
            assert a is None, name
            continue
        assert a.shape == r.shape and a.dtype == r.dtype == np.float64, name
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12, err_msg=name)


@settings(max_examples=10 if PROFILE == "ci" else 60, deadline=None)
@given(case=cases(channels=st.integers(1, 3)))
def test_more_channels_by_direct_call_equal_the_reference_ops(case):
    """The kernel is written for any C (conv_pool_relu picks it for C <= MAX_CHANNELS)."""
    x, w, b, kwargs = case
    pool, relu = as_pair(kwargs.pop("pool_size")), kwargs.pop("relu")
    (top, bottom), (left, right) = conv_pads(kwargs["padding"], w.shape[2:], as_pair(kwargs["dilation"]))
    args = dict(stride=as_pair(kwargs["stride"]), padding=((top, bottom), (left, right)),
                dilation=as_pair(kwargs["dilation"]), pool=pool, relu=relu)
    results = []
    for run in (conv_few.FewChannelConvolution.apply, tg.conv.conv_pool_relu):
        inputs = [Tensor(a, requires_grad=True) for a in (x, w) + (() if b is None else (b,))]
        with kernels.reference() if run is tg.conv.conv_pool_relu else kernels.enabled():
            out = run(*inputs, **args)
            out.backward(Tensor(np.random.default_rng(1).standard_normal(out.shape)))
        results.append([out.numpy()] + [t.grad.numpy() for t in inputs])
    for a, r in zip(*results):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12)


@settings(max_examples=5 if PROFILE == "ci" else 30, deadline=None)
@given(case=cases(values=lambda shape: tie_free_arrays(shape, spacing=0.1)))
def test_gradients_match_central_differences(case):
    """Tie-free inputs; a difference that still crosses a maximum or ReLU's kink is retried smaller or left out."""
    x, w, b, kwargs = case
    inputs = [Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)]
    inputs += [] if b is None else [Tensor(b, requires_grad=True)]
    assert type(F.conv2d_max_pool2d(*inputs, **kwargs).grad_fn).__name__ == "FewChannelConvolution"
    assert gradcheck(lambda *t: F.conv2d_max_pool2d(*t, **kwargs), inputs, nonsmooth="skip")


def test_ties_go_to_the_first_maximum():
    """A constant image: every window ties, and its gradient reaches its first (top-left) pixel only."""
    x = np.ones((2, 1, 6, 6))
    w = np.ones((3, 1, 1, 1))
    fast, _ = _results(x, w, None, dict(pool_size=2), x_grad=True)
    ref, _ = _results(x, w, None, dict(pool_size=2), x_grad=True, reference=True)
    for a, r in zip(fast, ref):
        np.testing.assert_array_equal(a, r)
    assert np.all(fast[1][:, :, 1::2, :] == 0) and np.all(fast[1][:, :, :, 1::2] == 0)
    assert np.all(fast[1][:, :, ::2, ::2] != 0)


def test_no_input_gradient_is_formed_when_x_needs_none(monkeypatch):
    """The first layer's input (data) never needs a gradient: backward forms none of it."""
    def fail(self, taps):
        raise AssertionError("the input gradient was formed")
    monkeypatch.setattr(conv_few.FewChannelConvolution, "_add_taps", fail)
    rng = np.random.default_rng(0)
    x, w = Tensor(rng.standard_normal((4, 1, 8, 8))), Tensor(rng.standard_normal((3, 1, 3, 3)), requires_grad=True)
    out = F.conv2d_max_pool2d(x, w, padding=1, pool_size=2, relu=True)
    out.backward(Tensor(rng.standard_normal(out.shape)))
    assert x.grad is None and w.grad is not None
    x.requires_grad = True
    with pytest.raises(AssertionError, match="the input gradient was formed"):
        F.conv2d_max_pool2d(x, w, padding=1, pool_size=2).backward(Tensor(np.ones((4, 3, 4, 4))))


def _one_step(threads):
    tg.set_num_threads(threads)
    rng = np.random.default_rng(3)
    x = Tensor(rng.standard_normal((37, 1, 11, 13)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((8, 1, 3, 3)).astype(np.float32), requires_grad=True)
    b = Tensor(rng.standard_normal(8).astype(np.float32), requires_grad=True)
    out = F.conv2d_max_pool2d(x, w, b, padding="same", pool_size=2, relu=True)
    out.backward(Tensor(rng.standard_normal(out.shape).astype(np.float32)))
    return [out.numpy().copy(), x.grad.numpy().copy(), w.grad.numpy().copy(), b.grad.numpy().copy()]


@pytest.mark.skipif(parallel._blas_controller() is False, reason="threads per op need the `fast` extra")
def test_the_same_bits_with_1_2_and_3_threads(monkeypatch):
    """Chunks are fixed by the problem (here many small ones), not by the thread count."""
    monkeypatch.setattr(conv_few, "CHUNK_BYTES", 20_000)  # 4 images a chunk
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 0)
    try:
        results = {n: _one_step(n) for n in (1, 2, 3)}
    finally:
        tg.set_num_threads(None)
    for n in (2, 3):
        for a, b in zip(results[1], results[n]):
            np.testing.assert_array_equal(a, b)


def test_conv_pool_relu_picks_it_for_one_channel_on_the_cpu_only():
    rng = np.random.default_rng(0)
    w1, w2 = Tensor(rng.standard_normal((4, 1, 3, 3))), Tensor(rng.standard_normal((4, 2, 3, 3)))
    x1, x2 = Tensor(rng.standard_normal((2, 1, 6, 6)), requires_grad=True), Tensor(rng.standard_normal((2, 2, 6, 6)),
                                                                                  requires_grad=True)
    assert type(F.conv2d_max_pool2d(x1, w1, pool_size=2).grad_fn).__name__ == "FewChannelConvolution"
    assert type(F.conv2d_max_pool2d(x2, w2, pool_size=2).grad_fn).__name__ == "FusedConvolution"  # C = 2
    assert type(F.conv2d(x1, w1).grad_fn).__name__ == "FusedConvolution"  # no pool
    with kernels.reference():
        assert type(F.conv2d_max_pool2d(x1, w1, pool_size=2).grad_fn).__name__ == "MaxPool"
    assert not conv_few.applies(x1, w1, (2, 2), (1, 1), (1, 1)) or x1.device == "cpu"
    row = [r for r in kernels.TABLE if r.kernel is conv_few.FewChannelConvolution]
    assert len(row) == 1 and row[0].via is kernel_conv.conv_pool_relu and row[0].devices == ("cpu",)
    # not installed itself: the CPU's conv_pool_relu is Winograd's dispatcher, which falls back to the direct one
    assert kernels.kernel_for(tg.conv.conv_pool_relu, "cpu") is kernels.winograd.conv_pool_relu
