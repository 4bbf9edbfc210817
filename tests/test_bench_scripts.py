"""The benchmark scripts of issue 25 still run against the package (never their times: those are the
benchmarks' to report): bench_epoch's per-process runner trains both ways of ours on a few images
and reports what the tables read, and bench_layers counts FLOPs and names the kernel that ran."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import tinygrad_cnn as tg
from tinygrad_cnn import kernels
from tinygrad_cnn.nn import functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import bench_layers  # noqa: E402


@pytest.mark.parametrize("kind", ["ours", "ours-user"])
def test_epoch_child_trains_one_way_of_ours_and_reports_it(kind):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "epoch_child.py"), "--kind", kind,
                          "--checkout", ROOT, "--images", "256", "--test-images", "300"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["kind"] == kind and r["images"] == 256
    assert os.path.samefile(r["tinygrad_cnn"], os.path.join(ROOT, "tinygrad_cnn"))  # the checkout asked for
    # neither makes the process-wide malloc call: a user's own loop never did, and today's example no
    # longer does (kernels/buffers.py); `ours` makes it only for an older checkout whose example does
    assert r["keep_freed_memory"] is False
    assert r["first_epoch_seconds"] > 0 and r["inference_images_per_second"] > 0
    assert 0 < r["first_epoch_cpu_seconds"] <= 1.5 * r["first_epoch_seconds"] * (os.cpu_count() or 1) + 0.05
    assert 0 <= r["test_accuracy"] <= 1
    assert r["peak_rss_after_inference_mb"] >= r["peak_rss_mb"] > 0


def test_flop_counts_are_direct_convolutions_and_the_winograd_floor():
    # conv2 at batch 128: forward, weight and input gradients, each 2 x 128 x 14 x 14 x 64 x 32 x 9
    assert bench_layers.conv_flops(14, 14, 32, 64, 3) == 3 * 2 * 128 * 14 * 14 * 64 * 32 * 9
    assert bench_layers.dense_flops(3136, 128) == 3 * 2 * 128 * 3136 * 128
    assert bench_layers.WINOGRAD_SAVING == 2.25  # 36 multiplies per 2x2 tile directly, 16 in F(2x2, 3x3)


def test_the_kernel_column_names_what_ran():
    rng = np.random.default_rng(0)
    x = tg.Tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32), requires_grad=True)
    w = tg.Tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)

    def block():
        F.conv2d_max_pool2d(x, w, None, padding=1, pool_size=2, relu=True).sum().backward()

    traced = bench_layers.traced_kernels(tg, block)
    assert traced and all("." in name for name in traced)  # module.function under tinygrad_cnn/kernels/
    assert bench_layers.kernel_label("conv2 block", traced) in ("direct", "winograd")
    with kernels.reference():
        assert bench_layers.traced_kernels(tg, block) == []  # the reference path runs no kernels/ code
    assert bench_layers.kernel_label("conv2 block", ["winograd.forward"]) == "winograd"
    assert bench_layers.kernel_label("conv2 block", ["conv.conv_pool_relu"]) == "direct"
    # the CPU's dispatcher lives in winograd.py: passing through it is not Winograd running
    assert bench_layers.kernel_label("conv2 block", ["winograd.conv_pool_relu", "winograd.applies",
                                                     "conv.conv_pool_relu", "conv.forward"]) == "direct"


def test_provenance_names_the_compared_checkouts():
    """bench_epoch/bench_layers --baseline record each compared checkout's commit; two provenance()
    functions in common.py, one hiding the other, once made those runs fail."""
    import common
    info = common.provenance(base=ROOT)
    assert info["base_commit"] == common.commit(ROOT) and info["commit"] == common.commit(ROOT)
    assert info["date"] and info["command"].startswith("python ")


def test_bench_layers_reference_gemm_runs_on_all_cores(monkeypatch):
    """The package holds its BLAS at one thread after an op that splits work (kernels/parallel.py), and
    bench_layers' reference GEMM ran inside that hold: its "GEMM rate" was one core's (half this 2-core
    machine's), which made the convolutions look near the machine's rate. It runs on all cores now."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy as np
    import tinygrad_cnn as tg
    from tinygrad_cnn.kernels import parallel
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    controller = threadpoolctl.ThreadpoolController()
    if cores < 2 or not controller.select(user_api="blas").lib_controllers:
        pytest.skip("needs a BLAS that threadpoolctl sees and two cores")
    if parallel.get_num_threads() < 2:
        pytest.skip("the package's ops do not split here")
    x = tg.Tensor(np.ones((64, 3136), np.float32))
    tg.nn.Dense(128)(x)  # an op that splits: the BLAS is held at one thread from here
    seen = []
    real_matmul = np.matmul
    fake = type("NumPy", (), {"matmul": staticmethod(lambda a, b: seen.append(
        max(lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas")))})
    gemm, gemm_one_core = bench_layers.make_gemms(fake, None, None)
    gemm()
    gemm_one_core()
    assert seen == [cores, 1], seen
    assert np.matmul is real_matmul


def test_machine_busy_seconds_counts_this_process():
    import common
    if common.machine_busy_seconds() is None:
        pytest.skip("no /proc/stat here")
    before, start = common.machine_busy_seconds(), time.process_time()
    while time.process_time() - start < 0.3:
        pass
    assert common.machine_busy_seconds() - before >= 0.25


def test_bench_ab_measures_a_round_again_while_other_processes_are_busy():
    """--max-others: a round in which another process kept a core busy is not kept; with a spinner
    beside it all the time, none is, and the script says so instead of printing a ratio."""
    import common
    if common.machine_busy_seconds() is None or (os.cpu_count() or 1) < 2:
        pytest.skip("needs /proc/stat and two cores")
    # NOTE: two spinners: one shared its core with the side's two threads and sometimes got under half of it
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_ab.py"), "--a", ROOT,
                              "--b", ROOT, "--rounds", "1", "--steps", "2", "--max-others", "0.2"],
                             capture_output=True, text=True, timeout=600, cwd=ROOT)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert out.returncode != 0
    assert "no round was quiet enough" in out.stderr + out.stdout
    assert out.stdout.count("measured again") == 4


def _one_round_of(script, tmp_path, *more):
    """The JSON of one round of two steps of a benchmarks/ script (--max-others high: quiet or not)."""
    out_json = tmp_path / "out.json"
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), "--rounds", "1",
                          "--steps", "2", "--max-others", "100", "--json", str(out_json), *more],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out_json.read_text())


def test_bench_two_cores_separates_inflation_serial_part_and_waits(tmp_path):
    """One quiet-or-not round (--max-others high): the table's terms are all there and add up."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs two cores")
    r = _one_round_of("bench_two_cores.py", tmp_path)
    assert set(r["ms_per_step"]) == {"1", "2"} and r["quiet_rounds"] == 1
    ops = r["two_threads_per_op_ms"]
    assert any(name.startswith("FusedConvolution.backward") for name in ops)
    assert set(r["one_thread_per_op_ms"]) == set(ops)
    # the split ops and the serial part make up the step (medians, so only roughly)
    assert 0.5 * r["two_threads_step_ms"] < sum(v["wall"] for v in ops.values()) + r["two_threads_serial_ms"] \
        < 1.5 * r["two_threads_step_ms"]


def test_bench_two_cores_runs_conv2_on_winograd_when_asked(tmp_path):
    """--conv2 winograd: the split ops are Winograd's, and the file says which kernel ran."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs two cores")
    r = _one_round_of("bench_two_cores.py", tmp_path, "--conv2", "winograd")
    assert r["conv2"] == "winograd"
    assert any(name.startswith("WinogradConvPool") for name in r["two_threads_per_op_ms"])


def test_bench_epoch_counts_a_finished_child_as_its_own_cpu():
    """bench_epoch --max-others subtracts its child's CPU time from the machine's busy time: the child's
    threads must all be in it once the child has exited."""
    import bench_epoch
    before = bench_epoch._children_cpu()
    subprocess.run([sys.executable, "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"],
                   check=True)
    assert bench_epoch._children_cpu() - before >= 0.25


def test_bench_wakes_counts_the_sleeps_of_each_kernel(tmp_path):
    """One round (--max-others high): both conv2 kernels measured, their sleeps counted per op and per step."""
    if (os.cpu_count() or 1) < 2 or not os.path.exists("/proc/self/task"):
        pytest.skip("needs two cores and Linux's /proc")
    r = _one_round_of("bench_wakes.py", tmp_path, "--winograd-chunk-mb", "16")
    assert set(r["per_step"]) == {"direct", "winograd", "winograd 16 MiB chunks"} and r["quiet_rounds"] == 1
    # each Winograd side ran at its own chunk size (the module's own for the plain side)
    from tinygrad_cnn.kernels import winograd
    assert r["winograd_chunk_bytes"] == {"winograd": winograd.CHUNK_BYTES, "winograd 16 MiB chunks": 16 << 20}
    assert set(r["over_direct"]) == {"winograd", "winograd 16 MiB chunks"}
    assert r["wake_round_trip_us"]["median"] > 0
    ops = r["sleeps_per_op"]
    # each side ran its own conv2 kernel: Winograd's op only with Winograd on
    assert any(name.startswith("WinogradConvPool") for name in ops["winograd"])
    assert any(name.startswith("WinogradConvPool") for name in ops["winograd 16 MiB chunks"])
    assert not any(name.startswith("WinogradConvPool") for name in ops["direct"])
    # a pool thread sleeps at least once between two split ops, so a two-thread step has sleeps
    for side in r["per_step"].values():
        assert side["sleeps"] >= 1 and side["wall_ms"] > 0
    import bench_wakes
    before = bench_wakes.voluntary_switches()
    threading_event_round_trips = bench_wakes.wake_round_trip_us(trips=50)
    assert threading_event_round_trips > 0 and bench_wakes.voluntary_switches() > before
