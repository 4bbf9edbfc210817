"""Write fuse_rules.json: how real CuPy types the operations inside cupy.fuse.

The emulation's fused kernels (tests/cupy_emulation, `fuse`) pick each operation's loop from these
tables with CuPy's rule, not NumPy's promotion, so that a kernel which computes in float16 on a GPU
computes in float16 on the emulation too. Written from the installed real CuPy (no GPU needed:
cupy.fuse traces over host-backed arrays, see real_fuse.py):

- "ufuncs": every ufunc's loops in CuPy's order (input and output type chars), for the ufuncs the
  emulation exposes, plus `where` (cupy_where) and `[...] =` (cupy_copy), which fuse calls as ufuncs;
- "indexing": whether integer-array indices wrap (read from CuPy's indexing kernels' code);
- "probes": the loop that real cupy.fuse chose for each ufunc over arrays, Python scalars, NumPy
  scalars and literal constants of many dtypes (tests/test_cupy_emulation.py checks that the
  emulation's rule reproduces every one).

The rule itself (CuPy 14's cupy/_core/fusion.pyx, call_ufunc): the first loop in order whose every
input either casts safely from the operand's dtype, or is a scalar (argument or constant; NumPy
scalars too, since `is_weak = type(a)` for any scalar) whose Python type `w` gives
numpy.result_type(w(0), loop type) == loop type. An operation's result is never weak. CuPy 13's rule
(can_cast1 / can_cast2, fusion.pyx of v13.6) cannot be traced from a v14 install; the emulation
implements it from the source as "v13" and tests the kernels under both.

    python tests/cupy_emulation/make_fuse_rules.py      # with real CuPy installed (cupy-cuda12x)
"""
import json
import os
import sys

import numpy

import cupy
from cupy._core import core
from cupy._sorting.search import _where_ufunc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import real_fuse  # noqa: E402

ARRAYS = "?BbilefD"[:-1]  # bool, uint8, int8, int32, int64, float16, float32, float64 arrays
NUMPY_SCALARS = "Blefd"
PYTHON_SCALARS = (True, 3, 0.5)
PROBED = ("add", "subtract", "multiply", "true_divide", "power", "maximum", "less", "equal", "sqrt", "exp")


def table(ufunc):
    ops = []
    for op in ufunc._ops.ops:
        ops.append(["".join(numpy.dtype(t).char for t in op.in_types),
                    "".join(numpy.dtype(t).char for t in op.out_types),
                    op.error_func is not None])
    return {"nin": ufunc.nin, "nout": ufunc.nout, "ops": ops,
            "promote_types": ufunc._ops.promote_types is not None}


def operands():
    """(label, how it enters the kernel, value): arrays and scalars as arguments, constants in the body."""
    out = [(f"array:{c}", "arg", real_fuse.host_array(cupy, numpy.ones(4, dtype=c))) for c in ARRAYS]
    out += [(f"python:{type(v).__name__}", "arg", v) for v in PYTHON_SCALARS]
    out += [(f"numpy:{c}", "arg", numpy.dtype(c).type(1)) for c in NUMPY_SCALARS]
    out += [(f"constant:{type(v).__name__}", "const", v) for v in PYTHON_SCALARS]
    return out


def probe(ufunc, chosen):
    """The loop real fuse picks for `ufunc` over each combination of operands (an output array of
    float64 takes the result, so that every kernel has an array)."""
    results = []
    sink = real_fuse.host_array(cupy, numpy.zeros(4, dtype="d"))
    for combo in _combos(ufunc.nin):
        args = [o[2] for o in combo if o[1] == "arg"]
        consts = iter([o[2] for o in combo if o[1] == "const"])
        values = [next(consts) if o[1] == "const" else None for o in combo]

        def kernel(out, *given, _values=values):
            given = iter(given)
            operands_ = [next(given) if v is None else v for v in _values]
            out[...] = chosen(*operands_)
        try:
            ops = real_fuse.operations(real_fuse.trace(cupy, kernel, [sink] + args, "probe"))
            loop = "".join(ops[0][1])
        except (TypeError, ValueError) as e:
            loop = f"error: {type(e).__name__}"
        results.append([[o[0] for o in combo], loop])
    return results


def _combos(nin):
    ops = operands()
    if nin == 1:
        return [(o,) for o in ops]
    if nin == 2:
        return [(a, b) for a in ops for b in ops]
    condition = ops[0]  # where: a bool array condition, the two values of every kind
    return [(condition, a, b) for a in ops for b in ops]


def indexing():
    """Whether CuPy's integer-array indexing wraps out-of-range indices (NumPy raises): read from the
    code of the kernels that compute them (a launch would need a GPU)."""
    from cupy._core import _routines_indexing
    multi = _routines_indexing._prepare_array_indexing.operation  # a[i, j]: flat offsets of the indices
    take = _routines_indexing._take_kernel.operation  # a[i], take
    wraps = ("in0 - _floor_divide(in0, in1) * in1" in multi.replace(" ", " ")
             and "indices % index_range" in take and "if (out_i < 0) out_i += index_range" in take)
    if not wraps:
        raise SystemExit("CuPy's indexing kernels changed: read them and update _wrap_indices in the emulation\n"
                         f"{multi}\n{take}")
    return {"wraps": True, "_prepare_array_indexing": multi, "_take_kernel": take}


def main():
    with open(os.path.join(HERE, "names.json")) as f:
        names = json.load(f)
    ufuncs = {name: table(getattr(cupy, name)) for name, entry in sorted(names["cupy"].items())
              if entry["kind"] == "ufunc"}
    ufuncs["where"] = table(_where_ufunc)
    ufuncs["copy"] = table(core.elementwise_copy)
    probes = {name: probe(getattr(cupy, name), getattr(cupy, name)) for name in PROBED}
    probes["where"] = probe(_where_ufunc, cupy.where)
    rules = {"cupy_version": cupy.__version__, "numpy_version": numpy.__version__, "rule": "v14",
             "ufuncs": ufuncs, "probes": probes, "indexing": indexing()}
    path = os.path.join(HERE, "fuse_rules.json")
    with open(path, "w") as f:
        json.dump(rules, f, indent=0, sort_keys=True)
        f.write("\n")
    print(f"wrote {path}: {len(ufuncs)} ufuncs' loops, {sum(len(p) for p in probes.values())} probes "
          f"(CuPy {cupy.__version__})")


if __name__ == "__main__":
    main()
