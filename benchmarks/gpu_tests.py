"""The gpu-marked tests in several pytest processes at once, for the GPU check (benchmarks/gpu_check.sh).

    python3 benchmarks/gpu_tests.py --shards 8 tests

NOTE: on a fresh GPU machine most of the time goes to compiling kernels (about 590 distinct ones, NVRTC
0.1-0.4 s each on first use), one after another in one process. Shards, taking whole test files (the
largest first, each to the least loaded shard), compile theirs side by side on the host's cores, and share
CuPy's on-disk kernel cache (CUPY_CACHE_DIR), so a kernel one compiled the others load. Every shard's
output is printed after it ends, then one line of totals; the exit status is non-zero if any shard failed."""
import argparse
import os
import re
import subprocess
import sys
import time


def shard(files, count):
    """`files` split into at most `count` lists of about equal total size (bytes of source)."""
    shards = [[] for _ in range(min(count, len(files)))]
    loads = [0] * len(shards)
    for f in sorted(files, key=lambda f: -os.path.getsize(f)):
        i = loads.index(min(loads))
        shards[i].append(f)
        loads[i] += os.path.getsize(f)
    return shards


def collect(paths):
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += [os.path.join(path, f) for f in sorted(os.listdir(path))
                      if f.startswith("test_") and f.endswith(".py")]
        else:
            files.append(path)
    return files


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+")
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("-m", dest="marker", default="gpu")
    args = p.parse_args(argv)
    start = time.perf_counter()
    procs = []
    for files in shard(collect(args.paths), args.shards):
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", args.marker, *files]
        procs.append((files, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    totals, status = {}, 0
    for files, proc in procs:
        out, _ = proc.communicate()
        print(f"==== shard: {' '.join(os.path.basename(f) for f in files)} (rc {proc.returncode})")
        print(out.rstrip())
        if proc.returncode not in (0, 5):  # 5: no test selected in these files
            status = 1
        last = out.strip().splitlines()[-1] if out.strip() else ""
        for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)", last):
            kind = "error" if kind.startswith("error") else kind
            totals[kind] = totals.get(kind, 0) + int(n)
    summary = ", ".join(f"{n} {k}" for k, n in sorted(totals.items()))
    print(f"==== all shards: {summary} in {time.perf_counter() - start:.0f} s ({len(procs)} shards)")
    return status


if __name__ == "__main__":
    sys.exit(main())
