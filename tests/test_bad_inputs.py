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
]


@pytest.mark.parametrize("call, check", [row[1:] for row in RIGHT_ANSWERS], ids=[row[0] for row in RIGHT_ANSWERS])
def test_edge_input_gets_the_right_answer(call, check):
    result = call()
    outcome = check(result)
    assert outcome is None or outcome, result
