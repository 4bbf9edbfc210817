"""Training gives the same bits for any thread count and with or without threadpoolctl (issue 27).

Work is cut into pieces fixed by the problem (the batch, the shapes), never by the machine: the
thread count only decides which thread runs which piece, and partial sums are always added in
piece order; and BLAS is held at one thread inside every op, whatever the count. So the tutorial's
model, trained a few Adam steps in float32, ends with identical weights with 1, 2 or 3 threads,
and in a process where threadpoolctl cannot be imported, whatever OpenBLAS's own thread count
(OPENBLAS_NUM_THREADS unset, 1 or 2): there parallel._OpenBLAS holds it at one thread (see the last test)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import nn, optim
from tinygrad_cnn.nn import functional as F

try:
    import threadpoolctl
except ImportError:
    threadpoolctl = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# the tutorial's model and Adam steps on batches of MNIST-sized random images; a batch of 40
# splits the two convolutions into 1 and 3 chunks with one thread before issue 27, 2 and 4 with two
TRAIN = r"""
import numpy as np
import tinygrad_cnn as tg
from tinygrad_cnn import nn, optim
from tinygrad_cnn.nn import functional as F

def train(steps=3, batch=40):
    tg.manual_seed(0)
    model = nn.Sequential([
        nn.Conv2D(32, 3, padding="same", activation="relu"), nn.MaxPool2D(2),
        nn.Conv2D(64, 3, padding="same", activation="relu"), nn.MaxPool2D(2),
        nn.Flatten(), nn.Dense(128, activation="relu"), nn.Dense(10, activation="softmax")],
        input_shape=(1, 28, 28))
    opt = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        x = tg.Tensor(rng.random((batch, 1, 28, 28), dtype=np.float32))
        y = tg.Tensor(rng.integers(0, 10, batch))
        loss = F.cross_entropy(model.logits(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.numpy().copy() for p in model.parameters()]
"""
namespace = {}
exec(TRAIN, namespace)
train = namespace["train"]


def differences(a, b):
    """The largest absolute difference per parameter."""
    return [float(np.max(np.abs(p - q))) for p, q in zip(a, b)]


@pytest.fixture
def threads_restored():
    yield
    tg.set_num_threads(None)


@pytest.mark.skipif(threadpoolctl is None, reason="threads per op need the `fast` extra")
def test_training_gives_the_same_bits_with_1_2_and_3_threads(threads_restored):
    results = {}
    for n in (1, 2, 3):
        tg.set_num_threads(n)
        assert tg.get_num_threads() == n
        results[n] = train()
    for n in (2, 3):
        assert differences(results[1], results[n]) == [0.0] * len(results[1]), f"1 vs {n} threads"


BLAS_THREADS = [None, "1", "2"]  # OPENBLAS_NUM_THREADS: unset (one per core), one, two


@pytest.mark.parametrize("blas_threads", BLAS_THREADS, ids=["blas-unset", "blas-1", "blas-2"])
@pytest.mark.parametrize("hidden", [True, False], ids=["without-threadpoolctl", "with-threadpoolctl"])
def test_training_gives_the_same_bits_with_or_without_threadpoolctl_for_any_blas_threads(hidden, blas_threads):
    """A child process, with `import threadpoolctl` failing or not and OpenBLAS started with its
    own thread count unset, 1 or 2, trains the same steps as this one, to the same bytes.

    NOTE: without threadpoolctl and with OpenBLAS on two threads of its own, the weights differed
    (3.3e-6 after 30 steps; a convolution's weight-gradient product differed by 3e-5): OpenBLAS
    cuts some products by its thread count. parallel._OpenBLAS now holds it at one thread inside
    our ops through its own C functions when threadpoolctl is missing."""
    script = (("import sys; sys.modules['threadpoolctl'] = None\n" if hidden else "") + TRAIN +
              "import json\nprint(json.dumps([p.tolist() for p in train()]))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                              "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")
    if blas_threads is not None:
        env["OPENBLAS_NUM_THREADS"] = blas_threads
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    theirs = [np.array(p, dtype=np.float32) for p in json.loads(out.stdout)]
    ours = train()  # with threadpoolctl when installed: one thread per core here
    assert [p.tobytes() for p in ours] == [p.tobytes() for p in theirs], differences(ours, theirs)


def test_the_openblas_fallback_finds_numpy_blas_and_sets_its_threads():
    """parallel._OpenBLAS (used when threadpoolctl is missing) finds the OpenBLAS NumPy loaded and
    changes its thread count; skipped where NumPy was built on another BLAS (MKL, Accelerate)."""
    from tinygrad_cnn.kernels import parallel
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    if "openblas" not in str(blas.get("name", "")).lower():
        pytest.skip(f"NumPy's BLAS is {blas.get('name')!r}, not OpenBLAS")
    found = parallel._OpenBLAS.find()
    assert found is not None and found.lib_controllers
    lib = found.lib_controllers[0]
    before = lib.get_num_threads()
    try:
        lib.set_num_threads(1)
        assert lib.get_num_threads() == 1
        lib.set_num_threads(2)
        assert lib.get_num_threads() == 2
    finally:
        lib.set_num_threads(before)
