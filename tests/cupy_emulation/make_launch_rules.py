"""Write launch_rules.json: how many kernels real CuPy launches for `concatenate` and `matmul`.

The CuPy emulation (tests/cupy_emulation) counts these two routines by these rules, not one launch a
call, so that it can never count fewer launches than CuPy would. The rules are read from CuPy's own
Cython sources (the wheel ships only compiled modules), checked to be the installed version's:

- the sources are those of the installed version (a git checkout of cupy/cupy, read at the tag
  v<cupy.__version__>, or an unpacked sdist of that version);
- the installed, compiled package is then asked where it stops when it has no GPU: each routine,
  called on arrays over host memory, raises at its first CUDA call, and the line Cython reports there
  must be the line of that call in the sources read (so compiled code and sources agree);
- each rule is read from the source text by a pattern, and the script fails if a pattern is not
  found exactly as expected: a CuPy whose routines changed must be read again, not assumed.

Run it with a Python that has CuPy installed (no GPU needed), from the repository root:

    git clone https://github.com/cupy/cupy /tmp/cupy-src   # or an unpacked cupy-<version>.tar.gz
    python tests/cupy_emulation/make_launch_rules.py --source /tmp/cupy-src
"""
import argparse
import json
import os
import re
import subprocess
import sys
import traceback

import numpy

HERE = os.path.dirname(os.path.abspath(__file__))
MANIPULATION = "cupy/_core/_routines_manipulation.pyx"
LINALG = "cupy/_core/_routines_linalg.pyx"


def read_source(source, version, path):
    """The text of `path` in CuPy `version`: from a git checkout's tag v<version>, or from an unpacked sdist
    (whose version the line-number check below then vouches for)."""
    if os.path.exists(os.path.join(source, ".git")) or os.path.isfile(os.path.join(source, "HEAD")):
        return subprocess.run(["git", "-C", source, "show", f"v{version}:{path}"],
                              check=True, capture_output=True, text=True).stdout
    with open(os.path.join(source, path)) as f:
        return f.read()


def body(text, header):
    """The lines of the top-level definition that starts with `header`, up to the next one."""
    start = text.index(header)
    end = re.search(r"^(cpdef|cdef|def|class|@)", text[start + len(header):], re.M)
    return text[start:start + len(header) + (end.start() if end else len(text))]


def line_of(text, header, statement):
    """1-based line of the first `statement` inside the definition that starts with `header`."""
    start = text.index(header)
    return text[:text.index(statement, start)].count("\n") + 1


def one(pattern, text, what):
    found = re.findall(pattern, text, re.M)
    if len(found) != 1:
        raise SystemExit(f"make_launch_rules: expected one match of {pattern!r} ({what}), found {len(found)}: "
                         f"CuPy's source changed; read it again and update this script")
    return found[0]


# ---------------------------------------------------------------- the installed package, without a GPU

def host_array(cupy, a, keep):
    """A cupy.ndarray over the memory of NumPy array `a` (nothing is allocated on a device)."""
    from cupy.cuda import memory
    keep.append(a)
    ptr = memory.MemoryPointer(memory.UnownedMemory(a.ctypes.data, a.nbytes, a, 0), 0)
    return cupy.ndarray(a.shape, a.dtype, ptr, strides=a.strides)


def stop_line(call, pyx):
    """The innermost line of `pyx` that the traceback of `call()` (which must raise) passes through."""
    try:
        call()
    except Exception:  # noqa: BLE001 (no driver: CUDARuntimeError, or a library that does not load)
        lines = [frame.lineno for frame in traceback.extract_tb(sys.exc_info()[2]) if frame.filename.endswith(pyx)]
        if lines:
            return lines[-1]
        raise
    raise SystemExit("make_launch_rules: the call ran without a GPU; this script expects a machine without one")


def probe(cupy):
    """Where the installed concatenate and matmul stop without a GPU (Cython's line numbers)."""
    keep = []
    parts = [host_array(cupy, numpy.ones(3, numpy.float32), keep) for _ in range(3)]
    out = host_array(cupy, numpy.zeros(9, numpy.float32), keep)
    concatenate = stop_line(lambda: cupy.concatenate(parts, out=out), MANIPULATION)
    a = host_array(cupy, numpy.ones((4, 3, 5), numpy.float32), keep)
    b = host_array(cupy, numpy.ones((5, 2), numpy.float32), keep)
    c = host_array(cupy, numpy.zeros((4, 3, 2), numpy.float32), keep)
    matmul = stop_line(lambda: cupy.matmul(a, b, out=c), LINALG)
    return dict(concatenate=concatenate, matmul=matmul)


# ---------------------------------------------------------------- the rules

def concatenate_rules(text):
    fn = body(text, "cpdef _ndarray_base _concatenate(")
    more_than = int(one(r"^\s*if len\(arrays\) > (\d+):", fn, "the single-kernel threshold on the array count"))
    size = one(r"threshold_size = ([\d\s*]+)$", fn, "the single-kernel threshold on the bytes per array")
    per_array_bytes = int(numpy.prod([int(v) for v in size.split("*")]))
    one(r"if all_same_type and total_bytes < threshold_size \* len\(arrays\):", fn, "the single-kernel condition")
    one(r"^\s*elementwise_copy\(", fn, "one copy per array otherwise")
    single = body(text, "cdef _ndarray_base _concatenate_single_kernel(")
    before, _ = single.split("if same_shape_and_contiguous:", 1)
    transfers_same = len(re.findall(r"core\.array\(", before))  # the pointer array
    transfers_other = len(re.findall(r"core\.array\(", single))
    kernels = len(re.findall(r"_concatenate_kernel(_same_size)?\(", single))
    if kernels != 2:
        raise SystemExit("make_launch_rules: _concatenate_single_kernel no longer has its two kernel calls")
    return dict(
        single_kernel_if_more_than=more_than,
        single_kernel_if_bytes_below_per_array=per_array_bytes,
        single_kernel_needs_same_dtype=True,
        single_kernel_launches=1,
        single_kernel_h2d_same_shape_contiguous=transfers_same,
        single_kernel_h2d_otherwise=transfers_other,
        otherwise_launches_per_array=1)


def matmul_rules(text):
    fn = body(text, "cpdef _ndarray_base matmul(")
    contiguous = re.findall(r"^\s*(\w) = ascontiguousarray\(\1, dtype\)", fn, re.M)
    if sorted(contiguous) != ["a", "b"]:
        raise SystemExit("make_launch_rules: matmul no longer makes both operands C-contiguous")
    one(r"if a_sh == 1 and c_sh > 1:", fn, "broadcast of a along a batch axis")
    one(r"if b_sh == 1 and c_sh > 1:", fn, "broadcast of b along a batch axis")
    broadcast = fn.split("else:\n        ap = _mat_ptrs(a)")
    if len(broadcast) != 2:
        raise SystemExit("make_launch_rules: matmul's broadcast branch changed")
    pointer_arrays = len(re.findall(r"_mat_ptrs\(", "        ap = _mat_ptrs(a)" + broadcast[1].split("if dtype ==")[0]))
    one(r"cublas\.gemmStridedBatchedEx\(", fn, "one strided-batched GEMM without broadcast")
    ptrs = body(text, "cpdef _ndarray_base _mat_ptrs(")
    one(r"idx = _mat_ptrs_kernel\(\n\s*a\.data\.ptr", ptrs, "one kernel for the first batch axis")
    one(r"for i in range\(1, ndim - 2\):\n\s*idx = _mat_ptrs_kernel\(", ptrs, "one more per further batch axis")
    one(r"out is not None and out\.dtype == dtype and out\.flags\.c_contiguous", fn, "out used in place when")
    one(r"if dtype\.char == 'e':\n\s*dtype = numpy\.dtype\('f'\)", fn, "float16 computed in float32")
    if len(re.findall(r"^\s*elementwise_copy\(c, out\)", fn, re.M)) < 2:
        raise SystemExit("make_launch_rules: matmul no longer copies a temporary into out")
    tensordot = body(text, "cpdef _ndarray_base tensordot_core(")
    one(r"if not a\._c_contiguous:\n\s*a = a\.copy\(\)", body(text, "cpdef inline tuple _mat_to_cublas_contiguous("),
        "a 2-D operand neither C- nor F-contiguous is copied")
    one(r"if m == 1 and n == 1:", tensordot, "a vector product is a reduction")
    return dict(
        batched_operand_copy_unless_c_contiguous_of_dtype=True,
        broadcast_pointer_arrays=pointer_arrays,
        pointer_array_launches_first_batch_axis=1,
        pointer_array_launches_per_further_batch_axis=1,
        broadcast_gemm_launches=1,
        strided_gemm_launches=1,
        out_used_if_c_contiguous_compute_dtype_and_disjoint=True,
        float16_computed_in="float32",
        two_d_operand_copy_unless_c_or_f_contiguous=True,
        two_d_out_used_if_c_contiguous_same_dtype=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, help="a git checkout of cupy/cupy, or an unpacked CuPy sdist")
    p.add_argument("--out", default=os.path.join(HERE, "launch_rules.json"))
    args = p.parse_args(argv)
    import cupy
    version = cupy.__version__
    manipulation = read_source(args.source, version, MANIPULATION)
    linalg = read_source(args.source, version, LINALG)
    stops = probe(cupy)
    expected = dict(
        concatenate=line_of(manipulation, "cpdef _ndarray_base concatenate_method(", "device.get_device_id()"),
        matmul=line_of(linalg, "cpdef _ndarray_base matmul(", "from cupy_backends.cuda.libs import cublas"))
    if stops != expected:
        raise SystemExit(f"make_launch_rules: the installed CuPy {version} stops at lines {stops}, its sources read "
                         f"here at {expected}: they are not the same version")
    rules = dict(cupy_version=version,
                 checked=f"sources at v{version}; the installed package's stop lines {stops} match them",
                 concatenate=concatenate_rules(manipulation),
                 matmul=matmul_rules(linalg))
    with open(args.out, "w") as f:
        json.dump(rules, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {args.out} (CuPy {version}): concatenate {rules['concatenate']}, matmul {rules['matmul']}")


if __name__ == "__main__":
    main()
