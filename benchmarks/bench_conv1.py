"""The tutorial's first block, Conv2D(32, 3x3, same, relu) on one channel + MaxPool 2x2, forward and
backward at batch 128: FusedConvolution with one patch row per pool window (kernels/conv_patches.py,
what runs the first layer) against its im2col rows (conv_patches.ENABLED off: what ran before), or
with --few FewChannelConvolution (kernels/conv_few.py, off by default) against FusedConvolution's
im2col rows, interleaved in one process.

    python benchmarks/bench_conv1.py                      # table
    python benchmarks/bench_conv1.py --runs 5 --repeats 20 --json benchmarks/results/conv1_patches.json
    python benchmarks/bench_conv1.py --cpu-time --json benchmarks/results/conv1_patches_thread_time.json
    python benchmarks/bench_conv1.py --few --json benchmarks/results/conv1_cpu.json   # the earlier comparison

Two cases: the model's (its input needs no gradient, as a model's input never does) and
bench_ops.py's "conv1 block" (x requires grad too). Each run times every (case, kernel) pair
alternately (common.time_interleaved: medians of `repeats`); the table gives the median over runs
and the spread (lowest and highest run median). --cpu-time runs one thread and times the CPU time
that thread used (time.thread_time), which waiting for a core on a loaded machine does not inflate."""
import argparse
import datetime
import statistics
import subprocess

import numpy as np

from common import ROOT, machine, print_table, thread_samples, time_interleaved, write_json

import tinygrad_cnn as tg
from tinygrad_cnn.kernels import conv, conv_few, conv_patches

N = 128
KWARGS = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), pool=(2, 2), relu=True)


def make_runs(few=False):
    """(case, variant) -> a callable running the block forward and backward; the variants "before" and
    "after" (im2col rows and patches, or with `few` FusedConvolution and FewChannelConvolution, both on
    im2col rows)."""
    rng = np.random.default_rng(0)
    x = rng.random((N, 1, 28, 28), dtype=np.float32)
    w = (rng.standard_normal((32, 1, 3, 3)) / 3).astype(np.float32)
    b = (rng.standard_normal(32) / 10).astype(np.float32)
    # NOTE: channels-last memory seen as NCHW, as the gradient that reaches the first layer from the
    # second is (kernels/conv.py _InputGradient); bench_ops.py's NCHW ones are read strided instead
    upstream = tg.Tensor(rng.standard_normal((N, 14, 14, 32)).astype(np.float32).transpose(0, 3, 1, 2))
    if few:
        variants = (("before", conv.FusedConvolution, False), ("after", conv_few.FewChannelConvolution, False))
    else:
        variants = (("before", conv.FusedConvolution, False), ("after", conv.FusedConvolution, True))
    runs = {}
    for case, x_grad in (("model (x needs no grad)", False), ("x needs grad", True)):
        for name, op, patches in variants:
            def run(op=op, x_grad=x_grad, patches=patches):
                conv_patches.ENABLED = patches
                inputs = [tg.Tensor(x, requires_grad=x_grad), tg.Tensor(w, requires_grad=True),
                          tg.Tensor(b, requires_grad=True)]
                op.apply(*inputs, **KWARGS).backward(upstream)
            runs[case, name] = run
    return runs


def thread_times(runs, repeats, warmup=2):
    """Median CPU seconds of the calling thread per call of each callable, alternating between them."""
    return {name: statistics.median(s) for name, s in thread_samples(runs, repeats, warmup).items()}


def _commit():
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return out.stdout.strip() or None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--cpu-time", action="store_true", help="one thread, timed by its CPU time (time.thread_time)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--few", action="store_true", help="FewChannelConvolution against FusedConvolution's im2col rows")
    args = p.parse_args(argv)
    if args.cpu_time:
        tg.set_num_threads(1)
    timer = thread_times if args.cpu_time else time_interleaved
    runs = make_runs(args.few)
    saved = conv_patches.ENABLED
    medians = {key: [] for key in runs}
    try:
        for _ in range(args.runs):
            for key, seconds in timer(runs, args.repeats).items():
                medians[key].append(seconds * 1e3)
    finally:
        conv_patches.ENABLED = saved
    rows, results = [], []
    for case in dict.fromkeys(case for case, _ in runs):
        before, after = medians[case, "before"], medians[case, "after"]
        ratios = [a / b for a, b in zip(after, before)]
        row = dict(case=case, before_ms=statistics.median(before), after_ms=statistics.median(after),
                   before_runs_ms=before, after_runs_ms=after, ratio=statistics.median(ratios),
                   ratio_range=[min(ratios), max(ratios)])
        results.append(row)
        rows.append([case, f"{row['before_ms']:.2f} ({min(before):.2f}-{max(before):.2f})",
                     f"{row['after_ms']:.2f} ({min(after):.2f}-{max(after):.2f})",
                     f"{row['ratio']:.2f} ({min(ratios):.2f}-{max(ratios):.2f})"])
    clock = "CPU time of the one thread" if args.cpu_time else "wall time"
    print(f"\nconv1 block forward+backward, batch {N}, float32, {tg.get_num_threads()} threads, {clock}, "
          f"median of {args.repeats} per run, {args.runs} runs (lowest-highest run)")
    names = ("FusedConvolution ms", "FewChannelConvolution ms") if args.few else ("im2col rows ms", "patches ms")
    print_table(["case", *names, "new/old"], rows)
    write_json(args.json, dict(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                               commit=_commit(), batch=N, runs=args.runs, repeats=args.repeats,
                               clock="thread_time" if args.cpu_time else "wall",
                               compared=("FusedConvolution", "FewChannelConvolution") if args.few
                               else ("im2col rows", "patches"),
                               threads=tg.get_num_threads(), machine=machine(), results=results))
    return results


if __name__ == "__main__":
    main()
