"""Kernel launches, blocking syncs and host<->device bytes of one training step, on the CuPy emulation.

    python benchmarks/bench_gpu_budget.py                 # table: totals, by phase, top launch sites
    python benchmarks/bench_gpu_budget.py --json benchmarks/results/gpu_budget_emulated.json

One step of the tutorial model (examples/mnist.py's build_model) at batch 128: forward, cross-entropy
loss, backward and Adam's step, from host batches as a user's loop gives them. It runs on the strict
CuPy emulation (tests/cupy_emulation) even where a GPU exists, since only it counts; with the host's
thread count set to 16 as on the device machine (the count must not change what runs on a GPU).

NOTE: counts, not time. On a GPU this step is bound by launches (5-15 us each from Python), so the
launch count is the budget; the emulation counts one launch per call that writes device memory, a
model of CuPy's count (see tests/cupy_emulation's limits), except concatenate, stack, matmul and dot,
which it counts by CuPy 14.2's own code paths (tests/cupy_emulation/launch_rules.json). The counts are
deterministic."""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the emulation lives with the tests
sys.path.insert(0, os.path.join(ROOT, "examples"))
sys.path.insert(0, ROOT)

import cupy_emulation  # noqa: E402

PHASES = ("forward", "loss", "backward", "adam")


def measure(batch=128, threads=16, top=15):
    """Counts of one training step (after a first, warm-up step that creates Adam's state), in
    total and by phase, and the `top` launch sites by file:line."""
    cupy_emulation.install()
    import numpy as np

    import tinygrad_cnn as tg
    from tinygrad_cnn import optim
    from tinygrad_cnn.kernels import parallel
    from tinygrad_cnn.nn import functional as F
    from mnist import build_model

    before = parallel.get_num_threads() if parallel._threads is not None else None
    parallel.set_num_threads(threads)
    try:
        tg.manual_seed(0)
        model = build_model()
        model.to("cuda")
        opt = optim.Adam(model.parameters(), lr=1e-3)
        rng = np.random.default_rng(0)
        x = rng.random((batch, 1, 28, 28), dtype=np.float32)
        y = rng.integers(0, 10, batch)

        def step(counters):
            with counters["forward"]:
                logits = model.logits(tg.Tensor(x, device="cuda"))
            with counters["loss"]:
                loss = F.cross_entropy(logits, tg.Tensor(y, device="cuda"))
            with counters["backward"]:
                opt.zero_grad()
                loss.backward()
            with counters["adam"]:
                opt.step()

        step({p: _Phase() for p in PHASES})  # warm-up: Adam's state
        recorders = {p: _Phase() for p in PHASES}
        with cupy_emulation.record() as total:
            step(recorders)
    finally:
        parallel.set_num_threads(before)
    sites = sorted(((n, site) for (kind, site), n in total.sites.items() if kind == "launch"), key=lambda t: (-t[0], t[1]))
    return dict(batch=batch, host_threads=threads, total=total.as_dict(),
                phases={p: recorders[p].counts.as_dict() for p in PHASES},
                top_launch_sites=[dict(site=s, launches=n) for n, s in sites[:top]],
                sync_sites=sorted(s for (kind, s) in total.sites if kind == "sync"))


class _Phase:
    """Counts of the blocks it is entered for (cupy_emulation.record, kept after the block)."""

    def __enter__(self):
        self._context = cupy_emulation.record()
        self.counts = self._context.__enter__()
        return self

    def __exit__(self, *exc):
        return self._context.__exit__(*exc)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=16, help="host thread count (the device machine has 16)")
    p.add_argument("--top", type=int, default=15, help="launch sites to list")
    p.add_argument("--json", default=None, help="write the counts here")
    args = p.parse_args(argv)
    result = measure(args.batch, args.threads, args.top)
    from common import print_table, write_json
    keys = ("launches", "syncs", "h2d", "h2d_bytes", "d2h", "d2h_bytes")
    print(f"one training step, tutorial model, batch {args.batch}, {args.threads} host threads, CuPy emulation")
    print_table(("phase",) + keys, [(p,) + tuple(result["phases"][p][k] for k in keys) for p in PHASES]
                + [("total",) + tuple(result["total"][k] for k in keys)])
    print()
    print_table(("launch site", "launches"), [(s["site"], s["launches"]) for s in result["top_launch_sites"]])
    if result["sync_sites"]:
        print("\nblocking syncs at:", ", ".join(result["sync_sites"]))
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
