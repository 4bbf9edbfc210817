"""conv2d, max_pool2d and avg_pool2d: gradients checked under hypothesis, forward values against
per-pixel loops written here, the tutorial's worked examples, and the error messages."""
import numpy as np
import pytest
from hypothesis import example, given, strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn.nn import functional as F
from tinygrad_cnn.testing import gradcheck
from tinygrad_cnn.testing.strategies import arrays, tie_free_arrays
from tests.conftest import DEVICES


# ---------------------------------------------------------------- references (one output pixel at a time)

def as_pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv_pads(padding, kernel, dilation):
    """((top, bottom), (left, right)) for a conv2d padding argument; 'same' puts an odd extra after."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation))
    ph, pw = as_pair(padding)
    return (ph, ph), (pw, pw)


def conv2d_loop(x, w, b, stride, padding, dilation):
    (sh, sw), (dh, dw) = as_pair(stride), as_pair(dilation)
    o, _, kh, kw = w.shape
    (top, bottom), (left, right) = conv_pads(padding, (kh, kw), (dh, dw))
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((x.shape[0], o, oh, ow))
    for n in range(x.shape[0]):
        for k in range(o):
            for r in range(oh):
                for s in range(ow):
                    window = xp[n, :, r * sh:r * sh + dh * (kh - 1) + 1:dh, s * sw:s * sw + dw * (kw - 1) + 1:dw]
                    out[n, k, r, s] = (window * w[k]).sum() + (0.0 if b is None else b[k])
    return out


def pool_loop(x, kernel, stride, padding, kind):
    (kh, kw), (sh, sw), (ph, pw) = as_pair(kernel), as_pair(stride), as_pair(padding)
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    oh, ow = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    out = np.zeros(x.shape[:2] + (oh, ow))
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for r in range(oh):
                for s in range(ow):
                    window = xp[n, c, r * sh:r * sh + kh, s * sw:s * sw + kw]
                    out[n, c, r, s] = window.max() if kind == "max" else window.sum() / (kh * kw)
    return out


# ---------------------------------------------------------------- strategies

@st.composite
def conv_cases(draw):
    """Small conv2d problems: every padding form, strides, dilations, non-square inputs and kernels."""
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dilation = draw(st.sampled_from([1, 2, (1, 2), (2, 1)]))
    padding = draw(st.sampled_from(["valid", "same", 0, 1, (1, 0), (0, 2)]))
    stride = 1 if padding == "same" else draw(st.sampled_from([1, 2, (1, 2), (2, 1)]))
    (top, bottom), (left, right) = conv_pads(padding, kernel, as_pair(dilation))
    reach = [d * (k - 1) + 1 for k, d in zip(kernel, as_pair(dilation))]
    h = draw(st.integers(max(1, reach[0] - top - bottom), 7))
    w = draw(st.integers(max(1, reach[1] - left - right), 7))
    x = draw(arrays((n, c, h, w)))
    weight = draw(arrays((o, c) + kernel))
    bias = draw(st.none() | arrays((o,)))
    return x, weight, bias, dict(stride=stride, padding=padding, dilation=dilation)


@st.composite
def pool_cases(draw):
    """Pooling problems on tie-free inputs: overlapping (stride < kernel), tiling (stride == kernel,
    the 2x2 fast path among them), gapped (stride > kernel), with and without padding."""
    kernel = draw(st.sampled_from([1, 2, 3, (2, 3), (3, 1)]))
    kh, kw = as_pair(kernel)
    stride = draw(st.sampled_from([None, 1, 2, 3, (1, 2), kernel]))
    padding = draw(st.sampled_from([0, (kh // 2, kw // 2)]))
    ph, pw = as_pair(padding)
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h = draw(st.integers(max(1, kh - 2 * ph), 7))
    w = draw(st.integers(max(1, kw - 2 * pw), 7))
    x = draw(tie_free_arrays((n, c, h, w)))
    return x, dict(kernel_size=kernel, stride=stride, padding=padding)


def _fixed(shape, seed=0):
    """A deterministic tie-free array, for the @example cases every profile must run."""
    return np.random.default_rng(seed).permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 1.0


# Cases hypothesis might not draw in a short run: 'same' with an even kernel (extra padding after),
# stride + dilation + asymmetric padding, the 2x2 tiling fast path, an uneven tiling, overlap.
CONV_EXAMPLES = [
    (_fixed((1, 1, 5, 4)), _fixed((1, 1, 2, 2), 1), None, dict(stride=1, padding="same", dilation=1)),
    (_fixed((2, 2, 7, 6)), _fixed((3, 2, 3, 2), 2), _fixed((3,), 3), dict(stride=2, padding=(0, 2), dilation=(2, 1))),
]
POOL_EXAMPLES = [
    (_fixed((2, 3, 6, 6)), dict(kernel_size=2, stride=None, padding=0)),
    (_fixed((1, 2, 7, 5)), dict(kernel_size=2, stride=2, padding=0)),
    (_fixed((1, 2, 5, 6)), dict(kernel_size=3, stride=1, padding=1)),
]


def with_examples(cases):
    """Decorate a @given test with one @example per fixed case."""
    def decorate(test):
        for case in cases:
            test = example(case=case)(test)
        return test
    return decorate


def tensor(a, device, requires_grad=False):
    return tg.Tensor(a, device=device, requires_grad=requires_grad)


# ---------------------------------------------------------------- conv2d

@pytest.mark.parametrize("device", DEVICES)
@given(case=conv_cases())
@with_examples(CONV_EXAMPLES)
def test_conv2d_gradcheck(device, case):
    x, w, b, kwargs = case
    inputs = [tensor(x, device, True), tensor(w, device, True)]
    if b is not None:
        inputs.append(tensor(b, device, True))
    assert gradcheck(lambda *t: F.conv2d(*t, **kwargs), inputs)


@pytest.mark.parametrize("device", DEVICES)
@given(case=conv_cases())
@with_examples(CONV_EXAMPLES)
def test_conv2d_forward_matches_loop(device, case):
    x, w, b, kwargs = case
    out = F.conv2d(tensor(x, device), tensor(w, device), None if b is None else tensor(b, device), **kwargs)
    expected = conv2d_loop(x, w, b, kwargs["stride"], kwargs["padding"], kwargs["dilation"])
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-10)
    if kwargs["padding"] == "same":
        assert out.shape[2:] == x.shape[2:]


@pytest.mark.parametrize("device", DEVICES)
def test_conv2d_float32_stays_float32(device):
    rng = np.random.default_rng(0)
    x = tensor(rng.standard_normal((2, 3, 6, 5)).astype(np.float32), device, True)
    w = tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), device, True)
    b = tensor(np.zeros(4, np.float32), device, True)
    out = F.conv2d(x, w, b, padding="same")
    assert out.dtype == np.float32
    out.backward(tg.ones(out.shape, device=device))
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32
    expected = conv2d_loop(x.numpy().astype(np.float64), w.numpy().astype(np.float64), None, 1, "same", 1)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("pool", [None, 2])
def test_conv2d_weight_gradient_has_the_weights_layout(pool):
    """The optimizers update C-contiguous gradients in one split over cores; the conv computes
    its weight gradient transposed, so it must hand back a contiguous copy."""
    rng = np.random.default_rng(0)
    x = tensor(rng.standard_normal((2, 3, 6, 6)), "cpu", True)
    w, b = tensor(rng.standard_normal((4, 3, 3, 3)), "cpu", True), tensor(np.zeros(4), "cpu", True)
    out = F.conv2d(x, w, b, padding=1) if pool is None else F.conv2d_max_pool2d(x, w, b, padding=1, pool_size=pool)
    out.sum().backward()
    assert w.grad.data.flags.c_contiguous


# ---------------------------------------------------------------- conv2d + max-pool in one op

@st.composite
def conv_pool_cases(draw):
    """conv_cases with a pooling window that fits the convolution's output."""
    x, w, b, kwargs = draw(conv_cases())
    (top, bottom), (left, right) = conv_pads(kwargs["padding"], w.shape[2:], as_pair(kwargs["dilation"]))
    (sh, sw), (dh, dw) = as_pair(kwargs["stride"]), as_pair(kwargs["dilation"])
    out_h = (x.shape[2] + top + bottom - dh * (w.shape[2] - 1) - 1) // sh + 1
    out_w = (x.shape[3] + left + right - dw * (w.shape[3] - 1) - 1) // sw + 1
    pool = draw(st.integers(1, min(out_h, 3))), draw(st.integers(1, min(out_w, 3)))
    return x, w, b, kwargs, pool


def conv_then_pool(x, w, b, kwargs, pool, relu=False):
    """The composition conv2d_max_pool2d must equal, values and gradients (each op checked above)."""
    out = F.max_pool2d(F.conv2d(x, w, b, **kwargs), pool)
    return out.relu() if relu else out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("relu", [False, True])
@given(case=conv_pool_cases())
@example(case=(_fixed((2, 2, 7, 6)), _fixed((3, 2, 3, 3), 1), _fixed((3,), 2), dict(stride=1, padding=1, dilation=1),
               (2, 2)))  # 7 rows: the last is in no window
def test_conv2d_max_pool2d_equals_conv2d_then_max_pool2d(device, relu, case):
    """Values and gradients of the one-op form equal the composition's (itself gradient-checked),
    ties included: rounding the inputs to multiples of 0.5 makes windows tie often."""
    x, w, b, kwargs, pool = case
    # NOTE: the bias too: with x and w on a 0.5 grid and b free, a drawn b of 4e-196 put a pre-activation
    # within rounding of ReLU's kink, where the two paths' summation orders disagree on its sign
    x, w = np.round(x * 2) / 2, np.round(w * 2) / 2
    b = None if b is None else np.round(b * 2) / 2
    arrays_in = [x, w] + ([] if b is None else [b])
    upstream = None
    results = []
    for fn in (lambda x, w, *b: F.conv2d_max_pool2d(x, w, *b, pool_size=pool, relu=relu, **kwargs),
               lambda x, w, *b: conv_then_pool(x, w, b[0] if b else None, kwargs, pool, relu)):
        inputs = [tensor(a, device, True) for a in arrays_in]
        out = fn(*inputs)
        if upstream is None:
            upstream = np.random.default_rng(0).standard_normal(out.shape)
        out.backward(tensor(upstream, device))
        results.append([out.numpy()] + [t.grad.numpy() for t in inputs])
    for one_op, composed in zip(*results):
        np.testing.assert_allclose(one_op, composed, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_conv2d_max_pool2d_gradcheck(device):
    """A fixed tie-free case, so finite differences never cross a window's maximum."""
    x, w, b = _fixed((2, 2, 6, 5)), _fixed((3, 2, 3, 3), 1) * 0.1, _fixed((3,), 2)
    inputs = [tensor(x, device, True), tensor(w, device, True), tensor(b, device, True)]
    assert gradcheck(lambda *t: F.conv2d_max_pool2d(*t, padding=1, pool_size=2), inputs)


def test_conv2d_max_pool2d_rejects_a_window_larger_than_the_output():
    x, w = tensor(np.zeros((1, 1, 4, 4)), "cpu"), tensor(np.zeros((1, 1, 3, 3)), "cpu")
    with pytest.raises(ValueError, match=r"pool window \(3, 3\) is larger than the convolution's 2x2 output"):
        F.conv2d_max_pool2d(x, w, pool_size=3)
    with pytest.raises(ValueError, match="pool_size must be >= 1"):
        F.conv2d_max_pool2d(x, w, pool_size=0)


# ---------------------------------------------------------------- pooling

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d])
@given(case=pool_cases())
@with_examples(POOL_EXAMPLES)
def test_pool_gradcheck(device, pool, case):
    x, kwargs = case
    assert gradcheck(lambda t: pool(t, **kwargs), [tensor(x, device, True)])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("pool, kind", [(F.max_pool2d, "max"), (F.avg_pool2d, "avg")])
@given(case=pool_cases())
@with_examples(POOL_EXAMPLES)
def test_pool_forward_matches_loop(device, pool, kind, case):
    x, kwargs = case
    stride = kwargs["stride"] if kwargs["stride"] is not None else kwargs["kernel_size"]
    expected = pool_loop(x, kwargs["kernel_size"], stride, kwargs["padding"], kind)
    out = pool(tensor(x, device), **kwargs)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data())
def test_max_pool_ties_route_each_window_to_one_input(device, data):
    """Inputs of only 0s and 1s tie everywhere; each window must still pass its whole upstream
    gradient to exactly one input (windows here do not overlap: stride >= kernel)."""
    kh, kw = data.draw(st.sampled_from([(2, 2), (3, 3), (2, 3), (1, 2)]))
    sh, sw = data.draw(st.sampled_from([(kh, kw), (kh + 1, kw), (kh, kw + 1)]))
    h, w = data.draw(st.integers(kh, 7)), data.draw(st.integers(kw, 7))
    x = data.draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=2 * h * w, max_size=2 * h * w))
    x = tensor(np.array(x).reshape(1, 2, h, w), device, True)
    out = F.max_pool2d(x, (kh, kw), (sh, sw))
    upstream = np.random.default_rng(h * 7 + w).uniform(0.5, 1.5, out.shape)
    out.backward(tg.Tensor(upstream, device=device))
    grad, values = x.grad.numpy(), x.numpy()
    for c in range(2):
        for r in range(out.shape[2]):
            for s in range(out.shape[3]):
                window = grad[0, c, r * sh:r * sh + kh, s * sw:s * sw + kw]
                assert np.count_nonzero(window) == 1
                assert window.sum() == pytest.approx(upstream[0, c, r, s])
                # the first maximum in reading order is the one
                first = np.argmax(values[0, c, r * sh:r * sh + kh, s * sw:s * sw + kw])
                assert window.ravel()[first] != 0
    assert grad.sum() == pytest.approx(upstream.sum())  # nothing reached cells outside every window


def _exact_preactivations(x, w, b):
    """conv2d 'same' of NCHW x in float64 by elementwise products, one kernel tap and channel at a
    time: every output pixel is summed in the same order, so identical windows give identical sums."""
    n, c, h, wd = x.shape
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    z = np.broadcast_to(b.astype(np.float64)[None, :, None, None], (n, len(b), h, wd)).copy()
    for i in range(3):
        for j in range(3):
            for ch in range(c):
                z += padded[:, ch, None, i:i + h, j:j + wd] * w[None, :, ch, i, j, None, None].astype(np.float64)
    return z


@pytest.mark.kernels  # the fused conv+pool kernel's tie routing
@pytest.mark.parametrize("images", [32, 13])
def test_identical_windows_tie_exactly_in_the_fused_conv_and_pool_and_go_to_the_first(images):
    """Inside MNIST's thick strokes (pixels of exactly 1.0) and over its background, neighbouring
    windows are identical, so a pooling window holds exact ties; each must route to its first
    maximum in reading order, as max_pool2d of the unfused conv does. NOTE: with one GEMM over all
    rows, some identical rows were rounded differently: here 77 and 13 tied windows (32 images)
    went to a later element."""
    (x, _), _ = tg.keras.datasets.mnist.load_data()
    rng = np.random.default_rng(0)
    x = (x[:images, None] / 255.0).astype(np.float32)
    for channels, filters in ((1, 32), (32, 64)):
        w = rng.uniform(-0.3, 0.3, (filters, channels, 3, 3)).astype(np.float32)
        b = rng.uniform(0.0, 0.05, filters).astype(np.float32)  # positive: the background ties too
        args = tg.Tensor(x, requires_grad=True), tg.Tensor(w), tg.Tensor(b)
        kwargs = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), pool=(2, 2), relu=True)
        out = tg.kernels.conv.FusedConvolution.apply(*args, **kwargs)  # the direct kernel, whatever the dispatch
        z = _exact_preactivations(x, w, b)
        n, o, h, wd = z.shape
        windows = z.reshape(n, o, h // 2, 2, wd // 2, 2).transpose(0, 2, 4, 1, 3, 5).reshape(n, h // 2, wd // 2, o, 4)
        top = windows.max(-1, keepdims=True)
        tied = ((windows == top).sum(-1) > 1) & (top[..., 0] > 0)
        first = (windows == top).argmax(-1) + 1
        assert tied.sum() > 1000  # the data do tie
        np.testing.assert_array_equal(np.asarray(out.grad_fn.offset)[tied], first[tied])
        if channels >= 32:  # where Winograd applies once chosen (kernels/winograd.py, WINS_FROM_CHANNELS)
            # NOTE: Winograd computes the four pixels of a window by four different sums, so two
            # identical windows may round an ulp apart, and a tie then goes to the later one: 1 of the
            # 20,214 tied windows here (32 images). Bounded, not exact: at most 1 in 5,000.
            wino = tg.kernels.winograd.WinogradConvPool.apply(*args, **kwargs)
            # float32 rounding of both, against the layer's largest value: each is within 5e-7 of it
            # against float64 here (direct 2.1e-6 absolute, Winograd 1.1e-6), so the two may differ by
            # their sum: a fixed atol of 1e-6 failed on one of 100,352 values (1.28e-6 apart)
            scale = np.abs(out.numpy()).max()
            np.testing.assert_allclose(wino.numpy(), out.numpy(), rtol=1e-5, atol=1e-6 * scale)
            later = np.count_nonzero(np.asarray(wino.grad_fn.offset)[tied] != first[tied])
            assert later <= tied.sum() / 5000, (later, tied.sum())
        x = out.numpy()


@pytest.mark.parametrize("device", DEVICES)
def test_max_pool_ties_in_overlapping_windows_are_not_duplicated(device):
    x = tensor(np.zeros((1, 1, 5, 5)), device, True)
    out = F.max_pool2d(x, 3, stride=1)
    upstream = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    out.backward(tg.Tensor(upstream, device=device))
    assert x.grad.numpy().sum() == pytest.approx(upstream.sum())
    assert np.count_nonzero(x.grad.numpy()) <= upstream.size


# ---------------------------------------------------------------- the tutorial's worked examples

def test_tutorial_kernel_sums_the_selected_pixels_to_31():
    """A 3x3 kernel on a 6x6 image whose top-left window holds 1..9: the 0/1 kernel picks
    1, 3, 5, 6, 7 and 9, so that output pixel is 31."""
    image = np.random.default_rng(0).integers(0, 10, (6, 6)).astype(np.float64)
    image[:3, :3] = np.arange(1, 10).reshape(3, 3)
    kernel = np.array([[1, 0, 1],
                       [0, 1, 1],
                       [1, 0, 1]], dtype=np.float64)
    out = F.conv2d(tg.Tensor(image[None, None]), tg.Tensor(kernel[None, None]))
    assert out.shape == (1, 1, 4, 4)
    assert out.numpy()[0, 0, 0, 0] == 1 + 3 + 5 + 6 + 7 + 9 == 31
    np.testing.assert_allclose(out.numpy(), conv2d_loop(image[None, None], kernel[None, None], None, 1, 0, 1))


def test_tutorial_8x8_max_pool_4_stride_4_gives_2x2_of_quadrant_maxima():
    image = np.random.default_rng(1).uniform(0, 1, (8, 8))
    image[1, 2], image[3, 6], image[5, 0], image[7, 7] = 9.0, 7.0, 5.0, 8.0
    out = F.max_pool2d(tg.Tensor(image[None, None]), 4, stride=4)
    np.testing.assert_array_equal(out.numpy()[0, 0], [[9.0, 7.0], [5.0, 8.0]])


def test_tutorial_28x28_with_5x5_valid_kernel_gives_24x24():
    x = tg.rand(2, 1, 28, 28)
    out = F.conv2d(x, tg.rand(6, 1, 5, 5), padding="valid")
    assert out.shape == (2, 6, 24, 24)


@pytest.mark.parametrize("n2", [1, 8, 64])
def test_tutorial_flatten_of_n2_maps_of_4x4_has_16_n2_features(n2):
    maps = tg.Tensor(np.arange(3 * n2 * 16, dtype=np.float32).reshape(3, n2, 4, 4))
    flat = maps.flatten(1)
    assert flat.shape == (3, 16 * n2)
    np.testing.assert_array_equal(flat.numpy()[1], maps.numpy()[1].ravel())


# ---------------------------------------------------------------- errors

def test_conv2d_wrong_channel_count_names_both_shapes():
    with pytest.raises(ValueError, match=r"3 channels.*\(2, 3, 5, 5\).*expects 2.*\(4, 2, 3, 3\)"):
        F.conv2d(tg.rand(2, 3, 5, 5), tg.rand(4, 2, 3, 3))


def test_conv2d_wrong_rank():
    with pytest.raises(ValueError, match=r"4-D.*\(3, 5, 5\)"):
        F.conv2d(tg.rand(3, 5, 5), tg.rand(4, 3, 3, 3))


def test_conv2d_kernel_larger_than_input():
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.conv2d(tg.rand(1, 1, 4, 4), tg.rand(1, 1, 5, 5))


@pytest.mark.parametrize("padding", ["full", "SAME ", -1])
def test_conv2d_bad_padding(padding):
    with pytest.raises(ValueError, match="padding"):
        F.conv2d(tg.rand(1, 1, 6, 6), tg.rand(1, 1, 3, 3), padding=padding)


def test_pool_window_larger_than_input():
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.max_pool2d(tg.rand(1, 1, 3, 3), 4)
    with pytest.raises(ValueError, match="4-D"):
        F.avg_pool2d(tg.rand(1, 3, 3), 2)


# ---------------------------------------------------------------- the pooling kernels (device.fuse)

from tinygrad_cnn.kernels import conv  # noqa: E402
from tests.conftest import EMULATED  # noqa: E402

# values that tie often, with both zeros, infinities and NaN: where the running max and its offset can go wrong
_LEVELS = np.array([-np.inf, -1.0, -0.0, 0.0, 0.5, 1.0, np.inf, np.nan])


def _tie_blocks(count, shape=(3, 2, 5, 4), dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.choice(_LEVELS, shape).astype(dtype) for _ in range(count)]


def _run_pool_kernel(run, blocks):
    offset_dtype = np.uint8 if len(blocks) < 256 else np.int32
    out, offset = np.empty_like(blocks[0]), np.empty(blocks[0].shape, dtype=offset_dtype)
    run(out, offset, np.ones(1, dtype=offset_dtype), *blocks)
    return out, offset


def _bits(a):
    return a.view(np.uint32 if a.itemsize == 4 else np.uint64)


def _first_max_reference(blocks, relu):
    """Per element, out and offset the slow way: a loop over the blocks in order, first maximum kept."""
    out, offset = np.empty_like(blocks[0]), np.empty(blocks[0].shape, dtype=np.int64)
    for idx in np.ndindex(out.shape):
        values = [b[idx] for b in blocks]
        if any(np.isnan(values)):
            continue
        best = max(values)
        out[idx], offset[idx] = (best, 1 + values.index(best)) if best > 0 or not relu else (0.0, 0)
    return out, offset


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("count", [1, 2, 4, 9, 256])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_tuned_cpu_pooling_kernel_equals_the_fused_kernels_plain_body(relu, count, dtype):
    """NOTE: NumPy runs the tuned version (device.fuse's cpu=), a GPU the plain body fused: both must
    give the same bits (NaN, -0.0 and ties included) and offsets, and both the first maximum."""
    kernel = conv.MAX_AND_FIRST_OFFSET[relu]
    assert kernel.cpu is not None and kernel.cpu is not kernel.__wrapped__
    blocks = _tie_blocks(count, dtype=dtype, seed=count)
    tuned = _run_pool_kernel(kernel, blocks)
    plain = _run_pool_kernel(lambda *a: kernel.__wrapped__(np, *a), blocks)
    np.testing.assert_array_equal(_bits(tuned[0]), _bits(plain[0]))
    np.testing.assert_array_equal(tuned[1], plain[1])
    expected_out, expected_offset = _first_max_reference(blocks, relu)
    finite = ~np.any(np.isnan(blocks), axis=0)
    np.testing.assert_array_equal(tuned[0][finite], expected_out[finite])
    np.testing.assert_array_equal(tuned[1][finite], expected_offset[finite])


def _on_device(a):
    import cupy
    return cupy.asarray(a)


@pytest.mark.gpu
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("count", [1, 4, 9])
def test_the_pooling_kernel_on_cupy_equals_the_cpu_in_one_launch(relu, count):
    import cupy
    kernel = conv.MAX_AND_FIRST_OFFSET[relu]
    blocks = _tie_blocks(count, seed=10 + count)
    expected = _run_pool_kernel(kernel, blocks)
    out, offset = cupy.empty(blocks[0].shape, dtype=np.float32), cupy.empty(blocks[0].shape, dtype=np.uint8)
    one = _on_device(np.ones(1, dtype=np.uint8))
    gpu_blocks = [_on_device(b) for b in blocks]
    if EMULATED:
        from cupy_emulation import record
        with record() as counts:
            kernel(out, offset, one, *gpu_blocks)
        assert counts.launches == 1 and counts.syncs == 0
        np.testing.assert_array_equal(_bits(out.get()), _bits(expected[0]))
    else:  # a GPU's maximum may order -0.0 and 0.0 otherwise
        kernel(out, offset, one, *gpu_blocks)
        np.testing.assert_array_equal(out.get(), expected[0])
    np.testing.assert_array_equal(offset.get(), expected[1])


def _routing_case(count, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((2, 3, 4, 5))
    g[0, 0, 0] = [np.nan, np.inf, -np.inf, -0.0, 0.0]
    return g, rng.integers(0, count + 1, g.shape).astype(np.uint8)


@pytest.mark.gpu
@pytest.mark.parametrize("count", [1, 4])
def test_gradient_routing_kernels_on_cupy_equal_the_cpu_in_one_launch(count):
    """route_by_codes (the conv's stacked blocks) and _route_by_offset (max_pool2d's separate ones):
    g where the offset is the block's, else g * 0 (NaN stays NaN), one launch each on a GPU."""
    import cupy
    g, offset = _routing_case(count, seed=count)
    with np.errstate(invalid="ignore"):  # inf * 0
        _check_routing(cupy, g, offset, count)


def _check_routing(cupy, g, offset, count):
    window = (2, 2) if count == 4 else (1, count)
    codes = np.arange(1, count + 1, dtype=np.uint8).reshape(window + (1, 1, 1, 1))
    expected = np.stack([g * (offset == q) for q in range(1, count + 1)]).reshape(window + g.shape)
    stacked = np.empty(expected.shape)
    pixels = np.empty((g.shape[0], g.shape[1] * window[0], g.shape[2] * window[1], g.shape[3]))
    conv.route_by_codes(stacked, g, offset, codes, conv._tiles(pixels, window))  # the conv's input-gradient copy
    separate = [np.empty(g.shape) for _ in range(count)]
    conv._route_by_offset(g, offset, *separate)
    for cpu in (stacked, np.stack(separate).reshape(expected.shape), conv._tiles(pixels, window)):
        np.testing.assert_array_equal(_bits(cpu), _bits(expected))
    gpu_stacked, gpu_separate = cupy.empty(stacked.shape), [cupy.empty(g.shape) for _ in range(count)]
    gpu_pixels = cupy.empty(pixels.shape)
    args = [_on_device(a) for a in (g, offset, codes)]

    def route():
        conv.route_by_codes(gpu_stacked, *args, conv._tiles(gpu_pixels, window))
        conv._route_by_offset(args[0], args[1], *gpu_separate)
    if EMULATED:
        from cupy_emulation import record
        with record() as counts:
            route()
        assert counts.launches == 2 and counts.syncs == 0
    else:
        route()
    np.testing.assert_array_equal(gpu_stacked.get(), expected)
    np.testing.assert_array_equal(gpu_pixels.get(), pixels)
    np.testing.assert_array_equal(np.stack([a.get() for a in gpu_separate]).reshape(expected.shape), expected)


@pytest.mark.kernels
def test_fused_convolution_builds_its_im2col_views_once_per_buffer_not_per_chunk(monkeypatch):
    """as_strided is Python code that holds the GIL the other thread needs between its NumPy calls: the
    fused convolution makes the view its im2col copies into once per buffer and chunk size (a count, not
    a time: 16 chunks each way here, and at most one view per thread and chunk size, plus the windows)."""
    from tinygrad_cnn.kernels import conv as kernel_conv
    rng = np.random.default_rng(0)
    x = tg.Tensor(rng.standard_normal((32, 4, 8, 8)).astype(np.float32), requires_grad=True)
    w = tg.Tensor(rng.standard_normal((8, 4, 3, 3)).astype(np.float32), requires_grad=True)
    monkeypatch.setattr(kernel_conv, "CHUNK_BYTES", 2 * 8 * 8 * (9 * 4 + 1) * 4)  # 2 images a chunk: 16 chunks
    calls = []
    strided = np.lib.stride_tricks.as_strided
    monkeypatch.setattr(np.lib.stride_tricks, "as_strided", lambda *a, **k: calls.append(1) or strided(*a, **k))
    out = F.conv2d_max_pool2d(x, w, None, padding=1, pool_size=2, relu=True)
    assert type(out.grad_fn).__name__ == "FusedConvolution" and len(out.grad_fn.chunks) == 16
    forward_calls, threads = len(calls), tg.get_num_threads()
    assert forward_calls <= 1 + threads  # the windows, and one im2col view per thread
    assert out.grad_fn._targets == {}  # the views (and through them the buffers) are not kept after forward
    out.backward(tg.Tensor(rng.standard_normal(out.shape).astype(np.float32)))
    assert len(calls) - forward_calls <= 2 + 2 * threads  # backward: windows, views, and the input gradient's taps
