"""The CPU versions of the max-pool kernels (device.fuse's cpu=) against their plain bodies, the code a
GPU fuses: the same bits under hypothesis, over shapes, dtypes, window sizes, ties, NaN, infinities,
both zeros, ReLU on and off, and strided views."""
import itertools

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tinygrad_cnn.kernels import conv

# inf * 0 in the products routing forms for blocks that are not a window's maximum (NaN, as intended)
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in multiply:RuntimeWarning")

# values that tie often, with both zeros, infinities and NaN
LEVELS = np.array([-np.inf, -2.0, -1.0, -0.0, 0.0, 0.5, 1.0, 3.0, np.inf, np.nan])
WINDOWS = [(1, 1), (1, 2), (2, 1), (2, 2), (1, 3), (3, 3)]


def bits(a):
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.itemsize])


def assert_same_bits(got, expected):
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(bits(np.ascontiguousarray(got)), bits(np.ascontiguousarray(expected)))


@st.composite
def level_arrays(draw, shape, dtype, leading=()):
    """An array of `leading + shape` drawn from LEVELS (or from normal values, sometimes), by seed."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    if draw(st.booleans()):
        values = rng.choice(LEVELS, leading + shape)
    else:
        values = rng.standard_normal(leading + shape)
    return values.astype(dtype)


def maybe_strided(draw, a):
    """`a`, or a view of the same values with other strides (channels-first memory, or every other
    element of a larger array), as the ops pass them."""
    how = draw(st.sampled_from(["contiguous", "channels-first", "spaced"]))
    if how == "channels-first" and a.ndim >= 2:
        return np.ascontiguousarray(np.moveaxis(a, -1, 0)).transpose(*range(1, a.ndim), 0)
    if how == "spaced":
        bigger = np.empty(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        bigger[..., ::2] = a
        return bigger[..., ::2]
    return a


shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


# ---------------------------------------------------------------- forward: values and first-maximum offsets

@given(data=st.data(), shape=shapes, count=st.sampled_from([1, 2, 3, 4, 9]), relu=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), wide=st.booleans())
def test_max_and_first_offset_cpu_gives_the_plain_bodys_bits(data, shape, count, relu, dtype, wide):
    kernel = conv.MAX_AND_FIRST_OFFSET[relu]
    stacked = data.draw(level_arrays(shape, dtype, (count,)))
    blocks = [maybe_strided(data.draw, block) for block in stacked]
    offset_dtype = np.int32 if wide else np.uint8  # int32 is what 256 or more window offsets get
    results = []
    for run in (kernel.cpu, kernel.__wrapped__):
        out, offset = np.full(shape, 7, dtype), np.full(shape, 99, offset_dtype)  # garbage: all overwritten
        run(np, out, offset, np.ones(1, offset_dtype), *blocks)
        results.append((out, offset))
    (out, offset), (plain_out, plain_offset) = results
    assert_same_bits(out, plain_out)
    assert offset.dtype == plain_offset.dtype
    np.testing.assert_array_equal(offset, plain_offset)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("count", [1, 2, 3, 4])
@pytest.mark.parametrize("offset_dtype", [np.uint8, np.int32])
def test_max_and_first_offset_cpu_on_every_combination_of_levels(relu, count, offset_dtype):
    """Exhaustively: every sequence of `count` LEVELS (ties, zeros of both signs, infinities, NaN)."""
    combos = np.array(list(itertools.product(LEVELS, repeat=count)), np.float32).reshape(-1, count)
    blocks = list(np.ascontiguousarray(combos.T))
    kernel = conv.MAX_AND_FIRST_OFFSET[relu]
    results = []
    for run in (kernel.cpu, kernel.__wrapped__):
        out, offset = np.empty(len(combos), np.float32), np.empty(len(combos), offset_dtype)
        run(np, out, offset, np.ones(1, offset_dtype), *blocks)
        results.append((out, offset))
    assert_same_bits(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_max_and_first_offset_cpu_with_256_blocks():
    """Past 255 window offsets the offsets are int32 (no byte view)."""
    rng = np.random.default_rng(3)
    blocks = list(rng.choice(LEVELS, (256, 2, 3)).astype(np.float32))
    kernel = conv.MAX_AND_FIRST_OFFSET[True]
    results = []
    for run in (kernel.cpu, kernel.__wrapped__):
        out, offset = np.empty((2, 3), np.float32), np.empty((2, 3), np.int32)
        run(np, out, offset, np.ones(1, np.int32), *blocks)
        results.append((out, offset))
    assert_same_bits(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


# ---------------------------------------------------------------- backward: routing by offset

@st.composite
def routing_cases(draw):
    shape = draw(st.lists(st.integers(1, 4), min_size=4, max_size=4).map(tuple))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    window = draw(st.sampled_from(WINDOWS))
    count = window[0] * window[1]
    g = maybe_strided(draw, draw(level_arrays(shape, dtype)))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    offset = rng.integers(0, count + 1, shape).astype(draw(st.sampled_from([np.uint8, np.int32])))
    return g, offset, window


@given(case=routing_cases(), copies=st.integers(0, 2), strided_target=st.booleans())
def test_route_by_codes_cpu_gives_the_plain_bodys_bits(case, copies, strided_target):
    """Into a contiguous stack or a strided one (winograd.py routes into every third row and column),
    with 0-2 copies into pixel-order tiles (the conv's input gradient), g contiguous or strided."""
    g, offset, window = case
    codes = np.arange(1, window[0] * window[1] + 1, dtype=offset.dtype).reshape(window + (1, 1, 1, 1))
    n, h, w, c = g.shape
    results = []
    for run in (conv.route_by_codes.cpu, conv.route_by_codes.__wrapped__):
        if strided_target:
            routed = np.full((3 * window[0], 3 * window[1]) + g.shape, 5, g.dtype)[::3, ::3]
        else:
            routed = np.full(window + g.shape, 5, g.dtype)
        pixels = [np.full((n, h * window[0], w * window[1], c), 5, g.dtype) for _ in range(copies)]
        run(np, routed, g, offset, codes, *[conv._tiles(p, window) for p in pixels])
        results.append((routed, pixels))
    (routed, pixels), (plain_routed, plain_pixels) = results
    assert_same_bits(routed, plain_routed)
    for got, expected in zip(pixels, plain_pixels):
        assert_same_bits(got, expected)
    # and what they both mean: g where the offset is the block's, else g * 0 (NaN where g is not finite)
    with np.errstate(invalid="ignore"):
        expected = np.stack([g * (offset == q) for q in range(1, codes.size + 1)]).reshape(routed.shape)
    assert_same_bits(routed, expected)


@pytest.mark.parametrize("window", [(1, 2), (2, 2), (3, 3)])
@pytest.mark.parametrize("strided_g", [False, True])
def test_routing_cpu_on_every_level_and_offset(window, strided_g):
    """Exhaustively: every LEVELS value of g with every offset, both routing kernels, one copy."""
    count = window[0] * window[1]
    pairs = np.array(list(itertools.product(LEVELS, range(count + 1))))
    g = pairs[:, 0].astype(np.float32).reshape(1, 1, -1, 1)
    offset = pairs[:, 1].astype(np.uint8).reshape(g.shape)
    if strided_g:
        g = maybe_strided(lambda _: "spaced", g)
    codes = np.arange(1, count + 1, dtype=np.uint8).reshape(window + (1, 1, 1, 1))
    stacked, separate = [], []
    for routing, by_offset in ((conv.route_by_codes.cpu, conv._route_by_offset.cpu),
                               (conv.route_by_codes.__wrapped__, conv._route_by_offset.__wrapped__)):
        routed = np.empty(window + g.shape, np.float32)
        pixels = np.empty((1, window[0], g.shape[2] * window[1], 1), np.float32)
        routing(np, routed, g, offset, codes, conv._tiles(pixels, window))
        stacked.append((routed, pixels))
        grads = [np.empty(g.shape, np.float32) for _ in range(count)]
        by_offset(np, g, offset, *grads)
        separate.append(np.stack(grads))
    for got, expected in zip(stacked[0] + (separate[0],), stacked[1] + (separate[1],)):
        assert_same_bits(got, expected.reshape(got.shape))


@given(case=routing_cases(), separate_targets=st.booleans())
def test_route_by_offset_cpu_gives_the_plain_bodys_bits(case, separate_targets):
    """max_pool2d's routing: one output per window offset, separate arrays or a tiled input's views."""
    g, offset, window = case
    count = window[0] * window[1]
    n, h, w, c = g.shape
    results = []
    for run in (conv._route_by_offset.cpu, conv._route_by_offset.__wrapped__):
        if separate_targets:
            grads = [np.full(g.shape, 5, g.dtype) for _ in range(count)]
            outputs = grads
        else:
            whole = np.full((n, h * window[0], w * window[1], c), 5, g.dtype)
            grads, outputs = conv._tile_list(whole, window), [whole]
        run(np, g, offset, *grads)
        results.append(outputs)
    for got, expected in zip(*results):
        assert_same_bits(got, expected)


def test_the_cpu_versions_are_what_numpy_runs():
    """device.fuse runs `cpu` on NumPy arrays: the tests above cover what the CPU runs."""
    for kernel in (conv.route_by_codes, conv._route_by_offset, *conv.MAX_AND_FIRST_OFFSET.values()):
        assert kernel.cpu is not None and kernel.cpu is not kernel.__wrapped__
