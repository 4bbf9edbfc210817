"""Interleaved A/B of a training step of the tutorial's CNN between two checkouts of the package.

    python benchmarks/bench_ab.py --a /work/main --b . --rounds 8 --steps 10
    python benchmarks/bench_ab.py --a . --b . --b-env TINYGRAD_CNN_KERNELS=reference   # kernels vs reference
    python benchmarks/bench_ab.py --a . --b . --keep-freed B   # B calls tg.memory.keep_freed_memory()
    python benchmarks/bench_ab.py --a /work/main --b . --infer --rounds 20 --steps 10   # inference instead
    python benchmarks/bench_ab.py --a /work/main --b . --max-others 0.1   # keep only rounds no other job disturbed

Each side runs in its own long-lived worker process (its checkout first on sys.path), with the same
model, seed and batch of 128 MNIST-sized images; the rounds alternate A, B, B, A, ... so that noise
from other work on the machine hits both alike. Prints the median step time of each side per round,
and the ratio B/A of the medians with the spread over rounds. With --max-others, a round in which
other processes of the machine used more than that share of a core (/proc/stat, less the side's own
CPU time) is measured again; the dropped attempts are counted.

With --infer a "step" is instead one batch of what benchmarks/epoch_child.py times for inference:
predicting 1000 of the 10,000 MNIST test images (the next batch each step; `with tg.no_grad()`,
model.logits, argmax, .numpy()) with the untrained model (the work does not depend on the weights);
images/s (1000 / the median step) is also printed."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from common import machine_busy_seconds, provenance

WORKER = r"""
import sys, time
import numpy as np
import tinygrad_cnn as tg
from tinygrad_cnn import nn, optim
from tinygrad_cnn.nn import functional as F
print(tg.__file__, file=sys.stderr)
if sys.argv[1] == "keep":  # process-wide, hence a side of its own
    assert tg.memory.keep_freed_memory()
tg.manual_seed(0)
model = nn.Sequential([
    nn.Conv2D(32, 3, padding="same", activation="relu"), nn.MaxPool2D(2, strides=2),
    nn.Conv2D(64, 3, padding="same", activation="relu"), nn.MaxPool2D(2, strides=2),
    nn.Flatten(), nn.Dense(128, activation="relu"), nn.Dense(10, activation="softmax")], input_shape=(1, 28, 28))
opt = optim.Adam(model.parameters(), lr=1e-3)
rng = np.random.default_rng(0)
x = tg.Tensor(rng.random((128, 1, 28, 28), dtype=np.float32))
y = tg.Tensor(rng.integers(0, 10, 128))

def step():
    loss = F.cross_entropy(model.logits(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()

if sys.argv[2] == "infer":  # epoch_child.py's inference: 10,000 test images, batch 1000
    from tinygrad_cnn.datasets import mnist
    model.eval()
    test = mnist.to_float_images(mnist.load_data()[1][0])

    def predict(batch):
        with tg.no_grad():
            return model.logits(tg.Tensor(batch)).argmax(axis=1).numpy()

    batches = [test[i:i + 1000] for i in range(0, len(test), 1000)]

    def step():  # one batch of 1000, the next of the 10 each time
        batches.append(batches.pop(0))
        return predict(batches[0])

for _ in range(3 if sys.argv[2] == "train" else 10):
    step()
def faults():
    try:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    except ImportError:  # (not on Windows)
        return 0

def peak_mb():
    try:
        with open("/proc/self/status") as f:
            return [int(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM:")][0]
    except (OSError, IndexError):
        return 0.0

for line in sys.stdin:
    times, before, cpu = [], faults(), time.process_time()
    for _ in range(int(line)):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(" ".join(repr(t) for t in times), "|", faults() - before, peak_mb(), time.process_time() - cpu, flush=True)
"""


def start(checkout, env, keep=False, infer=False):
    environment = {**os.environ, "PYTHONPATH": os.path.abspath(checkout), **env}
    return subprocess.Popen([sys.executable, "-c", WORKER, "keep" if keep else "default", "infer" if infer else "train"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=environment, cwd=os.path.abspath(checkout))


def run(worker, steps):
    """The step times of `steps` steps, the page faults they took (minor: memory the kernel handed
    the process, zeroed), the worker's peak resident memory so far in MB, and the share of a core
    that other processes of the machine used meanwhile (None where unknown: not Linux)."""
    busy, wall = machine_busy_seconds(), time.perf_counter()
    worker.stdin.write(f"{steps}\n")
    worker.stdin.flush()
    times, counts = worker.stdout.readline().split("|")
    wall = time.perf_counter() - wall
    faults, peak, cpu = counts.split()
    others = None if busy is None else max(0.0, machine_busy_seconds() - busy - float(cpu)) / wall
    return [float(t) for t in times.split()], int(faults), float(peak), others


def _commit(checkout):
    """The checkout's HEAD (its working tree may differ: a copy of a worktree reports the live branch's)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.abspath(checkout)).stdout.strip() or None
    except OSError:
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", required=True, help="checkout A (e.g. /work/main)")
    p.add_argument("--b", required=True, help="checkout B")
    p.add_argument("--a-env", default="", help="NAME=value,... for A's worker")
    p.add_argument("--b-env", default="", help="NAME=value,... for B's worker")
    p.add_argument("--keep-freed", choices=["none", "A", "B", "both"], default="none",
                   help="which side's worker calls tg.memory.keep_freed_memory() (glibc malloc, process-wide)")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--steps", type=int, default=10, help="training steps per side per round")
    p.add_argument("--infer", action="store_true",
                   help="time inference (a batch of 1000 test images, no_grad) instead of training steps")
    p.add_argument("--max-others", type=float, default=None,
                   help="repeat a round in which other processes used more than this share of a core (e.g. 0.1) "
                        "while either side ran (Linux; at most 4x --rounds attempts)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    parse = lambda text: dict(kv.split("=", 1) for kv in text.split(",") if kv)  # noqa: E731
    keep = {side: args.keep_freed in (side, "both") for side in ("A", "B")}
    workers = {side: start(getattr(args, side.lower()), parse(getattr(args, side.lower() + "_env")), keep[side],
                           args.infer)
               for side in ("A", "B")}
    medians, faults, peaks = {"A": [], "B": []}, {"A": [], "B": []}, {}
    dropped, attempt = 0, 0
    try:
        # NOTE: on a shared machine another job's burst hits one side of a round and not the other;
        # with --max-others such a round is measured again rather than kept (counted as dropped)
        while len(medians["A"]) < args.rounds and attempt < 4 * args.rounds:
            r, attempt = len(medians["A"]), attempt + 1
            found = {}
            for side in ("A", "B") if attempt % 2 == 1 else ("B", "A"):
                times, count, peaks[side], others = run(workers[side], args.steps)
                found[side] = statistics.median(times), count / args.steps, others
            busiest = max((found[side][2] or 0.0) for side in found)
            if args.max_others is not None and busiest > args.max_others:
                dropped += 1
                print(f"(attempt {attempt}: other processes used {busiest:.2f} of a core; measured again)", flush=True)
                continue
            for side in found:
                medians[side].append(found[side][0])
                faults[side].append(found[side][1])
            print(f"round {r + 1}: A {medians['A'][-1] * 1e3:7.1f} ms   B {medians['B'][-1] * 1e3:7.1f} ms   "
                  f"B/A {medians['B'][-1] / medians['A'][-1]:.3f}", flush=True)
    finally:
        for w in workers.values():
            w.stdin.close()
            w.wait(timeout=60)
    if not medians["A"]:
        raise SystemExit(f"bench_ab: no round was quiet enough (--max-others {args.max_others}) in {attempt} attempts")
    ratios = [b / a for a, b in zip(medians["A"], medians["B"])]
    if dropped:
        print(f"{dropped} attempts dropped: other processes were busy (--max-others {args.max_others})")
    a, b = statistics.median(medians["A"]), statistics.median(medians["B"])
    print(f"\nmedian step: A {a * 1e3:.1f} ms, B {b * 1e3:.1f} ms; B/A {b / a:.3f}; B/A per round: median "
          f"{statistics.median(ratios):.3f}, {min(ratios):.3f} to {max(ratios):.3f}")
    if args.infer:
        print(f"inference images/s (1000 images / median step): A {1e3 / a:.0f}, B {1e3 / b:.0f}")
    per_step = {side: statistics.median(faults[side][1:] or faults[side]) for side in faults}  # (round 1 warms up)
    print(f"page faults per step (median over rounds): A {per_step['A']:.0f}, B {per_step['B']:.0f}; "
          f"peak resident memory: A {peaks['A']:.0f} MB, B {peaks['B']:.0f} MB")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({**provenance(), "a": args.a, "b": args.b, "a_env": args.a_env, "b_env": args.b_env,
                       "keep_freed": args.keep_freed, "steps": args.steps, "rounds": len(medians["A"]),
                       "max_others": args.max_others, "dropped_rounds": dropped,
                       "measured": "inference: a batch of 1000 MNIST test images, no_grad" if args.infer
                       else "training step, batch 128",
                       "side_commits": {"A": _commit(args.a), "B": _commit(args.b)},
                       "median_ms": {"A": a * 1e3, "B": b * 1e3}, "ratio": b / a,
                       "median_round_ratio": statistics.median(ratios),
                       "round_ratios": ratios, "faults_per_step": per_step, "peak_rss_mb": peaks,
                       "median_ms_per_round": {side: [m * 1e3 for m in medians[side]] for side in medians}},
                      f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
