"""The tutorial model's Flatten + Dense(3136 -> 128, relu) block, with and without its fold
(kernels.dense.FlattenLinear), timed interleaved in one process.

    python benchmarks/bench_dense.py                      # one and two threads, ~1 min
    python benchmarks/bench_dense.py --json benchmarks/results/dense_fold.json

Rows: a training block (batch 128 and 512: the conv2 block's channels-last output through Flatten and
Dense, forward and backward with a random upstream gradient, Adam's gradient buffers in place) and an
inference block (batch 1000 under no_grad), each on one and on two threads. "unfolded" runs the plan
with the fold turned off (Flatten's copy, then FusedLinear), "folded" with it on whatever the batch
(the plan itself folds batches over 2 x 128 only: plan.FOLD_ROWS_PER_UNIT); the inference rows also
try the previous cut of a product by rows (8 pieces of 125 rows, dense.ROWS_PIECE = 64).
Alternating A B B A calls (common.time_samples); medians with the quartiles, and the median of the
paired differences."""
import argparse
import statistics

import common  # noqa: F401  (puts the checkout first on sys.path)
import numpy as np

import tinygrad_cnn as tg
from tinygrad_cnn import nn, optim
from tinygrad_cnn.autograd import kernel_for
from tinygrad_cnn.kernels import dense, parallel, plan
from tinygrad_cnn.nn.layers import run_layers


def variants(threads, batch, training):
    """{name: callable} for one setting; each callable sets its variant's switches before it runs."""
    parallel.set_num_threads(threads)
    tg.manual_seed(0)
    model = nn.Sequential([
        nn.Conv2D(32, 3, padding="same", activation="relu"), nn.MaxPool2D(2, strides=2),
        nn.Conv2D(64, 3, padding="same", activation="relu"), nn.MaxPool2D(2, strides=2),
        nn.Flatten(), nn.Dense(128, activation="relu")], input_shape=(1, 28, 28))
    opt = optim.Adam(model.parameters(), lr=1e-3)
    run = kernel_for(run_layers, "cpu")
    rng = np.random.default_rng(0)
    with tg.no_grad():
        images = tg.Tensor(rng.random((batch, 1, 28, 28)).astype(np.float32))
        features = run(model.layers[:4], images)  # (N, 64, 7, 7), channels-last in memory
    upstream = tg.Tensor(rng.standard_normal((batch, 128)).astype(np.float32))
    rows_per_unit, rows_piece = plan.FOLD_ROWS_PER_UNIT, dense.ROWS_PIECE

    def block(folded, piece):
        def fn():
            plan.FOLDS_FLATTEN, plan.FOLD_ROWS_PER_UNIT = folded, 0  # folded whatever the batch
            dense.ROWS_PIECE = piece
            try:
                if training:
                    x = tg.Tensor(features.data, requires_grad=True)
                    opt.zero_grad()
                    run(model.layers[4:], x).backward(upstream)
                else:
                    with tg.no_grad():
                        run(model.layers[4:], features)
            finally:
                plan.FOLDS_FLATTEN, plan.FOLD_ROWS_PER_UNIT, dense.ROWS_PIECE = True, rows_per_unit, rows_piece
        return fn
    runs = {"unfolded": block(False, rows_piece), "folded": block(True, rows_piece)}
    if not training:
        runs["folded, 8 pieces of rows"] = block(True, 64)
    return runs


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=40)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    results = []
    for training, batch in ((True, 128), (True, 512), (False, 1000)):
        for threads in (1, 2):
            samples = common.time_samples(variants(threads, batch, training), args.repeats)
            base = samples["unfolded"]
            for name, values in samples.items():
                ms = [1e3 * v for v in values]
                diffs = [1e3 * (a - b) for a, b in zip(values, base)]
                q = statistics.quantiles(ms, n=4)
                results.append(dict(block="training" if training else "inference", batch=batch, threads=threads,
                                    variant=name, median_ms=statistics.median(ms), q1_ms=q[0], q3_ms=q[2],
                                    median_diff_vs_unfolded_ms=statistics.median(diffs)))
    parallel.set_num_threads(None)
    common.print_table(["block", "batch", "threads", "variant", "median ms", "quartiles", "vs unfolded"],
                       [[r["block"], r["batch"], r["threads"], r["variant"], f"{r['median_ms']:.2f}",
                         f"{r['q1_ms']:.2f}-{r['q3_ms']:.2f}", f"{r['median_diff_vs_unfolded_ms']:+.2f}"]
                        for r in results])
    if args.json:
        common.write_json(args.json, {**common.provenance(), "rows": results})


if __name__ == "__main__":
    main()
