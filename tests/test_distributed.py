"""tinygrad_cnn.distributed in one process (a world of one, sharding by hand) and, through
`mpiexec -n 2`, with two real ranks: tests/mpi_ranks.py, a rank that fails, and the example.

The MPI tests are skipped when mpi4py or mpiexec is missing, unless TINYGRAD_CNN_TEST_MPI=1
(as in CI), which turns the skip into a failure."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import distributed as dist, optim
from tinygrad_cnn.data import DataLoader

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
REQUIRE_MPI_ENV = "TINYGRAD_CNN_TEST_MPI"


def mpiexec():
    """The mpiexec beside this Python (a venv's, from the mpich wheel) or on PATH, or skip."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = beside if os.path.exists(beside) else shutil.which("mpiexec")
    missing = [what for what, ok in (("mpi4py", importlib.util.find_spec("mpi4py")), ("mpiexec", found)) if not ok]
    if missing:
        reason = f"{' and '.join(missing)} not installed (pip install 'tinygrad_cnn[distributed]')"
        if os.environ.get(REQUIRE_MPI_ENV, "").strip() not in ("", "0"):
            pytest.fail(f"{REQUIRE_MPI_ENV}=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return found


def run_ranks(args, timeout=240, n=2):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([mpiexec(), "-n", str(n), sys.executable] + args, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------- two ranks

def test_two_rank_tests_pass_under_mpiexec():
    result = run_ranks(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/mpi_ranks.py"])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "12 passed" in result.stdout, result.stdout[-2000:]


def test_a_rank_that_raises_stops_every_rank_with_its_error(tmp_path):
    script = tmp_path / "fails.py"
    script.write_text(textwrap.dedent("""
        from tinygrad_cnn import distributed as dist
        world = dist.init()
        if world.rank == 1:
            raise ValueError("rank one cannot go on")
        dist.allreduce(1.0)  # rank 0 waits here for a rank that will never come
        print("rank 0 was not stopped")
    """))
    result = run_ranks([str(script)], timeout=120)  # a rank left waiting would hang until this timeout
    assert result.returncode != 0
    assert "rank 0 was not stopped" not in result.stdout
    assert "[rank 1 of 2] uncaught exception, aborting all ranks" in result.stderr
    assert "ValueError: rank one cannot go on" in result.stderr


def test_the_example_trains_one_model_on_two_ranks_and_resumes(tmp_path):
    ckpt, metrics = str(tmp_path / "m.npz"), str(tmp_path / "m.json")
    common = ["examples/mnist.py", "--limit-train", "256", "--limit-test", "200", "--no-progress",
              "--save", ckpt, "--metrics", metrics]
    first = run_ranks(common + ["--epochs", "1"])
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count("final test accuracy") == 1  # only rank 0 prints
    saved = json.load(open(metrics))
    assert saved["world_size"] == 2 and len(saved["epochs"]) == 1
    assert saved["epochs"][0]["test_acc"] > 0.2  # chance is 0.1

    resumed = run_ranks(common + ["--epochs", "2", "--resume", ckpt])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout
    history = json.load(open(metrics))["epochs"]
    assert [h["epoch"] for h in history] == [1, 2] and history[0] == saved["epochs"][0]


def test_the_example_refuses_a_batch_the_ranks_cannot_share():
    result = run_ranks(["examples/mnist.py", "--batch-size", "127", "--limit-train", "256", "--save", "",
                        "--metrics", ""], timeout=120)
    assert result.returncode != 0
    assert "global batch size 127 is not divisible by the world size 2" in result.stderr


def test_the_example_under_mpi_stops_every_rank_on_a_missing_checkpoint(tmp_path):
    result = run_ranks(["examples/mnist.py", "--resume", str(tmp_path / "missing.npz"), "--limit-train", "256",
                        "--save", "", "--metrics", ""], timeout=120)
    assert result.returncode != 0
    assert "missing.npz" in result.stderr


# ---------------------------------------------------------------- sharding, in one process

@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_shards_are_disjoint_equal_and_their_batches_make_the_global_batch(world_size):
    n, local = 103, 5
    alone = DataLoader(np.arange(n), batch_size=local * world_size, shuffle=True, seed=9)
    shards = [DataLoader(np.arange(n), batch_size=local, shuffle=True, seed=9, rank=r, world_size=world_size)
              for r in range(world_size)]
    for _ in range(2):
        global_batches = list(alone.iter_numpy())
        per_rank = [list(s.iter_numpy()) for s in shards]
        assert len({len(batches) for batches in per_rank}) == 1  # every rank takes the same number of steps
        seen = [np.concatenate(batches) for batches in per_rank]
        assert all(len(s) == n // world_size for s in seen)
        assert len(set(np.concatenate(seen))) == n - n % world_size  # disjoint, and all but the remainder
        for k, together in enumerate(zip(*per_rank)):
            assert sorted(np.concatenate(together)) == sorted(global_batches[k][:len(np.concatenate(together))])


def test_world_size_1_loader_is_unchanged():
    x = np.arange(50)
    plain = [b.tolist() for b in DataLoader(x, batch_size=7, shuffle=True, seed=2).iter_numpy()]
    one = [b.tolist() for b in DataLoader(x, batch_size=7, shuffle=True, seed=2, rank=0,
                                          world_size=1).iter_numpy()]
    assert plain == one


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(rank=0, world_size=11), ValueError, r"more ranks \(11\) than samples \(10\)"),
    (dict(rank=2, world_size=2), ValueError, "rank must lie in"),
    (dict(rank=0, world_size=0), ValueError, "rank must lie in"),
    (dict(rank=0.5, world_size=2), TypeError, "rank must be an int"),
])
def test_bad_shards_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        DataLoader(np.arange(10), batch_size=2, **kwargs)


def test_a_global_batch_must_divide_over_the_world(monkeypatch):
    monkeypatch.setattr(dist, "_world", dist.World(size=2))
    assert dist.local_batch_size(128) == 64
    with pytest.raises(ValueError, match="global batch size 127 is not divisible by the world size 2"):
        dist.local_batch_size(127)


# ---------------------------------------------------------------- a world of one

def test_without_a_launcher_the_world_is_one_and_mpi_is_not_loaded():
    code = ("import sys; from tinygrad_cnn import distributed as d; w = d.init(); "
            "print(w.rank, w.size, 'mpi4py' in sys.modules, d.device_for_rank('cuda:1'))")
    env = {k: v for k, v in os.environ.items() if k not in dist._LAUNCHER_SIZE_VARS}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(env, PYTHONPATH=ROOT),
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "1", "False", "cuda:1"]


def test_under_a_launcher_without_mpi4py_init_says_what_to_install():
    code = ("import sys; sys.modules['mpi4py'] = None; from tinygrad_cnn import distributed as d; d.init()")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT, PMI_SIZE="2", PMI_RANK="0"))
    assert result.returncode != 0
    assert "launched as one of 2 MPI processes, but mpi4py is not installed" in result.stderr


def test_in_a_world_of_one_nothing_changes():
    w = dist.World()
    assert (w.rank, w.size, w.is_root) == (0, 1, True)
    p = tg.Tensor(np.ones(3), requires_grad=True)
    p.grad = tg.Tensor(np.full(3, 2.0))
    opt = optim.SGD([p], lr=0.5)
    assert dist.DistributedOptimizer(opt) is opt and type(opt) is optim.SGD
    assert dist.average_gradients([p]) == 0 and p.grad.numpy().tolist() == [2.0, 2.0, 2.0]
    assert dist.allreduce(3) == 3 and dist.allreduce(2.5, op="mean") == 2.5
    assert dist.on_root(lambda: "x") == "x" and dist.broadcast_object(5) == 5
    dist.broadcast_parameters([p])
    dist.barrier()
    with pytest.raises(ValueError, match="op must be"):
        dist.allreduce(1, op="prod")
    with pytest.raises(TypeError, match="needs an Optimizer"):
        dist.DistributedOptimizer(object())
