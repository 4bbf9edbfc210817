"""Forward+backward time of each layer of the tutorial's CNN, ours against PyTorch in the same process.

    python benchmarks/bench_ops.py                 # table; PyTorch column when torch is installed
    python benchmarks/bench_ops.py --json benchmarks/results/ops_cpu.json --repeats 30
    python benchmarks/bench_ops.py --device cuda   # on a GPU (needs CuPy)
"""
import argparse

import numpy as np

from common import load_torch, machine, print_table, sync, time_interleaved, write_json

import tinygrad_cnn as tg
from tinygrad_cnn.nn import functional as F

N = 128


def workloads():
    """(name, input shapes, ours(ctx, *inputs), theirs(torch, ctx, *inputs)) for each benchmarked layer."""
    return [
        ("conv1 1->32 28x28 3x3 pad1", [(N, 1, 28, 28), (32, 1, 3, 3), (32,)],
         lambda t, x, w, b: F.conv2d(x, w, b, padding=1),
         lambda torch, t, x, w, b: torch.nn.functional.conv2d(x, w, b, padding=1)),
        ("conv2 32->64 14x14 3x3 pad1", [(N, 32, 14, 14), (64, 32, 3, 3), (64,)],
         lambda t, x, w, b: F.conv2d(x, w, b, padding=1),
         lambda torch, t, x, w, b: torch.nn.functional.conv2d(x, w, b, padding=1)),
        ("conv1 block: conv+relu+pool", [(N, 1, 28, 28), (32, 1, 3, 3), (32,)],
         lambda t, x, w, b: F.conv2d_max_pool2d(x, w, b, padding=1, pool_size=2, relu=True),
         lambda torch, t, x, w, b: torch.nn.functional.max_pool2d(
             torch.relu(torch.nn.functional.conv2d(x, w, b, padding=1)), 2)),
        ("conv2 block: conv+relu+pool", [(N, 32, 14, 14), (64, 32, 3, 3), (64,)],
         lambda t, x, w, b: F.conv2d_max_pool2d(x, w, b, padding=1, pool_size=2, relu=True),
         lambda torch, t, x, w, b: torch.nn.functional.max_pool2d(
             torch.relu(torch.nn.functional.conv2d(x, w, b, padding=1)), 2)),
        ("max_pool 2x2 (128,32,28,28)", [(N, 32, 28, 28)],
         lambda t, x: F.max_pool2d(x, 2),
         lambda torch, t, x: torch.nn.functional.max_pool2d(x, 2)),
        ("relu (128,32,28,28)", [(N, 32, 28, 28)],
         lambda t, x: x.relu(),
         lambda torch, t, x: torch.relu(x)),
        ("dense 3136->128", [(N, 3136), (128, 3136), (128,)],
         lambda t, x, w, b: F.linear(x, w, b),
         lambda torch, t, x, w, b: torch.nn.functional.linear(x, w, b)),
        ("cross_entropy (128,10)", [(N, 10)],
         lambda t, x: F.cross_entropy(x, t["labels"]),
         lambda torch, t, x: torch.nn.functional.cross_entropy(x, t["labels"])),
    ]


def make_runs(device, torch, torch_device):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, N)
    ctx = {"labels": tg.Tensor(labels, device=device)}
    torch_ctx = {"labels": torch.as_tensor(labels, device=torch_device)} if torch is not None else None
    out = []
    for name, shapes, ours, theirs in workloads():
        arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        ours_in = [tg.Tensor(a, device=device, requires_grad=True) for a in arrays]
        upstream = {}

        def run_ours(ours=ours, ours_in=ours_in, upstream=upstream):
            y = ours(ctx, *ours_in)
            if "g" not in upstream:
                upstream["g"] = tg.Tensor(np.ones(y.shape, np.float32), device=device)
            y.backward(upstream["g"])
            sync(device)

        runs = {"ours": run_ours}
        if torch is not None:
            torch_in = [torch.tensor(a, device=torch_device, requires_grad=True) for a in arrays]

            def run_torch(theirs=theirs, torch_in=torch_in):
                y = theirs(torch, torch_ctx, *torch_in)
                y.backward(torch.ones_like(y))
                if torch_device.startswith("cuda"):
                    torch.cuda.synchronize()

            runs["torch"] = run_torch
        out.append((name, runs))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--system-malloc", action="store_true",
                   help="leave glibc's malloc at its defaults (no tinygrad_cnn.memory.keep_freed_memory())")
    args = p.parse_args(argv)
    device = tg.device.canonical_device(args.device)
    kept = False if args.system_malloc else tg.memory.keep_freed_memory()  # both frameworks share the process
    torch = load_torch(device)
    torch_device = "cuda" if device.startswith("cuda") else "cpu"
    if torch is None:
        print("PyTorch not installed: no peer column (pip install torch==2.13.0 for the CPU wheel)")
    rows, results = [], []
    for name, runs in make_runs(device, torch, torch_device):
        times = time_interleaved(runs, args.repeats)
        ours = times["ours"] * 1e3
        theirs = times.get("torch")
        ratio = times["ours"] / theirs if theirs else None
        rows.append([name, f"{ours:.2f}", f"{theirs * 1e3:.2f}" if theirs else "-", f"{ratio:.2f}x" if ratio else "-"])
        results.append(dict(op=name, ours_ms=ours, torch_ms=theirs * 1e3 if theirs else None, ratio=ratio))
    print(f"\nforward+backward, batch {N}, float32, device {device}, median of {args.repeats}, "
          f"freed memory kept for reuse: {kept}")
    print_table(["op", "ours ms", "PyTorch ms", "ours/PyTorch"], rows)
    write_json(args.json, dict(device=device, repeats=args.repeats, keep_freed_memory=kept, machine=machine(),
                               ops=results))
    return results


if __name__ == "__main__":
    main()
