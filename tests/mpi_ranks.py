"""Tests that need two MPI ranks: run as `mpiexec -n 2 python -m pytest -q tests/mpi_ranks.py`
(tests/test_distributed.py does, when MPI is installed). Not collected by a plain `pytest` run.

Every check is decided on data gathered from all ranks, so that all ranks pass or fail together
and none is left waiting in a collective for a rank that stopped."""
import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import distributed as dist, nn, optim
from tinygrad_cnn.data import DataLoader
from tinygrad_cnn.nn import functional as F

world = dist.init()
if world.size != 2:
    pytest.skip("needs exactly 2 MPI ranks: mpiexec -n 2 python -m pytest tests/mpi_ranks.py",
                allow_module_level=True)


def gathered(value):
    """[rank 0's value, rank 1's value] on every rank."""
    return world.comm.allgather(value)


def small_model(dtype):
    tg.manual_seed(0)
    model = nn.Sequential([nn.Conv2D(4, (3, 3), padding="same", activation="relu"), nn.MaxPool2D((2, 2), strides=2),
                           nn.Flatten(), nn.Dense(16, activation="relu"), nn.Dense(10)], input_shape=(1, 8, 8))
    for p in model.parameters():
        p.data = p.data.astype(dtype)
    return model


def data(dtype, n=640):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, 1, 8, 8)).astype(dtype), rng.integers(0, 10, n)


def params(model):
    return [p.numpy().copy() for p in model.parameters()]


def train(model, optimizer, loader, steps, after_step=None):
    for step, (xb, yb) in zip(range(steps), loader):
        loss = F.cross_entropy(model.logits(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if after_step:
            after_step(step)


@pytest.mark.parametrize("dtype, make_optimizer, tol", [
    ("float64", lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), 1e-12),
    ("float64", lambda ps: optim.Adam(ps, lr=1e-2), 1e-12),
    ("float32", lambda ps: optim.Adam(ps, lr=1e-2), 1e-5),
])
def test_two_ranks_at_64_match_one_process_at_128(dtype, make_optimizer, tol):
    x, y = data(dtype)
    steps = 5
    # the reference: this rank alone, the whole batch of 128, no communication
    alone = small_model(dtype)
    train(alone, make_optimizer(alone.parameters()), DataLoader(x, y, batch_size=128, shuffle=True, seed=3), steps)

    model = small_model(dtype)
    dist.broadcast_parameters(model)
    optimizer = dist.DistributedOptimizer(make_optimizer(model.parameters()))
    loader = DataLoader(x, y, batch_size=64, shuffle=True, seed=3, rank=world.rank, world_size=world.size)
    mismatches = []

    def same_on_every_rank(step):
        ranks = gathered(params(model))
        if not all(np.array_equal(a, b) for a, b in zip(ranks[0], ranks[1])):
            mismatches.append(step)

    train(model, optimizer, loader, steps, same_on_every_rank)
    assert mismatches == []  # bitwise identical on both ranks after every step
    worst = max(float(np.max(np.abs(a - b) / (1 + np.abs(b)))) for a, b in zip(params(model), params(alone)))
    assert worst <= tol, f"{dtype}: two ranks differ from one process by {worst:.3g} (tolerance {tol})"
    assert optimizer.bytes_reduced == sum(p.data.nbytes for p in model.parameters())


def test_without_averaging_the_ranks_drift_apart():
    """The control for the test above: a plain optimizer on each rank's shard diverges."""
    x, y = data("float64")
    model = small_model("float64")
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    train(model, optimizer, DataLoader(x, y, batch_size=64, shuffle=True, seed=3, rank=world.rank,
                                       world_size=world.size), 2)
    ranks = gathered(params(model))
    assert not all(np.array_equal(a, b) for a, b in zip(ranks[0], ranks[1]))


def test_gradients_are_averaged_in_flat_buckets():
    model = small_model("float64")
    for i, p in enumerate(model.parameters()):
        p.grad = tg.Tensor(np.full(p.shape, float(world.rank + 1) * (i + 1)))
    for bucket_bytes in (dist.BUCKET_BYTES, 64):  # one bucket, then one per parameter
        buckets = dist._buckets(model.parameters(), bucket_bytes)
        assert len(buckets) == (1 if bucket_bytes > 64 else len(model.parameters()))
    dist.average_gradients(model.parameters(), bucket_bytes=1000)
    for i, p in enumerate(model.parameters()):
        np.testing.assert_array_equal(p.grad.numpy(), np.full(p.shape, 1.5 * (i + 1)))


def test_a_gradient_missing_on_one_rank_counts_as_zero_and_missing_everywhere_stays_none():
    a = tg.Tensor(np.zeros(3), requires_grad=True)
    b = tg.Tensor(np.zeros(2), requires_grad=True)
    a.grad = tg.Tensor(np.full(3, 4.0)) if world.rank == 0 else None
    b.grad = None
    dist.average_gradients([a, b])
    np.testing.assert_array_equal(a.grad.numpy(), np.full(3, 2.0))
    assert b.grad is None


def test_broadcast_parameters_and_optimizer_state_copy_rank_0():
    tg.manual_seed(world.rank)  # different weights on each rank
    model = nn.Sequential([nn.Dense(3)], input_shape=(4,))
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    first = model.parameters()[0]
    first.grad = tg.Tensor(np.full(first.shape, world.rank + 1.0, dtype="float32"))
    optimizer.step()
    dist.broadcast_parameters(model)
    dist.broadcast_optimizer_state(optimizer)
    ranks = gathered(params(model))
    assert all(np.array_equal(a, b) for a, b in zip(*ranks))
    moments = gathered(optimizer.state_dict()["state.0.exp_avg"])
    np.testing.assert_array_equal(moments[1], moments[0])


def test_allreduce_of_metrics():
    assert dist.allreduce(world.rank + 1) == 3
    assert dist.allreduce(float(world.rank), op="mean") == 0.5
    assert dist.allreduce(world.rank, op="max") == 1
    np.testing.assert_array_equal(dist.allreduce(np.array([1, world.rank])), [2, 1])
    dist.barrier()


def test_shards_are_disjoint_equal_and_cover_the_epoch():
    n = 101
    loader = DataLoader(np.arange(n), batch_size=8, shuffle=True, seed=5, rank=world.rank, world_size=world.size)
    for _ in range(2):  # two epochs, two permutations
        shards = gathered(np.concatenate(list(loader.iter_numpy())))
        assert len(shards[0]) == len(shards[1]) == n // 2
        assert not set(shards[0]) & set(shards[1])
        assert len(set(shards[0]) | set(shards[1])) == n - 1  # one left out: 101 is odd


def test_on_root_raises_rank_0s_error_on_every_rank():
    def read():
        if world.rank == 0:
            raise FileNotFoundError("no such checkpoint")
        return "rank 1 never runs this"

    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        dist.on_root(read)
    assert dist.on_root(lambda: world.rank * 10 + 7) == 7


def test_different_models_on_the_ranks_are_refused():
    model = nn.Sequential([nn.Dense(3 + world.rank)], input_shape=(4,))
    with pytest.raises(dist.DistributedError, match="every rank must build the same model"):
        dist.broadcast_parameters(model)


def test_the_tutorial_model_reduces_1_7_mb_per_step_in_one_bucket():
    tg.manual_seed(0)
    model = nn.Sequential([
        nn.Conv2D(32, (3, 3), padding="same", activation="relu"), nn.MaxPool2D((2, 2), strides=2),
        nn.Conv2D(64, (3, 3), padding="same", activation="relu"), nn.MaxPool2D((2, 2), strides=2),
        nn.Flatten(), nn.Dense(128, activation="relu"), nn.Dense(10, activation="softmax")], input_shape=(1, 28, 28))
    for p in model.parameters():
        p.grad = tg.zeros(p.shape)
    assert len(dist._buckets(model.parameters(), dist.BUCKET_BYTES)) == 1
    assert dist.average_gradients(model.parameters()) == 421_642 * 4
