"""One row per bad input found by trying the library as a new user would (issue 12): each fails at
the API with a TypeError or ValueError whose message names the problem, or gives the right answer.

`raised_here` also checks where: the innermost Python frame of the traceback must be tinygrad_cnn's
own code, not NumPy's. NumPy's compiled ufuncs add no frame, so each message is matched as well
(with the op's name where NumPy's own message would also fit)."""
import math
import os
import re

import numpy as np
import pytest

import tinygrad_cnn as tc
from tinygrad_cnn import Tensor, optim
from tinygrad_cnn.nn import functional as F

PACKAGE = os.path.dirname(os.path.abspath(tc.__file__))


def raised_here(excinfo):
    """True when the exception was raised by a line of tinygrad_cnn (not NumPy, not Python)."""
    tb = excinfo.tb
    while tb.tb_next is not None:
        tb = tb.tb_next
    return os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(PACKAGE + os.sep)


def ones(*shape, dtype=np.float64):
    return Tensor(np.ones(shape, dtype=dtype))


def image(h=4, w=4, dtype=np.float64):
    return ones(1, 1, h, w, dtype=dtype)


def sgd_step_after_negative_lr():
    p = Tensor([1.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    opt.lr = -1.0      # set after construction: must be refused as in __init__
    (p * p).sum().backward()
    opt.step()


def adam_lr_nan_after_construction():
    opt = optim.Adam([Tensor([1.0], requires_grad=True)])
    opt.lr = float("nan")


def conv_zero_height_kernel_backward():
    w = Tensor(np.ones((1, 1, 0, 3)), requires_grad=True)
    F.conv2d(image(), w).sum().backward()


def npz_claiming_ten_trillion_elements():
    import io
    import tempfile
    import zipfile
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, {"descr": "<f4", "fortran_order": False, "shape": (10 ** 13,)})
    npy.write(b"\0" * 64)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "huge.npz")
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("w.npy", npy.getvalue())
        tc.checkpoint.load_arrays(path)


def tutorial_model(input_shape=(1, 28, 28)):
    nn = tc.nn
    return nn.Sequential([nn.Conv2D(32, 3, padding="same", activation="relu"), nn.MaxPool2D(2),
                          nn.Conv2D(64, 3, padding="same", activation="relu"), nn.MaxPool2D(2), nn.Flatten(),
                          nn.Dense(128, activation="relu"), nn.Dense(10, activation="softmax")], input_shape=input_shape)


def save_as_h5():
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        try:
            tc.nn.Sequential([tc.nn.Dense(2)], input_shape=(3,)).save(os.path.join(folder, "m.h5"))
        finally:
            assert os.listdir(folder) == [], "a file was written"


# (id, call, exception type, regex the message must match)
BAD_INPUTS = [
    # item 5: silent wrong answers
    ("conv2d-zero-height-kernel", lambda: F.conv2d(image(), ones(1, 1, 0, 3)), ValueError, r"at least 1x1.*\(1, 1, 0, 3\)"),
    ("conv2d-zero-width-kernel", lambda: F.conv2d(image(), ones(1, 1, 3, 0)), ValueError, r"at least 1x1"),
    ("conv2d-zero-kernel-backward", conv_zero_height_kernel_backward, ValueError, r"at least 1x1"),
    ("fused-conv-pool-zero-kernel", lambda: F.conv2d_max_pool2d(image(), ones(1, 1, 0, 3)), ValueError, r"at least 1x1"),
    ("bce-input-above-1", lambda: F.binary_cross_entropy(Tensor([2.0, 0.5]), Tensor([1.0, 0.0])), ValueError,
     r"input must lie in \[0, 1\].*0\.5 to 2.*with_logits"),
    ("bce-input-negative-logits", lambda: F.binary_cross_entropy(Tensor([-3.0, 4.0]), Tensor([0.0, 1.0])), ValueError,
     r"input must lie in \[0, 1\]"),
    ("bce-target-above-1", lambda: F.binary_cross_entropy(Tensor([0.5, 0.5]), Tensor([2.0, 0.0])), ValueError,
     r"targets must lie in \[0, 1\].*0 to 2"),
    ("bce-input-above-1-beside-nan", lambda: F.binary_cross_entropy(Tensor([2.0, np.nan]), Tensor([0.0, 0.0])),
     ValueError, r"input must lie in \[0, 1\].*2 to 2"),    # found by tests/test_fuzz.py: nan hid the 2
    ("bce-target-negative", lambda: F.binary_cross_entropy(Tensor([0.5]), [-1.0]), ValueError, r"targets must lie"),
    ("transpose-axis-5-of-2d", lambda: ones(2, 3).transpose(0, 5), ValueError, r"\(0, 5\).*\(2, 3\)"),
    ("transpose-axis-minus-3-of-2d", lambda: ones(2, 3).transpose(-3, 1), ValueError, r"\(-3, 1\)"),  # held before
    ("reshape-float", lambda: ones(6).reshape(6.7), TypeError, r"integers, got 6\.7"),
    ("reshape-float-in-tuple", lambda: ones(6).reshape((2, 3.0)), TypeError, r"integers, got 3\.0"),
    ("zeros-float-size", lambda: tc.zeros(2.5), TypeError, r"integers, got 2\.5"),
    ("optimizer-lr-negative-after-construction", sgd_step_after_negative_lr, ValueError, r"lr must be >= 0"),
    ("optimizer-lr-nan-after-construction", adam_lr_nan_after_construction, ValueError, r"lr must be finite"),
    # item 6: errors from deep inside NumPy, or of the wrong kind
    ("sum-axis-float", lambda: ones(2, 3).sum(axis=1.0), TypeError, r"axis must be None, an int or a tuple.*1\.0"),
    ("max-axis-tuple-of-floats", lambda: ones(2, 3).max(axis=(0.0,)), TypeError, r"axis must be"),
    ("mean-axis-string", lambda: ones(2, 3).mean(axis="0"), TypeError, r"axis must be"),
    ("compare-lt-shapes", lambda: ones(2, 3) < ones(4), ValueError, r"lt: shapes \(2, 3\) and \(4,\)"),
    ("compare-eq-shapes", lambda: ones(2, 3) == ones(4), ValueError, r"eq: shapes \(2, 3\) and \(4,\)"),
    ("compare-ge-list", lambda: ones(2, 3) >= [1.0, 2.0], ValueError, r"ge: shapes \(2, 3\) and \(2,\)"),
    ("neg-bool", lambda: -ones(2, dtype=bool), TypeError, r"neg.*bool"),
    ("sub-bool", lambda: ones(2, dtype=bool) - ones(2, dtype=bool), TypeError, r"sub.*bool"),
    ("sub-bool-python-true", lambda: ones(2, dtype=bool) - True, TypeError, r"sub.*bool"),
    ("rsub-python-true-bool", lambda: True - ones(2, dtype=bool), TypeError, r"sub.*bool"),
    ("relu-bool", lambda: ones(2, dtype=bool).relu(), TypeError, r"relu.*bool"),
    ("F.relu-bool", lambda: F.relu(ones(2, dtype=bool)), TypeError, r"relu.*bool"),
    ("pad-0d-int", lambda: Tensor(1.0).pad(1), ValueError, r"0-d tensor has no axes to pad"),
    ("pad-0d-pair", lambda: Tensor(1.0).pad([(1, 1)]), ValueError, r"0-d tensor has no axes to pad"),
    ("ragged-list", lambda: Tensor([[1, 2], [3]]), ValueError, r"rectangular.*\[\[1, 2\], \[3\]\]"),
    ("ragged-floats", lambda: Tensor([[1.0], [2.0, 3.0], []]), ValueError, r"rows of different lengths"),
    ("int-pow-minus-1", lambda: Tensor([1, 2]) ** -1, ValueError, r"pow: .*negative integer power \(-1\).*float"),
    ("int-pow-negative-tensor", lambda: Tensor([1, 2]) ** Tensor([2, -3]), ValueError, r"pow: .*negative integer power \(-3\)"),
    ("bool-pow-minus-2", lambda: ones(2, dtype=bool) ** -2, ValueError, r"pow: an integer tensor \(bool\)"),
    ("argmax-empty", lambda: ones(0).argmax(), ValueError, r"argmax of an empty tensor \(shape \(0,\)\)"),
    ("argmin-empty-axis", lambda: ones(0, 3).argmin(axis=0), ValueError, r"argmin of axis 0 of size 0"),
    ("argmax-empty-keepdims", lambda: ones(2, 0).argmax(axis=1, keepdims=True), ValueError, r"axis 1 of size 0"),
    # the rest of the original report
    ("npz-header-claims-10^13-elements", npz_claiming_ten_trillion_elements, tc.checkpoint.CheckpointError,
     r"huge.npz.*'w'.*\(10000000000000,\)"),
    ("model-save-h5", save_as_h5, tc.checkpoint.CheckpointError, r"\.h5 is not a format.*\.safetensors, \.npz"),
    ("tutorial-model-32x32-input", lambda: tutorial_model()(tc.rand(2, 1, 32, 32)), ValueError,
     r"(?s)^(?!.*Flatten).*built for inputs of shape \(1, 28, 28\) and got \(1, 32, 32\)"),
    ("nchw-model-channels-last-input-shape", lambda: tutorial_model(input_shape=(28, 28, 1)), ValueError,
     r"looks channels-last \(H, W, C\).*input_shape=\(1, 28, 28\)"),
    # a seed NumPy refused deep inside, or None seeding from the OS, silently unrepeatable (issue 27)
    ("manual_seed-string", lambda: tc.manual_seed("a"), TypeError, r"manual_seed: seed must be an int >= 0, got 'a'"),
    ("manual_seed-negative", lambda: tc.manual_seed(-1), ValueError, r"manual_seed: seed must be an int >= 0, got -1"),
    ("manual_seed-fraction", lambda: tc.manual_seed(2.5), TypeError, r"manual_seed: seed must be an int >= 0, got 2.5"),
    ("manual_seed-none", lambda: tc.manual_seed(None), TypeError, r"manual_seed: seed must be an int >= 0, got None"),
    # found by tests/test_fuzz.py
    ("linear-0d-input", lambda: F.linear(Tensor(1.0), ones(0, 0)), ValueError, r"linear: input must have at least one axis"),
    ("conv2d-zero-output-channels", lambda: F.conv2d(image(), ones(0, 1, 1, 1)), ValueError,
     r"at least one input and one output channel.*\(0, 1, 1, 1\)"),
    ("conv2d-zero-input-channels", lambda: F.conv2d(ones(1, 0, 3, 3), ones(2, 0, 1, 1)), ValueError,
     r"at least one input and one output channel"),
    ("cross_entropy-no-classes", lambda: F.cross_entropy(ones(0, 0), np.zeros(0, dtype=np.int64)), ValueError,
     r"cross_entropy: the input has no classes \(shape \(0, 0\)\)"),
    ("nll_loss-no-classes", lambda: F.nll_loss(ones(2, 0), [0, 0]), ValueError, r"nll_loss: the input has no classes"),
    ("mse_loss-int-prediction", lambda: F.mse_loss(Tensor([1, 2]), np.array([0.5, 0.5])), TypeError,
     r"mse_loss input must be a floating-point tensor, got int64"),
    ("expand_dims-tuple-axis", lambda: ones(2).expand_dims((0, 1)), TypeError, r"expand_dims: axis must be an int, got \(0, 1\)"),
    ("argmax-tuple-axis", lambda: ones(2, 3).argmax(axis=(0,)), TypeError, r"argmax: axis must be None or an int"),
    ("argmin-list-axis", lambda: ones(2, 3).argmin(axis=[0, 1]), TypeError, r"argmin: axis must be None or an int"),
    ("zeros-negative-size", lambda: tc.zeros(2, -1), ValueError, r"zeros: sizes must be >= 0, got \(2, -1\)"),
    ("eye-negative-size", lambda: tc.eye(-1), ValueError, r"eye: sizes must be >= 0"),
    ("full-negative-size", lambda: tc.full((2, -3), 1.0), ValueError, r"full: sizes must be >= 0, got \(2, -3\)"),
    ("full-float-size", lambda: tc.full(2.5, 1.0), TypeError, r"integers, got 2\.5"),
    ("full-string-value", lambda: tc.full(2, "x"), TypeError, r"full: fill_value must be a number, got 'x'"),
    ("arange-step-0", lambda: tc.arange(0, 5, 0), ValueError, r"arange: step must not be 0"),
    ("pad-float-width", lambda: ones(3).pad(1.5), TypeError, r"pad: pad_width must be an int.*got 1\.5"),
    ("pad-three-numbers", lambda: ones(3, 3).pad((1, 2, 3)), TypeError, r"pad: pad_width must be"),
    ("clip-uint8-below-its-range", lambda: ones(2, dtype=np.uint8).clip(None, -1), ValueError,
     r"clip: bounds \(None, -1\) leave no value of uint8 \(0 to 255\)"),
    ("astype-complex", lambda: ones(2).astype(np.complex64), TypeError, r"astype: .*not complex64"),
    ("astype-object", lambda: ones(2).astype(object), TypeError, r"astype: .*not object"),
    ("min-of-empty", lambda: ones(0).min(), ValueError, r"^min of an empty tensor \(shape \(0,\)\)"),
    ("min-of-empty-bool", lambda: ones(0, dtype=bool).min(), ValueError, r"^min of an empty tensor"),
    ("max-over-empty-axis", lambda: ones(0, 3).max(axis=0), ValueError, r"max over axis 0 of shape \(0, 3\)"),
]


@pytest.mark.parametrize("call, error, pattern", [row[1:] for row in BAD_INPUTS], ids=[row[0] for row in BAD_INPUTS])
def test_bad_input_is_a_clear_error_raised_at_the_api(call, error, pattern):
    with pytest.raises(error) as info:
        call()
    assert re.search(pattern, str(info.value)), str(info.value)
    assert raised_here(info), f"raised inside {info.traceback[-1].path}: {info.value}"


# ---------------------------------------------------------------- inputs that have a right answer

def linear_with_zero_input_features():
    x = Tensor(np.ones((2, 0)), requires_grad=True)
    w = Tensor(np.ones((3, 0)), requires_grad=True)
    b = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = F.linear(x, w, b)
    (y * Tensor(np.arange(6.0).reshape(2, 3))).sum().backward()
    return y.numpy(), x.grad.shape, w.grad.shape, b.grad.numpy()


def check_linear_zero_features(result):
    y, x_grad_shape, w_grad_shape, b_grad = result
    np.testing.assert_array_equal(y, [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])  # an empty sum is 0: the bias alone
    assert x_grad_shape == (2, 0) and w_grad_shape == (3, 0)
    np.testing.assert_array_equal(b_grad, [3.0, 5.0, 7.0])


def max_pool_bool_with_padding():
    x = np.zeros((1, 1, 3, 3), dtype=bool)
    x[0, 0, 2, 2] = True
    return F.max_pool2d(Tensor(x), 2, stride=1, padding=1).numpy()


def check_max_pool_bool(out):
    # the padding is False (the bool minimum), so a window is True only where it covers the True pixel
    expected = np.zeros((1, 1, 4, 4), dtype=bool)
    expected[0, 0, 2:4, 2:4] = True
    assert out.dtype == np.bool_
    np.testing.assert_array_equal(out, expected)


def softmax_backward_over_empty_axis():
    x = Tensor(np.ones((2, 0)), requires_grad=True)
    x.softmax(axis=1).sum().backward()
    return x.grad.shape


# NOTE: the last rows (numpy ints in reshape, an empty batch, ordinary powers, bool + bool) passed
# before the fixes too: they keep the new checks from refusing what was right.
RIGHT_ANSWERS = [
    ("stride-numpy-int", lambda: F.conv2d(image(5, 5), ones(1, 1, 3, 3), stride=np.int64(2)).shape,
     lambda shape: shape == (1, 1, 2, 2)),
    ("padding-numpy-int-pair", lambda: F.conv2d(image(), ones(1, 1, 3, 3), padding=(np.int32(1), np.int64(1))).shape,
     lambda shape: shape == (1, 1, 4, 4)),
    ("pool-kernel-numpy-int", lambda: F.max_pool2d(image(), kernel_size=np.int64(2)).shape,
     lambda shape: shape == (1, 1, 2, 2)),
    ("Conv2D-kernel-numpy-int", lambda: tc.nn.Conv2D(2, kernel_size=np.int64(3), strides=np.int64(1)).kernel_size,
     lambda k: k == (3, 3)),
    ("MaxPool2D-numpy-int", lambda: tc.nn.MaxPool2D(np.int64(2))(image()).shape, lambda shape: shape == (1, 1, 2, 2)),
    ("sum-axis-numpy-int", lambda: ones(2, 3).sum(axis=np.int64(1)).numpy(), lambda v: np.array_equal(v, [3.0, 3.0])),
    ("reshape-numpy-ints", lambda: ones(6).reshape(np.int64(2), np.int32(3)).shape, lambda shape: shape == (2, 3)),
    ("softmax-over-empty-axis", lambda: ones(2, 0).softmax(axis=1).shape, lambda shape: shape == (2, 0)),
    ("log_softmax-over-empty-axis", lambda: ones(3, 0).log_softmax().shape, lambda shape: shape == (3, 0)),
    ("softmax-backward-over-empty-axis", softmax_backward_over_empty_axis, lambda shape: shape == (2, 0)),
    ("logsumexp-over-empty-axis", lambda: ones(2, 0).logsumexp(axis=1).numpy(),  # log(empty sum) = log 0, as PyTorch
     lambda v: v.shape == (2,) and np.all(v == -np.inf)),
    ("logsumexp-of-empty-tensor", lambda: ones(0, 3).logsumexp().item(), lambda v: v == -math.inf),
    ("logsumexp-empty-batch", lambda: ones(0, 3).logsumexp(axis=1).shape, lambda shape: shape == (0,)),
    ("linear-zero-input-features", linear_with_zero_input_features, check_linear_zero_features),
    ("max-pool-bool-with-padding", max_pool_bool_with_padding, check_max_pool_bool),
    ("int-pow-positive", lambda: (Tensor([2, 3]) ** 2).numpy(), lambda v: np.array_equal(v, [4, 9])),
    ("float-pow-minus-1", lambda: (Tensor([2.0, 4.0]) ** -1).numpy(), lambda v: np.allclose(v, [0.5, 0.25])),
    ("bool-plus-bool", lambda: (ones(2, dtype=bool) + ones(2, dtype=bool)).numpy(), lambda v: v.tolist() == [True, True]),
    # found by tests/test_fuzz.py
    ("logsumexp-with-nan-is-nan", lambda: Tensor(np.array([[np.nan, 0.0], [-np.inf, -np.inf]])).logsumexp(axis=1).numpy(),
     lambda v: np.isnan(v[0]) and v[1] == -np.inf),   # the nan row gave -inf
    ("int-tensor-equals-tiny-float", lambda: (Tensor([0, 1]) == 1e-92).numpy(),   # 1e-92 became float32 0
     lambda v: v.tolist() == [False, False]),
    ("int-tensor-equals-float-between-float32s", lambda: (Tensor(np.array([16777216])) == 16777216.5).numpy(),
     lambda v: v.tolist() == [False]),
    ("pad-before-after-pair-2d", lambda: ones(2, 2).pad((1, 2)).numpy(),   # was (1, 1) on axis 0, (2, 2) on axis 1
     lambda v: np.array_equal(v, np.pad(np.ones((2, 2)), (1, 2)))),
    ("pad-before-after-pair-1d", lambda: ones(3).pad((0, 2), value=5.0).numpy(), lambda v: v.tolist() == [1, 1, 1, 5, 5]),
    ("pad-numpy-int", lambda: ones(2).pad(np.int64(1)).shape, lambda shape: shape == (4,)),
    ("full-numpy-int-size", lambda: tc.full(np.int64(2), 1.5).numpy(), lambda v: v.tolist() == [1.5, 1.5]),
    ("clip-uint8-bound-outside-its-range",   # a guard: the bounds are clamped into uint8 before NumPy's clip
     lambda: Tensor(np.array([0, 5], np.uint8)).clip(-1, 300).numpy(),
     lambda v: v.tolist() == [0, 5] and v.dtype == np.uint8),
    ("max-of-empty-over-nonempty-axis", lambda: ones(0, 3).max(axis=1).shape, lambda shape: shape == (0,)),
    ("min-of-empty-int-over-nonempty-axis", lambda: ones(0, 3, dtype=np.int64).min(axis=1, keepdims=True).shape,
     lambda shape: shape == (0, 1)),
]


@pytest.mark.parametrize("call, check", [row[1:] for row in RIGHT_ANSWERS], ids=[row[0] for row in RIGHT_ANSWERS])
def test_edge_input_gets_the_right_answer(call, check):
    result = call()
    outcome = check(result)
    assert outcome is None or outcome, result
