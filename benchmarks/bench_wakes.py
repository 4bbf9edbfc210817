"""How often a two-thread training step puts a thread to sleep, and what each sleep costs here.

    python benchmarks/bench_wakes.py                                   # 8 quiet rounds, direct and Winograd conv2
    python benchmarks/bench_wakes.py --json benchmarks/results/wakes_poll0.json

Two threads of one process share the GIL: a thread that comes back from a NumPy call while the other
runs Python code between its calls waits for it, asleep, and so does a pool thread between ops. Each
such sleep is a voluntary context switch (counted per thread by Linux in /proc/self/task/*/status: a
count, not a time, so it is asserted in tests and compared between kernels). What a sleep costs is a
property of the machine: on a virtual machine whose idle CPU halts at once, waking the sleeper takes an
interrupt through the hypervisor (tens of microseconds); where the idle CPU polls for a while first
(bare metal, or a guest's haltpoll setting), it is nearly free.

The script measures, in one process, alternating in every round:
- a wake round trip: one Python thread sets an Event that another waits on, and back;
- the tutorial's step (batch 128, Adam, two threads) with conv2 on the direct kernel and on Winograd
  (kernels/winograd.py): wall and CPU time a step, and voluntary switches a step and per split op.
Rounds in which other processes used more than --max-others of a core are measured again. It records the
guest's idle polling setting (/sys/module/haltpoll/parameters/guest_halt_poll_ns, None where there is
none) but never changes it: to compare, set it yourself (as root) between two runs, e.g.
`echo 200000 > /sys/module/haltpoll/parameters/guest_halt_poll_ns`, and put it back afterwards.
"""
import argparse
import glob
import os
import statistics
import threading
import time

from common import machine, machine_busy_seconds, print_table, write_json

from tinygrad_cnn.kernels import parallel, winograd
from bench_two_cores import make_step

KERNELS = {"direct": None, "winograd": 32}  # winograd.WINS_FROM_CHANNELS for each side


def sides(chunk_mbs):
    """{side name: (winograd.WINS_FROM_CHANNELS, winograd.CHUNK_BYTES or None for the module's own)}:
    direct, Winograd, and Winograd at each of the chunk sizes `chunk_mbs` (MiB)."""
    found = {name: (wins, None) for name, wins in KERNELS.items()}
    for mb in chunk_mbs:
        found[f"winograd {mb:g} MiB chunks"] = (KERNELS["winograd"], int(mb * (1 << 20)))
    return found


def voluntary_switches():
    """Voluntary context switches of all this process's threads so far (Linux), or None."""
    total = 0
    for path in glob.glob(f"/proc/{os.getpid()}/task/*/status"):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        total += int(line.split()[1])
        except OSError:  # a thread that exited meanwhile
            continue
    return total if glob.glob(f"/proc/{os.getpid()}/task") else None


def halt_poll_setting():
    """The guest's idle polling time in ns (haltpoll cpuidle driver), or None where there is none."""
    try:
        with open("/sys/module/haltpoll/parameters/guest_halt_poll_ns") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def wake_round_trip_us(trips=2000):
    """Median time for one thread to wake another through an Event and be woken back, in us."""
    ping, pong, times = threading.Event(), threading.Event(), []

    def partner():
        for _ in range(trips):
            ping.wait()
            ping.clear()
            pong.set()
    thread = threading.Thread(target=partner)
    thread.start()
    for _ in range(trips):
        start = time.perf_counter()
        ping.set()
        pong.wait()
        pong.clear()
        times.append(time.perf_counter() - start)
    thread.join()
    return statistics.median(times) * 1e6


class OpSwitches:
    """Wraps parallel._run (every split op passes through it) to count the switches during each op."""

    def __init__(self):
        self.counts, self.original = {}, parallel._run

    def __enter__(self):
        def run(xp, elements, work, args, alone):
            if getattr(parallel._inside, "active", False):
                return self.original(xp, elements, work, args, alone)
            before = voluntary_switches()
            result = self.original(xp, elements, work, args, alone)
            name = getattr(work, "__qualname__", repr(work)).replace(".<locals>.work", "").replace(".<locals>", "")
            self.counts.setdefault(f"{name} ({elements:,} values)", []).append(voluntary_switches() - before)
            return result
        parallel._run = run
        return self

    def __exit__(self, *exc):
        parallel._run = self.original


def timed_side(step, side, steps):
    """(wall ms, CPU ms, switches) a step with conv2 on `side` (wins, chunk bytes: see `sides`), the
    switches per op per step, and the share of a core other processes used meanwhile."""
    winograd.WINS_FROM_CHANNELS, chunk = side
    if chunk is not None:
        winograd.CHUNK_BYTES = chunk
    step(0)
    step(1)
    with OpSwitches() as ops:
        busy, cpu, wall, switches = machine_busy_seconds(), time.process_time(), time.perf_counter(), \
            voluntary_switches()
        for i in range(steps):
            step(i)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        switches = voluntary_switches() - switches
    others = None if busy is None else max(0.0, machine_busy_seconds() - busy - cpu) / wall
    per_op = {name: sum(counts) / steps for name, counts in ops.counts.items()}
    return (wall / steps * 1e3, cpu / steps * 1e3, switches / steps), per_op, others


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=8, help="quiet rounds of both kernels")
    p.add_argument("--steps", type=int, default=10, help="steps per side per round")
    p.add_argument("--max-others", type=float, default=0.1,
                   help="measure a round again when other processes used more than this share of a core")
    p.add_argument("--winograd-chunk-mb", default="",
                   help="comma-separated chunk sizes (MiB) to time Winograd at besides its own "
                        f"({winograd.CHUNK_BYTES / (1 << 20):g}): bigger chunks, fewer NumPy calls and sleeps")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    kernels = sides([float(mb) for mb in args.winograd_chunk_mb.split(",") if mb])
    if voluntary_switches() is None:
        raise SystemExit("bench_wakes: needs Linux's /proc/self/task")
    if parallel.cpu_count() < 2:
        raise SystemExit("bench_wakes: this machine has one core")
    saved = winograd.WINS_FROM_CHANNELS, winograd.CHUNK_BYTES
    parallel.set_num_threads(2)
    step = make_step()
    for i in range(3):
        step(i)
    found, per_op, trips, dropped, attempts = {k: [] for k in kernels}, {k: {} for k in kernels}, [], 0, 0
    try:
        while len(found["direct"]) < args.rounds and attempts < 6 * args.rounds:
            attempts += 1
            order = list(kernels) if attempts % 2 else list(kernels)[::-1]
            results = {}
            for kernel in order:  # (each side sets the chunk size, and its own-size side the module's)
                winograd.CHUNK_BYTES = saved[1]
                results[kernel] = timed_side(step, kernels[kernel], args.steps)
            if any(r[2] is not None and r[2] > args.max_others for r in results.values()):
                dropped += 1
                continue
            trips.append(wake_round_trip_us())
            for kernel, (figures, ops, _) in results.items():
                found[kernel].append(figures)
                for name, count in ops.items():
                    per_op[kernel].setdefault(name, []).append(count)
    finally:
        winograd.WINS_FROM_CHANNELS, winograd.CHUNK_BYTES = saved
    if not found["direct"]:
        raise SystemExit(f"bench_wakes: no round was quiet enough (--max-others {args.max_others})")
    median = {k: [statistics.median(r[i] for r in found[k]) for i in range(3)] for k in kernels}
    ratios = {k: [w[0] / d[0] for d, w in zip(found["direct"], found[k])] for k in kernels if k != "direct"}
    poll = halt_poll_setting()
    print(f"{len(found['direct'])} quiet rounds of {args.steps} steps each ({dropped} dropped: other processes "
          f"busy); guest_halt_poll_ns: {poll}; wake round trip {statistics.median(trips):.0f} us (median)")
    print_table(["conv2 kernel", "wall ms/step", "CPU ms/step", "sleeps/step"],
                [[k, f"{median[k][0]:.1f}", f"{median[k][1]:.1f}", f"{median[k][2]:.0f}"] for k in kernels])
    for k, r in ratios.items():
        print(f"{k} / direct, per round: {statistics.median(r):.3f} ({min(r):.3f}-{max(r):.3f})")
    print()
    ops = {k: {name: statistics.median(v) for name, v in per_op[k].items()} for k in kernels}
    print_table(["split op"] + [f"{k}: sleeps/step" for k in kernels],
                [[name] + [f"{ops[k].get(name, 0):.0f}" for k in kernels]
                 for name in sorted(set().union(*(ops[k] for k in kernels)))])
    write_json(args.json, {
        "machine": machine(), "guest_halt_poll_ns": poll, "threads": 2, "steps": args.steps,
        "max_others": args.max_others, "quiet_rounds": len(found["direct"]), "dropped_rounds": dropped,
        "wake_round_trip_us": {"median": statistics.median(trips), "rounds": trips},
        "per_step": {k: {"wall_ms": median[k][0], "cpu_ms": median[k][1], "sleeps": median[k][2],
                         "rounds": [list(r) for r in found[k]]} for k in kernels},
        "winograd_chunk_bytes": {k: (chunk or saved[1]) for k, (wins, chunk) in kernels.items() if wins},
        "winograd_over_direct": {"median": statistics.median(ratios["winograd"]), "rounds": ratios["winograd"]},
        "over_direct": {k: {"median": statistics.median(r), "rounds": r} for k, r in ratios.items()},
        "sleeps_per_op": ops})


if __name__ == "__main__":
    main()
