"""Where a training step's second core goes: one thread against two, and each split op's share.

    python benchmarks/bench_two_cores.py                      # 8 quiet rounds of 10 steps each way
    python benchmarks/bench_two_cores.py --json benchmarks/results/two_cores.json

The tutorial's model (batch 128, Adam) trains in this process; each round runs 10 steps with one
thread and 10 with two (parallel.set_num_threads), in alternating order, and records the wall time
and the process's CPU time of a step. A round in which other processes of the machine used more
than --max-others of a core is measured again (common.machine_busy_seconds), so that another job's
burst does not pass for our cost. Then, with two threads, every op that splits its work
(parallel.over_batch/over_chunks) is timed on its own: its wall time, the CPU time both threads
spent in its slices, and how long the first thread to finish waited for the other; the rest of the
step (autograd, small ops that run as one call) is the serial part.

What the figures separate: two cores would halve a step if the work were all split, cost the same
CPU time split as in one thread, and the threads finished together. The table gives each term: the
CPU time two threads spend against one thread's ("inflation"), the serial part, the waits at the
ends of ops.
"""
import argparse
import os
import statistics
import threading
import time

import numpy as np

from common import machine, machine_busy_seconds, print_table, write_json

import tinygrad_cnn as tg
from tinygrad_cnn import optim
from tinygrad_cnn.datasets import mnist
from tinygrad_cnn.kernels import parallel, winograd
from tinygrad_cnn.nn import functional as F
from mnist import build_model  # examples/mnist.py

BATCH = 128


def make_step():
    (images, labels), _ = mnist.load_data()
    x = mnist.to_float_images(images[:BATCH * 40])
    y = labels[:BATCH * 40].astype(np.int64)
    tg.manual_seed(0)
    model = build_model()
    opt = optim.Adam(model.parameters(), lr=1e-3)

    def step(i):
        i %= 40
        loss = F.cross_entropy(model.logits(tg.Tensor(x[i * BATCH:(i + 1) * BATCH])),
                               tg.Tensor(y[i * BATCH:(i + 1) * BATCH]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def timed_round(step, threads, steps):
    """(wall ms, CPU ms) per step over `steps` steps with `threads` threads, and the share of a core
    that other processes used meanwhile (None where unknown)."""
    parallel.set_num_threads(threads)
    step(0)
    step(1)
    busy, cpu, wall = machine_busy_seconds(), time.process_time(), time.perf_counter()
    for i in range(steps):
        step(i)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    others = None if busy is None else max(0.0, machine_busy_seconds() - busy - cpu) / wall
    return wall / steps * 1e3, cpu / steps * 1e3, others


class OpTimes:
    """Wraps parallel._run (the one place split ops pass through) to time each op's slices."""

    def __init__(self):
        self.records, self.original = [], parallel._run

    def __enter__(self):
        def run(xp, elements, work, args, alone):
            if getattr(parallel._inside, "active", False):
                return self.original(xp, elements, work, args, alone)
            ends, cpu = {}, {}

            def timed(arg):
                me, start = threading.get_ident(), time.thread_time()
                try:
                    return work(arg)
                finally:
                    ends[me] = time.perf_counter()
                    cpu[me] = cpu.get(me, 0.0) + time.thread_time() - start
            begin = time.perf_counter()
            result = self.original(xp, elements, timed, args, alone)
            end = time.perf_counter()
            name = getattr(work, "__qualname__", repr(work)).replace(".<locals>.work", "").replace(".<locals>", "")
            self.records.append((f"{name} ({elements:,} values)", end - begin, sum(cpu.values()),
                                 end - min(ends.values()) if len(ends) > 1 else 0.0, len(ends)))
            return result
        parallel._run = run
        return self

    def __exit__(self, *exc):
        parallel._run = self.original


def op_table(step, steps, threads, blocks, max_others):
    """Per split op: median wall ms, CPU ms of all threads, wait ms of the thread that finished
    first, threads used; the serial part of the step and the step, with `threads` threads, over
    `blocks` blocks of `steps` steps in which other processes used at most max_others of a core."""
    parallel.set_num_threads(threads)
    step(0)
    per_op, serial, walls, kept, attempts = {}, [], [], 0, 0
    with OpTimes() as times:
        while kept < blocks and attempts < 6 * blocks:
            attempts += 1
            found, busy, cpu, start = [], machine_busy_seconds(), time.process_time(), time.perf_counter()
            for i in range(steps):
                times.records.clear()
                begin = time.perf_counter()
                step(i)
                found.append((time.perf_counter() - begin, list(times.records)))
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            if busy is not None and (machine_busy_seconds() - busy - cpu) / wall > max_others:
                continue
            kept += 1
            for step_wall, records in found:
                walls.append(step_wall)
                serial.append(step_wall - sum(r[1] for r in records))
                for name, op_wall, op_cpu, wait, used in records:
                    per_op.setdefault(name, []).append((op_wall, op_cpu, wait, used))
    if not walls:
        raise SystemExit(f"bench_two_cores: no block of steps was quiet enough (--max-others {max_others})")
    rows = {name: [statistics.median(v[k] for v in values) * (1e3 if k < 3 else 1) for k in range(4)]
            for name, values in per_op.items()}
    return rows, statistics.median(serial) * 1e3, statistics.median(walls) * 1e3


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=8, help="quiet rounds of one and two threads")
    p.add_argument("--steps", type=int, default=10, help="steps per side per round")
    p.add_argument("--max-others", type=float, default=0.1,
                   help="measure a round again when other processes used more than this share of a core")
    p.add_argument("--conv2", choices=("direct", "winograd"), default="direct",
                   help="conv2's kernel for the whole run: the default direct one, or Winograd (kernels/winograd.py)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if parallel.get_num_threads() < 2 and parallel.cpu_count() < 2:
        raise SystemExit("bench_two_cores: this machine has one core")
    winograd.WINS_FROM_CHANNELS = 32 if args.conv2 == "winograd" else None
    step = make_step()
    for i in range(3):
        step(i)
    found, dropped, attempts = {1: [], 2: []}, 0, 0
    while len(found[1]) < args.rounds and attempts < 6 * args.rounds:
        attempts += 1
        order = (1, 2) if attempts % 2 else (2, 1)
        results = {threads: timed_round(step, threads, args.steps) for threads in order}
        if any(r[2] is not None and r[2] > args.max_others for r in results.values()):
            dropped += 1
            continue
        for threads, (wall, cpu, _) in results.items():
            found[threads].append((wall, cpu))
    if not found[1]:
        raise SystemExit(f"bench_two_cores: no round was quiet enough (--max-others {args.max_others})")
    median = {t: [statistics.median(r[k] for r in found[t]) for k in (0, 1)] for t in found}
    ratios = [b[0] / a[0] for a, b in zip(found[1], found[2])]
    cpu_ratios = [b[1] / a[1] for a, b in zip(found[1], found[2])]
    print(f"conv2 on the {args.conv2} kernel; {len(found[1])} quiet rounds of {args.steps} steps each way ({dropped} dropped: other processes busy)")
    print_table(["threads", "wall ms/step", "CPU ms/step"],
                [[t, f"{median[t][0]:.1f}", f"{median[t][1]:.1f}"] for t in (1, 2)])
    print(f"two threads / one: wall {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}), "
          f"CPU {statistics.median(cpu_ratios):.3f} ({min(cpu_ratios):.3f}-{max(cpu_ratios):.3f})\n")
    alone, serial_alone, _ = op_table(step, args.steps, 1, 2, args.max_others)
    rows, serial, step_wall = op_table(step, args.steps, 2, 4, args.max_others)
    print(f"per split op, medians of {2 * args.steps} quiet steps on one thread and {4 * args.steps} on two "
          f"(one step on two: {step_wall:.1f} ms):")
    print_table(["op", "one thread ms", "two: wall ms", "two: CPU ms", "CPU two / one", "two: wait at end ms"],
                [[name, f"{alone[name][1]:.2f}", f"{w:.2f}", f"{c:.2f}", f"{c / alone[name][1]:.2f}", f"{e:.2f}"]
                 for name, (w, c, e, u) in rows.items() if u > 1] +
                [["serial part (outside split ops)", f"{serial_alone:.2f}", f"{serial:.2f}", "", "", ""]])
    write_json(args.json, {
        "machine": machine(), "conv2": args.conv2, "batch": BATCH, "steps": args.steps, "max_others": args.max_others,
        "quiet_rounds": len(found[1]), "dropped_rounds": dropped,
        "ms_per_step": {str(t): {"wall": median[t][0], "cpu": median[t][1],
                                 "rounds": [list(r) for r in found[t]]} for t in found},
        "two_over_one": {"wall_median": statistics.median(ratios), "wall_rounds": ratios,
                         "cpu_median": statistics.median(cpu_ratios), "cpu_rounds": cpu_ratios},
        "one_thread_per_op_ms": {name: dict(zip(("wall", "cpu", "wait_at_end", "threads"), values))
                                 for name, values in alone.items()},
        "two_threads_per_op_ms": {name: dict(zip(("wall", "cpu_both_threads", "wait_at_end", "threads"), values))
                                  for name, values in rows.items()},
        "one_thread_serial_ms": serial_alone, "two_threads_serial_ms": serial, "two_threads_step_ms": step_wall})


if __name__ == "__main__":
    main()
