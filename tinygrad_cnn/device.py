"""Devices: the only module that chooses between NumPy ("cpu") and CuPy ("cuda[:N]")."""
import contextlib
import os

import numpy

from .torch_device import Device, legacy_size_hint

DEFAULT_DEVICE_ENV = "TINYGRAD_CNN_DEVICE"
# NOTE: the README's install command, word for word (tests/test_examples.py checks it)
_CUPY_HINT = ('install CuPy for your CUDA version from the clone: `pip install -e ".[cuda12]"` '
              '(cupy-cuda12x) or `pip install -e ".[cuda13]"` (cupy-cuda13x)')


class DeviceError(RuntimeError):
    """A device was asked for that this machine cannot provide, or devices were mixed."""


_CPU = Device("cpu")


def canonical_device(device=None):
    """Normalise a device name: None -> default, "gpu"/"cuda" -> "cuda:0", "cpu" -> "cpu" (a Device: a str
    with torch's .type and .index)."""
    if isinstance(device, Device):
        return device
    if device is None:
        device = os.environ.get(DEFAULT_DEVICE_ENV) or "cpu"
    if not isinstance(device, str):
        raise TypeError(f"device must be a string like 'cpu' or 'cuda:0', got {type(device).__name__}"
                        f"{legacy_size_hint(device)}")
    name = device.strip().lower()
    if name == "cpu":
        return _CPU
    if name in ("cuda", "gpu"):
        return Device("cuda:0")
    for prefix in ("cuda:", "gpu:"):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            return Device("cuda:" + str(int(name[len(prefix):])))
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
        return _CPU
    dev = getattr(array, "device", None)
    if dev is not None and type(array).__module__.startswith("cupy"):
        return Device(f"cuda:{dev.id}")
    return _CPU


def device_kind(device):
    """"cpu" or "cuda": the kind of a canonical device name (what kernels are registered for)."""
    return device[:4]


_HOST = contextlib.nullcontext()


def scope(device):
    """use_device for a canonical device name, at the cost of one comparison on the CPU."""
    return _HOST if device == "cpu" else use_device(device)


def quiet_division():
    """A context in which x / 0 gives inf or nan without NumPy's RuntimeWarning, where that is the
    answer (sqrt's gradient at 0; PyTorch gives the same). CuPy never warns."""
    return numpy.errstate(divide="ignore", invalid="ignore")


def module_for(device):
    """array_module for a canonical device name, at the cost of one comparison on the CPU."""
    return numpy if device == "cpu" else _cuda_module(device)


def peek(array):
    """The array itself where reading its values costs nothing (NumPy), else None: a GPU's values
    would cost a blocking sync, which checks in the middle of a training step must not pay."""
    return array if isinstance(array, numpy.ndarray) else None


def all_finite(array):
    """Whether every element is finite (no NaN or inf), computed on the array's own device (a GPU other
    than the current one too); a Python bool, so on a GPU it waits for the result."""
    with scope(device_of(array)):
        return bool(module_of(array).isfinite(array).all())


def extremes(arrays):
    """[(min, max)] of each non-empty array as Python ints, with one sync for all those on a GPU."""
    if all(isinstance(a, numpy.ndarray) for a in arrays):
        return [(int(a.min()), int(a.max())) for a in arrays]
    xp = module_of(arrays[0])
    flat = xp.stack([xp.stack([xp.asarray(a.min()), xp.asarray(a.max())]).astype(xp.int64) for a in arrays]).get()
    return [tuple(int(v) for v in row) for row in flat]


def use_device(device):
    """A context manager that makes CuPy allocate on `device` (a no-op on the CPU)."""
    device = canonical_device(device)
    if device == "cpu":
        return _HOST
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


def to_device_together(arrays, device):
    """Copy several host arrays onto `device` in one host->device transfer (the same arrays on the CPU).

    NOTE: a batch's images and labels are packed end to end (8-byte aligned) into one host buffer
    and sent at once: each transfer pays the PCIe latency and a sync of the copy engine, whatever its size."""
    device = canonical_device(device)
    arrays = [numpy.ascontiguousarray(a) for a in arrays]
    if device == "cpu":
        return arrays
    offsets, total = [], 0
    for a in arrays:
        offsets.append(total)
        total += -(-a.nbytes // 8) * 8
    host = numpy.empty(total, dtype=numpy.uint8)
    for a, start in zip(arrays, offsets):
        host[start:start + a.nbytes] = a.reshape(-1).view(numpy.uint8)
    xp = array_module(device)
    with use_device(device):
        packed = xp.asarray(host)
        return [packed[start:start + a.nbytes].view(a.dtype).reshape(a.shape) for a, start in zip(arrays, offsets)]


_generators = {}  # device -> (the host generator it was seeded from, the device's generator)


def random_uniform(device, shape, dtype, host_rng):
    """Uniform [0, 1) numbers of `shape` made on `device`.

    On the CPU they come from `host_rng` itself (float64). On a GPU, from a generator on the
    device seeded once from `host_rng` (again after manual_seed makes a new one), in float32
    unless dtype is float64: nothing crosses the bus per call.
    NOTE: a GPU's dropout masks are reproducible but differ from the CPU's for the same seed."""
    device = canonical_device(device)
    if device == "cpu":
        return host_rng.random(shape)  # NOTE: float64 draws, the stream earlier releases gave for a seed
    dtype = numpy.float64 if numpy.dtype(dtype) == numpy.float64 else numpy.float32
    xp = array_module(device)
    with use_device(device):
        seeded_from, generator = _generators.get(device, (None, None))
        if seeded_from is not host_rng:
            generator = xp.random.default_rng(int(host_rng.integers(2**63)))
            _generators[device] = (host_rng, generator)
        return generator.random(shape, dtype=dtype)


def module_of(array):
    """The array module (numpy or cupy) of an array, wherever it lives (Python scalars and lists: numpy)."""
    device = device_of(array)
    return numpy if device == "cpu" else array_module(device)


def is_writeable(array):
    """Whether an array may be written in place.

    NOTE: CuPy's flags have no `writeable` (every CuPy array may be written); NumPy's say."""
    if isinstance(array, numpy.ndarray):
        return bool(array.flags.writeable)
    return device_of(array) != "cpu"


def to_numpy(array):
    """A NumPy array holding the same values, wherever `array` lives."""
    return array if isinstance(array, numpy.ndarray) else (array.get() if hasattr(array, "get") else numpy.asarray(array))
