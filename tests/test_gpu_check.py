"""benchmarks/gpu_check.sh (issue 11 item 5): its limits fit the device machine's 8 minutes, it
stops at a failed preflight, and the whole check passes on the CuPy emulation within its limits."""
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def _limits(text):
    return [[int(v) for v in m.split()] for m in re.findall(r"^\s*limits=\(([\d ]+)\)", text, re.M)]


def test_the_real_runs_limits_add_up_to_under_8_minutes():
    text = SCRIPT.read_text()
    real, = [lim for lim in _limits(text) if lim[0] == 10]  # the GPU run's (a 10 s preflight)
    assert len(real) == 5 and sum(real) < 480, real
    assert "python " not in text.replace("python3", ""), "the device machine has python3 only"
    assert "pip install" not in text and "TINYGRAD_CNN_TEST_CUDA=1" in text


def _run(tmp_path, **env):
    env = {**os.environ, "OUT": str(tmp_path), **env}
    env.pop("TINYGRAD_CNN_EMULATE_CUPY", None)
    return subprocess.run(["bash", str(SCRIPT), "--emulate"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)


def test_a_failed_preflight_stops_the_check_with_a_message(tmp_path):
    done = _run(tmp_path, TINYGRAD_CNN_EMULATED_GPUS="0")  # CuPy imports, no device answers
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "preflight failed" in done.stderr and "no CUDA device" in done.stdout
    assert sorted(os.listdir(tmp_path)) == ["summary.md"]  # no later step ran


@pytest.mark.skipif(os.environ.get("TINYGRAD_CNN_EMULATE_CUPY", "1").strip() in ("0", ""),
                    reason="the emulation is turned off")
def test_the_whole_check_passes_on_the_emulation_within_its_limits(tmp_path):
    done = _run(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    files = sorted(os.listdir(tmp_path))
    assert files == ["compare.json", "compare.log", "epoch.log", "epoch_cuda.json", "mnist.log", "mnist_metrics.json",
                     "pytest.log", "summary.md"]
    summary = (tmp_path / "summary.md").read_text()
    assert "preflight ok" in summary and "CuPy emulation" in summary
    rows = re.findall(r"^\| (\w+) \| (.+?) \| (\d+) s of (\d+) s \|$", summary, re.M)
    assert [r[0] for r in rows] == ["compare", "pytest", "epoch", "mnist"]
    assert all(verdict == "pass" and int(took) <= int(limit) for _, verdict, took, limit in rows), rows
    assert re.search(r"\d+ passed", summary) and "default example: test accuracy" in summary
    assert "CPU against GPU, Adam x10" in summary and "CPU against GPU, AdamW x10" in summary
    assert "NOT met" not in summary.split("default example")[0]


def _pytest_on(gpus, test):
    env = {**os.environ, "TINYGRAD_CNN_EMULATED_GPUS": str(gpus), "TINYGRAD_CNN_TEST_CUDA": "1"}
    return subprocess.run(["python3", "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", test], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(os.environ.get("TINYGRAD_CNN_EMULATE_CUPY", "1").strip() in ("0", ""),
                    reason="the emulation is turned off")
def test_a_test_that_needs_two_gpus_skips_on_one_and_fails_on_none_even_when_cuda_is_required():
    """The lent machines have one GPU: a cuda:1 test must skip there, while TINYGRAD_CNN_TEST_CUDA=1 still
    fails a check that has no GPU at all."""
    test = "tests/test_devices.py::test_an_arange_constant_lives_on_its_gpu_and_costs_no_launch_after_the_first"
    one = _pytest_on(1, test)
    assert one.returncode == 0 and "1 skipped" in one.stdout and "needs 2 GPUs" in one.stdout, one.stdout[-2000:]
    assert _pytest_on(2, test).returncode == 0
    none = _pytest_on(0, test)
    assert none.returncode != 0 and "TINYGRAD_CNN_TEST_CUDA=1 but no CUDA" in none.stdout, none.stdout[-2000:]
