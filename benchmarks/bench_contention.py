"""How much one core's training steps slow down while the other core runs the same work.

    python benchmarks/bench_contention.py [--seconds 12] [--rounds 3] [--json benchmarks/results/contention.json]

Why: on this 2-core machine a training step with two threads is only ~1.2-1.4x faster than with one,
although the work splits evenly over the cores (issue 25). This separates the package's own
threading from the machine: each worker is a separate process pinned to one core (taskset-style
affinity), holding one thread, training the tutorial's model (Adam, batch 128) for `--seconds`.
A round runs the worker alone on core 0, alone on core 1, then two workers at once, one per core.
Two processes share nothing in Python (no GIL, no thread pool), so any slowdown when both run is
the hardware's: memory and cache bandwidth, or cores that share more than they seem to. A large
np.matmul (compute-bound, in cache) is measured the same way as a control.
"""
import argparse
import os
import statistics
import subprocess
import sys

from common import ROOT, machine, print_table, write_json

WORKER = r"""
import os, sys, time
core, seconds, kind = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
os.sched_setaffinity(0, {core})
import numpy as np
import tinygrad_cnn as tg
from tinygrad_cnn import optim
from tinygrad_cnn.kernels import parallel
from tinygrad_cnn.nn import functional as F
from tinygrad_cnn.datasets import mnist
from mnist import build_model
parallel.set_num_threads(1)
if kind == "step":
    (images, labels), _ = mnist.load_data()
    x, y = mnist.to_float_images(images[:128 * 30]), labels[:128 * 30].astype(np.int64)
    tg.manual_seed(0)
    model = build_model()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    def work(i):
        i %= 30
        loss = F.cross_entropy(model.logits(tg.Tensor(x[i * 128:(i + 1) * 128])), tg.Tensor(y[i * 128:(i + 1) * 128]))
        opt.zero_grad(); loss.backward(); opt.step()
else:  # a compute-bound control: one BLAS thread (the package holds it at one from its first split op)
    a = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
    from threadpoolctl import threadpool_limits
    limit = threadpool_limits(1)
    def work(i):
        np.matmul(a, a)
for i in range(5):
    work(i)
times, end = [], time.time() + seconds
while time.time() < end:
    t = time.perf_counter(); work(len(times)); times.append(time.perf_counter() - t)
times.sort()
print(1000 * times[len(times) // 2])
"""


def run(cores, seconds, kind):
    """Median ms of a step on each of `cores`, the workers running at once."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "examples")]))
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(c), str(seconds), kind], stdout=subprocess.PIPE,
                              text=True, env=env) for c in cores]
    out = []
    for p in procs:
        text, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"worker failed ({p.returncode})")
        out.append(float(text.strip()))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two cores this process may run on (Linux affinity)")
    rows, results = [], {}
    for kind in ("step", "matmul"):
        alone, together = [], []
        for r in range(args.rounds):
            alone += run([0], args.seconds, kind) + run([1], args.seconds, kind)
            together += run([0, 1], args.seconds, kind)
            print(f"{kind} round {r + 1}: alone {alone[-2]:.2f} / {alone[-1]:.2f} ms, together "
                  f"{together[-2]:.2f} / {together[-1]:.2f} ms (load {os.getloadavg()[0]:.2f})", flush=True)
        a, t = statistics.median(alone), statistics.median(together)
        results[kind] = {"alone_ms": alone, "together_ms": together, "alone_median_ms": a, "together_median_ms": t,
                         "slowdown": t / a, "two_core_speedup_bound": 2 * a / t}
        name = "training step (tutorial model, batch 128)" if kind == "step" else "np.matmul 512^3 (control)"
        rows.append([name, f"{a:.2f}", f"{t:.2f}", f"{t / a:.3f}", f"{2 * a / t:.2f}x"])
    print_table(["work, one thread per core", "alone ms", "both cores busy ms", "slowdown", "two cores at best"], rows)
    if args.json:
        write_json(args.json, {"seconds": args.seconds,
                               "rounds": args.rounds, "machine": machine(), "results": results,
                               "load_average_at_end": list(os.getloadavg())})


if __name__ == "__main__":
    main()
