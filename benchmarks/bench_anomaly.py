"""What anomaly mode (tg.detect_anomaly) costs: a small op and MNIST-sized ops, mode off against on.

    python benchmarks/bench_anomaly.py                # table
    python benchmarks/bench_anomaly.py --repeats 50 --json benchmarks/results/anomaly_cpu.json

Off and on runs of each workload alternate in one process (medians). Off, an op pays only the
test of a module global (`if _anomaly.enabled:`) in Function.apply and in its backward: that
test is timed on its own here (against an empty loop, the same bytecode as in autograd.py), and
`off cost` is its time times the number of tests the workload runs, as a share of the workload's
time with the mode off. Timing off against a build without the tests would drown 30 ns in the
noise of the op itself."""
import argparse
import statistics
import time

import numpy as np

from common import machine, print_table, sync, time_interleaved, write_json

import tinygrad_cnn as tg
from tinygrad_cnn import anomaly
from tinygrad_cnn.nn import functional as F

_anomaly = anomaly  # NOTE: a module global of this file, so the timed test is autograd.py's bytecode


def workloads(device):
    """(name, callable, runs per timed sample); each callable runs the workload once and waits for the device."""
    rng = np.random.default_rng(0)

    def tensor(*shape, grad=True):
        return tg.Tensor(rng.standard_normal(shape).astype(np.float32), device=device, requires_grad=grad)

    a, b = tensor(4), tensor(4)
    g4 = tg.ones_like(a)
    x_relu = tensor(128, 32, 28, 28)
    g_relu = tg.ones_like(x_relu)
    x_img, w1, b1 = tensor(128, 1, 28, 28, grad=False), tensor(32, 1, 3, 3), tensor(32)
    g_conv = tg.Tensor(np.ones((128, 32, 28, 28), np.float32), device=device)
    x_fc, w_fc, b_fc = tensor(128, 3136, grad=False), tensor(128, 3136), tensor(128)
    g_fc = tg.Tensor(np.ones((128, 128), np.float32), device=device)

    def mul_forward():
        a * b
        sync(device)

    def mul_forward_backward():
        (a * b).backward(g4)
        sync(device)

    def relu_forward_backward():
        x_relu.relu().backward(g_relu)
        sync(device)

    def conv_forward_backward():
        F.conv2d(x_img, w1, b1, padding=1).backward(g_conv)
        sync(device)

    def dense_forward_backward():
        F.linear(x_fc, w_fc, b_fc).backward(g_fc)
        sync(device)

    # NOTE: a 4-element op takes microseconds: each timed sample runs it 200 times, against timer noise
    return [("mul (4,) forward", mul_forward, 200),
            ("mul (4,) forward+backward", mul_forward_backward, 200),
            ("relu (128,32,28,28) fwd+bwd", relu_forward_backward, 1),
            ("conv1 1->32 (128,1,28,28) fwd+bwd", conv_forward_backward, 1),
            ("dense 3136->128 batch 128 fwd+bwd", dense_forward_backward, 1)]


def tests_run(run):
    """How many times the workload tests the flag: once per check the mode-on run makes
    (forward outputs, gradients reaching a node, backward results), counted by wrapping them."""
    counts = {"n": 0}
    names = ("check_forward", "check_incoming", "check_backward")
    originals = {name: getattr(anomaly, name) for name in names}

    def counting(original):
        def wrapper(*args, **kwargs):
            counts["n"] += 1
            return original(*args, **kwargs)
        return wrapper
    try:
        for name in names:
            setattr(anomaly, name, counting(originals[name]))
        with tg.detect_anomaly():
            run()
    finally:
        for name, original in originals.items():
            setattr(anomaly, name, original)
    return counts["n"]


def flag_test_seconds(loops=200_000, repeats=15):
    """Seconds one `if _anomaly.enabled:` costs with the mode off: a loop of ten tests against
    an empty loop, interleaved, the median difference over ten.

    NOTE: the ten tests are written out, not looped over: an inner loop would time its own
    overhead, several times the ~20 ns of the test."""
    def with_tests(n):
        for _ in range(n):
            if _anomaly.enabled:
                pass
            if _anomaly.enabled:
                pass
            if _anomaly.enabled:
                pass
            if _anomaly.enabled:
                pass
            if _anomaly.enabled:
                pass
            if _anomaly.enabled:
                pass
            if _anomaly.enabled:
                pass
            if _anomaly.enabled:
                pass
            if _anomaly.enabled:
                pass
            if _anomaly.enabled:
                pass

    def without_tests(n):
        for _ in range(n):
            pass
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        with_tests(loops)
        middle = time.perf_counter()
        without_tests(loops)
        samples.append(((middle - start) - (time.perf_counter() - middle)) / (10 * loops))
    return max(statistics.median(samples), 0.0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    device = tg.device.canonical_device(args.device)
    assert not tg.is_anomaly_enabled()
    per_test = flag_test_seconds()
    rows, results = [], []
    for name, run, inner in workloads(device):
        def run_off(run=run, inner=inner):
            for _ in range(inner):
                run()

        def run_on(run=run, inner=inner):
            with tg.detect_anomaly():
                for _ in range(inner):
                    run()
        times = {mode: t / inner for mode, t in
                 time_interleaved({"off": run_off, "on": run_on}, args.repeats, busy=0.005).items()}
        tests = tests_run(run)
        off_cost = tests * per_test / times["off"]
        rows.append([name, f"{times['off'] * 1e6:.1f}", f"{times['on'] * 1e6:.1f}",
                     f"{times['on'] / times['off']:.2f}x", tests, f"{off_cost * 100:.2g}%"])
        results.append(dict(workload=name, off_us=times["off"] * 1e6, on_us=times["on"] * 1e6,
                            on_over_off=times["on"] / times["off"], flag_tests=tests, off_cost=off_cost))
    print(f"\nanomaly mode off against on, device {device}, float32, median of {args.repeats} interleaved runs; "
          f"one flag test with the mode off: {per_test * 1e9:.1f} ns")
    print_table(["workload", "off us", "on us", "on/off", "flag tests", "off cost"], rows)
    write_json(args.json, dict(device=device, repeats=args.repeats, flag_test_ns=per_test * 1e9,
                               machine=machine(), workloads=results))
    return results


if __name__ == "__main__":
    main()
