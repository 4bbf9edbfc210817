"""Ops that split their batch over CPU threads (parallel.py) give the same values and gradients
as one call over the whole batch. Threads are forced here (three of them, any op size), so the
small generated problems take the threaded path, with uneven and single-image slices."""
import contextlib
import threading
import time

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_cnn as tg
from tinygrad_cnn.kernels import conv, parallel
from tinygrad_cnn.nn import functional as F
from tinygrad_cnn.testing import gradcheck
from tinygrad_cnn.testing.strategies import arrays, tie_free_arrays
from tests.test_conv_pool import conv2d_loop, conv_cases, conv_pool_cases, conv_then_pool, pool_cases, pool_loop

threadpoolctl = pytest.importorskip("threadpoolctl", reason="threads per op need the `fast` extra")


@contextlib.contextmanager
def forced_threads(n=3, chunk_bytes=1):
    """n threads per op, for ops of any size, and convolutions in chunks of at most
    `chunk_bytes` (one image with the default), taken by the threads in turn; the defaults again
    afterwards."""
    min_elements, chunk = parallel.MIN_ELEMENTS, conv.CHUNK_BYTES
    parallel.MIN_ELEMENTS, conv.CHUNK_BYTES = 0, chunk_bytes
    parallel.set_num_threads(n)
    try:
        yield n
    finally:
        parallel.MIN_ELEMENTS, conv.CHUNK_BYTES = min_elements, chunk
        parallel.set_num_threads(None)


@pytest.fixture
def threads():
    with forced_threads() as n:
        yield n


def one_call(fn):
    """fn() with threads turned off: the reference the threaded result must equal."""
    previous = parallel._threads
    parallel.set_num_threads(1)
    try:
        return fn()
    finally:
        parallel.set_num_threads(previous)


def with_batch(data, x, make=arrays, most=5):
    """x's problem with a drawn batch of 1 to `most` images (3 threads: uneven slices, idle threads)."""
    return data.draw(make((data.draw(st.integers(1, most)),) + x.shape[1:]))


def values_and_grads(fn, arrays_in):
    """fn's output and the gradients of all inputs for a fixed random upstream gradient."""
    inputs = [tg.Tensor(a, requires_grad=True) for a in arrays_in]
    out = fn(*inputs)
    out.backward(tg.Tensor(np.random.default_rng(1).standard_normal(out.shape)))
    return [out.numpy()] + [t.grad.numpy() for t in inputs]


def assert_same(fn, arrays_in):
    threaded = values_and_grads(fn, arrays_in)
    single = one_call(lambda: values_and_grads(fn, arrays_in))
    for a, b in zip(threaded, single):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- the splitting itself

@given(batch=st.integers(1, 40), n=st.integers(1, 6))
def test_over_batch_covers_every_row_once_in_order(batch, n):
    with forced_threads(n):
        covered = parallel.over_batch(np, batch, 0, lambda rows: list(range(batch))[rows])
    assert len(covered) == min(n, batch)
    assert [i for part in covered for i in part] == list(range(batch))
    assert all(part for part in covered)  # no empty slice


def test_small_work_runs_as_one_call(threads, monkeypatch):
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 1000)
    assert parallel.over_batch(np, 8, 999, lambda rows: rows) == [slice(0, 8)]


def test_blas_is_single_threaded_inside_the_work(threads):
    def blas_threads(rows):
        return [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    inside = parallel.over_batch(np, 6, 10**6, blas_threads)
    assert len(inside) == 3 and all(counts and set(counts) == {1} for counts in inside)


def test_errors_in_worker_threads_reach_the_caller(threads):
    def work(rows):
        if rows.start > 0:
            raise ValueError(f"slice {rows} failed")
        return rows
    with pytest.raises(ValueError, match="failed"):
        parallel.over_batch(np, 6, 10**6, work)


def test_without_threadpoolctl_ops_run_as_one_call(threads, monkeypatch):
    monkeypatch.setattr(parallel, "_blas", False)  # what a missing threadpoolctl leaves
    assert parallel.get_num_threads() == 1
    assert parallel.over_batch(np, 6, 10**6, lambda rows: rows) == [slice(0, 6)]


@given(count=st.integers(0, 30), n=st.integers(1, 5))
def test_over_chunks_hands_each_chunk_to_exactly_one_thread(count, n):
    chunks = [slice(i, i + 1) for i in range(count)]
    with forced_threads(n):
        taken = parallel.over_chunks(np, chunks, 10**6, lambda source: [(threading.get_ident(), i, c)
                                                                      for i, c in source])
    assert len(taken) == max(1, min(n, count))  # one call per thread, or one call in all
    assert sorted(i for part in taken for _, i, _ in part) == list(range(count))
    assert all(c is chunks[i] for part in taken for _, i, c in part)
    for part in taken:  # each call ran in one thread, and took its chunks in order
        assert len({ident for ident, _, _ in part}) <= 1
        assert [i for _, i, _ in part] == sorted(i for _, i, _ in part)


def test_over_chunks_lets_a_free_thread_take_more():
    """A thread held up in one chunk leaves the others to take the rest."""
    with forced_threads(2):
        def work(source):
            mine = []
            for index, _ in source:
                mine.append(index)
                if index == 0:
                    time.sleep(0.5)
            return mine
        parts = parallel.over_chunks(np, list(range(6)), 10**6, work)
    assert sorted(parts) == [[0], [1, 2, 3, 4, 5]]  # whichever thread drew chunk 0 drew nothing else


def test_errors_in_over_chunks_reach_the_caller(threads):
    def work(source):
        for index, _ in source:
            if index == 4:
                raise ValueError(f"chunk {index} failed")
    with pytest.raises(ValueError, match="chunk 4 failed"):
        parallel.over_chunks(np, list(range(8)), 10**6, work)


def test_conv_weight_gradient_does_not_depend_on_which_thread_took_which_chunk():
    """Threads take chunks in turn, so which thread sums which chunk changes from run to run;
    float32 sums in another order differ in the last bits, so the parts are summed in chunk
    order. A thread-order sum fails this within a few runs."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    g = rng.standard_normal((24, 5, 4, 4)).astype(np.float32)
    results = set()
    with forced_threads(3, chunk_bytes=1):
        for _ in range(12):
            weight = tg.Tensor(w, requires_grad=True)
            F.conv2d_max_pool2d(tg.Tensor(x), weight, padding=1, pool_size=2, relu=True).backward(tg.Tensor(g))
            results.add(weight.grad.numpy().tobytes())
    assert len(results) == 1


@pytest.mark.parametrize("count, most, sizes", [
    (128, 9, [8] * 16),       # the tutorial's second layer, backward: 15 chunks fit, a multiple of PIECES
    (128, 41, [16] * 8),      # its first layer: 4 MiB holds 41 images, PIECES chunks
    (10, 4, [2] * 5),         # fewer images than PIECES chunks of 2
    (5, 100, [1] * 5),        # less than one image per piece: one chunk each
    (1, 100, [1]),
])
def test_conv_chunks_are_fixed_by_the_problem_not_the_thread_count(count, most, sizes, monkeypatch):
    """Issue 27: chunk boundaries decide the bits (a chunk is one GEMM, its weight-gradient share
    one partial sum), so they must not follow the thread count."""
    monkeypatch.setattr(conv, "CHUNK_BYTES", most * 100)
    for threads_ in (1, 2, 3, 16):
        monkeypatch.setattr(parallel, "_threads", threads_)
        chunks = conv.cache_chunks(count, 100)
        assert [c.stop - c.start for c in chunks] == sizes
        assert chunks[0].start == 0 and chunks[-1].stop == count
        assert all(a.stop == b.start for a, b in zip(chunks, chunks[1:]))


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "2"])
def test_set_num_threads_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="positive int"):
        parallel.set_num_threads(bad)


# ---------------------------------------------------------------- the ops that split

# chunk sizes from one image to the whole batch, full and partial last chunks included
CHUNK_BYTES = st.integers(1, 20_000)


@given(case=conv_cases(), data=st.data())
def test_conv2d_threaded(case, data):
    with forced_threads(chunk_bytes=data.draw(CHUNK_BYTES, label="chunk_bytes")):
        x, w, b, kwargs = case
        x = with_batch(data, x)
        inputs = [x, w] + ([] if b is None else [b])
        out = F.conv2d(*[tg.Tensor(a) for a in inputs], **kwargs).numpy()
        np.testing.assert_allclose(out, conv2d_loop(x, w, b, kwargs["stride"], kwargs["padding"], kwargs["dilation"]),
                                   rtol=1e-10, atol=1e-10)
        assert gradcheck(lambda *t: F.conv2d(*t, **kwargs), [tg.Tensor(a, requires_grad=True) for a in inputs])
        assert_same(lambda *t: F.conv2d(*t, **kwargs), inputs)


@given(case=conv_pool_cases(), data=st.data())
def test_conv2d_max_pool2d_threaded(case, data):
    """Slices of up to 2 images per thread, chunks of any size within them: every split the op makes.

    Integer inputs and weights in halves make windows tie often, and keep every product and sum
    exact: the one-op form lays out its GEMMs differently from the composition, and with
    rounding a tie in one could be a near-tie in the other, routing the gradient elsewhere."""
    with forced_threads():
        x, w, b, kwargs, pool = case
        x = np.round(with_batch(data, x, make=lambda shape: arrays(shape, min_value=-9.0, max_value=9.0), most=8))
        w = np.round(w * 2) / 2
        inputs = [x, w] + ([] if b is None else [np.round(b * 2) / 2])

        relu = data.draw(st.booleans())

        def composed(x, w, *b):
            return conv_then_pool(x, w, b[0] if b else None, kwargs, pool, relu)

        conv.CHUNK_BYTES = data.draw(CHUNK_BYTES, label="chunk_bytes")
        threaded = values_and_grads(
            lambda x, w, *b: F.conv2d_max_pool2d(x, w, *b, pool_size=pool, relu=relu, **kwargs), inputs)
        for a, b_ in zip(threaded, one_call(lambda: values_and_grads(composed, inputs))):
            np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)


@given(case=pool_cases(), data=st.data())
def test_max_pool_threaded(case, data):
    with forced_threads():
        x, kwargs = case
        x = with_batch(data, x, tie_free_arrays)
        stride = kwargs["stride"] if kwargs["stride"] is not None else kwargs["kernel_size"]
        expected = pool_loop(x, kwargs["kernel_size"], stride, kwargs["padding"], "max")
        np.testing.assert_allclose(F.max_pool2d(tg.Tensor(x), **kwargs).numpy(), expected, rtol=0, atol=0)
        assert gradcheck(lambda t: F.max_pool2d(t, **kwargs), [tg.Tensor(x, requires_grad=True)])
        assert_same(lambda t: F.max_pool2d(t, **kwargs), [x])


def test_max_pool_ties_threaded(threads):
    """All-equal windows (MNIST's background): each window's gradient goes to its first input."""
    x = tg.Tensor(np.zeros((5, 2, 4, 4)), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    expected = np.zeros((5, 2, 4, 4))
    expected[:, :, ::2, ::2] = 1.0
    np.testing.assert_array_equal(x.grad.numpy(), expected)


@given(data=st.data())
def test_matmul_2d_threaded(data):
    with forced_threads():
        m, k, n = data.draw(st.integers(1, 7)), data.draw(st.integers(1, 5)), data.draw(st.integers(1, 7))
        a, b = data.draw(arrays((m, k))), data.draw(arrays((k, n)))
        np.testing.assert_allclose((tg.Tensor(a) @ tg.Tensor(b)).numpy(), a @ b, rtol=1e-12, atol=1e-12)
        assert gradcheck(lambda s, t: s @ t, [tg.Tensor(a, requires_grad=True), tg.Tensor(b, requires_grad=True)])
        assert_same(lambda s, t: s @ t, [a, b])


def test_matmul_threaded_keeps_float32(threads):
    a = tg.Tensor(np.ones((6, 4), np.float32), requires_grad=True)
    b = tg.Tensor(np.ones((4, 5), np.float32), requires_grad=True)
    out = a @ b
    out.sum().backward()
    assert out.dtype == a.grad.dtype == b.grad.dtype == np.float32
    np.testing.assert_array_equal(out.numpy(), np.full((6, 5), 4.0, np.float32))


@given(data=st.data())
def test_relu_threaded(data):
    with forced_threads():
        x = data.draw(arrays(data.draw(st.sampled_from([(5,), (4, 3), (3, 2, 2, 3)]))))
        x = np.where(np.abs(x) < 0.1, 0.5, x)  # off the kink at 0, for finite differences
        np.testing.assert_array_equal(tg.Tensor(x).relu().numpy(), np.maximum(x, 0))
        assert gradcheck(lambda t: t.relu(), [tg.Tensor(x, requires_grad=True)])
        assert_same(lambda t: t.relu(), [x])


def adam_run(params, steps=3):
    opt = tg.optim.Adam(params, lr=0.1)
    rng = np.random.default_rng(2)
    for _ in range(steps):
        for p in params:
            p.grad = tg.Tensor(rng.standard_normal(p.shape))
        opt.step()
    return [p.numpy() for p in params]


@pytest.mark.parametrize("make", [
    lambda a: a,                   # contiguous: split over threads
    lambda a: a.T,                 # a transposed view: updated in one call, in place all the same
])
def test_adam_threaded_matches_one_call(make):
    start = np.random.default_rng(3).standard_normal((5, 7))
    with forced_threads():
        threaded = adam_run([tg.Tensor(make(start.copy()), requires_grad=True)])
    single = one_call(lambda: adam_run([tg.Tensor(make(start.copy()), requires_grad=True)]))
    np.testing.assert_array_equal(threaded[0], single[0])
    assert not np.allclose(threaded[0], make(start))  # the parameter did move


@given(data=st.data())
def test_linear_threaded(data):
    with forced_threads():
        n, k, m = data.draw(st.integers(1, 7)), data.draw(st.integers(1, 5)), data.draw(st.integers(1, 7))
        x, w, b = data.draw(arrays((n, k))), data.draw(arrays((m, k))), data.draw(arrays((m,)))
        np.testing.assert_allclose(F.linear(tg.Tensor(x), tg.Tensor(w), tg.Tensor(b)).numpy(), x @ w.T + b,
                                   rtol=1e-12, atol=1e-12)
        assert gradcheck(lambda *t: F.linear(*t), [tg.Tensor(a, requires_grad=True) for a in (x, w, b)])
        assert_same(lambda *t: F.linear(*t), [x, w, b])


@pytest.mark.parametrize("shape", [(9, 2, 3), (2, 9, 3), (2, 3, 9)])   # (m, k, n): k, m or n the longest
def test_products_split_along_each_axis(threads, shape):
    m, k, n = shape
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    np.testing.assert_allclose((tg.Tensor(a) @ tg.Tensor(b)).numpy(), a @ b, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda s, t: s @ t, [tg.Tensor(a, requires_grad=True), tg.Tensor(b, requires_grad=True)])
    assert_same(lambda s, t: s @ t, [a, b])


def test_work_that_splits_again_runs_its_inner_call_whole(threads):
    """An op inside another op's slice (say, a user's custom op) must not wait for busy workers."""
    def outer(rows):
        return parallel.over_batch(np, 9, 10**6, lambda inner: (rows, inner))
    parts = parallel.over_batch(np, 6, 10**6, outer)
    assert [p[0][1] for p in parts] == [slice(0, 9)] * 3   # each inner call ran as one piece
    assert [p[0][0] for p in parts] == [slice(0, 2), slice(2, 4), slice(4, 6)]


def test_conv_is_one_chunk_on_a_gpu_whatever_the_thread_count(monkeypatch):
    """A GPU convolution is one chunk: chunks by CPU threads only multiply its kernel launches."""
    import types
    monkeypatch.setattr(parallel, "_threads", 16)
    gpu = types.SimpleNamespace(__name__="cupy")
    assert conv.cache_chunks(128, 10**4, gpu) == [slice(0, 128)]
    assert len(conv.cache_chunks(128, 10**5, np)) == parallel.PIECES  # on the CPU: fixed by the problem
