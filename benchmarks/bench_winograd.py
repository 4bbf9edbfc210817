"""Winograd F(2x2, 3x3) against the direct convolution kernel, for the tutorial model's conv blocks.

One process, the two kernels interleaved (A B B A rounds) on the same tensors: forward alone, and
forward + backward (all gradients the training step needs). conv2 is the block Winograd is chosen
for (32 -> 64 channels, 14x14, pad 1, 2x2 pool, ReLU, batch 128); conv1 (1 -> 32 channels, 28x28)
is shown for information (Winograd is not chosen there: kernels/winograd.py WINS_FROM_CHANNELS), and
conv2 with 4, 8 and 16 input channels (--blocks conv2-c4,conv2-c8,conv2-c16) where the choice turns;
`step` is a whole training step of the tutorial model (Adam, batch 128) with Winograd off and on.

    python benchmarks/bench_winograd.py [--rounds 15] [--json benchmarks/results/winograd_cpu.json]
    python benchmarks/bench_winograd.py --baseline /work/main --blocks conv2   # another checkout's Winograd as A

With --baseline, the A side of each block is the kernels/winograd.py of that checkout (loaded into this
package, with this checkout's other kernels) instead of the direct kernel: Winograd before and after a change.
"""
import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from common import ROOT, machine, peak_rss_mb, print_table, write_json

import tinygrad_cnn as tg
from tinygrad_cnn.kernels import conv as direct, winograd

BLOCKS = {  # name: (input shape, output channels, input needs a gradient)
    "conv2": ((128, 32, 14, 14), 64, True),
    "conv1": ((128, 1, 28, 28), 32, False),
    # conv2's shape with fewer input channels: where Winograd starts to pay (WINS_FROM_CHANNELS)
    "conv2-c4": ((128, 4, 14, 14), 64, True),
    "conv2-c8": ((128, 8, 14, 14), 64, True),
    "conv2-c16": ((128, 16, 14, 14), 64, True),
}


def block(name, kernel, seed=0):
    """fwd() and step() (forward + backward) of one conv block run by `kernel`, on fixed float32 data."""
    shape, o, need_x = BLOCKS[name]
    rng = np.random.default_rng(seed)
    n, c, h, w_ = shape  # NOTE: x lives channels-last, as a conv block's input does in the model
    x = tg.Tensor(rng.standard_normal((n, h, w_, c), dtype=np.float32).transpose(0, 3, 1, 2), requires_grad=need_x)
    w = tg.Tensor(rng.standard_normal((o, shape[1], 3, 3), dtype=np.float32) * 0.1, requires_grad=True)
    b = tg.Tensor(rng.standard_normal(o, dtype=np.float32) * 0.1, requires_grad=True)
    up = tg.Tensor(rng.standard_normal((shape[0], o, shape[2] // 2, shape[3] // 2), dtype=np.float32))
    kwargs = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), pool=(2, 2), relu=True)

    def fwd():
        with tg.no_grad():
            kernel.apply(x, w, b, **kwargs)

    def step():
        for t in (x, w, b):
            t.grad = None
        kernel.apply(x, w, b, **kwargs).backward(up)
    return fwd, step


def baseline_winograd(checkout):
    """WinogradConvPool of another checkout's kernels/winograd.py, loaded as a module of this package."""
    import importlib.util
    path = os.path.join(checkout, "tinygrad_cnn", "kernels", "winograd.py")
    spec = importlib.util.spec_from_file_location("tinygrad_cnn.kernels._winograd_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.WinogradConvPool


def training_step(use_winograd, batch=128):
    """One Adam step of the tutorial model on a fixed batch, with Winograd chosen for conv2 or not
    (kernels/winograd.py WINS_FROM_CHANNELS switched around the step)."""
    from tinygrad_cnn import nn, optim
    from tinygrad_cnn.nn import functional as F
    tg.manual_seed(0)
    model = nn.Sequential([
        nn.Conv2D(32, 3, padding="same", activation="relu"), nn.MaxPool2D(2),
        nn.Conv2D(64, 3, padding="same", activation="relu"), nn.MaxPool2D(2),
        nn.Flatten(), nn.Dense(128, activation="relu"), nn.Dense(10, activation="softmax")], input_shape=(1, 28, 28))
    opt = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x, y = tg.Tensor(rng.random((batch, 1, 28, 28), dtype=np.float32)), tg.Tensor(rng.integers(0, 10, batch))
    threshold = 32 if use_winograd else None  # (None: not chosen, the default; 32 chooses it for conv2)

    def step():
        saved, winograd.WINS_FROM_CHANNELS = winograd.WINS_FROM_CHANNELS, threshold
        try:
            loss = F.cross_entropy(model.logits(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        finally:
            winograd.WINS_FROM_CHANNELS = saved
    return step


def peak_memory_child(use_winograd, steps=8):
    """Child process: the peak resident memory (MB) over `steps` training steps, counted from after
    the model and batch are built (Linux: VmHWM reset through /proc/self/clear_refs)."""
    step = training_step(use_winograd)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    for _ in range(steps):
        step()
    return peak_rss_mb()


def peak_memory(use_winograd):
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"import bench_winograd as b; print(b.peak_memory_child({use_winograd}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    return float(out.stdout.split()[-1]) if out.returncode == 0 else None


def interleaved(runs, rounds, warmup=3):
    """Seconds per call of each callable in `runs` (a dict of two), in A B B A rounds: all samples,
    and the per-round ratio second / first (the means of its two calls each)."""
    names = list(runs)
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in names}
    ratios = []
    for _ in range(rounds):
        got = {name: [] for name in names}
        for name in names + names[::-1]:
            start = time.perf_counter()
            runs[name]()
            got[name].append(time.perf_counter() - start)
        for name in names:
            samples[name] += got[name]
        ratios.append(statistics.mean(got[names[1]]) / statistics.mean(got[names[0]]))
    return samples, ratios


def summary(values, scale=1e3):
    values = sorted(values)
    return dict(median=statistics.median(values) * scale, low=values[len(values) // 10] * scale,
                high=values[-1 - len(values) // 10] * scale)


def commit():
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + ("+changes" if dirty else "")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--blocks", default="conv2,conv1,step", help="conv2, conv1, conv2-c4/c8/c16, step")
    p.add_argument("--chunk", type=int, default=None, help="winograd.CHUNK_BYTES to try (bytes)")
    p.add_argument("--memory", action="store_true", help="also the peak memory of 8 training steps, each way "
                   "(child processes, Linux)")
    p.add_argument("--threads", type=int, default=None, help="parallel.set_num_threads (default: one per core)")
    p.add_argument("--baseline", default=None, help="a checkout whose kernels/winograd.py is side A of the blocks "
                   "(instead of the direct kernel)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.threads:
        from tinygrad_cnn.kernels import parallel
        parallel.set_num_threads(args.threads)
    if args.chunk:
        winograd.CHUNK_BYTES = args.chunk
    rows, results = [], {}
    for name in args.blocks.split(","):
        if name == "step":  # the whole training step, Winograd off and on
            samples, ratios = interleaved(dict(direct=training_step(False), winograd=training_step(True)), args.rounds)
            entry = {k: summary(v) for k, v in samples.items()}
            entry["ratio"] = summary(ratios, scale=1)
            results["training step"] = entry
            rows.append(["model", "training step", "{median:.2f} ({low:.2f}-{high:.2f})".format(**entry["direct"]),
                         "{median:.2f} ({low:.2f}-{high:.2f})".format(**entry["winograd"]),
                         "{median:.3f} ({low:.3f}-{high:.3f})".format(**entry["ratio"])])
            continue
        fwd_d, step_d = block(name, baseline_winograd(args.baseline) if args.baseline else direct.FusedConvolution)
        fwd_w, step_w = block(name, winograd.WinogradConvPool)
        for phase, runs in (("forward", dict(direct=fwd_d, winograd=fwd_w)),
                            ("forward+backward", dict(direct=step_d, winograd=step_w))):
            samples, ratios = interleaved(runs, args.rounds)
            entry = {k: summary(v) for k, v in samples.items()}
            entry["ratio"] = summary(ratios, scale=1)
            results[f"{name} {phase}"] = entry
            rows.append([name, phase, "{median:.2f} ({low:.2f}-{high:.2f})".format(**entry["direct"]),
                         "{median:.2f} ({low:.2f}-{high:.2f})".format(**entry["winograd"]),
                         "{median:.3f} ({low:.3f}-{high:.3f})".format(**entry["ratio"])])
    if args.memory:
        results["peak_rss_mb_8_steps"] = memory = {name: peak_memory(on) for name, on in
                                                   (("direct", False), ("winograd", True))}
        print(f"peak memory over 8 training steps (MB): direct {memory['direct']}, winograd {memory['winograd']}")
    a = "baseline winograd" if args.baseline else "direct"
    print_table(["block", "phase", f"{a} ms (p10-p90)", "winograd ms (p10-p90)", f"winograd / {a} per round"], rows)
    write_json(args.json, dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                               commit=commit(), machine=machine(), threads=tg.get_num_threads(),
                               chunk_bytes=winograd.CHUNK_BYTES, rounds=args.rounds, baseline=args.baseline,
                               results=results))


if __name__ == "__main__":
    main()
