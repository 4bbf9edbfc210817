"""Real CuPy's fusion on a machine without a GPU: trace, read the types, compile for sm_90.

`cupy.fuse` traces a function over `cupy.ndarray`s and generates its kernel before it launches it;
only the launch needs a driver. Arrays built on host memory (UnownedMemory over a NumPy buffer)
are enough for the trace. The generated kernel's source is rebuilt here the way CuPy 14's
ElementwiseKernel.__call__ builds it (cupy/_core/_kernel.pyx: _decide_params_type, _ArgInfo,
_get_elementwise_kernel_code; core.pyx: the prepended headers and assemble_cupy_compiler_options)
and compiled with NVRTC (cupy_backends.cuda.libs.nvrtc, no driver needed).

Every function takes the real CuPy module as `cupy` (tests/conftest.py may have put the emulation
in sys.modules under that name). Used by make_fuse_rules.py and tests/test_cupy_real.py."""
import re

import numpy

_DECL = re.compile(r"^((?:[\w:<> ]+ v\d+_\d+; ?)+)$")
_CALL = re.compile(r"^(\w+)\((v\d+_\d+(?:, v\d+_\d+)*)\);$")
# C type names CuPy declares -> NumPy dtypes
_CTYPES = {"bool": "?", "signed char": "b", "unsigned char": "B", "short": "h", "unsigned short": "H",
           "int": "i", "unsigned int": "I", "long long": "q", "unsigned long long": "Q", "long": "l",
           "unsigned long": "L", "float16": "e", "float": "f", "double": "d", "complex<float>": "F",
           "complex<double>": "D"}


def host_array(cupy, a):
    """A cupy.ndarray over the memory of NumPy array `a` (kept alive by it): enough to trace."""
    a = numpy.asarray(a)
    mem = cupy.cuda.UnownedMemory(a.ctypes.data, max(a.nbytes, 1), a, device_id=0)
    return cupy.ndarray(a.shape, a.dtype, cupy.cuda.MemoryPointer(mem, 0), strides=a.strides)


def trace(cupy, function, args, name="kernel"):
    """Trace `function(*args)` as cupy.fuse does, and return the ElementwiseKernel it generates,
    without launching it (what Fusion.__call__ in cupy/_core/fusion.pyx does before the launch).

    NOTE: where this trace raises, real cupy.fuse silently falls back to its experimental
    new_fusion, whose rules differ: here the error is raised instead."""
    from cupy._core import _fusion_thread_local, fusion
    local = _fusion_thread_local.thread_local
    history = fusion._FusionHistory()
    local.history, local.is_old_fusing = history, True
    try:
        kernel, kwargs = history.get_fusion(function, tuple(args), name)
    finally:
        local.history, local.is_old_fusing = None, False
    if kwargs:
        raise AssertionError(f"a reduction kernel ({kwargs}): not expected from device.fuse's kernels")
    return kernel


def operations(kernel):
    """The fused kernel's operations in order: [(C function name, [NumPy type char of each operand])],
    inputs first, then outputs (read from the generated code's per-operation declarations)."""
    ops, types = [], {}
    for line in kernel.operation.splitlines():
        line = line.strip()
        if _DECL.match(line):
            for decl in line.split(";"):
                decl = decl.strip()
                if decl:
                    ctype, var = decl.rsplit(" ", 1)
                    types[var] = _CTYPES[ctype]
            continue
        call = _CALL.match(line)
        if call:
            names = call.group(2).split(", ")
            ops.append((call.group(1), [types[n] for n in names]))
    count = re.search(r"// (\d+) operations", kernel.operation)
    if count is None or int(count.group(1)) != len(ops):
        raise AssertionError(f"could not read the operations of the generated code:\n{kernel.operation}")
    return ops


def source(cupy, kernel, args):
    """The complete CUDA source CuPy would compile for `kernel` called on `args` (the headers it
    prepends included), and the NVRTC options it would add."""
    from cupy._core import _kernel, core
    from cupy._core._carray import Indexer
    from cupy._core._scalar import CScalar
    arrays = [a for a in args if isinstance(a, cupy.ndarray)]
    ndim = max(a.ndim for a in arrays)
    in_nd = tuple(a.dtype if isinstance(a, cupy.ndarray) else None for a in args)
    in_types, out_types, type_map = kernel._decide_params_type(in_nd, ())
    infos = []
    # NOTE: CuPy merges contiguous dimensions before it builds the kernel (reduce_dims), which only
    # lowers the ndim of the CArray template; the broadcast ndim compiles the same code
    for a, t in zip(args, in_types):
        if isinstance(a, cupy.ndarray):
            infos.append(_kernel._ArgInfo(1, cupy.ndarray, a.dtype, ndim, a.flags.c_contiguous, True))
        else:
            infos.append(_kernel._ArgInfo(3, CScalar, numpy.dtype(t), 0, True, True))
    infos += [_kernel._ArgInfo(1, cupy.ndarray, numpy.dtype(t), ndim, True, True) for t in out_types]
    infos.append(_kernel._ArgInfo(2, Indexer, None, ndim, True, True))
    code = _kernel._get_elementwise_kernel_code(tuple(infos), type_map, kernel.params, kernel.operation,
                                                kernel.name, kernel.preamble, **kernel.kwargs)
    headers = "".join(f"#include <{h}>\n" for h in core._cupy_header_list)
    return headers + code, tuple(core.assemble_cupy_compiler_options(()))


def compile_sm90(code, options):
    """Compile with NVRTC to an sm_90 cubin (H100/H200); returns its size, raises with the log."""
    from cupy_backends.cuda.libs import nvrtc
    program = nvrtc.createProgram(code, "kernel.cu", (), ())
    try:
        try:
            nvrtc.compileProgram(program, list(options) + ["-arch=sm_90"])
        except nvrtc.NVRTCError as e:
            raise RuntimeError(f"NVRTC: {e}\n{nvrtc.getProgramLog(program)}") from None
        return len(nvrtc.getCUBIN(program))
    finally:
        nvrtc.destroyProgram(program)
