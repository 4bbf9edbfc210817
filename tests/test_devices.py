"""Devices: the CPU helpers, the test suite's own GPU switch, and (marked gpu) real CPU <-> CUDA work.

On a machine without CUDA the gpu tests are skipped; run with TINYGRAD_CNN_TEST_CUDA=1 to make
that an error, e.g. `TINYGRAD_CNN_TEST_CUDA=1 python -m pytest -m gpu`."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_cnn as tc
from tinygrad_cnn import DeviceError, Tensor
from tinygrad_cnn.device import device_of, to_device, to_numpy, use_device

from conftest import DEVICES, EMULATE_ENV, REQUIRE_CUDA_ENV
from cupy_emulation import real_gpu_available

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- CPU helpers


def test_cpu_helpers_are_identities():
    a = np.arange(3.0)
    assert device_of(a) == "cpu" and device_of(np.float32(1.0)) == "cpu"
    assert to_device(a, "cpu") is a and to_numpy(a) is a
    with use_device("cpu"):
        pass
    assert Tensor(a).xp is np


def test_devices_list_marks_cuda_as_gpu():
    ids = [d if isinstance(d, str) else d.values[0] for d in DEVICES]
    assert ids == ["cpu", "cuda"]
    cuda = DEVICES[1]
    assert any(m.name == "gpu" for m in cuda.marks)


def _run_probe(env_value):
    env = dict(os.environ)
    env.pop(REQUIRE_CUDA_ENV, None)
    env[EMULATE_ENV] = "0"  # a machine without CUDA, and without the emulation standing in
    if env_value is not None:
        env[REQUIRE_CUDA_ENV] = env_value
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
           "tests/test_devices.py::test_cuda_round_trip"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(real_gpu_available(), reason="checks how missing CUDA is reported")
def test_missing_cuda_is_a_skip_by_default_and_an_error_when_required():
    default = _run_probe(None)
    assert default.returncode == 0 and "skipped" in default.stdout, default.stdout
    required = _run_probe("1")
    assert required.returncode != 0, required.stdout
    assert f"{REQUIRE_CUDA_ENV}=1 but no CUDA" in required.stdout, required.stdout


# ---------------------------------------------------------------- real GPU (skipped without one)

gpu = pytest.mark.gpu


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_cuda_round_trip(dtype):
    a = (np.arange(12).reshape(3, 4) - 5).astype(dtype)
    g = Tensor(a, device="cuda")
    assert g.device == "cuda:0" and g.dtype == dtype and g.shape == (3, 4)
    assert device_of(g.data) == "cuda:0" and g.xp is not np
    back = g.to("cpu")
    assert back.device == "cpu" and type(back.numpy()) is np.ndarray
    np.testing.assert_array_equal(back.numpy(), a)
    assert type(g.numpy()) is np.ndarray and g.tolist() == a.tolist()
    assert "cuda:0" in repr(g)


@gpu
def test_gradient_flows_back_across_devices():
    x = Tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
    y = (x.to("cuda") * 3.0).tanh()
    assert y.device == "cuda:0" and y.requires_grad
    y.sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), 3 * (1 - np.tanh(3 * x.numpy()) ** 2), rtol=1e-12)


@gpu
def test_to_moves_and_casts_in_one_call_as_torch():
    x = Tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)  # float64 on the CPU
    y = x.to("cuda", np.float32)
    assert (y.device, y.dtype, y.size(), y.size) == ("cuda:0", np.float32, (2, 3), 6)
    assert x.to(y).device == "cuda:0" and x.to(y).dtype == np.float32
    (y * 2.0).sum().backward()  # the gradient comes back to the CPU, in x's dtype
    assert x.grad.device == "cpu" and x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 2.0))
    assert y.to(dtype=np.float64).device == "cuda:0" and y.to("cpu").dtype == np.float32


@gpu
def test_real_mixed_devices_raise():
    with pytest.raises(DeviceError, match="cpu.*cuda:0|cuda:0.*cpu"):
        Tensor([1.0]) + Tensor([1.0], device="cuda")


@gpu
def test_cuda_index_beyond_the_machine():
    with pytest.raises(DeviceError, match="CUDA GPU"):
        tc.zeros(2, device="cuda:99")


@gpu
def test_tensor_from_a_cupy_array_lives_on_the_gpu():
    import cupy
    t = Tensor(cupy.arange(4, dtype=cupy.float32))
    assert t.device == "cuda:0" and t.dtype == np.float32


@gpu
def test_small_network_step_matches_the_cpu():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((5, 4)), rng.standard_normal((4, 3))
    results = {}
    for device in ("cpu", "cuda"):
        xt, wt = Tensor(x, device=device), Tensor(w, device=device, requires_grad=True)
        loss = (xt @ wt).relu().log_softmax(axis=1)[np.arange(5), np.array([0, 1, 2, 0, 1])].mean()
        loss.backward()
        assert wt.grad.device == tc.device.canonical_device(device)
        results[device] = (loss.item(), wt.grad.numpy())
    np.testing.assert_allclose(results["cuda"][0], results["cpu"][0], rtol=1e-12)
    np.testing.assert_allclose(results["cuda"][1], results["cpu"][1], rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- constants kept on a device

def test_an_arange_constant_is_made_once_and_read_only_on_the_cpu():
    from tinygrad_cnn.kernels.fusion import arange_constant
    a = arange_constant("cpu", 1, 5, np.uint8)
    np.testing.assert_array_equal(a, [1, 2, 3, 4])
    assert a.dtype == np.uint8 and arange_constant("cpu", 1, 5, np.uint8) is a
    assert arange_constant("cpu", 1, 5, np.int32) is not a  # one per dtype
    with pytest.raises(ValueError, match="read-only"):
        a[0] = 7


@gpu
@pytest.mark.gpus(2)
def test_an_arange_constant_lives_on_its_gpu_and_costs_no_launch_after_the_first():
    import cupy
    from conftest import EMULATED
    from tinygrad_cnn.kernels.fusion import arange_constant
    first = arange_constant("cuda:1", 0, 3, np.int64)
    assert isinstance(first, cupy.ndarray) and first.device.id == 1
    np.testing.assert_array_equal(first.get(), [0, 1, 2])
    if EMULATED:
        from cupy_emulation import record
        with record() as counts:
            again = arange_constant("cuda:1", 0, 3, np.int64)
        assert again is first and counts.launches == 0
    assert arange_constant("cuda:0", 0, 3, np.int64).device.id == 0
