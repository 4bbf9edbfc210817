"""Where the conv1 block's time goes, pass by pass: one cache chunk (16 images, what FusedConvolution's
4 MiB chunks give at batch 128) of the tutorial's first layer, Conv2D(32, 3x3, same, ReLU) on one
channel + MaxPool 2x2, on one thread, each pass timed alone (medians of `repeats` calls, `runs` runs,
all passes interleaved), next to alternatives that were weighed for it.

    python benchmarks/bench_conv1_parts.py
    python benchmarks/bench_conv1_parts.py --runs 5 --repeats 200 --json benchmarks/results/conv1_parts.json

The current passes are the kernels' own (kernels/conv.py): the padding, the column-major im2col (rows in
window-offset order), the four per-offset GEMMs (K = 10 with the ones column), MAX_AND_FIRST_OFFSET,
route_by_codes and the weight-gradient `dot`. The alternatives are written out here, checked against
the current passes' results before timing:
- "patches": one 4x4 input patch per pool window (16 values + the ones column, 17 per pooled pixel
  instead of 4 x 10), the four offsets as four GEMMs with K = 17 whose weights hold the kernel at the
  offset's place (zeros elsewhere), and the weight gradient as four (17, P) x (P, 32) products whose
  rows are summed at each offset's taps;
- the ReLU of the first block against a zero array instead of the scalar 0;
- routing by a float mask gathered from a table by the offset (np.take)."""
import argparse
import datetime
import os
import statistics
import sys
import time

import numpy as np

from common import machine, print_table, write_json

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tinygrad_cnn.kernels import conv  # noqa: E402

IMAGES, O = 16, 32


def setup():
    rng = np.random.default_rng(0)
    n = IMAGES
    x = rng.random((n, 1, 28, 28), dtype=np.float32)
    w = (rng.standard_normal((O, 1, 3, 3)) / 3).astype(np.float32)
    b = (rng.standard_normal(O) / 10).astype(np.float32)
    g = rng.standard_normal((n, 14, 14, O)).astype(np.float32)
    s = dict(n=n, x=x, g=g)
    s["x_pad"] = x_pad = conv.pad_nhwc(np, x, ((1, 1), (1, 1)))
    s["windows"] = conv._windows(np, x_pad, 3, 3, 14, 14, (1, 1), (1, 1), (2, 2))
    rows = n * 4 * 196
    s["cols"] = cols = np.empty((10, rows), np.float32).T  # column-major, as _new_cols makes it
    cols[:, 9] = 1
    s["w_mat"] = np.concatenate([w.transpose(2, 3, 1, 0).reshape(9, O), b.reshape(1, O)])
    s["out"] = np.empty((rows, O), np.float32)
    s["pooled"] = np.empty((n, 14, 14, O), np.float32)
    s["offset"] = np.empty((n, 14, 14, O), np.uint8)
    s["one"] = np.ones(1, np.uint8)
    s["codes"] = np.arange(1, 5, dtype=np.uint8).reshape(2, 2, 1, 1, 1, 1)
    s["routed"] = np.empty((rows, O), np.float32)
    # the 4x4 patches: (17, P) C-contiguous (so (P, 17) column-major), the last row the ones
    p = n * 196
    st = x_pad.strides
    s["patch_view"] = np.lib.stride_tricks.as_strided(
        x_pad, shape=(4, 4, n, 14, 14), strides=(st[1], st[2], st[0], 2 * st[1], 2 * st[2]))
    s["patches"] = patches = np.empty((17, p), np.float32)
    patches[16] = 1
    w4 = np.zeros((4, 17, O), np.float32)
    for q in range(4):
        i, j = divmod(q, 2)
        w4[q, :16].reshape(4, 4, O)[i:i + 3, j:j + 3] = w[:, 0].transpose(1, 2, 0)
        w4[q, 16] = b
    s["w4"] = w4
    s["h"] = np.empty((4, 17, O), np.float32)
    s["zeros"] = np.zeros((n, 14, 14, O), np.float32)
    table = np.zeros((4, 256), np.float32)
    table[np.arange(4), np.arange(1, 5)] = 1
    s["table"], s["mask"] = table, np.empty((4, n, 14, 14, O), np.float32)
    return s


def passes(s):
    n, cols, out, routed = s["n"], s["cols"], s["out"], s["routed"]
    blocks = list(out.reshape(4, n, 14, 14, O))
    stacked = routed.reshape((2, 2) + s["g"].shape)
    p = n * 196

    def pad():
        conv.pad_nhwc(np, s["x"], ((1, 1), (1, 1)), out=s["x_pad"])

    def im2col():
        conv._im2col(np, s["windows"], cols)

    def gemm():
        np.matmul(cols.reshape(4, -1, 10), s["w_mat"], out=out.reshape(4, -1, O))

    def max_offset():
        conv.MAX_AND_FIRST_OFFSET[True](s["pooled"], s["offset"], s["one"], *blocks)

    def route():
        conv.route_by_codes(stacked, s["g"], s["offset"], s["codes"])

    def weight_grad():
        return np.dot(cols.T, routed)

    def patches():
        np.copyto(s["patches"][:16].reshape(4, 4, n, 14, 14), s["patch_view"])

    def patch_gemm():
        np.matmul(s["patches"].T, s["w4"], out=out.reshape(4, -1, O))

    def patch_weight_grad():
        for q in range(4):
            np.dot(s["patches"], routed[q * p:(q + 1) * p], out=s["h"][q])

    def relu_scalar():
        np.maximum(blocks[0], 0, out=s["pooled"])

    def relu_zeros():
        np.maximum(blocks[0], s["zeros"], out=s["pooled"])

    def route_float_mask():
        np.take(s["table"], s["offset"], axis=1, out=s["mask"])
        np.multiply(s["g"], s["mask"], out=routed.reshape(s["mask"].shape))

    current = dict(pad=pad, im2col=im2col, gemm=gemm, max_offset=max_offset, route=route, weight_grad=weight_grad)
    alternatives = dict(patches=patches, patch_gemm=patch_gemm, patch_weight_grad=patch_weight_grad,
                        relu_scalar=relu_scalar, relu_zeros=relu_zeros, route_float_mask=route_float_mask)
    return current, alternatives


def check(s, current, alt):
    """The alternatives give the current passes' results (the patch products bit for bit)."""
    current["im2col"]()
    current["gemm"]()
    expected = s["out"].copy()
    alt["patches"]()
    alt["patch_gemm"]()
    assert np.array_equal(s["out"], expected), "patch GEMM differs"
    current["gemm"]()
    current["max_offset"]()
    current["route"]()
    expected_routed = s["routed"].copy()
    dw = current["weight_grad"]()
    alt["route_float_mask"]()
    assert np.array_equal(s["routed"], expected_routed), "float-mask routing differs"
    alt["patch_weight_grad"]()
    dw4 = np.zeros((10, O), np.float64)
    for q in range(4):
        i, j = divmod(q, 2)
        dw4[:9] += s["h"][q, :16].reshape(4, 4, O)[i:i + 3, j:j + 3].reshape(9, O)
        dw4[9] += s["h"][q, 16]
    assert np.allclose(dw4, dw, rtol=1e-4, atol=1e-3), "patch weight gradient differs"
    a, b = s["pooled"].copy(), None
    alt["relu_zeros"]()
    b = s["pooled"].copy()
    alt["relu_scalar"]()
    assert np.array_equal(s["pooled"], b) and a is not None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:
        pass
    s = setup()
    current, alt = passes(s)
    check(s, current, alt)
    fns = dict(current, **alt)
    medians = {name: [] for name in fns}
    for _ in range(args.runs):
        samples = {name: [] for name in fns}
        for name, fn in fns.items():
            for _ in range(3):
                fn()
        for _ in range(args.repeats):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - start)
        for name in fns:
            medians[name].append(statistics.median(samples[name]) * 1e6)
    rows, results = [], []
    for name in fns:
        m = medians[name]
        results.append(dict(name=name, current=name in current, us=statistics.median(m), runs_us=m))
        rows.append([name, "current" if name in current else "alternative",
                     f"{statistics.median(m):.1f} ({min(m):.1f}-{max(m):.1f})"])
    print(f"\nconv1 passes, one chunk of {IMAGES} images, one thread, medians of {args.repeats} calls per run, "
          f"{args.runs} runs (lowest-highest run), microseconds")
    print_table(["pass", "kind", "us"], rows)
    write_json(args.json, dict(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                               images=IMAGES, runs=args.runs, repeats=args.repeats, machine=machine(),
                               load=os.getloadavg(), results=results))
    return results


if __name__ == "__main__":
    main()
