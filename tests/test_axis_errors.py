"""An out-of-range axis is an AxisError, both a ValueError and an IndexError as NumPy's is (issue 27), so
tests written for Python's or NumPy's exception catch it; an out-of-range index stays an IndexError."""
import numpy as np
import pytest

import tinygrad_cnn as tc
from tinygrad_cnn.nn import functional as F


def t():
    return tc.Tensor(np.arange(6.0).reshape(2, 3))


OUT_OF_RANGE_AXES = [
    ("sum", lambda: t().sum(axis=2)),
    ("mean-negative", lambda: t().mean(axis=-3)),
    ("max", lambda: t().max(axis=5)),
    ("logsumexp", lambda: t().logsumexp(axis=2)),
    ("softmax", lambda: t().softmax(axis=3)),
    ("F.log_softmax", lambda: F.log_softmax(t(), axis=-4)),
    ("argmax", lambda: t().argmax(axis=2)),
    ("transpose", lambda: t().transpose(0, 5)),
    ("swapaxes", lambda: t().swapaxes(0, 2)),
    ("expand_dims", lambda: t().expand_dims(4)),
    ("squeeze", lambda: t().squeeze(2)),
    ("flatten", lambda: t().flatten(0, 3)),
    ("concatenate", lambda: tc.concatenate([t(), t()], axis=2)),
    ("stack", lambda: tc.stack([t(), t()], axis=4)),
]


@pytest.mark.parametrize("call", [c for _, c in OUT_OF_RANGE_AXES], ids=[n for n, _ in OUT_OF_RANGE_AXES])
def test_an_out_of_range_axis_is_both_a_value_error_and_an_index_error(call):
    with pytest.raises(IndexError, match="out of range|permutation") as info:
        call()
    assert isinstance(info.value, ValueError) and isinstance(info.value, tc.AxisError)


@pytest.mark.parametrize("index", [5, (0, 7), (slice(None), -4)])
def test_an_out_of_range_index_is_an_index_error(index):
    with pytest.raises(IndexError, match=r"shape \(2, 3\)"):
        t()[index]


def test_a_repeated_axis_is_a_value_error_only():
    with pytest.raises(ValueError, match="repeated axis") as info:
        t().sum(axis=(0, 0))
    assert not isinstance(info.value, IndexError)
