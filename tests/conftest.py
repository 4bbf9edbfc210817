"""Shared test setup: hypothesis profiles, and the devices every device-aware test runs on.

Hypothesis profile: HYPOTHESIS_PROFILE=ci (default, fast), dev, or thorough (300 examples).
GPU: tests parametrized with DEVICES also run on "cuda", marked `gpu`. Without a real GPU they run
on the strict CuPy emulation (tests/cupy_emulation), put in place of `cupy` here; a real GPU always
takes precedence, and TINYGRAD_CNN_EMULATE_CUPY=0 turns the emulation off. When no CUDA (real or
emulated) is available they are skipped, unless TINYGRAD_CNN_TEST_CUDA=1, which turns the skip
into an error so that a GPU check cannot pass by skipping everything (set
TINYGRAD_CNN_EMULATE_CUPY=0 with it on a GPU machine, so that the emulation can never stand in)."""
import os
import sys

import pytest
from hypothesis import HealthCheck, settings

import tinygrad_cnn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cupy_emulation  # noqa: E402

EMULATE_ENV = "TINYGRAD_CNN_EMULATE_CUPY"
EMULATED = (os.environ.get(EMULATE_ENV, "1").strip() not in ("0", "")
            and not cupy_emulation.real_gpu_available())
if EMULATED:
    cupy_emulation.install()

# ---------------------------------------------------------------- hypothesis profiles

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]
# NOTE: deadline=None everywhere: timings on shared machines are too noisy for per-example deadlines.
settings.register_profile("ci", max_examples=15, deadline=None, database=None, print_blob=True,
                          suppress_health_check=_SLOW_OK)
settings.register_profile("dev", max_examples=60, deadline=None, print_blob=True,
                          suppress_health_check=_SLOW_OK)
settings.register_profile("thorough", max_examples=300, deadline=None, database=None, print_blob=True,
                          suppress_health_check=_SLOW_OK)
# NOTE: the gpu variants on the emulation run the same NumPy code as the cpu ones, under CuPy's rules:
# a few examples each find a broken rule; more would double CI's time for little.
settings.register_profile("emulated", max_examples=3, deadline=None, database=None, print_blob=True,
                          suppress_health_check=_SLOW_OK)
# NOTE: the GPU check (benchmarks/gpu_check.sh) on a lent GPU: its kernels differ by dtype and rank, not by
# shape, so a few examples each find a broken one, and the check's 10 minutes go to compiling them.
settings.register_profile("gpu", max_examples=5, deadline=None, database=None, print_blob=True,
                          suppress_health_check=_SLOW_OK)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)

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
    cuda = ", cuda (CuPy emulation on NumPy)" if CUDA_AVAILABLE and EMULATED else ", cuda" if CUDA_AVAILABLE else ""
    return (f"tinygrad_cnn devices: cpu{cuda} "
            f"({REQUIRE_CUDA_ENV}={os.environ.get(REQUIRE_CUDA_ENV, '')!s}; "
            f"hypothesis profile {settings.get_current_profile_name()})")


@pytest.fixture(autouse=True)
def _fresh_emulated_device():
    """Each test starts on emulated device 0, whatever the one before it left current."""
    if EMULATED:
        cupy_emulation.reset()
    yield


def gpu_count():
    """How many CUDA devices (real, or emulated) there are; 0 without CUDA."""
    if not CUDA_AVAILABLE:
        return 0
    import cupy
    return cupy.cuda.runtime.getDeviceCount()


def pytest_runtest_setup(item):
    if item.get_closest_marker("gpu") is None and item.get_closest_marker("gpus") is None:
        return
    if not CUDA_AVAILABLE:
        reason = f"no CUDA: {_why_no_cuda()}"
        if cuda_required():
            pytest.fail(f"{REQUIRE_CUDA_ENV}=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    gpus = item.get_closest_marker("gpus")
    # NOTE: a test that needs more GPUs than the machine has skips even with TINYGRAD_CNN_TEST_CUDA=1: that
    # flag fails a check with no GPU at all, and a one-GPU machine (the lent H100 or H200) is a GPU check
    if gpus is not None and gpu_count() < gpus.args[0]:
        pytest.skip(f"needs {gpus.args[0]} GPUs, this machine has {gpu_count()}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """The emulated gpu variants of hypothesis tests run the "emulated" profile's examples."""
    test = getattr(item, "obj", None)
    key = "_hypothesis_internal_use_settings"
    if not (EMULATED and PROFILE == "ci" and item.get_closest_marker("gpu") and hasattr(test, key)):
        yield
        return
    before = getattr(test, key)
    setattr(test, key, settings(before, max_examples=min(before.max_examples, 3)))
    try:
        yield
    finally:
        setattr(test, key, before)


# ---------------------------------------------------------------- kernel modes

KERNEL_MODES = ["fast", "reference"]


@pytest.fixture(autouse=True)
def kernels_for_kernel_tests(request):
    """A test marked `kernels` is about the fast path (which kernel ran, a fused kernel's bits, a launch or
    sync budget): it runs with the kernels on, also when the suite runs with TINYGRAD_CNN_KERNELS=reference,
    which otherwise turns them off for every test."""
    if request.node.get_closest_marker("kernels") is None:
        yield
        return
    with tinygrad_cnn.kernels.enabled():
        yield


@pytest.fixture(scope="module", params=KERNEL_MODES)
def kernel_mode(request):
    """Run a module's tests once with the kernels (the default fast path) and once on the reference
    ops (tinygrad_cnn.kernels.reference()): `pytestmark = pytest.mark.usefixtures("kernel_mode")`."""
    switch = tinygrad_cnn.kernels.reference if request.param == "reference" else tinygrad_cnn.kernels.enabled
    with switch():
        yield request.param


@pytest.fixture(scope="module")
def real_keras():
    """Real Keras 3 on the torch backend, to compare tinygrad_cnn.keras with (skips without them)."""
    pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    module = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install keras)")
    if module.backend.backend() != "torch":
        pytest.skip("Keras runs on another backend; set KERAS_BACKEND=torch")
    return module
