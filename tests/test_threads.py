"""Several Python threads running ops at once (issue 12 item 3): two models trained side by side
end exactly where they end trained one after the other, set_num_threads from another thread
never breaks an op in flight, and BLAS stays held at one thread inside every op of every thread.

Ops are forced onto the threaded path here (any size, small convolution chunks), so the small
models below take it; each scenario starts with training in the main thread, the case that
made two trainings at once 28-55x slower."""
import threading
import time

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import nn, optim
from tinygrad_cnn.kernels import conv, parallel
from tinygrad_cnn.nn import functional as F

try:
    import threadpoolctl
except ImportError:  # ops then run as one call: no pool, no BLAS limit (the training tests still run)
    threadpoolctl = None
needs_threadpoolctl = pytest.mark.skipif(threadpoolctl is None, reason="threads per op need the `fast` extra")


@pytest.fixture
def split_ops(monkeypatch):
    """Two threads per op for ops of any size, convolutions in chunks of one image; the
    defaults again afterwards."""
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(conv, "CHUNK_BYTES", 1)
    parallel.set_num_threads(2)
    yield 2
    parallel.set_num_threads(None)


def small_model(seed):
    tg.manual_seed(seed)
    return nn.Sequential([
        nn.Conv2D(4, 3, padding="same", activation="relu"),
        nn.MaxPool2D(2),
        nn.Flatten(),
        nn.Dense(16, activation="relu"),
        nn.Dense(10),
    ], input_shape=(1, 8, 8))


def batches(seed, steps=6, batch=8):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, batch))
            for _ in range(steps)]


def train(model, data):
    opt = optim.Adam(model.parameters(), lr=1e-2)
    for x, y in data:
        loss = F.cross_entropy(model.logits(tg.Tensor(x)), tg.Tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.numpy().copy() for p in model.parameters()]


def in_threads(*jobs, timeout=120):
    """Run each job (a callable) in its own thread, all at once; their results, or the first error."""
    results, errors = [None] * len(jobs), []

    def run(i):
        try:
            results[i] = jobs[i]()
        except BaseException as e:
            errors.append(e)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    if errors:
        raise errors[0]
    return results


def test_two_models_trained_at_once_end_with_the_weights_of_one_after_the_other(split_ops):
    train(small_model(9), batches(9))  # training in the main thread first, as in the report
    models = [small_model(0), small_model(1)]
    start = [[p.numpy().copy() for p in m.parameters()] for m in models]
    at_once = in_threads(lambda: train(models[0], batches(0)), lambda: train(models[1], batches(1)))
    for k, weights in enumerate(start):  # the same models from the same start, one after the other
        for p, w in zip(models[k].parameters(), weights):
            p.data[...] = w
    one_after_the_other = [train(models[0], batches(0)), train(models[1], batches(1))]
    for a, b in zip(at_once, one_after_the_other):
        for wa, wb in zip(a, b):
            np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(at_once[0][0], start[0][0])  # it did train


def test_set_num_threads_from_a_third_thread_while_two_threads_train(split_ops):
    train(small_model(9), batches(9))
    done = threading.Event()

    def change_the_count():
        counts, k = [1, 3, None, 2, 4], 0
        while not done.is_set():
            parallel.set_num_threads(counts[k % len(counts)])
            k += 1
            time.sleep(0.001)
        return k
    models = [small_model(0), small_model(1)]

    def trainer(k):
        def job():
            try:
                return train(models[k], batches(k, steps=12))
            finally:
                if k == 0:
                    done.set()
        return job
    weights_0, weights_1, changes = in_threads(trainer(0), trainer(1), change_the_count)
    done.set()
    assert changes > 5
    assert all(np.isfinite(w).all() for w in weights_0 + weights_1)


@needs_threadpoolctl
def test_an_op_in_flight_keeps_its_pool_when_set_num_threads_replaces_it(split_ops):
    """set_num_threads returns at once while another thread's op waits on its worker; that op
    then finishes with its results, and the old pool's workers exit once it has."""
    release, started = threading.Event(), threading.Event()

    def work(rows):
        if rows.start > 0:  # the worker's share waits
            started.set()
            assert release.wait(30)
        return list(range(6))[rows]
    op = threading.Thread(target=lambda: results.append(parallel.over_batch(np, 6, 10**6, work)))
    results = []
    op.start()
    assert started.wait(30)
    old = parallel._pool
    changed = threading.Thread(target=parallel.set_num_threads, args=(3,))
    changed.start()
    changed.join(5)
    assert not changed.is_alive(), "set_num_threads waited for another thread's op"
    assert parallel._pool is not old and old.executor is not None  # retired, still running its op
    assert parallel.over_batch(np, 6, 10**6, lambda rows: list(range(6))[rows]) == [[0, 1], [2, 3], [4, 5]]
    release.set()
    op.join(30)
    assert results == [[[0, 1, 2], [3, 4, 5]]]
    assert old.executor is None  # shut down by the op that used it last


@needs_threadpoolctl
def test_a_share_no_worker_has_started_runs_in_the_calling_thread(split_ops):
    """With the one worker held by another thread's op, an op does not wait for it: the caller
    runs the queued share itself."""
    release, started = threading.Event(), threading.Event()

    def blocking(rows):
        if rows.start > 0:
            started.set()
            assert release.wait(30)
        return rows
    blocked = threading.Thread(target=parallel.over_batch, args=(np, 2, 10**6, blocking))
    blocked.start()
    assert started.wait(30)
    try:
        ran_in = in_threads(lambda: parallel.over_batch(np, 4, 10**6, lambda rows: (rows, threading.get_ident())),
                            timeout=10)[0]
        assert [rows for rows, _ in ran_in] == [slice(0, 2), slice(2, 4)]
        assert ran_in[0][1] == ran_in[1][1]  # both shares in the calling thread
    finally:
        release.set()
        blocked.join(30)


@needs_threadpoolctl
def test_errors_in_a_share_reach_the_caller_after_the_other_shares_stopped(split_ops):
    parallel.set_num_threads(3)
    running = []

    def work(rows):
        running.append(rows)
        if rows.start == 0:
            raise ValueError("first share failed")
        time.sleep(0.05)
        running.remove(rows)
    with pytest.raises(ValueError, match="first share failed"):
        parallel.over_batch(np, 3, 10**6, work)
    assert running == [slice(0, 1)]  # the others were cancelled or had finished


# ---------------------------------------------------------------- BLAS held at one thread

def blas_counts():
    return [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]


@pytest.fixture
def blas_given_back():
    """BLAS at 2 threads, set from the main thread (which makes it threadpoolctl's controlling
    thread, as running one op there used to); the hold released and the count put back after."""
    parallel.set_num_threads(1)  # releases any hold taken by earlier tests
    before = blas_counts()
    if not before:
        pytest.skip("no BLAS library found by threadpoolctl")
    threadpoolctl.threadpool_limits(limits=2, user_api="blas")
    yield
    parallel.set_num_threads(1)
    threadpoolctl.threadpool_limits(limits=before[0], user_api="blas")
    parallel.set_num_threads(None)


@needs_threadpoolctl
def test_blas_is_one_thread_inside_every_op_of_every_thread(blas_given_back, split_ops):
    inside, outside, done = [], [], threading.Event()

    def ops():
        for _ in range(40):
            inside.extend(c for part in parallel.over_batch(np, 4, 10**6, lambda rows: blas_counts()) for c in part)

    def watch():  # from outside any op: the count must not flip back and forth either
        while not done.is_set() or not outside:
            outside.extend(blas_counts())
    watcher = threading.Thread(target=watch)
    ops()  # in the main thread first
    watcher.start()
    try:
        in_threads(ops, ops)
    finally:
        done.set()
        watcher.join()
    assert len(inside) == 3 * 40 * 2 * len(blas_counts()) and set(inside) == {1}
    assert set(outside) == {1}


@needs_threadpoolctl
def test_set_num_threads_1_gives_blas_its_count_back(blas_given_back, split_ops):
    parallel.over_batch(np, 4, 10**6, lambda rows: None)
    assert blas_counts() == [1] * len(blas_counts())
    parallel.set_num_threads(1)
    assert set(blas_counts()) == {2}
    parallel.set_num_threads(2)
    parallel.over_batch(np, 4, 10**6, lambda rows: None)  # the next op that splits holds it again
    assert set(blas_counts()) == {1}


@needs_threadpoolctl
def test_blas_is_given_back_when_the_last_split_op_ends(blas_given_back, split_ops):
    """set_num_threads(1) while another thread's op is split: the count comes back when it ends."""
    release, started = threading.Event(), threading.Event()

    def work(rows):
        if rows.start > 0:
            started.set()
            assert release.wait(30)
    op = threading.Thread(target=parallel.over_batch, args=(np, 2, 10**6, work))
    op.start()
    assert started.wait(30)
    parallel.set_num_threads(1)
    assert set(blas_counts()) == {1}  # still held: an op runs split
    release.set()
    op.join(30)
    assert set(blas_counts()) == {2}


# ---------------------------------------------------------------- generators of one's own

def model_from(generator):
    """The small model with every random draw (weights, dropout masks) from `generator`."""
    kernel = nn.init.get("glorot_uniform", generator)
    return nn.Sequential([
        nn.Conv2D(4, 3, padding="same", activation="relu", kernel_initializer=kernel),
        nn.MaxPool2D(2),
        nn.Flatten(),
        nn.Dropout(0.3, generator=generator),
        nn.Dense(16, activation="relu", kernel_initializer=nn.init.get("he_normal", generator)),
        nn.Dense(10, kernel_initializer=kernel),
    ], input_shape=(1, 8, 8))


def train_with_own_generators(seed):
    x = np.random.default_rng(100 + seed).standard_normal((48, 1, 8, 8)).astype(np.float32)
    y = np.arange(48) % 10
    model = model_from(np.random.default_rng(seed))
    loader = tg.data.DataLoader(x, y, batch_size=8, shuffle=True, generator=np.random.default_rng(seed))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        for xb, yb in loader:
            loss = F.cross_entropy(model.logits(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return [p.numpy().copy() for p in model.parameters()]


def test_two_threads_with_their_own_generators_train_reproducibly(split_ops):
    """Weights, dropout masks and shuffling from each thread's own generators: the same results
    at once as one after the other, however a third thread draws from the global generator."""
    done = threading.Event()

    def use_the_global_generator():
        while not done.is_set():
            tg.rand(64)
            tg.manual_seed(int(tg.get_rng().integers(1000)))
    noise = threading.Thread(target=use_the_global_generator)
    noise.start()
    try:
        at_once = in_threads(lambda: train_with_own_generators(0), lambda: train_with_own_generators(1))
        again = in_threads(lambda: train_with_own_generators(1), lambda: train_with_own_generators(0))[::-1]
    finally:
        done.set()
        noise.join()
    one_after_the_other = [train_with_own_generators(0), train_with_own_generators(1)]
    for runs in (at_once, again):
        for a, b in zip(runs, one_after_the_other):
            for wa, wb in zip(a, b):
                np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(one_after_the_other[0][0], one_after_the_other[1][0])


@pytest.mark.parametrize("name", ["glorot_uniform", "he_uniform", "he_normal"])
def test_initializers_draw_from_the_generator_given_and_leave_the_global_one_alone(name):
    tg.manual_seed(0)
    state = tg.get_rng().bit_generator.state
    fn = getattr(nn.init, name)
    a = fn((6, 3, 3, 3), generator=np.random.default_rng(5))
    b = nn.init.get(name, np.random.default_rng(5))((6, 3, 3, 3), np.float32)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, fn((6, 3, 3, 3), generator=np.random.default_rng(6)))
    assert tg.get_rng().bit_generator.state == state
    tg.manual_seed(5)
    from_global = fn((6, 3, 3, 3))  # no generator: the global one
    np.testing.assert_array_equal(from_global, a)  # manual_seed(5) makes default_rng(5)


def test_dropout_and_data_loader_draw_from_the_generator_given():
    tg.manual_seed(0)
    state = tg.get_rng().bit_generator.state
    x = tg.ones(4, 50)
    masks = [F.dropout(x, 0.5, generator=np.random.default_rng(3)).numpy() for _ in range(2)]
    layer = nn.Dropout(0.5, generator=np.random.default_rng(3))
    np.testing.assert_array_equal(masks[0], masks[1])
    np.testing.assert_array_equal(layer(x).numpy(), masks[0])
    data = np.arange(20)
    orders = [np.concatenate([b.numpy() for b in loader]) for loader in (
        tg.data.DataLoader(data, batch_size=6, shuffle=True, generator=np.random.default_rng(7)),
        tg.data.DataLoader(data, batch_size=6, shuffle=True, seed=7))]
    np.testing.assert_array_equal(orders[0], orders[1])  # a generator is what seed= would have made
    assert tg.get_rng().bit_generator.state == state


@pytest.mark.parametrize("make", [
    lambda: nn.init.glorot_uniform((2, 2), generator=0),
    lambda: nn.init.get("he_uniform", generator=np.random.RandomState(0)),
    lambda: nn.Dropout(0.5, generator="seed"),
    lambda: F.dropout(tg.ones(3), 0.5, generator=42),
    lambda: tg.data.DataLoader(np.arange(4), generator=np.random.RandomState(0)),
])
def test_a_generator_that_is_not_one_is_refused(make):
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        make()


def test_generator_misuse_is_named():
    with pytest.raises(ValueError, match="seed or a generator, not both"):
        tg.data.DataLoader(np.arange(4), seed=1, generator=np.random.default_rng(1))
    with pytest.raises(ValueError, match="give your own callable its generator"):
        nn.init.get(lambda shape, dtype: np.zeros(shape, dtype), np.random.default_rng(0))
    assert nn.init.get("zeros", np.random.default_rng(0)) is nn.init.zeros  # nothing random to draw


def test_thread_count_is_set_from_the_top_level_as_in_torch():
    from tinygrad_cnn.kernels import parallel
    before = tg.get_num_threads()
    try:
        tg.set_num_threads(1)
        assert tg.get_num_threads() == parallel.get_num_threads() == 1
    finally:
        tg.set_num_threads(before)
