"""The max-pool passes of the fused conv+pool op on one thread: this checkout's CPU kernels against
another checkout's (main's), interleaved in one process.

    python benchmarks/bench_route.py --baseline /work/main --rounds 9
    python benchmarks/bench_route.py --baseline /work/main --json benchmarks/results/route_ab.json

Three tables:
- kernels: MAX_AND_FIRST_OFFSET (forward: pooled values and first-maximum offsets, ReLU on) and
  route_by_codes (backward: the pooled gradient routed to each window's first maximum) at the chunk
  sizes the tutorial's model runs them with at batch 128 (conv1: chunks of 16 images of 14x14x32;
  conv2: 16 images of 7x7x64 forward, 8 backward, whose gradient is the flatten's strided NCHW one and
  is also copied into the input gradient's pixel-order tiles), on the pooled values and gradients of
  real MNIST images through the model's first step.
- blocks: the conv1 block (conv 1->32 + ReLU + pool, no input gradient) and the conv2 block (32->64
  with its input gradient), forward+backward at batch 128 as the model runs them, with conv.py's two
  kernels swapped between the baseline's and this checkout's (all else this checkout's).

- in a training step: each kernel call timed inside whole training steps of the model (one thread),
  the two checkouts' kernels alternating by round: what the kernels cost with the caches as the step
  leaves them (cold inputs: 1.5-2x the kernels-alone figures), and their sum per step.

Rounds alternate the order (A B, B A, ...); each cell is the median of a round's calls, and the
table gives the median over rounds, their spread and the ratio B/A of the medians. The package's
threads are set to one (kernels.parallel.set_num_threads(1)) and so is its BLAS."""
import argparse
import importlib
import importlib.util
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def load_baseline(path):
    """The baseline checkout's package, imported under another name (tgbase) beside this one."""
    folder = os.path.join(os.path.abspath(path), "tinygrad_cnn")
    spec = importlib.util.spec_from_file_location("tgbase", os.path.join(folder, "__init__.py"),
                                                  submodule_search_locations=[folder])
    module = importlib.util.module_from_spec(spec)
    sys.modules["tgbase"] = module
    spec.loader.exec_module(module)
    return importlib.import_module("tgbase.kernels.conv")


def timed(fn, calls):
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleave(rows, rounds, calls):
    """rows: name -> (fn_a, fn_b); returns name -> (a medians, b medians) per round."""
    results = {name: ([], []) for name in rows}
    for r in range(rounds):
        for name, fns in rows.items():
            order = (0, 1) if r % 2 == 0 else (1, 0)
            for side in order:
                results[name][side].append(timed(fns[side], calls))
    return results


def table(title, results, unit=1e6, label="us"):
    print(f"\n{title} (one thread; median over rounds [min-max], B/A of medians)")
    out = {}
    for name, (a, b) in results.items():
        ma, mb = statistics.median(a), statistics.median(b)
        ratios = [y / x for x, y in zip(a, b)]
        print(f"  {name:34s} A {ma * unit:8.1f} {label} [{min(a) * unit:.1f}-{max(a) * unit:.1f}]   "
              f"B {mb * unit:8.1f} {label} [{min(b) * unit:.1f}-{max(b) * unit:.1f}]   B/A {mb / ma:.3f} "
              f"(per round {min(ratios):.2f}-{max(ratios):.2f})")
        out[name] = {"a": a, "b": b, "ratio_of_medians": mb / ma}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="the other checkout (A)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=30, help="kernel calls per cell")
    parser.add_argument("--block-calls", type=int, default=8, help="block fwd+bwd calls per cell")
    parser.add_argument("--kernels-only", action="store_true", help="skip the blocks table")
    parser.add_argument("--json")
    args = parser.parse_args()

    import numpy as np
    import tinygrad_cnn as tg
    from threadpoolctl import threadpool_limits
    from tinygrad_cnn import optim
    from tinygrad_cnn.autograd import kernel_for
    from tinygrad_cnn.datasets import mnist
    from tinygrad_cnn.kernels import conv, parallel
    from tinygrad_cnn.nn import functional as F
    from tinygrad_cnn.nn.layers import run_layers
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))
    from mnist import build_model

    base = load_baseline(args.baseline)
    parallel.set_num_threads(1)
    threadpool_limits(1)
    kernels = {"A": (base.MAX_AND_FIRST_OFFSET, base.route_by_codes),
               "B": (conv.MAX_AND_FIRST_OFFSET, conv.route_by_codes)}

    tg.manual_seed(0)
    model = build_model()  # the tutorial's model (examples/mnist.py)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    (x, y), _ = mnist.load_data()
    xb, yb = tg.Tensor(mnist.to_float_images(x[:128])), tg.Tensor(y[:128].astype(np.int64))

    # the kernels' real arguments, recorded from one training step
    recorded = {}
    real_pool, real_route = conv.MAX_AND_FIRST_OFFSET, conv.route_by_codes

    class Recording(dict):
        def __getitem__(self, relu):
            def run(*a):
                recorded.setdefault(("pool", a[0].shape), [np.copy(v) for v in a])
                return real_pool[relu](*a)
            return run

    def record_route(*a):
        recorded.setdefault(("route", a[1].shape), a)
        return real_route(*a)
    conv.MAX_AND_FIRST_OFFSET, conv.route_by_codes = Recording(), record_route
    try:
        loss = F.cross_entropy(model.logits(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    finally:
        conv.MAX_AND_FIRST_OFFSET, conv.route_by_codes = real_pool, real_route

    rows = {}
    for (kind, shape), a in recorded.items():
        if kind == "pool":
            out, offset, one, *blocks = a
            sides = []
            for side in "AB":
                o, f = np.empty_like(out), np.empty_like(offset)
                sides.append(lambda k=kernels[side][0], o=o, f=f, one=one, b=blocks: k[True](o, f, one, *b))
            rows[f"forward pool {shape}"] = tuple(sides)
        else:
            routed, g, offset, codes, *copies = a
            # g as the op passes it: a view of the upstream gradient (strided for conv2)
            sides = []
            for side in "AB":
                r = np.empty_like(routed)
                tiles = [conv._tiles(np.zeros((shape[0], shape[1] * 2, shape[2] * 2, shape[3]), np.float32), (2, 2))
                         for _ in copies]
                sides.append(lambda k=kernels[side][1], r=r, t=tiles, a=(g, offset, codes): k(r, *a, *t))
            rows[f"backward route {shape}" + (" +copy" if copies else "")] = tuple(sides)
    # same bits both ways
    for name, (fa, fb) in rows.items():
        fa(), fb()
    kernel_results = interleave(rows, args.rounds, args.calls)

    run = kernel_for(run_layers, "cpu")
    layers = model.layers[:-1]
    with tg.no_grad():
        inputs = [xb.numpy()]
        for lo, hi in ((0, 2), (2, 4)):
            inputs.append(run(layers[lo:hi], tg.Tensor(inputs[-1])).numpy())
    rng = np.random.default_rng(0)

    def block(lo, hi, data, needs_grad, side):
        x_in = tg.Tensor(data, requires_grad=needs_grad)
        upstream = tg.Tensor(rng.standard_normal((128,) + tuple(inputs[hi // 2].shape[1:])).astype(np.float32))

        def fn():
            conv.MAX_AND_FIRST_OFFSET, conv.route_by_codes = kernels[side]
            try:
                out = run(layers[lo:hi], x_in)
                opt.zero_grad()
                out.backward(upstream)
            finally:
                conv.MAX_AND_FIRST_OFFSET, conv.route_by_codes = real_pool, real_route
        return fn

    blocks = {} if args.kernels_only else {
        "conv1 block fwd+bwd (no dx)": tuple(block(0, 2, inputs[0], False, s) for s in "AB"),
        "conv2 block fwd+bwd": tuple(block(2, 4, inputs[1], True, s) for s in "AB")}
    for fa, fb in blocks.values():
        fa(), fb()
    block_results = interleave(blocks, args.rounds, args.block_calls)

    # each kernel call inside training steps, the sides alternating by round
    def step():
        loss = F.cross_entropy(model.logits(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()

    in_step, calls, current = {}, {}, {}

    class Timed(dict):
        def __getitem__(self, relu):
            def run(*a):
                start = time.perf_counter()
                current["kernels"][0][relu](*a)
                calls.setdefault(("forward pool", a[0].shape), []).append(time.perf_counter() - start)
            return run

    def timed_route(*a):
        start = time.perf_counter()
        current["kernels"][1](*a)
        calls.setdefault(("backward route", a[1].shape), []).append(time.perf_counter() - start)

    for r in range(args.rounds):
        for side in ("AB" if r % 2 == 0 else "BA"):
            current["kernels"] = kernels[side]
            conv.MAX_AND_FIRST_OFFSET, conv.route_by_codes = Timed(), timed_route
            try:
                step()  # untimed: the previous side's buffers and caches
                calls.clear()
                for _ in range(args.block_calls):
                    step()
            finally:
                conv.MAX_AND_FIRST_OFFSET, conv.route_by_codes = real_pool, real_route
            total = 0.0
            for (kind, shape), times in calls.items():
                per_step = statistics.median(times) * len(times) / args.block_calls
                in_step.setdefault(f"{kind} {shape} per call", ([], []))["AB".index(side)].append(
                    statistics.median(times))
                total += per_step
            in_step.setdefault("all four, per step", ([], []))["AB".index(side)].append(total)

    print(f"A = {args.baseline}, B = {os.path.dirname(HERE)}; numpy {np.__version__}; load {os.getloadavg()}")
    summary = {"kernels": table("kernels alone", kernel_results),
               "blocks": table("blocks, batch 128", block_results, 1e3, "ms"),
               "in_step": table("in a training step (batch 128)", in_step),
               "load_after": os.getloadavg(), "rounds": args.rounds}
    if args.json:
        sys.path.insert(0, HERE)
        from common import provenance, write_json
        write_json(args.json, {**provenance(baseline=args.baseline), **summary})


if __name__ == "__main__":
    main()
