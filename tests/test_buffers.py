"""kernels/buffers.py: a kept block is handed out again only when nothing else refers to it (live
arrays, views of views, outputs that escaped), zeros() are zeros in a reused block, old blocks are
forgotten, threads never share a block; and a training step of the tutorial's model, with glibc's
default malloc, takes (almost) no page faults."""
import platform
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from tinygrad_cnn.kernels import buffers

BIG = (buffers.MIN_BYTES // 8 + 1,)  # float64 values: just over MIN_BYTES


@pytest.fixture(autouse=True)
def empty_cache():
    buffers.release()
    yield
    buffers.release()


def _address(a):
    return a.__array_interface__["data"][0]


def test_a_block_in_use_is_never_handed_out_again():
    a = buffers.empty(np, BIG, np.float64)
    a[...] = 1.0
    b = buffers.empty(np, BIG, np.float64)
    assert not np.shares_memory(a, b)
    view_of_view = a[::2][1:]
    del a
    c = buffers.empty(np, BIG, np.float64)  # a's block is still behind view_of_view
    assert not np.shares_memory(view_of_view, c) and not np.shares_memory(b, c)
    assert np.all(view_of_view == 1.0)
    del view_of_view
    d = buffers.empty(np, BIG, np.float64)
    assert buffers.held()[0] == 3  # reused: no fourth block
    assert not np.shares_memory(d, b) and not np.shares_memory(d, c)


def test_a_free_block_is_reused_for_the_same_size_and_a_slightly_smaller_one():
    a = buffers.empty(np, (2 * BIG[0],), np.float64)
    address = _address(a)  # (holding a itself, or its block, would keep the block in use)
    del a
    b = buffers.empty(np, (2 * BIG[0] - 1,), np.float64)
    assert _address(b) == address
    del b
    c = buffers.empty(np, BIG, np.float64)  # half the size: a block of its own (see FIT)
    assert _address(c) != address and buffers.held()[0] == 2


def test_an_output_that_escapes_keeps_its_block():
    """Like a kernel's result wrapped in a Tensor: its block serves no one while the tensor lives."""
    import tinygrad_cnn as tg
    t = tg.Tensor(buffers.empty(np, (4, BIG[0] // 4), np.float64))
    t.data[...] = 7.0
    for _ in range(3):
        other = buffers.empty(np, (4, BIG[0] // 4), np.float64)
        other[...] = -1.0
    assert np.all(t.numpy() == 7.0)


def test_zeros_are_zeros_in_a_reused_block():
    a = buffers.empty(np, BIG, np.float64)
    a[...] = np.nan
    del a
    z = buffers.zeros(np, BIG, np.float64)
    assert buffers.held()[0] == 1 and np.all(z == 0)


def test_small_arrays_are_left_to_malloc_and_old_blocks_forgotten(monkeypatch):
    buffers.empty(np, (10,), np.float32)
    assert buffers.held() == (0, 0)
    buffers.empty(np, BIG, np.float64)
    monkeypatch.setattr(buffers, "MAX_AGE", 3)
    for _ in range(5):
        buffers.empty(np, (2 * BIG[0],), np.float64)  # each reuses one block; the first one ages
    assert buffers.held() == (1, 2 * BIG[0] * 8)


def test_threads_never_get_the_same_block():
    errors = []

    def work(mark):
        for _ in range(200):
            a = buffers.empty(np, BIG, np.float64)
            a.fill(mark)
            if not np.all(a == mark):
                errors.append(mark)

    threads = [threading.Thread(target=work, args=(m,)) for m in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and buffers.held()[0] <= 8  # each thread holds at most two at once (a, then its next a)


GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# Minor page faults per training step of the tutorial's model at batch 128 (after 3 warm-up steps), with
# glibc's default malloc settings (no keep_freed_memory): a child process, malloc's state being per process.
CHILD = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import tinygrad_cnn as tg
    from tinygrad_cnn import nn, optim
    from tinygrad_cnn.kernels import buffers
    from tinygrad_cnn.nn import functional as F
    if sys.argv[1] == "off":
        buffers.MIN_BYTES = 1 << 62
    tg.manual_seed(0)
    model = nn.Sequential([
        nn.Conv2D(32, 3, padding="same", activation="relu"), nn.MaxPool2D(2),
        nn.Conv2D(64, 3, padding="same", activation="relu"), nn.MaxPool2D(2),
        nn.Flatten(), nn.Dense(128, activation="relu"), nn.Dense(10, activation="softmax")], input_shape=(1, 28, 28))
    opt = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    def step():
        x = tg.Tensor(rng.random((128, 1, 28, 28), dtype=np.float32))
        loss = F.cross_entropy(model.logits(x), tg.Tensor(rng.integers(0, 10, 128)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    for _ in range(3):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        step()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3)
""")


def faults_per_step(mode):
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True, timeout=300)
    return float(out.stdout.split()[-1])


@pytest.mark.skipif(not GLIBC, reason="the page-fault count is glibc malloc's behaviour")
def test_a_users_training_loop_takes_almost_no_page_faults():
    """Without the kept blocks the same loop took ~2,700 a step (10.5 MB faulted back in and zeroed)."""
    kept = faults_per_step("on")
    assert kept < 100, kept
