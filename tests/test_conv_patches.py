"""kernels/conv_patches.py: FusedConvolution with one patch row per pool window (few input channels,
pooled, on the CPU) against the plain reference ops (Convolution, MaxPool, ReLU one after another):
values and every gradient for a random upstream gradient in float64, ties included, over several
chunks; its products bit for bit those of the im2col rows (so identical windows tie exactly); the
fallback for non-finite inputs; inference bit-identical to the recorded forward; the same bits for
any thread count."""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn import Tensor, kernels
from tinygrad_cnn.kernels import conv as kernel_conv, conv_patches, parallel
from tinygrad_cnn.nn import functional as F
from tinygrad_cnn.testing.strategies import arrays

from conftest import PROFILE
from test_conv_pool import as_pair, conv_pads


@st.composite
def cases(draw, values=None):
    """A pooled convolution of 1 or 2 input channels, wide enough for a column-major im2col (where
    patches apply): odd shapes, paddings, strides, dilations, pool windows of 2 or 3; x, w and b on a grid of 0.5 (sums exact in float64, so windows tie as often as the grid
    makes them), or `values`."""
    n, c, o = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 5))
    kernel = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dilation = draw(st.sampled_from([1, 2, (1, 2)]))
    padding = draw(st.sampled_from(["valid", "same", 1, (0, 2)]))
    stride = 1 if padding == "same" else draw(st.sampled_from([1, 2, (2, 1)]))
    (top, bottom), (left, right) = conv_pads(padding, kernel, as_pair(dilation))
    reach = [d * (k - 1) + 1 for k, d in zip(kernel, as_pair(dilation))]
    least_h = max(2 * as_pair(stride)[0] + reach[0] - top - bottom, 1)
    least_w = max(2 * as_pair(stride)[1] * (c * kernel[1] + 1) + reach[1] - left - right, 1)
    h, w = draw(st.integers(least_h, least_h + 6)), draw(st.integers(least_w, least_w + 8))
    (sh, sw), (dh, dw) = as_pair(stride), as_pair(dilation)
    out_h = (h + top + bottom - dh * (kernel[0] - 1) - 1) // sh + 1
    out_w = (w + left + right - dw * (kernel[1] - 1) - 1) // sw + 1
    pool = draw(st.integers(2, min(out_h, 3))), draw(st.integers(2, min(out_w, 3)))  # (patches: >1 window offset)
    grid = values or (lambda shape: arrays(shape).map(lambda a: np.round(a * 2) / 2))
    x, weight = draw(grid((n, c, h, w))), draw(grid((o, c) + kernel))
    bias = draw(st.none() | grid((o,)))
    relu = draw(st.booleans())
    return x, weight, bias, dict(stride=stride, padding=padding, dilation=dilation, pool_size=pool, relu=relu)


@pytest.fixture(scope="module")
def small_chunks():
    """Chunks of one or two images, so that every case runs several chunks (and threads take turns)."""
    saved, kernel_conv.CHUNK_BYTES = kernel_conv.CHUNK_BYTES, 1 << 10
    yield
    kernel_conv.CHUNK_BYTES = saved


def _results(x, w, b, kwargs, x_grad, upstream_seed=0, reference=False):
    """conv2d_max_pool2d's value and the gradients of x (when x_grad), w and b, and whether it took
    patches (read before backward, which lets the op go)."""
    inputs = [Tensor(x, requires_grad=x_grad), Tensor(w, requires_grad=True)]
    inputs += [] if b is None else [Tensor(b, requires_grad=True)]
    with kernels.reference() if reference else _nothing():
        out = F.conv2d_max_pool2d(*inputs, **kwargs)
        patched = getattr(out.grad_fn, "patches", None) is not None
        out.backward(Tensor(np.random.default_rng(upstream_seed).standard_normal(out.shape)))
    grads = [t.grad.numpy() if t.requires_grad else t.grad for t in inputs]
    return [out.numpy()] + grads, patched


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


@settings(max_examples=40 if PROFILE == "ci" else 300, deadline=None)
@given(case=cases(), x_grad=st.booleans(), seed=st.integers(0, 2**16))
def test_values_and_gradients_equal_the_reference_ops(small_chunks, case, x_grad, seed):
    x, w, b, kwargs = case
    fast, patched = _results(x, w, b, kwargs, x_grad, seed)
    assume(patched)  # (the cases where patches apply)
    ref, _ = _results(x, w, b, kwargs, x_grad, seed, reference=True)
    for got, want in zip(fast, ref):
        if want is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_the_tutorial_first_layer_takes_patches_and_others_do_not():
    x = Tensor(np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32))
    w = Tensor(np.ones((32, 1, 3, 3), np.float32), requires_grad=True)
    out = F.conv2d_max_pool2d(x, w, padding=1, pool_size=2, relu=True)
    assert out.grad_fn.patches is not None and out.grad_fn.patches.size == 16
    wide = Tensor(np.zeros((2, 32, 14, 14), np.float32))
    out2 = F.conv2d_max_pool2d(wide, Tensor(np.ones((64, 32, 3, 3), np.float32)), padding=1, pool_size=2)
    assert getattr(out2.grad_fn, "patches", None) is None  # a row-major im2col: no patches
    out3 = F.conv2d(x, w, padding=1)  # no pool
    assert getattr(out3.grad_fn, "patches", None) is None


def _forward(x, w, b, enabled, grad=True, **kwargs):
    saved, conv_patches.ENABLED = conv_patches.ENABLED, enabled
    try:
        inputs = [Tensor(x), Tensor(w, requires_grad=grad), Tensor(b, requires_grad=grad)]
        if grad:
            return kernel_conv.FusedConvolution.apply(*inputs, **kwargs)
        with tg.no_grad():
            return kernel_conv.FusedConvolution.apply(*inputs, **kwargs)
    finally:
        conv_patches.ENABLED = saved


KWARGS = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), pool=(2, 2), relu=True)


@settings(max_examples=20 if PROFILE == "ci" else 100, deadline=None)
@given(seed=st.integers(0, 2**16), images=st.integers(1, 20), scale=st.sampled_from([1e-3, 1.0, 1e3]))
def test_patch_products_equal_the_im2col_rows_bit_for_bit(small_chunks, seed, images, scale):
    """float32, as training runs: the extra products are by exact zeros, so every value and every
    window's offset is the im2col GEMM's. This is what keeps the tie rule (identical windows give
    identical values: tests/test_conv_pool.py checks it on MNIST strokes with the kernel as chosen)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((images, 1, 13, 17)) * scale).astype(np.float32)
    x[:, :, 3:7, 2:9] = 0.5  # a flat patch: identical windows
    w = rng.standard_normal((32, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    on, off = _forward(x, w, b, True, **KWARGS), _forward(x, w, b, False, **KWARGS)
    assert on.grad_fn.patches is not None and off.grad_fn.patches is None
    np.testing.assert_array_equal(on.numpy(), off.numpy())
    np.testing.assert_array_equal(np.asarray(on.grad_fn.offset), np.asarray(off.grad_fn.offset))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_input_takes_the_im2col_rows(bad):
    """x * 0 is NaN for an infinite x: patches would spread it to windows that do not read it."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 1, 8, 8)).astype(np.float32)
    x[1, 0, 0, 0] = bad  # read by one window of its pool window only
    w, b = rng.standard_normal((4, 1, 3, 3)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    on, off = _forward(x, w, b, True, **KWARGS), _forward(x, w, b, False, **KWARGS)
    assert on.grad_fn.patches is None
    np.testing.assert_array_equal(on.numpy(), off.numpy())
    clean = x.copy()
    clean[1, 0, 0, 0] = 0
    assert _forward(clean, w, b, True, **KWARGS).grad_fn.patches is not None


@pytest.mark.parametrize("images", [1, 9, 40])
def test_inference_is_bit_identical_to_the_recorded_forward(small_chunks, images):
    rng = np.random.default_rng(images)
    x = rng.random((images, 1, 28, 28), dtype=np.float32)
    x[:, :, 10:20, 10:20] = 1.0  # ties
    w = rng.uniform(-0.3, 0.3, (32, 1, 3, 3)).astype(np.float32)
    b = rng.uniform(-0.05, 0.05, 32).astype(np.float32)
    recorded, values = _forward(x, w, b, True, **KWARGS), _forward(x, w, b, True, grad=False, **KWARGS)
    assert recorded.grad_fn.patches is not None
    np.testing.assert_array_equal(values.numpy(), recorded.numpy())


def test_weight_gradient_has_the_same_bits_for_any_thread_count():
    rng = np.random.default_rng(3)
    x = rng.random((128, 1, 28, 28), dtype=np.float32)
    w = rng.uniform(-0.3, 0.3, (32, 1, 3, 3)).astype(np.float32)
    b = rng.uniform(-0.05, 0.05, 32).astype(np.float32)
    upstream = Tensor(rng.standard_normal((128, 32, 14, 14)).astype(np.float32))
    grads = []
    saved = parallel.get_num_threads()
    try:
        for threads in (1, 2, 3):
            parallel.set_num_threads(threads)
            inputs = [Tensor(x), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)]
            out = kernel_conv.FusedConvolution.apply(*inputs, **KWARGS)
            assert out.grad_fn.patches is not None
            out.backward(upstream)
            grads.append([inputs[1].grad.numpy().copy(), inputs[2].grad.numpy().copy()])
    finally:
        parallel.set_num_threads(saved)
    for other in grads[1:]:
        for a, c in zip(grads[0], other):
            np.testing.assert_array_equal(a, c)
