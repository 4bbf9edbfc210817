"""Devices: the only module that chooses between NumPy ("cpu") and CuPy ("cuda[:N]")."""
import os

import numpy

DEFAULT_DEVICE_ENV = "TINYGRAD_CNN_DEVICE"
_CUPY_HINT = ("install CuPy for your CUDA version, e.g. `pip install tinygrad_cnn[cuda12]` "
              "(cupy-cuda12x) or `pip install tinygrad_cnn[cuda13]` (cupy-cuda13x)")


class DeviceError(RuntimeError):
    """A device was asked for that this machine cannot provide, or devices were mixed."""


def canonical_device(device=None):
    """Normalise a device name: None -> default, "gpu"/"cuda" -> "cuda:0", "cpu" -> "cpu"."""
    if device is None:
        device = os.environ.get(DEFAULT_DEVICE_ENV) or "cpu"
    if not isinstance(device, str):
        raise TypeError(f"device must be a string like 'cpu' or 'cuda:0', got {type(device).__name__}")
    name = device.strip().lower()
    if name == "cpu":
        return "cpu"
    if name in ("cuda", "gpu"):
        return "cuda:0"
    for prefix in ("cuda:", "gpu:"):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            return "cuda:" + str(int(name[len(prefix):]))
    raise ValueError(f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:N' or 'gpu'")


def _import_cupy():
    try:
        import cupy
    except ImportError as e:
        raise DeviceError(f"device 'cuda' needs CuPy, which is not installed: {_CUPY_HINT}") from e
    return cupy


def array_module(device):
    """The array module (numpy or cupy) that computes on `device`; raises if it is unavailable."""
    device = canonical_device(device)
    if device == "cpu":
        return numpy
    return _cuda_module(device)


_answered = {}  # device -> the CuPy module whose GPU answered for it


def _cuda_module(device):
    """CuPy, once the GPU behind `device` has answered.

    NOTE: the answer is remembered for the CuPy module that gave it, and `import cupy` (a dict
    lookup once imported) runs each time, so that a CuPy that became unimportable is noticed;
    failures are not remembered."""
    cupy = _import_cupy()
    if _answered.get(device) is cupy:
        return cupy
    index = int(device.split(":")[1])
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDA driver missing or broken: say so instead of a CUDA traceback
        raise DeviceError(f"device {device!r}: CuPy is installed but no CUDA GPU is usable ({e})") from e
    if index >= count:
        raise DeviceError(f"device {device!r}: this machine has {count} CUDA GPU(s)")
    _answered[device] = cupy
    return cupy


def cuda_available():
    """True when CuPy imports and at least one GPU answers."""
    try:
        array_module("cuda:0")
        return True
    except DeviceError:
        return False


def device_of(array):
    """The device string on which an array lives."""
    if isinstance(array, numpy.ndarray) or numpy.isscalar(array):
        return "cpu"
    dev = getattr(array, "device", None)
    if dev is not None and type(array).__module__.startswith("cupy"):
        return f"cuda:{dev.id}"
    return "cpu"


def use_device(device):
    """A context manager that makes CuPy allocate on `device` (a no-op on the CPU)."""
    import contextlib
    device = canonical_device(device)
    if device == "cpu":
        return contextlib.nullcontext()
    return _import_cupy().cuda.Device(int(device.split(":")[1]))


def to_device(array, device):
    """Copy an array onto `device` (no copy when it is already there)."""
    device = canonical_device(device)
    src = device_of(array)
    if src == device:
        return array
    if device == "cpu":
        return array.get()
    xp = array_module(device)
    with use_device(device):
        return xp.asarray(array)


def to_numpy(array):
    """A NumPy array holding the same values, wherever `array` lives."""
    return array if isinstance(array, numpy.ndarray) else (array.get() if hasattr(array, "get") else numpy.asarray(array))
