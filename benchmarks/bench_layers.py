"""Where a training step of the tutorial's CNN goes, layer by layer, against this machine's GEMM rate.

    python benchmarks/bench_layers.py                                   # this checkout, ~1 min
    python benchmarks/bench_layers.py --json benchmarks/results/layers_before.json
    python benchmarks/bench_layers.py --baseline /tmp/base --json benchmarks/results/layers_final.json

Each block of the model, as the model runs it (its own layers through `Sequential`'s plan, so
whatever kernel the framework dispatches runs here too), forward+backward at batch 128 on real MNIST
images: the conv1 block (conv 1->32 + ReLU + 2x2 max-pool; no input gradient, as in training), the
conv2 block (32->64), the flatten, dense 3136->128 + ReLU, dense 128->10 + cross-entropy, Adam's
step, and the whole training step. Each row shows its GEMM FLOPs as direct convolution counts them
(2 x N x H x W x O x C x 9 per product: forward, weight gradient and, where needed, input gradient)
and the floor Winograd F(2x2, 3x3) would need (2.25x fewer multiplies in its 16 GEMMs; its input
and output transforms not counted), the time, the achieved rate in direct-convolution FLOPs, and
that rate as a share of one large float32 `np.matmul` (1024^3, the BLAS on all the process's cores)
timed interleaved with the row, in the same process, so that a busy machine slows both alike.

NOTE: the package holds its BLAS at one thread from its first op that splits work over the cores
(kernels/parallel.py), so a plain `np.matmul` here ran on ONE core until 2026-12-07 evening: the
earlier results files' "gemm_gflops" (and shares, floors) are one core's rate, about half of this
2-core machine's (153 against 304 GFLOP/s at 2048^3, quiet). The reference GEMM now runs under
threadpoolctl's limit of all cores (the one-core rate stays in the JSON as `gemm_one_core_gflops`). The
kernel column says "winograd" when WinogradConvPool.forward ran for the row (a
profile hook over tinygrad_cnn/kernels/ during one untimed call), else "direct".

Each checkout runs in its own worker process (its folder first on sys.path); with `--baseline`,
rounds alternate A B, B A between the two and a second table gives the per-round ratios.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
N = 128
GEMM_SIZE = 1024
WINOGRAD_SAVING = 36 / 16  # F(2x2, 3x3): 16 products per 2x2 output tile against 4 x 9


def conv_flops(h, w, c, o, products):
    return 2.0 * N * h * w * o * c * 9 * products


def dense_flops(i, o, products=3):
    return 2.0 * N * i * o * products


# ------------------------------------------------------------------------------------------ worker

def build(tg):
    """The model, its optimizer after one step, each row's (name, fn, direct FLOPs, Winograd floor)."""
    import numpy as np
    from tinygrad_cnn import nn, optim
    from tinygrad_cnn.autograd import kernel_for
    from tinygrad_cnn.datasets import mnist
    from tinygrad_cnn.nn import functional as F
    from tinygrad_cnn.nn.layers import run_layers

    tg.manual_seed(0)
    model = nn.Sequential([
        nn.Conv2D(32, (3, 3), padding="same", activation="relu"), nn.MaxPool2D((2, 2), strides=2),
        nn.Conv2D(64, (3, 3), padding="same", activation="relu"), nn.MaxPool2D((2, 2), strides=2),
        nn.Flatten(), nn.Dense(128, activation="relu"), nn.Dense(10, activation="softmax")], input_shape=(1, 28, 28))
    opt = optim.Adam(model.parameters(), lr=1e-3)
    (x, y), _ = mnist.load_data()
    xb, yb = tg.Tensor(mnist.to_float_images(x[:N])), tg.Tensor(y[:N].astype(np.int64))
    layers, last = model.layers[:-1], model.layers[-1]
    run = kernel_for(run_layers, "cpu")

    def step():
        loss = F.cross_entropy(model.logits(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    with tg.no_grad():  # each block's input, as the model's forward makes it
        inputs = [xb.numpy()]
        for a, b in ((0, 2), (2, 4), (4, 5), (5, 6)):
            inputs.append(run(layers[a:b], tg.Tensor(inputs[-1])).numpy())
    rng = np.random.default_rng(0)

    def block(a, b, data, needs_grad):
        x_in = tg.Tensor(data, requires_grad=needs_grad)
        upstream = {}

        def fn():
            out = run(layers[a:b], x_in)
            if "g" not in upstream:
                upstream["g"] = tg.Tensor(rng.standard_normal(out.shape).astype(np.float32))
            opt.zero_grad()
            out.backward(upstream["g"])
        return fn

    head_in = tg.Tensor(inputs[4], requires_grad=True)

    def head():
        loss = F.cross_entropy(last.pre_activation(last.prepare(head_in)), yb)
        opt.zero_grad()
        loss.backward()

    def adam():
        if any(q.grad is None for q in model.parameters()):  # the rows before cleared them: one full backward
            opt.zero_grad()
            F.cross_entropy(model.logits(xb), yb).backward()
        opt.step()

    conv1 = conv_flops(28, 28, 1, 32, 2)
    conv2 = conv_flops(14, 14, 32, 64, 3)
    dense1, dense2 = dense_flops(3136, 128), dense_flops(128, 10)
    rows = [("conv1 block 1->32 28x28 +relu+pool (no dx)", block(0, 2, inputs[0], False), conv1, conv1 / WINOGRAD_SAVING),
            ("conv2 block 32->64 14x14 +relu+pool", block(2, 4, inputs[1], True), conv2, conv2 / WINOGRAD_SAVING),
            ("flatten (128,64,7,7)", block(4, 5, inputs[2], True), None, None),
            ("dense 3136->128 +relu", block(5, 6, inputs[3], True), dense1, dense1),
            ("dense 128->10 + cross-entropy", head, dense2, dense2),
            ("Adam step (421,642 parameters)", adam, None, None)]
    total = conv1 + conv2 + dense1 + dense2
    rows.append(("whole training step", step, total, total - (conv1 + conv2) * (1 - 1 / WINOGRAD_SAVING)))
    return rows


def traced_kernels(tg, fn):
    """Names (module.function) of the tinygrad_cnn/kernels/ functions that one call of fn runs on
    this thread, in first-call order: which kernel ran, whatever the framework dispatches."""
    folder = os.path.join(os.path.dirname(os.path.abspath(tg.__file__)), "kernels") + os.sep
    seen = []

    def hook(frame, event, arg):
        code = frame.f_code
        if event == "call" and code.co_filename.startswith(folder):
            name = f"{os.path.splitext(os.path.basename(code.co_filename))[0]}.{code.co_name}"
            if name not in seen:
                seen.append(name)
    sys.setprofile(hook)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return seen


def kernel_label(name, traced):
    """Which convolution kernel ran: by the op whose forward ran, not by the dispatcher's file (the
    CPU's conv_pool_relu lives in winograd.py and falls back to the direct kernel)."""
    if "winograd.forward" in traced:
        return "winograd"
    if "conv_few.forward" in traced or "conv_few.backward" in traced:
        return "few-channel"
    return "direct" if name.startswith("conv") else ""


def make_gemms(np, a, b):
    """The reference GEMM a @ b on all the process's cores, and on one (as the package holds its BLAS
    inside its ops); see the NOTE in the module docstring."""
    from threadpoolctl import ThreadpoolController
    controller = ThreadpoolController()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    def gemm():
        with controller.limit(limits=cores, user_api="blas"):
            np.matmul(a, b)

    def gemm_one_core():
        with controller.limit(limits=1, user_api="blas"):
            np.matmul(a, b)

    return gemm, gemm_one_core


def worker(checkout):
    from common import time_samples  # noqa: F401  (puts this folder's parent on sys.path; ours goes first)
    sys.path.insert(0, checkout)
    import numpy as np
    import tinygrad_cnn as tg

    rows = build(tg)
    a, b = (np.random.default_rng(1).standard_normal((GEMM_SIZE, GEMM_SIZE)).astype(np.float32) for _ in range(2))

    gemm, gemm_one_core = make_gemms(np, a, b)

    info = dict(tinygrad_cnn=os.path.dirname(os.path.abspath(tg.__file__)), gemm_flops=2.0 * GEMM_SIZE ** 3,
                numpy=np.__version__, rows=[])
    for name, fn, flops, winograd in rows:
        fn()  # untraced first: the Adam row's first call makes the gradients it steps with
        traced = traced_kernels(tg, fn)
        info["rows"].append(dict(name=name, flops=flops, winograd_floor_flops=winograd, traced_kernels=traced,
                                 kernel=kernel_label(name, traced)))
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        repeats = int(line)
        out = []
        for name, fn, _, _ in rows:
            samples = time_samples({"row": fn, "gemm": gemm, "gemm_one_core": gemm_one_core}, repeats)
            out.append(dict(row=samples["row"], gemm=samples["gemm"], gemm_one_core=samples["gemm_one_core"]))
        print(json.dumps(out), flush=True)


# ------------------------------------------------------------------------------------------ parent

def start(checkout):
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", checkout], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=checkout)
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"the worker for {checkout} did not start (see its error above)")
    return proc, json.loads(line)


def summarize(info, rounds):
    """Per row: median ms over all samples, per-round medians, the GEMM rate beside it, rates and shares."""
    rows = []
    for i, meta in enumerate(info["rows"]):
        row = [s for r in rounds for s in r[i]["row"]]
        gemm = [s for r in rounds for s in r[i]["gemm"]]
        seconds, gemm_s = statistics.median(row), statistics.median(gemm)
        gemm_rate = info["gemm_flops"] / gemm_s
        one_core = statistics.median([s for r in rounds for s in r[i]["gemm_one_core"]])
        entry = dict(meta, ms=seconds * 1e3, ms_min=min(row) * 1e3, ms_max=max(row) * 1e3,
                     round_ms=[statistics.median(r[i]["row"]) * 1e3 for r in rounds], samples=len(row),
                     gemm_gflops=gemm_rate / 1e9, gemm_one_core_gflops=info["gemm_flops"] / one_core / 1e9)
        if meta["flops"]:
            entry.update(gflops=meta["flops"] / seconds / 1e9, share_of_gemm=meta["flops"] / seconds / gemm_rate,
                         gemm_floor_ms=meta["flops"] / gemm_rate * 1e3,
                         winograd_floor_ms=meta["winograd_floor_flops"] / gemm_rate * 1e3)
        rows.append(entry)
    return rows


def print_rows(label, rows):
    from common import print_table
    f = lambda v, fmt: "-" if v is None else fmt.format(v)  # noqa: E731
    print(f"\n{label}")
    print_table(["layer (batch 128)", "kernel", "ms fwd+bwd (min-max)", "GFLOP direct", "GFLOP Winograd floor",
                 "GFLOP/s", "GEMM GFLOP/s", "% of GEMM", "ms at GEMM rate: direct / Winograd"],
                [[r["name"], r["kernel"] or "-", f"{r['ms']:.2f} ({r['ms_min']:.2f}-{r['ms_max']:.2f})",
                  f(r["flops"] and r["flops"] / 1e9, "{:.3f}"),
                  f(r["winograd_floor_flops"] and r["winograd_floor_flops"] / 1e9, "{:.3f}"),
                  f(r.get("gflops"), "{:.0f}"), f"{r['gemm_gflops']:.0f}", f(r.get("share_of_gemm") and
                                                                             100 * r["share_of_gemm"], "{:.0f}%"),
                  "-" if r.get("gemm_floor_ms") is None else f"{r['gemm_floor_ms']:.2f} / {r['winograd_floor_ms']:.2f}"]
                 for r in rows])
    parts = sum(r["ms"] for r in rows[:-1])
    print(f"sum of the blocks {parts:.1f} ms against the whole step's {rows[-1]['ms']:.1f} ms")
    for r in rows:
        print(f"  {r['name']}: {', '.join(r['traced_kernels'][:6]) or 'no kernels/ function on this thread'}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkout", default=os.path.dirname(HERE), help="the checkout to measure (default: this one)")
    p.add_argument("--baseline", default=None, help="a second checkout measured alternately (e.g. a worktree of main)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10, help="timed calls of each row (and of the GEMM) per round")
    p.add_argument("--json", default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(os.path.abspath(args.worker))
    from common import machine, provenance, write_json

    checkouts = {"new": os.path.abspath(args.checkout)}
    if args.baseline:
        checkouts = {"base": os.path.abspath(args.baseline), **checkouts}
    started = provenance(**{name: path for name, path in checkouts.items()})
    workers = {name: start(path) for name, path in checkouts.items()}
    rounds = {name: [] for name in workers}
    try:
        names = list(workers)
        for r in range(args.rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                proc = workers[name][0]
                proc.stdin.write(f"{args.repeats}\n")
                proc.stdin.flush()
                rounds[name].append(json.loads(proc.stdout.readline()))
            print(f"round {r + 1} of {args.rounds} done (load {os.getloadavg()[0]:.2f})", flush=True)
    finally:
        for proc, _ in workers.values():
            proc.stdin.close()
            proc.wait(timeout=60)
    results = {name: summarize(workers[name][1], rounds[name]) for name in workers}
    for name, rows in results.items():
        print_rows(f"{name}: {checkouts[name]} ({started.get(name + '_commit')}), batch {N}, float32, "
                   f"{args.rounds} rounds x {args.repeats} calls, medians", rows)
    comparison = []
    if args.baseline:
        for a, b in zip(results["base"], results["new"]):
            per_round = [y / x for x, y in zip(a["round_ms"], b["round_ms"])]
            comparison.append(dict(name=a["name"], base_ms=a["ms"], new_ms=b["ms"], ratio=statistics.median(per_round),
                                   ratio_min=min(per_round), ratio_max=max(per_round)))
        from common import print_table
        print("\nnew / base, per-round medians")
        print_table(["layer", "base ms", "new ms", "new/base (min-max)"],
                    [[c["name"], f"{c['base_ms']:.2f}", f"{c['new_ms']:.2f}",
                      f"{c['ratio']:.3f} ({c['ratio_min']:.3f}-{c['ratio_max']:.3f})"] for c in comparison])
    write_json(args.json, dict(benchmark="bench_layers", **started, checkouts=checkouts, batch_size=N,
                               rounds=args.rounds, repeats=args.repeats, gemm=f"np.matmul {GEMM_SIZE}^3 float32",
                               machine=machine(), load_average_at_end=[round(v, 2) for v in os.getloadavg()],
                               results=results, comparison=comparison,
                               imported={name: w[1]["tinygrad_cnn"] for name, w in workers.items()}))
    return results


if __name__ == "__main__":
    main()
