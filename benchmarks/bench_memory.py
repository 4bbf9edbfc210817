"""Peak memory of one epoch and of the evaluation after it, for several checkouts side by side.

    python benchmarks/bench_memory.py --checkout e996f8e=/work/baseline --checkout main=/work/main \
        --checkout memory=. --images 12896 --json benchmarks/results/epoch_memory_buffers.json

Runs benchmarks/epoch_child.py (one process per run: malloc's state and the peak are per process)
for each checkout and kind (`ours`: the example's way, with keep_freed_memory() where that
checkout's example calls it; `ours-user`: a user's own loop, no memory call), and prints the
training peak and the peak after predicting the 10,000 test images at batch 1000, in MB (VmHWM).
12,896 images is 100 batches of 128 and the epoch's last batch of 96, as in the full 60,000.
Memory figures do not depend on the machine's load; the seconds printed beside them do."""
import argparse
import json
import os
import subprocess
import sys

from common import provenance, write_json

HERE = os.path.dirname(os.path.abspath(__file__))


def run(kind, checkout, images):
    cmd = [sys.executable, os.path.join(HERE, "epoch_child.py"), "--kind", kind, "--checkout", checkout,
           "--images", str(images)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # --checkout alone decides
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkout", action="append", required=True, metavar="NAME=PATH")
    p.add_argument("--kinds", default="ours,ours-user")
    p.add_argument("--images", type=int, default=60000)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    checkouts = [c.split("=", 1) for c in args.checkout]
    rows = []
    print(f"{'checkout':<16} {'kind':<10} {'training peak MB':>17} {'after inference MB':>19} {'epoch s':>8}")
    for kind in args.kinds.split(","):
        for name, path in checkouts:
            info = run(kind, os.path.abspath(path), args.images)
            rows.append(dict(checkout=name, path=os.path.abspath(path), **info))
            print(f"{name:<16} {kind:<10} {info['peak_rss_mb']:>17.1f} {info['peak_rss_after_inference_mb']:>19.1f} "
                  f"{info['first_epoch_seconds']:>8.1f}", flush=True)
    write_json(args.json, dict(provenance(**dict(checkouts)), images=args.images, runs=rows))


if __name__ == "__main__":
    main()
