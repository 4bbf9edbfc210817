"""Inference: an op that apply() will not record (under no_grad, or when no input needs a gradient) is
told so before its forward runs (Function.recorded), and the max-pooling kernels then compute values
only: no offsets of the windows' maxima, which only backward reads. The values must be the bits a
recorded forward gives; the counts below show that the offset kernel does not run."""
import numpy as np
import pytest
from hypothesis import example, given, strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn import nn
from tinygrad_cnn.autograd import Function
from tinygrad_cnn.kernels import buffers, conv
from tinygrad_cnn.nn import functional as F
from tests.conftest import DEVICES, EMULATED
from tests.test_conv_pool import _bits, _tie_blocks, conv_pool_cases, pool_cases


def tutorial_model(seed=0):
    tg.manual_seed(seed)
    return nn.Sequential([
        nn.Conv2D(32, (3, 3), padding="same", activation="relu"),
        nn.MaxPool2D((2, 2), strides=2),
        nn.Conv2D(64, (3, 3), padding="same", activation="relu"),
        nn.MaxPool2D((2, 2), strides=2),
        nn.Flatten(),
        nn.Dense(128, activation="relu"),
        nn.Dense(10, activation="softmax"),
    ], input_shape=(1, 28, 28))


class _Counting:
    """Stands in for a {relu: kernel} table and counts the calls of its kernels."""

    def __init__(self, table):
        self.table, self.calls = table, 0

    def __getitem__(self, relu):
        def counted(*args):
            self.calls += 1
            return self.table[relu](*args)
        return counted


def _count_kernels(monkeypatch):
    with_offsets, values_only = _Counting(conv.MAX_AND_FIRST_OFFSET), _Counting(conv.MAX_OF_BLOCKS)
    monkeypatch.setattr(conv, "MAX_AND_FIRST_OFFSET", with_offsets)
    monkeypatch.setattr(conv, "MAX_OF_BLOCKS", values_only)
    return with_offsets, values_only


def _images(n, seed=0):
    """MNIST-like inputs: many exact zeros (ties in every pooling window) and values on a coarse grid."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.random((n, 1, 28, 28)) * 4) / 4
    x[:, :, :6] = 0.0
    return x.astype(np.float32)


@pytest.mark.parametrize("device", DEVICES)
def test_the_tutorial_model_gives_the_same_bits_with_and_without_no_grad(device, monkeypatch):
    """Recorded (parameters need gradients), under no_grad, and with frozen parameters (nothing to
    record without no_grad): the same logits, bit for bit, with the batch in many chunks."""
    monkeypatch.setattr(conv, "CHUNK_BYTES", 1 << 18)  # several chunks per convolution, over both threads
    model = tutorial_model().to(device)
    x = tg.Tensor(_images(24), device=device)
    recorded = model.logits(x)
    assert recorded.grad_fn is not None
    with tg.no_grad():
        inferred = model.logits(x)
    for p in model.parameters():
        p.requires_grad = False
    frozen = model.logits(x)
    assert inferred.grad_fn is None and frozen.grad_fn is None
    np.testing.assert_array_equal(_bits(inferred.numpy()), _bits(recorded.numpy()))
    np.testing.assert_array_equal(_bits(frozen.numpy()), _bits(recorded.numpy()))


def test_a_forward_that_is_not_recorded_pools_without_offsets(monkeypatch):
    """The counts that show the inference path: under no_grad the fused conv+pool and max_pool2d never
    run the offset kernel nor ask for an offset array, and the convolutions keep no padded batch;
    recorded, they do (and backward still works)."""
    with_offsets, values_only = _count_kernels(monkeypatch)
    requests = []
    real_empty = buffers.empty

    def empty(xp, shape, dtype):
        requests.append((tuple(shape), xp.dtype(dtype)))
        return real_empty(xp, shape, dtype)

    monkeypatch.setattr(buffers, "empty", empty)
    model = tutorial_model()
    x = tg.Tensor(_images(4))
    # the whole batch's padded inputs of the two convolutions (kept by a recorded op for backward)
    padded = {(4, 30, 30, 1), (4, 16, 16, 32)}
    with tg.no_grad():
        model.logits(x)
        F.max_pool2d(x, 2)
    assert with_offsets.calls == 0 and values_only.calls > 0
    assert np.dtype(np.uint8) not in {dtype for _, dtype in requests}
    assert not padded & {shape for shape, _ in requests}
    values_only.calls = 0
    model.logits(x).sum().backward()
    F.max_pool2d(tg.Tensor(_images(4), requires_grad=True), 2).sum().backward()
    assert with_offsets.calls > 0 and values_only.calls == 0
    assert np.dtype(np.uint8) in {dtype for _, dtype in requests}
    assert padded <= {shape for shape, _ in requests}


def test_recorded_is_set_before_forward_and_true_for_a_forward_called_by_hand():
    seen = []

    class Probe(Function):
        def forward(self, x):
            seen.append(self.recorded)
            return x * 2

        def backward(self, g):
            return g * 2

    x = tg.Tensor(np.ones(3), requires_grad=True)
    Probe.apply(x)
    Probe.apply(tg.Tensor(np.ones(3)))
    with tg.no_grad():
        Probe.apply(x)
    assert seen == [True, False, False]
    assert Probe(np, "cpu").recorded is True  # the safe side: such a forward keeps what backward needs


def _with_specials(x, data):
    """x with some entries set to NaN, -0.0 and 0.0 (ties, signed zeros), where hypothesis says."""
    x = x.copy()
    flat = x.reshape(-1)
    for value in (np.nan, -0.0, 0.0):
        index = data.draw(st.integers(0, flat.size - 1))
        if data.draw(st.booleans()):
            flat[index] = value
    return x


def _case(x_shape, w_shape, bias, kwargs, pool):
    rng = np.random.default_rng(len(x_shape) + sum(x_shape) + sum(pool))
    return (rng.standard_normal(x_shape), rng.standard_normal(w_shape),
            rng.standard_normal(w_shape[0]) if bias else None, kwargs, pool)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(case=conv_pool_cases(), relu=st.booleans(), data=st.data())
# non-square pool windows (offsets in row-major order), strides, dilations, an output no window covers whole
@example(case=_case((2, 2, 7, 8), (3, 2, 3, 2), True, dict(stride=1, padding=1, dilation=1), (2, 3)),
         relu=True, data=None)
@example(case=_case((1, 3, 9, 6), (2, 3, 2, 3), False, dict(stride=(1, 2), padding=0, dilation=(2, 1)), (3, 1)),
         relu=False, data=None)
def test_conv2d_max_pool2d_values_are_the_same_bits_whether_recorded_or_not(device, dtype, case, relu, data):
    """Across shapes, strides, paddings, dilations, pool windows, ReLU and bias: the fused op's output
    under no_grad is the recorded output, bit for bit (ties, -0.0 and NaN included)."""
    x, w, b, kwargs, pool = case
    x = np.round(x * 2) / 2
    x = (x if data is None else _with_specials(x, data)).astype(dtype)
    arrays_in = [x, np.round(w * 2) / 2] + ([] if b is None else [np.round(b * 2) / 2])
    inputs = [tg.Tensor(a.astype(dtype), device=device, requires_grad=True) for a in arrays_in]

    def run():
        return F.conv2d_max_pool2d(*inputs, pool_size=pool, relu=relu, **kwargs)

    recorded = run()
    with tg.no_grad():
        inferred = run()
    assert recorded.grad_fn is not None and inferred.grad_fn is None
    np.testing.assert_array_equal(_bits(inferred.numpy()), _bits(recorded.numpy()))


@pytest.mark.parametrize("device", DEVICES)
@given(case=pool_cases(), data=st.data())
def test_max_pool2d_values_are_the_same_bits_whether_recorded_or_not(device, case, data):
    x, kwargs = case
    x = _with_specials(np.round(x * 2) / 2, data)
    t = tg.Tensor(x, device=device, requires_grad=True)
    recorded = F.max_pool2d(t, **kwargs)
    with tg.no_grad():
        inferred = F.max_pool2d(t, **kwargs)
    np.testing.assert_array_equal(_bits(inferred.numpy()), _bits(recorded.numpy()))


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("count", [1, 2, 4, 9, 256])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_values_only_kernel_gives_the_offset_kernels_values(relu, count, dtype):
    """NumPy's tuned version, the plain body (a GPU's, fused) and MAX_AND_FIRST_OFFSET's values: the
    same bits, NaN, -0.0, infinities and ties included."""
    kernel = conv.MAX_OF_BLOCKS[relu]
    assert kernel.cpu is not None and kernel.cpu is not kernel.__wrapped__
    blocks = _tie_blocks(count, dtype=dtype, seed=count)
    tuned, plain, with_offsets = (np.empty_like(blocks[0]) for _ in range(3))
    kernel(tuned, *blocks)
    kernel.__wrapped__(np, plain, *blocks)
    offset_dtype = np.uint8 if count < 256 else np.int32
    conv.MAX_AND_FIRST_OFFSET[relu](with_offsets, np.empty(blocks[0].shape, offset_dtype),
                                    np.ones(1, offset_dtype), *blocks)
    np.testing.assert_array_equal(_bits(tuned), _bits(with_offsets))
    np.testing.assert_array_equal(_bits(plain), _bits(with_offsets))


@pytest.mark.gpu
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("count", [1, 4, 9])
def test_the_values_only_kernel_on_cupy_equals_the_cpu_in_one_launch(relu, count):
    import cupy
    kernel = conv.MAX_OF_BLOCKS[relu]
    blocks = _tie_blocks(count, seed=20 + count)
    expected = np.empty_like(blocks[0])
    kernel(expected, *blocks)
    out = cupy.empty(blocks[0].shape, dtype=np.float32)
    gpu_blocks = [cupy.asarray(b) for b in blocks]
    if EMULATED:
        from cupy_emulation import record
        with record() as counts:
            kernel(out, *gpu_blocks)
        assert counts.launches == 1 and counts.syncs == 0
        np.testing.assert_array_equal(_bits(out.get()), _bits(expected))
    else:  # a GPU's maximum may order -0.0 and 0.0 otherwise
        kernel(out, *gpu_blocks)
        np.testing.assert_array_equal(out.get(), expected)


@pytest.mark.parametrize("relu", [False, True])
def test_the_winograd_kernel_pools_values_only_too_with_the_same_bits(relu, monkeypatch):
    """kernels/winograd.py (off by default) when chosen: under no_grad no offsets and no kept padded
    input, the recorded output's bits."""
    from tinygrad_cnn.kernels import winograd
    monkeypatch.setattr(winograd, "WINS_FROM_CHANNELS", 1)
    rng = np.random.default_rng(1)
    x = tg.Tensor(np.round(rng.standard_normal((5, 3, 10, 8)) * 2).astype(np.float32) / 2)
    w = tg.Tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    b = tg.Tensor(rng.standard_normal(4).astype(np.float32), requires_grad=True)
    recorded = F.conv2d_max_pool2d(x, w, b, padding=1, pool_size=2, relu=relu)
    assert isinstance(recorded.grad_fn, winograd.WinogradConvPool) and recorded.grad_fn.offset is not None
    with_offsets = _Counting(winograd.MAX_AND_FIRST_OFFSET)
    monkeypatch.setattr(winograd, "MAX_AND_FIRST_OFFSET", with_offsets)
    with tg.no_grad():
        inferred = F.conv2d_max_pool2d(x, w, b, padding=1, pool_size=2, relu=relu)
    assert with_offsets.calls == 0
    np.testing.assert_array_equal(_bits(inferred.numpy()), _bits(recorded.numpy()))
