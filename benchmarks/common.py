"""Shared helpers for the benchmarks: timing, the optional PyTorch peer, tables and JSON."""
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "examples"))


def load_torch(device="cpu"):
    """PyTorch if installed (`pip install torch==2.13.0`), else None: it is only a peer to compare with."""
    try:
        import torch
    except ImportError:
        return None
    if device.startswith("cuda") and not torch.cuda.is_available():
        return None
    return torch


def sync(device):
    """Wait for queued GPU work so a timer measures it (no-op on the CPU)."""
    if device.startswith("cuda"):
        import cupy
        cupy.cuda.Device().synchronize()


def time_interleaved(runs, repeats, warmup=2, busy=0.03):
    """Median seconds of each named callable: time_samples' medians."""
    return {name: statistics.median(s) for name, s in time_samples(runs, repeats, warmup, busy).items()}


def time_samples(runs, repeats, warmup=2, busy=0.03):
    """Seconds of each timed call (a list of `repeats`) of each named callable, alternating between
    them so machine noise hits all alike. Each timed call follows untimed calls of the same callable for at least `busy`
    seconds: PyTorch's OpenMP threads keep spinning for several milliseconds after its last op,
    and a timed call right after them would run on a core they still hold. (Pausing instead
    does not work here: after 20 ms idle, these cores run the next few milliseconds at half
    speed.)"""
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            until = time.perf_counter() + busy
            fn()
            while time.perf_counter() < until:
                fn()
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def thread_samples(runs, repeats, warmup=2):
    """CPU seconds of the calling thread per call of each callable (a list of `repeats`), alternating
    between them (with one thread: waiting for a core on a loaded machine does not count)."""
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.thread_time()
            fn()
            samples[name].append(time.thread_time() - start)
    return samples


def machine():
    info = dict(python=platform.python_version(), machine=platform.machine(), cpus=os.cpu_count())
    try:
        import numpy
        info["numpy"] = numpy.__version__
    except ImportError:
        pass
    torch = load_torch()
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def commit(path=ROOT):
    """The checkout's HEAD hash, with '+changes' when its tracked files differ from it (None outside git)."""
    def git(*args):
        out = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else None
    head = git("rev-parse", "HEAD")
    return head and head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def spread(values):
    """(median, min, max) of a list of numbers."""
    return statistics.median(values), min(values), max(values)


def print_table(headers, rows):
    """A plain aligned table (Markdown-compatible)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells[1:]:
        print(line(r))


def provenance(**checkouts):
    """When, at which commit and by which command a results file was written (issue 27: every figure
    must be traceable to a re-runnable command), the commits of other `checkouts` (name=path) it
    compared, and the load average when the run started (how busy the machine was). The commit gets
    '+changes' when the work tree differs."""
    now = datetime.datetime.now(datetime.timezone.utc)
    info = dict(date=now.strftime("%Y-%m-%d"), time_utc=now.strftime("%H:%M"), commit=commit() or "unknown",
                command=" ".join(shlex.quote(a) for a in ["python", os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]))
    info.update({f"{name}_commit": commit(path) for name, path in checkouts.items()})
    try:
        info["load_average_at_start"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    return info


def write_json(path, payload):
    """Write `payload` (a dict) as JSON, stamped with provenance() where it lacks those keys."""
    if not path:
        return
    payload = {**provenance(), **payload} if isinstance(payload, dict) else payload
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    print(f"wrote {path}")


def peak_rss_mb():
    """Peak resident memory of this process in MB.

    NOTE: Linux's VmHWM starts afresh at exec; ru_maxrss does not (a child started by a big
    parent reports at least the parent's peak), so it is only the fallback off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine_busy_seconds():
    """CPU seconds all processes of the machine have run so far (Linux /proc/stat: every state but idle
    and iowait), or None where there is no /proc/stat. With each side's own CPU time, a benchmark
    learns how much CPU other processes took while it ran (see bench_ab.py --max-others)."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")

