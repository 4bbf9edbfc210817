"""Training gives the same bits for any thread count and with or without threadpoolctl (issue 27).

Work is cut into pieces fixed by the problem (the batch, the shapes), never by the machine: the
thread count only decides which thread runs which piece, and partial sums are always added in
piece order; and BLAS is held at one thread inside every op, whatever the count. So the tutorial's
model, trained a few Adam steps in float32, ends with identical weights with 1, 2 or 3 threads,
and in a process where threadpoolctl cannot be imported (ops then run as one call each), provided
BLAS runs on one thread there too (see the last test)."""
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


def test_training_gives_the_same_bits_without_threadpoolctl():
    """A child process where `import threadpoolctl` fails (each op one call, in the calling thread)
    trains the same steps as this one (ops split over threads when threadpoolctl is installed).

    NOTE: the child's BLAS runs on one thread (OPENBLAS_NUM_THREADS=1), as threadpoolctl holds it
    inside our ops: on its own threads OpenBLAS cuts some products differently (a convolution's
    weight-gradient product differed by 3e-5), which only threadpoolctl (or that variable) stops."""
    script = ("import sys; sys.modules['threadpoolctl'] = None\n" + TRAIN +
              "import json\nprint(json.dumps([p.tolist() for p in train()]))\n")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    theirs = [np.array(p, dtype=np.float32) for p in json.loads(out.stdout)]
    ours = train()  # with threadpoolctl when installed: one thread per core here
    assert differences(ours, theirs) == [0.0] * len(ours)
