"""Shared test setup: hypothesis profiles, and the devices every device-aware test runs on.

Hypothesis profile: HYPOTHESIS_PROFILE=ci (default, fast), dev, or thorough (300 examples).
GPU: tests parametrized with DEVICES also run on "cuda", marked `gpu`; they are skipped when CuPy
or a GPU is missing, unless TINYGRAD_CNN_TEST_CUDA=1, which turns the skip into an error so that a
GPU check cannot pass by skipping everything."""
import os

import pytest
from hypothesis import HealthCheck, settings

import tinygrad_cnn

# ---------------------------------------------------------------- hypothesis profiles

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]
# NOTE: deadline=None everywhere: timings on shared machines are too noisy for per-example deadlines.
settings.register_profile("ci", max_examples=15, deadline=None, database=None, print_blob=True,
                          suppress_health_check=_SLOW_OK)
settings.register_profile("dev", max_examples=60, deadline=None, print_blob=True,
                          suppress_health_check=_SLOW_OK)
settings.register_profile("thorough", max_examples=300, deadline=None, database=None, print_blob=True,
                          suppress_health_check=_SLOW_OK)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# ---------------------------------------------------------------- devices

REQUIRE_CUDA_ENV = "TINYGRAD_CNN_TEST_CUDA"
CUDA_AVAILABLE = tinygrad_cnn.cuda_available()
# The brief's helper is ["cpu"] + (["cuda"] if cuda_available() else []); "cuda" is always listed
# here instead, marked gpu, so that a machine without CUDA reports the GPU tests as skipped (or,
# with TINYGRAD_CNN_TEST_CUDA=1, as errors) rather than leaving them out without a word.
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu, id="cuda")]


def cuda_required():
    return os.environ.get(REQUIRE_CUDA_ENV, "").strip() not in ("", "0")


def _why_no_cuda():
    try:
        tinygrad_cnn.device.array_module("cuda:0")
    except tinygrad_cnn.DeviceError as e:
        return str(e)
    return "CUDA is available"


def pytest_report_header(config):
    return (f"tinygrad_cnn devices: cpu{', cuda' if CUDA_AVAILABLE else ''} "
            f"({REQUIRE_CUDA_ENV}={os.environ.get(REQUIRE_CUDA_ENV, '')!s}; "
            f"hypothesis profile {settings.get_current_profile_name()})")


def pytest_runtest_setup(item):
    if item.get_closest_marker("gpu") is None or CUDA_AVAILABLE:
        return
    reason = f"no CUDA: {_why_no_cuda()}"
    if cuda_required():
        pytest.fail(f"{REQUIRE_CUDA_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(reason)
