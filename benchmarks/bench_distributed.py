"""Data-parallel training on one machine: 1 rank x 2 threads against 2 ranks x 1 thread (MPI).

    python benchmarks/bench_distributed.py               # 40 timed steps of global batch 128 each way
    python benchmarks/bench_distributed.py --steps 469   # a whole epoch (60,000 images) each way
    python benchmarks/bench_distributed.py --json benchmarks/results/distributed_cpu.json

Reports the time per step and the epoch time it implies (469 steps of 128 images), the time a
step spends in average_gradients (the all-reduce, including any wait for the slower rank), the
bytes reduced per step, and an isolated all-reduce of those bytes at several sizes (after a
barrier, so without waiting) with the latency + bytes/bandwidth fit that docs/distributed.md uses.
Needs the `distributed` extra (mpi4py, mpich). NOTE: the two configurations run one after the
other, not interleaved (they are different process layouts), so on a shared machine their ratio
carries the noise of the minutes between them.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from common import ROOT, machine, print_table, write_json

import tinygrad_cnn as tg
from tinygrad_cnn import distributed as dist, optim
from tinygrad_cnn.kernels import parallel
from tinygrad_cnn.datasets import mnist
from tinygrad_cnn.nn import functional as F
from mnist import build_model  # examples/mnist.py

STEPS_PER_EPOCH = 469  # ceil(60000 / 128)
SIZES = [1 << 12, 1 << 16, 1 << 18, 1 << 20, 421_642 * 4, 1 << 23]  # bytes for the all-reduce alone


def worker(args):
    """One rank's share (or the whole, alone): timed training steps, then the isolated all-reduce."""
    world = dist.init(threads_per_rank=None)
    parallel.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=args.threads, user_api="blas")
    except ImportError:
        pass
    tg.memory.keep_freed_memory()
    (x, y), _ = mnist.load_data()
    tg.manual_seed(0)
    model = build_model()
    dist.broadcast_parameters(model)
    optimizer = dist.DistributedOptimizer(optim.Adam(model.parameters(), lr=1e-3))
    local = dist.local_batch_size(128)
    loader = tg.data.DataLoader(x, y, batch_size=local, shuffle=True, seed=0, rank=world.rank,
                                world_size=world.size, transform=mnist.to_float_images)
    in_reduce = []
    original = dist.average_gradients

    def timed_average(params, bucket_bytes=dist.BUCKET_BYTES):
        start = time.perf_counter()
        n = original(params, bucket_bytes)
        in_reduce.append(time.perf_counter() - start)
        return n

    dist.average_gradients = timed_average
    warmup, batches = 3, iter(loader)
    dist.barrier()
    for i in range(warmup + args.steps):
        if i == warmup:
            dist.barrier()
            in_reduce.clear()
            start = time.perf_counter()
        xb, yb = next(batches)
        loss = F.cross_entropy(model.logits(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    dist.barrier()
    step = (time.perf_counter() - start) / args.steps
    out = dict(ranks=world.size, threads=args.threads, step_s=step, epoch_s_estimate=step * STEPS_PER_EPOCH,
               bytes_per_step=getattr(optimizer, "bytes_reduced", 0),
               allreduce_in_step_s=float(np.median(in_reduce)) if in_reduce else 0.0)
    if world.size > 1:
        from mpi4py import MPI
        alone = {}
        for nbytes in SIZES:
            buf = np.ones(nbytes // 4, dtype=np.float32)
            times = []
            for _ in range(30):
                world.comm.Barrier()
                t = time.perf_counter()
                world.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
                times.append(time.perf_counter() - t)
            alone[nbytes] = float(np.median(times))
        out["allreduce_alone_s"] = alone
        copy = np.ones(421_642, dtype=np.float32)
        target = np.empty_like(copy)
        t = time.perf_counter()
        for _ in range(100):
            np.copyto(target, copy)
        out["memcpy_1_7MB_s"] = (time.perf_counter() - t) / 100
    if world.is_root:
        print("RESULT " + json.dumps(out))


def launch(cmd):
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])


def fit_latency_bandwidth(alone):
    """Least squares t = a + b * (2(N-1)/N * bytes) for N = 2 ranks: a latency and a bandwidth 1/b."""
    moved = np.array([nbytes for nbytes in alone], dtype=float)  # 2(N-1)/N = 1 for N = 2
    t = np.array(list(alone.values()))
    b, a = np.polyfit(moved, t, 1)
    return a, 1 / b


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--json", default=None)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    me = [sys.executable, os.path.abspath(__file__), "--worker", "--steps", str(args.steps)]
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    mpiexec = mpiexec if os.path.exists(mpiexec) else "mpiexec"
    one = launch(me + ["--threads", "2"])
    two = launch([mpiexec, "-n", "2"] + me + ["--threads", "1"])
    print(f"{args.steps} timed steps of global batch 128 (a shared, noisy machine: see the docstring)")
    print_table(["layout", "step ms", "epoch s (469 steps)", "all-reduce ms/step", "bytes/step"], [
        [f"{r['ranks']} rank x {r['threads']} threads", f"{r['step_s'] * 1e3:.1f}", f"{r['epoch_s_estimate']:.1f}",
         f"{r['allreduce_in_step_s'] * 1e3:.2f}", f"{r['bytes_per_step']:,}"] for r in (one, two)])
    print(f"2 ranks / 1 rank epoch time: {two['step_s'] / one['step_s']:.2f}x")
    alone = {int(k): v for k, v in two["allreduce_alone_s"].items()}
    a, bw = fit_latency_bandwidth(alone)
    print(f"\nall-reduce alone, 2 ranks (after a barrier); fit t = {a * 1e6:.0f} us + bytes / {bw / 1e9:.2f} GB/s")
    print_table(["bytes", "measured us", "fit us"],
                [[f"{n:,}", f"{t * 1e6:.0f}", f"{(a + n / bw) * 1e6:.0f}"] for n, t in alone.items()])
    print(f"memcpy of 1.7 MB: {two['memcpy_1_7MB_s'] * 1e6:.0f} us ({421_642 * 4 / two['memcpy_1_7MB_s'] / 1e9:.2f} GB/s)")
    write_json(args.json, dict(machine=machine(), steps=args.steps, one_rank=one, two_ranks=two,
                               fit=dict(latency_s=a, bandwidth_bytes_s=bw)))


if __name__ == "__main__":
    main()
