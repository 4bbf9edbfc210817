"""Fused GPU kernels from plain Python functions (fuse), and constants kept on a device."""
import numpy

from ..device import array_module, canonical_device, module_of, use_device


def fuse(kernel=None, *, cpu=None):
    """Decorator: run an elementwise `kernel(xp, *args)` as one GPU kernel on CuPy arrays, and as the
    plain Python function on NumPy.

    The kernel gets the array module as its first argument (`xp`, so op code needs no import of
    numpy or cupy for its ufuncs), then the arrays and scalars it was called with. Its body may use
    operators, in-place operators on its array arguments (`m += ...`) and xp's elementwise functions
    (ufuncs such as xp.sqrt, xp.where, xp.clip); it may return an array or a tuple of arrays. Nothing
    else: no methods, indexing or reductions (CuPy refuses them inside a fused function).

        @fuse
        def axpy(xp, a, x, y):
            y += a * x

        axpy(0.5, x, y)   # one launch on CuPy arrays; two NumPy calls on NumPy ones

    NOTE: on a GPU each elementwise call is a kernel launch (5-15 us from Python, more than the work
    of a small tensor): `cupy.fuse` traces the body once per argument dtypes and shapes' ranks and
    compiles it into one kernel, cached. On NumPy the plain function runs (what cupy.fuse does with
    NumPy arguments too), so the CPU pays nothing for the GPU's fusion. The kernel runs on the device
    of its first CuPy argument (all must live there, as for any CuPy call).

    `cpu`, when given, is what NumPy runs instead of the plain kernel: a tuned CPU version of the same
    signature (out= buffers, in-place integer tricks) where the plain body's temporaries are slower;
    a test must show both give identical results. `fuse(cpu=f)` is then the decorator."""
    if kernel is None:
        return lambda k: fuse(k, cpu=cpu)
    on_numpy = kernel if cpu is None else cpu
    fused = {}  # cupy module -> its fused kernel (made on the first call)

    def call(*args):
        for a in args:
            if type(a).__module__.startswith("cupy"):
                xp = module_of(a)
                run = fused.get(xp)
                if run is None:
                    def bound(*arrays):
                        return kernel(xp, *arrays)
                    bound.__name__, bound.__module__ = kernel.__name__, kernel.__module__
                    run = fused[xp] = xp.fuse(kernel_name=kernel.__name__)(bound)
                with a.device:
                    return run(*args)
        return on_numpy(numpy, *args)

    call.__name__ = call.__qualname__ = kernel.__name__
    call.__doc__ = kernel.__doc__
    call.__wrapped__ = kernel
    call.cpu = cpu
    _FUSED_KERNELS[(kernel.__module__, kernel.__name__)] = call
    return call


# Every kernel made by fuse, by (module, name): tests/test_cupy_real.py traces each through real CuPy
_FUSED_KERNELS = {}


_constants = {}  # (device, start, stop, dtype) -> the arange kept there


def arange_constant(device, start, stop, dtype):
    """arange(start, stop) of `dtype` on `device`, made once and kept (read-only on the CPU; never
    write to it on a GPU): row and class indices and offset codes, the same every training step.

    NOTE: on a GPU each arange is a kernel launch per call (issue 11); kept, it is one per process."""
    key = (canonical_device(device), int(start), int(stop), numpy.dtype(dtype).str)
    array = _constants.get(key)
    if array is None:
        if len(_constants) >= 256:  # many batch sizes: start over rather than grow without bound
            _constants.clear()
        xp = array_module(key[0])
        with use_device(key[0]):
            array = xp.arange(start, stop, dtype=dtype)
        if isinstance(array, numpy.ndarray):
            array.flags.writeable = False
        _constants[key] = array
    return array
