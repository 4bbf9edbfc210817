"""Two models trained at once in two Python threads against the same two trainings one after the other.

    python benchmarks/bench_threads.py                       # 30 steps of batch 64 per training, 9 repeats
    python benchmarks/bench_threads.py --json benchmarks/results/threads.json

Issue 12 item 3: after sequential training in the same process, two threads each training its own
model ran 28-31x slower than the two trainings one after the other. So a sequential warm-up runs
first, in the main thread, as in that report; then each repeat times both ways, in alternating
order. The headline ratio is the median of the repeats' ratios: each pair ran back to back, so a
burst of load from other work on the machine hits both sides of a pair. Both ways train the same
two models (the tutorial's CNN, Adam) on the same batches from the same initial weights, and the
benchmark checks that they end with the same weights. One more row times the fixed cost of an op
that runs as one call (thread pool and BLAS bookkeeping), which must stay small.
"""
import argparse
import statistics
import threading
import time

import numpy as np

from common import machine, print_table, write_json

import tinygrad_cnn as tg
from tinygrad_cnn import memory, optim
from tinygrad_cnn.kernels import parallel
from tinygrad_cnn.datasets import mnist
from tinygrad_cnn.nn import functional as F
from mnist import build_model  # examples/mnist.py


def initial_weights(seed):
    tg.manual_seed(seed)
    return [p.numpy().copy() for p in build_model().parameters()]


def train(weights, batches):
    """Train the tutorial's model from `weights` over `batches`; the final weights."""
    model = build_model()
    for p, w in zip(model.parameters(), weights):
        p.data[...] = w
    opt = optim.Adam(model.parameters(), lr=1e-3)
    for x, y in batches:
        loss = F.cross_entropy(model.logits(tg.Tensor(x)), tg.Tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.numpy() for p in model.parameters()]


def one_after_the_other(jobs):
    start = time.perf_counter()
    results = [train(*job) for job in jobs]
    return time.perf_counter() - start, results


def at_once(jobs):
    results = [None] * len(jobs)
    errors = []

    def run(i):
        try:
            results[i] = train(*jobs[i])
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed, results


def small_op_overhead_us(calls=20000, repeats=5):
    """Median microseconds per over_batch call whose work does nothing and runs as one call."""
    noop = lambda rows: None  # noqa: E731
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            parallel.over_batch(np, 8, 0, noop)
        times.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(times)


def blas_threads():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30, help="training steps per model")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--json", default=None)
    args = p.parse_args()

    memory.keep_freed_memory()
    (x, y), _ = mnist.load_data()
    n = args.steps * args.batch_size
    images = mnist.to_float_images(x[:2 * n])
    batches = [[(images[k + s:k + s + args.batch_size], y[k + s:k + s + args.batch_size])
                for s in range(0, n, args.batch_size)] for k in (0, n)]
    jobs = [(initial_weights(seed), batches[seed]) for seed in (0, 1)]

    blas_before = blas_threads()
    one_after_the_other(jobs)  # the warm-up in the main thread that preceded the slow case
    sequential, concurrent, same = [], [], True
    for r in range(args.repeats):
        ways = [(sequential, one_after_the_other), (concurrent, at_once)]
        for samples, way in (ways if r % 2 == 0 else ways[::-1]):
            seconds, results = way(jobs)
            samples.append(seconds)
            if way is one_after_the_other:
                reference = results
            else:
                concurrent_results = results
        same = same and all(np.array_equal(a, b) for ra, rb in zip(reference, concurrent_results)
                            for a, b in zip(ra, rb))
    overhead = small_op_overhead_us()

    seq, conc = statistics.median(sequential), statistics.median(concurrent)
    ratios = [c / s for s, c in zip(sequential, concurrent)]  # each pair ran back to back
    ratio = statistics.median(ratios)
    rows = [
        ["two trainings one after the other (s)", f"{seq:.2f}", " ".join(f"{t:.2f}" for t in sequential)],
        ["two trainings at once, two threads (s)", f"{conc:.2f}", " ".join(f"{t:.2f}" for t in concurrent)],
        ["at once / one after the other, per repeat", f"**{ratio:.2f}x**", " ".join(f"{q:.2f}" for q in ratios)],
        ["ratio of the two medians", f"{conc / seq:.2f}x", ""],
        ["same final weights both ways", "yes" if same else "NO", ""],
        ["one-call op overhead (us)", f"{overhead:.2f}", ""],
        ["BLAS threads before / after", f"{blas_before} / {blas_threads()}", ""],
    ]
    print(f"{args.steps} steps of batch {args.batch_size} per model, {args.repeats} repeats after a sequential "
          f"warm-up; {parallel.get_num_threads()} threads per op")
    print_table(["measure", "median", "each repeat"], rows)
    if args.json:
        write_json(args.json, dict(
            benchmark="bench_threads", machine=machine(), steps=args.steps, batch_size=args.batch_size,
            repeats=args.repeats, threads_per_op=parallel.get_num_threads(),
            sequential_seconds=sequential, concurrent_seconds=concurrent, sequential_median=seq,
            concurrent_median=conc, ratio=ratio, ratios=ratios, ratio_of_medians=conc / seq, same_weights=same,
            one_call_op_overhead_us=overhead, blas_threads_before=blas_before, blas_threads_after=blas_threads()))
    if not same:
        raise SystemExit("the concurrent trainings ended with other weights than the sequential ones")


if __name__ == "__main__":
    main()
