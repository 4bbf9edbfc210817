"""The input gradient of the tutorial's second convolution block (Conv2D(64, 3x3, same, relu) on 32
channels + MaxPool 2x2, 14x14, batch 128), forward and backward with x needing a gradient: the
rows-of-taps correlation (kernels/conv.py _InputGradient._rows: the 3 horizontal taps copied, one GEMM
with K = 3*O and N = 3*C, the vertical taps added from shifted rows) against the im2col it replaced
(all 9 taps copied, one GEMM with K = 9*O), interleaved in one process.

    python benchmarks/bench_conv_dx.py                       # table, one thread
    python benchmarks/bench_conv_dx.py --cpu-time --runs 5 --repeats 15 --json benchmarks/results/conv_dx_cpu.json

Variants: "im2col" (before), "taps" (now), "taps over the zero rows" (the GEMM also over the padded
gradient's zero rows: simpler sums, 14% more FLOPs) and "taps, forward's chunks" (backward's chunks
sized by forward's matrices alone: 16 images instead of 8). Each run times the variants alternately
(common.time_samples, or with --cpu-time the one thread's CPU time: medians of `repeats`); the table
gives the median over runs and the spread (lowest and highest run median)."""
import argparse
import statistics
from unittest import mock

import numpy as np

from common import machine, print_table, thread_samples, time_samples, write_json

import tinygrad_cnn as tg
from tinygrad_cnn.kernels import buffers, conv

N = 128
KWARGS = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), pool=(2, 2), relu=True)


class Im2colInputGradient(conv._InputGradient):
    """The full path before the rows of taps (main at 8345b1c; a GPU's still): an im2col of all KH*KW
    taps of the zero-padded output gradient and one GEMM with the flipped kernel as (KH*KW*O, C)."""

    def __init__(self, op, dtype):
        super().__init__(op, dtype)
        if self.full:
            o, c, kh, kw = op.weight.shape
            h, w = self.grad.shape[1:3]
            self.by_taps = False
            flipped = op.weight[:, :, ::-1, ::-1].transpose(2, 3, 0, 1)  # (KH, KW, O, C)
            self.weight = self.xp.ascontiguousarray(flipped).reshape(kh * kw * o, c)
            self.image_values = h * w * kh * kw * o  # (then counted as the larger, not added: 8 images here)


class TapsOverZeroRows(conv._InputGradient):
    """The rows of taps for every row of the zero-padded gradient (its zero rows too, 16 for 14 here:
    14% more FLOPs), every tap's sums then added whole (stride 1, dilation 1 only)."""

    def scratch(self, images):
        o, c, kh, kw = self.op.weight.shape
        out_h, out_w = self.op.geometry[1:3]
        padded = buffers.zeros(np, (images,) + self.padded_size + (o,), self.dtype)
        top, left = self.at
        pixels = padded[:, top:top + out_h, left:left + out_w]
        rows_h, w = self.padded_size[0], self.grad.shape[2]
        taps = np.lib.stride_tricks.as_strided(padded, shape=(images, rows_h, w, kw, o),
                                               strides=padded.strides[:3] + padded.strides[2:])
        rows = images * rows_h * w
        return taps, pixels, (buffers.empty(np, (rows, kw * o), self.dtype),
                              buffers.empty(np, (rows, kh * c), self.grad.dtype))

    def _rows(self, taps, mats, out):
        images, rows_h, w, kw, o = taps.shape
        h, c = out.shape[1], out.shape[3]
        kh = self.weight.shape[1] // c
        cols, product = mats[0][:images * rows_h * w], mats[1][:images * rows_h * w]
        np.copyto(cols.reshape(taps.shape), taps)
        np.matmul(cols, self.weight, out=product)
        sums = product.reshape(images, rows_h, w, kh, c)
        np.add(sums[:, 0:h, :, 0], sums[:, 1:h + 1, :, 1], out=out)
        for i in range(2, kh):
            np.add(out, sums[:, i:i + h, :, i], out=out)


class TapsInForwardsChunks(conv._InputGradient):
    """The rows of taps, with backward's chunks as forward's (16 images here; 8 by its own count)."""

    def __init__(self, op, dtype):
        super().__init__(op, dtype)
        self.image_values = 0


VARIANTS = {"im2col (before)": Im2colInputGradient, "taps (now)": conv._InputGradient,
            "taps over the zero rows": TapsOverZeroRows, "taps, forward's chunks": TapsInForwardsChunks}


def make_runs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, 32, 14, 14), dtype=np.float32)
    w = (rng.standard_normal((64, 32, 3, 3)) / 17).astype(np.float32)
    b = (rng.standard_normal(64) / 10).astype(np.float32)
    upstream = tg.Tensor(rng.standard_normal((N, 64, 7, 7)).astype(np.float32))
    runs = {}
    for name, cls in VARIANTS.items():
        def run(cls=cls):
            inputs = [tg.Tensor(a, requires_grad=True) for a in (x, w, b)]
            with mock.patch.object(conv, "_InputGradient", cls):
                conv.FusedConvolution.apply(*inputs, **KWARGS).backward(upstream)
            return inputs[0].grad.numpy()
        runs[name] = run
    return runs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=1, help="tg.set_num_threads (default 1)")
    p.add_argument("--cpu-time", action="store_true", help="time the CPU time of the one thread (with --threads 1)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    if args.cpu_time and args.threads != 1:
        p.error("--cpu-time times one thread: use it with --threads 1")
    tg.set_num_threads(args.threads)
    sampler = thread_samples if args.cpu_time else time_samples
    runs = make_runs()
    grads = {name: fn() for name, fn in runs.items()}
    base = grads["im2col (before)"]
    differences = {name: float(np.abs(g - base).max() / np.abs(base).max()) for name, g in grads.items()}
    medians = {name: [] for name in runs}
    for _ in range(args.runs):
        for name, seconds in sampler(runs, args.repeats).items():
            medians[name].append(statistics.median(seconds) * 1e3)
    before = medians["im2col (before)"]
    rows, results = [], []
    for name, ms in medians.items():
        ratios = [a / b for a, b in zip(ms, before)]
        results.append(dict(variant=name, ms=statistics.median(ms), runs_ms=ms, ratio=statistics.median(ratios),
                            ratio_range=[min(ratios), max(ratios)], dx_difference=differences[name]))
        rows.append([name, f"{statistics.median(ms):.2f} ({min(ms):.2f}-{max(ms):.2f})",
                     f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})",
                     f"{differences[name]:.1e}"])
    print(f"\nconv2 block forward+backward (x needs a gradient), batch {N}, float32, {args.threads} thread(s), "
          f"{'CPU time of the thread' if args.cpu_time else 'wall time'}, median of {args.repeats} per run, "
          f"{args.runs} runs (lowest-highest run)")
    print_table(["input gradient", "ms", "/ im2col", "dx vs im2col (max, relative)"], rows)
    write_json(args.json, dict(batch=N, runs=args.runs, repeats=args.repeats, threads=args.threads,
                               clock="thread_time" if args.cpu_time else "wall",
                               machine=machine(), results=results))
    return results


if __name__ == "__main__":
    main()
