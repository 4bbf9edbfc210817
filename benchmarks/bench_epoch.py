"""One training epoch of the tutorial's CNN on real MNIST: ours against PyTorch in the same process,
then against TensorFlow/Keras in separate processes, run alternately.

    python benchmarks/bench_epoch.py                # full epoch (60,000 images), batch 128, Adam
    python benchmarks/bench_epoch.py --quick        # 6,400 images: a smoke run in seconds
    python benchmarks/bench_epoch.py --json benchmarks/results/epoch_cpu.json
    python3 benchmarks/bench_epoch.py --device cuda --frameworks ours,torch --no-memory   # against PyTorch CUDA
    python benchmarks/bench_epoch.py --frameworks ours,torch --runs 3 --keras-python /work/tfenv/bin/python \
        --baseline /tmp/base --json benchmarks/results/epoch_peers.json    # today (/tmp/base) beside this checkout

Same process: both frameworks train the same architecture on the same batches, interleaved in
chunks of batches so that noise from other work on the machine hits both alike. Peak resident
memory is measured separately, one child process per framework, since one process cannot tell
whose memory is whose. Test accuracy, after the epoch, is on the 10,000 test images.

Separate processes (`--runs N`, CPU only): each run is one process per runner (epoch_child.py):
`ours` (the example's way, with its `keep_freed_memory()`), `ours-user` (a user's own loop, no
memory-tuning call), `keras` (TensorFlow/Keras, in the interpreter `--keras-python` names; skipped
with a line saying why when it cannot import them), and with `--baseline PATH` the same two of ours
from that checkout (`base`, `base-user`). Runs alternate in A B C, C B A order, so each runner's
process meets the machine's slow and quiet moments alike; each prints first-epoch seconds,
inference images/s on the test images, test accuracy and peak memory, and the summary gives
medians, spreads and per-run ratios.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from common import (ROOT, load_torch, machine, machine_busy_seconds, peak_rss_mb, print_table, provenance, spread,
                    sync, write_json)

import tinygrad_cnn as tg
from tinygrad_cnn import optim
from tinygrad_cnn.datasets import mnist
from tinygrad_cnn.nn import functional as F
from mnist import build_model  # examples/mnist.py


class Ours:
    name = "ours"

    def __init__(self, device, lr):
        tg.manual_seed(0)
        self.device = device
        self.model = build_model()
        self.model.to(device)
        self.opt = optim.Adam(self.model.parameters(), lr=lr)

    def step(self, x, y):
        xb, yb = tg.Tensor(x, device=self.device), tg.Tensor(y, device=self.device)
        loss = F.cross_entropy(self.model.logits(xb), yb)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        sync(self.device)

    def predict(self, x):
        self.model.eval()
        with tg.no_grad():
            out = self.model.logits(tg.Tensor(x, device=self.device)).argmax(axis=1).numpy()
        sync(self.device)
        self.model.train()
        return out


class OursChannelsLast(Ours):
    """The same model and step on channels-last (N, H, W, C) batches: tinygrad_cnn.keras's layers."""

    name = "ours-nhwc"

    def __init__(self, device, lr):
        from tinygrad_cnn import keras
        tg.manual_seed(0)
        self.device = device
        self.model = keras.Sequential([
            keras.layers.Conv2D(32, (3, 3), padding="same", activation="relu", input_shape=(28, 28, 1)),
            keras.layers.MaxPooling2D((2, 2), strides=2),
            keras.layers.Conv2D(64, (3, 3), padding="same", activation="relu"),
            keras.layers.MaxPooling2D((2, 2), strides=2),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ], device=device)
        self.opt = optim.Adam(self.model.parameters(), lr=lr)

    @staticmethod
    def _nhwc(x):
        return x.transpose(0, 2, 3, 1)  # (N, 1, 28, 28) -> (N, 28, 28, 1): the same memory

    def step(self, x, y):
        super().step(self._nhwc(x), y)

    def predict(self, x):
        return super().predict(self._nhwc(x))


class Torch:
    name = "torch"

    def __init__(self, device, lr):
        import torch
        from torch import nn
        torch.manual_seed(0)
        self.torch, self.device = torch, "cuda" if device.startswith("cuda") else "cpu"
        self.model = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10)).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)

    def step(self, x, y):
        torch = self.torch
        xb, yb = torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)
        loss = torch.nn.functional.cross_entropy(self.model(xb), yb)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        if self.device == "cuda":
            torch.cuda.synchronize()

    def predict(self, x):
        torch = self.torch
        self.model.eval()
        with torch.no_grad():
            out = self.model(torch.from_numpy(x).to(self.device)).argmax(1).cpu().numpy()
        if self.device == "cuda":
            torch.cuda.synchronize()
        self.model.train()
        return out


def batch(x, y, order, index, batch_size):
    """Batch `index` of one shuffled epoch, made on demand so the harness holds one batch at a time."""
    idx = order[index * batch_size:(index + 1) * batch_size]
    return mnist.to_float_images(x[idx]), y[idx].astype(np.int64)


def evaluate(runner, x, y, batch_size=1000):
    """Test accuracy and inference throughput (images/s) over the whole test set."""
    correct, start = 0, time.perf_counter()
    for i in range(0, len(x), batch_size):
        correct += int((runner.predict(mnist.to_float_images(x[i:i + batch_size])) == y[i:i + batch_size]).sum())
    return correct / len(x), len(x) / (time.perf_counter() - start)


def train(runners, x, y, batch_size, chunk=10, settle=0.05):
    """Train every runner on the same batches; chunks of `chunk` batches alternate between them.

    Before each timed chunk the harness pauses `settle` seconds: idle worker threads keep
    spinning for a while after the last op (PyTorch's OpenMP threads, several milliseconds),
    and without the pause the next chunk would start on cores the other framework still holds."""
    seconds = {r.name: 0.0 for r in runners}
    order = np.random.default_rng(0).permutation(len(x))
    count = -(-len(x) // batch_size)
    for start in range(0, count, chunk):
        stream = [batch(x, y, order, i, batch_size) for i in range(start, min(start + chunk, count))]
        for r in runners:
            time.sleep(settle)
            t0 = time.perf_counter()
            for xb, yb in stream:
                r.step(xb, yb)
            seconds[r.name] += time.perf_counter() - t0
    return seconds


def worker(framework, device, images, batch_size, lr):
    """Child process: train one framework alone and report its peak resident memory."""
    (x, y), _ = mnist.load_data()
    before = peak_rss_mb()
    runner = {"ours": Ours, "ours-nhwc": OursChannelsLast, "torch": Torch}[framework](device, lr)
    train([runner], x[:images], y[:images], batch_size)
    print(json.dumps(dict(framework=framework, peak_rss_mb=peak_rss_mb(), after_data_rss_mb=before)))


def measure_memory(framework, args, images):
    cmd = [sys.executable, __file__, "--worker", framework, "--device", args.device, "--images", str(images),
           "--batch-size", str(args.batch_size), "--lr", str(args.lr)] + (["--system-malloc"] if args.system_malloc else [])
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr[-2000:])
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]


CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "epoch_child.py")
SEPARATE = ("ours", "ours-user", "keras")


def keras_python(path):
    """The interpreter that runs the Keras peer, or None with the reason printed (it is optional)."""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        out = subprocess.run([path, "-c", "import tensorflow, keras; print(tensorflow.__version__, keras.__version__)"],
                             capture_output=True, text=True, env=env, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        out = None
        why = str(e)
    if out is not None and out.returncode == 0:
        return path
    if out is not None:
        why = (out.stderr.strip().splitlines() or ["no output"])[-1]
    print(f"TensorFlow/Keras not available to {path} ({why}): no Keras peer. It is only a peer: install it apart "
          f"(python -m venv /work/tfenv && /work/tfenv/bin/pip install tensorflow-cpu==2.21.0 keras==3.15.1) "
          f"and pass --keras-python /work/tfenv/bin/python")
    return None


def separate_runners(args):
    """(name, kind, checkout, interpreter) of each runner of the separate-process comparison."""
    wanted = [name.strip() for name in args.processes.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(SEPARATE))
    if unknown:
        raise SystemExit(f"--processes: unknown {', '.join(unknown)} (use {', '.join(SEPARATE)})")
    ours = os.path.abspath(args.ours)
    runners = [(name, name, ours, sys.executable) for name in wanted if name != "keras"]
    for i, path in enumerate(args.baseline):
        label = "base" if i == 0 else f"base{i + 1}"
        runners += [(label + name[4:], name, os.path.abspath(path), sys.executable) for name in wanted if name != "keras"]
    if "keras" in wanted:
        python = keras_python(args.keras_python)
        if python:
            runners.append(("keras", "keras", ours, python))
    return runners


def run_child(runner, args, images):
    name, kind, checkout, python = runner
    cmd = [python, CHILD, "--kind", kind, "--checkout", checkout, "--images", str(images), "--batch-size",
           str(args.batch_size), "--lr", str(args.lr)]
    if args.test_images:
        cmd += ["--test-images", str(args.test_images)]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    for attempt in range(1 + 3 * (args.max_others is not None)):
        busy, children, start = machine_busy_seconds(), _children_cpu(), time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if out.returncode != 0:
            print(out.stderr[-3000:])
            raise SystemExit(f"{name}: {' '.join(cmd)} failed (exit {out.returncode})")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["process_seconds"] = wall = time.perf_counter() - start
        # the share of a core other processes of the machine used meanwhile (None where unknown)
        result["others_core_share"] = None if busy is None else max(
            0.0, machine_busy_seconds() - busy - (_children_cpu() - children)) / wall
        if args.max_others is None or result["others_core_share"] is None or result["others_core_share"] <= args.max_others:
            break
        print(f"  ({name}: other processes used {result['others_core_share']:.2f} of a core; run again)", flush=True)
    result["attempts"] = attempt + 1
    return result


def _share(value):
    return "unknown" if value is None else f"{value:.2f} of a core"


def _children_cpu():
    """CPU seconds of this process's finished children (all their threads), where the OS says."""
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


RATIOS = [("ours", "keras"), ("ours-user", "keras"), ("ours-user", "ours"), ("base", "keras"), ("base-user", "keras"),
          ("base-user", "base"), ("ours", "base"), ("ours-user", "base-user")]


def alternate_processes(args, images):
    """Every runner's epoch in its own process, `args.runs` rounds alternating A B C, C B A."""
    runners = separate_runners(args)
    if not runners:
        return None
    runs, names = [], [r[0] for r in runners]
    print(f"\nseparate processes, {args.runs} rounds of {', '.join(names)} (alternating order); load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    for rnd in range(args.runs):
        for runner in (runners if rnd % 2 == 0 else runners[::-1]):
            result = run_child(runner, args, images)
            result["training_memory_mb"] = result["peak_rss_mb"] - result["rss_before_training_mb"]
            # the cores the epoch kept busy (its process's CPU time over its wall time): Keras' default
            # thread pools used 1.1 of this VM's 2 cores in some hours and ~1.9 in others (benchmarks/README.md)
            result["first_epoch_cores"] = result["first_epoch_cpu_seconds"] / result["first_epoch_seconds"]
            runs.append(dict(round=rnd, runner=runner[0], **result))
            print(f"  round {rnd + 1} {runner[0]:10s} first epoch {result['first_epoch_seconds']:6.2f} s "
                  f"on {result['first_epoch_cores']:.2f} cores, inference {result['inference_images_per_second']:7.0f} images/s, accuracy "
                  f"{result['test_accuracy']:.4f}, peak {result['peak_rss_mb']:.0f} MB "
                  f"(load {os.getloadavg()[0]:.2f}; others {_share(result['others_core_share'])})", flush=True)
    summary = {}
    for name in names:
        mine = [r for r in runs if r["runner"] == name]
        summary[name] = {key: dict(zip(("median", "min", "max"), spread([r[key] for r in mine])),
                                   values=[r[key] for r in mine])
                         for key in ("first_epoch_seconds", "first_epoch_cores", "inference_images_per_second",
                                     "test_accuracy", "peak_rss_mb", "training_memory_mb")}
        summary[name]["checkout"] = mine[0].get("tinygrad_cnn") or mine[0].get("tensorflow")
    ratios = {}
    for a, b in RATIOS:
        if a in summary and b in summary:
            seconds = {n: [r["first_epoch_seconds"] for r in runs if r["runner"] == n] for n in (a, b)}
            per_round = [x / y for x, y in zip(seconds[a], seconds[b])]
            ratios[f"{a}/{b}"] = dict(zip(("median", "min", "max"), spread(per_round)), per_round=per_round,
                                      of_medians=statistics.median(seconds[a]) / statistics.median(seconds[b]))
    rows = []
    for name in names:
        s = summary[name]
        e, i, m = s["first_epoch_seconds"], s["inference_images_per_second"], s["peak_rss_mb"]
        rows.append([name, f"{e['median']:.2f} ({e['min']:.2f}-{e['max']:.2f})", f"{s['first_epoch_cores']['median']:.2f}",
                     f"{i['median']:,.0f}",
                     f"{s['test_accuracy']['median']:.4f}", f"{m['median']:.0f} ({m['min']:.0f}-{m['max']:.0f})",
                     f"{s['training_memory_mb']['median']:.0f}"])
    print(f"\none epoch of {images} images, batch {args.batch_size}, Adam lr {args.lr}, each run its own process, "
          f"{args.runs} runs, medians (min-max)")
    print_table(["runner", "first epoch s", "cores busy", "inference images/s", "test accuracy", "peak MB",
                 "of it added in training MB"], rows)
    if ratios:
        print_table(["first-epoch ratio", "per run: median (min-max)", "of the medians"],
                    [[k, f"{v['median']:.3f} ({v['min']:.3f}-{v['max']:.3f})", f"{v['of_medians']:.3f}"]
                     for k, v in ratios.items()])
    return dict(runners={r[0]: dict(kind=r[1], checkout=r[2], python=r[3]) for r in runners},
                runs=runs, summary=summary, ratios=ratios)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--quick", action="store_true", help="6,400 training images instead of 60,000")
    p.add_argument("--images", type=int, default=None, help="training images (default: all, or 6,400 with --quick)")
    p.add_argument("--no-memory", action="store_true", help="skip the child processes that measure peak memory")
    p.add_argument("--system-malloc", action="store_true",
                   help="leave glibc's malloc at its defaults (no tinygrad_cnn.memory.keep_freed_memory())")
    p.add_argument("--frameworks", default="ours,ours-nhwc,torch",
                   help="comma-separated runners, from ours, ours-nhwc and torch (default: all three)")
    p.add_argument("--test-images", type=int, default=None, help="test images to evaluate on (default: all)")
    p.add_argument("--runs", type=int, default=None,
                   help="rounds of the separate-process comparison (default 3, 1 with --quick; 0: skip it; CPU only)")
    p.add_argument("--processes", default=",".join(SEPARATE),
                   help="separate-process runners, from ours, ours-user and keras (default: all three)")
    p.add_argument("--ours", default=ROOT, help="the checkout the separate `ours` runners run (default: this one)")
    p.add_argument("--baseline", action="append", default=[], metavar="PATH",
                   help="another checkout (e.g. a git worktree of an older commit) whose ours and ours-user "
                        "join the alternation as base and base-user; repeatable")
    p.add_argument("--keras-python", default=os.environ.get("TINYGRAD_CNN_KERAS_PYTHON", sys.executable),
                   help="the interpreter with TensorFlow and Keras 3 (default: $TINYGRAD_CNN_KERAS_PYTHON or this one)")
    p.add_argument("--max-others", type=float, default=None,
                   help="run a separate-process epoch again (up to 3 more times) when other processes used more "
                        "than this share of a core meanwhile (e.g. 0.1; Linux); each run records the share")
    p.add_argument("--json", default=None)
    p.add_argument("--worker", choices=["ours", "ours-nhwc", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    images = args.images or (6400 if args.quick else 60000)
    kept = False if args.system_malloc else tg.memory.keep_freed_memory()  # both frameworks share the process
    if args.worker:
        return worker(args.worker, args.device, images, args.batch_size, args.lr)

    device = tg.device.canonical_device(args.device)
    started = provenance(**{f"baseline{i + 1}": path for i, path in enumerate(args.baseline)})
    results = same_process(args, p, device, images, kept) if args.frameworks.strip() else {}
    separate, asked = None, args.runs
    args.runs = (1 if args.quick else 3) if asked is None else asked
    if args.runs > 0 and device == "cpu":
        separate = alternate_processes(args, images)
    elif asked:
        print("the separate-process comparison (Keras, a user's own loop) runs on the CPU only: skipped")
    write_json(args.json, dict(device=device, images=images, batch_size=args.batch_size, lr=args.lr,
                               keep_freed_memory=kept, machine=machine(), results=results, **started,
                               load_average_at_end=[round(v, 2) for v in os.getloadavg()],
                               separate_processes=separate))
    return results


def same_process(args, p, device, images, kept):
    """Ours (and ours-nhwc) against PyTorch, interleaved in this process; a table; the results."""
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    x_train, y_train = x_train[:images], y_train[:images]
    x_test, y_test = x_test[:args.test_images], y_test[:args.test_images]
    wanted = [name.strip() for name in args.frameworks.split(",") if name.strip()]
    unknown = sorted(set(wanted) - {"ours", "ours-nhwc", "torch"})
    if unknown:
        p.error(f"--frameworks: unknown {', '.join(unknown)} (use ours, ours-nhwc, torch)")
    runners = [cls(device, args.lr) for name, cls in (("ours", Ours), ("ours-nhwc", OursChannelsLast))
               if name in wanted]
    if "torch" in wanted and load_torch(device) is not None:
        runners.append(Torch(device, args.lr))
    elif "torch" in wanted:
        print(f"PyTorch (with {'CUDA' if device != 'cpu' else 'the CPU'}) not available: no peer "
              f"(pip install torch==2.13.0 for the CPU wheel)")
    seconds = train(runners, x_train, y_train, args.batch_size)
    results = {}
    for r in runners:
        acc, infer = evaluate(r, x_test, y_test)
        results[r.name] = dict(epoch_seconds=seconds[r.name], images_per_second=images / seconds[r.name],
                               test_accuracy=acc, inference_images_per_second=infer)
        if not args.no_memory:
            results[r.name]["peak_rss_mb"] = measure_memory(r.name, args, images)

    names = [r.name for r in runners]
    fmt = {"epoch_seconds": "{:.1f}", "images_per_second": "{:.0f}", "test_accuracy": "{:.4f}",
           "inference_images_per_second": "{:.0f}", "peak_rss_mb": "{:.0f}"}
    rows = []
    for key, f in fmt.items():
        values = [results[n].get(key) for n in names]
        row = [key] + [f.format(v) if v is not None else "-" for v in values]
        ours, nhwc, torch_ = (results.get(n, {}).get(key) for n in ("ours", "ours-nhwc", "torch"))
        if "torch" in results and "ours" in results:
            row.append(f"{ours / torch_:.2f}x" if ours and torch_ else "-")
        if "ours-nhwc" in results and "ours" in results:
            row.append(f"{nhwc / ours:.3f}x" if ours and nhwc else "-")
        rows.append(row)
    headers = (["metric"] + names + (["ours/PyTorch"] if "torch" in results and "ours" in results else [])
               + (["nhwc/nchw"] if "ours-nhwc" in results and "ours" in results else []))
    print(f"\none epoch of {images} images, batch {args.batch_size}, Adam lr {args.lr}, device {device}, "
          f"freed memory kept for reuse: {kept}")
    print_table(headers, rows)
    return results


if __name__ == "__main__":
    main()
