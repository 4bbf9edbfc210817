"""Hypothesis strategies for property-testing ops: shapes, arrays, tensors, and inputs that avoid
the points where a gradient is undefined (kinks of relu/abs, ties of max)."""
import numpy
from hypothesis import assume, strategies as st
from hypothesis.extra import numpy as hnp

from ..tensor import Tensor


def shapes(min_dims=1, max_dims=3, min_side=1, max_side=5):
    """Array shapes, small enough that an element-by-element gradient check stays fast."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4):
    """Pairs of shapes that broadcast together under NumPy's rules (some sides are 1, some axes missing)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=min_dims, max_dims=max_dims,
                                             min_side=min_side, max_side=max_side).map(lambda r: r.input_shapes)


def arrays(shape, dtype=numpy.float64, min_value=-3.0, max_value=3.0):
    """Float arrays of `shape` (a tuple or a strategy) with finite elements in [min_value, max_value]."""
    elements = st.floats(min_value, max_value, allow_nan=False, allow_infinity=False,
                         width=numpy.dtype(dtype).itemsize * 8)
    return hnp.arrays(dtype, shape, elements=elements)


def away_from(values, kinks=(0.0,), margin=0.1):
    """Map a strategy of arrays so that no element lies within `margin` of any kink.

    Elements too close are pushed out to kink +/- margin, on their own side, so the finite
    difference step never crosses the kink."""
    def push(a):
        a = numpy.array(a, dtype=a.dtype)
        for k in kinks:
            near = numpy.abs(a - k) < margin
            a[near] = numpy.where(a[near] >= k, k + margin, k - margin)
        return a
    return values.map(push)


def tie_free_arrays(shape, dtype=numpy.float64, spacing=0.1, scale=1.0):
    """Arrays whose elements all differ by at least `spacing`: a random permutation of a grid
    plus jitter smaller than the spacing, so no max (or sort) has a tie."""
    if not isinstance(shape, st.SearchStrategy):
        shape = st.just(tuple(shape))

    @st.composite
    def build(draw):
        s = draw(shape)
        n = int(numpy.prod(s))
        seed = draw(st.integers(0, 2**32 - 1))
        rng = numpy.random.default_rng(seed)
        grid = (numpy.arange(n) - n / 2) * spacing
        jitter = rng.uniform(-0.25, 0.25, n) * spacing
        return (scale * (rng.permutation(grid) + jitter)).reshape(s).astype(dtype)
    return build()


def tensors(shape, dtype=numpy.float64, min_value=-3.0, max_value=3.0, requires_grad=True, device=None):
    """Tensors built from `arrays(...)`, requiring gradients by default."""
    return arrays(shape, dtype, min_value, max_value).map(
        lambda a: Tensor(a, device=device, requires_grad=requires_grad))


def positive_arrays(shape, dtype=numpy.float64, min_value=0.2, max_value=3.0):
    """Arrays for log, sqrt, division and powers: bounded away from zero."""
    return arrays(shape, dtype, min_value, max_value)


__all__ = ["shapes", "broadcastable_shapes", "arrays", "away_from", "tie_free_arrays", "tensors",
           "positive_arrays", "assume"]
