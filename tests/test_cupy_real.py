"""Every device.fuse kernel, with every argument signature the test suite calls it with
(tests/fuse_signatures.json, written by tests/record_fuse_signatures.py), through REAL cupy.fuse:
it must trace, every operation must compute in the types the NumPy path computes in (no float16
unless an input is float16), and the generated CUDA code must compile for sm_90 (H100/H200) with
NVRTC. No GPU is needed: arrays sit on host memory and nothing is launched
(tests/cupy_emulation/real_fuse.py). Skipped when the real CuPy package does not import; CI installs
it (.ci/run). What only a GPU shows (launches, timings, the driver's JIT) is benchmarks/gpu_check.sh's."""
import collections
import hashlib
import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest

import cupy_emulation
from conftest import EMULATED
from cupy_emulation import real_fuse
from tinygrad_cnn import optim
from tinygrad_cnn.kernels import conv, dense, fusion, loss  # noqa: F401 (their kernels register with fuse)
from tinygrad_cnn.kernels import optim as optim_kernels
from tinygrad_cnn.nn import functional

HERE = Path(__file__).resolve().parent
RECORDED = HERE / "fuse_signatures.json"
if os.environ.get(cupy_emulation.RECORD_ENV):
    pytest.skip("a recording run (tests/record_fuse_signatures.py) writes the file this module reads",
                allow_module_level=True)
SIGNATURES = json.loads(RECORDED.read_text()) if RECORDED.exists() else []
PYTHON_VALUES = {"bool": True, "int": 1, "float": 1.0, "complex": 1j}


@pytest.fixture(scope="module")
def real():
    """The real CuPy module; a test enters cupy_emulation.real_cupy() again to use it (only there is
    it `cupy` in sys.modules)."""
    with cupy_emulation.real_cupy() as cupy:
        pass
    if cupy is None:
        pytest.skip("the real CuPy package does not import here (pip install -e \".[cuda12-check]\")")
    if not cupy.__version__.startswith("14."):
        pytest.skip(f"these checks read CuPy 14's fusion internals; CuPy {cupy.__version__} is installed")
    return cupy


def _all_kernels():
    """Every package kernel made by device.fuse, the factories' every option combination included."""
    for options in itertools.product([False, True], repeat=4):
        optim_kernels._adam_kernel(*options)
        optim_kernels._sgd_kernel(*options)
        optim_kernels._rmsprop_kernel(*options, True)
        optim_kernels._rmsprop_kernel(*options, False)
        optim_kernels._adadelta_kernel(*options[:2])
    return {key: call for key, call in fusion._FUSED_KERNELS.items() if key[0].startswith("tinygrad_cnn")}


def _live_signatures():
    """The signatures of a training step of a small CNN and of optimizer steps on float16, float32
    and float64 parameters, on the emulation, made now with this checkout's code (so a change in
    how the package calls a kernel is traced without a new recording): Adam, AdamW, SGD, RMSprop
    (Keras' and PyTorch's epsilon, centered with momentum), Adadelta."""
    if not EMULATED:
        return []
    import tinygrad_cnn as tg
    from tinygrad_cnn import nn
    rng = np.random.default_rng(0)
    x, y = rng.random((4, 1, 8, 8), dtype=np.float32), rng.integers(0, 10, 4)
    makers = [lambda ps: optim.Adam(ps), lambda ps: optim.AdamW(ps, weight_decay=1e-2),
              lambda ps: optim.SGD(ps, lr=0.01, momentum=0.9, weight_decay=1e-4),
              lambda ps: optim.RMSprop(ps), lambda ps: optim.RMSprop(ps, eps_inside=False),
              lambda ps: optim.RMSprop(ps, momentum=0.9, centered=True, weight_decay=1e-4),
              lambda ps: optim.Adadelta(ps, weight_decay=1e-4)]
    with cupy_emulation.recording() as found:
        for make in makers:
            tg.manual_seed(0)
            model = nn.Sequential([nn.Conv2D(4, (3, 3), padding="same", activation="relu"),
                                   nn.MaxPool2D((2, 2), strides=2), nn.Flatten(), nn.Dense(10)],
                                  input_shape=(1, 8, 8))
            model.to("cuda")
            opt = make(model.parameters())
            loss = functional.cross_entropy(model(tg.Tensor(x, device="cuda")), tg.Tensor(y, device="cuda"))
            opt.zero_grad()
            loss.backward()
            opt.step()
            params = [tg.Tensor(np.ones(3, dtype=d), device="cuda", requires_grad=True)
                      for d in ("float16", "float32", "float64")]
            opt = make(params)
            for p in params:
                p.grad = tg.Tensor(np.ones(3, dtype=p.dtype), device="cuda")
            opt.step()
    return [json.loads(entry) for entry in found]


def _package_signatures():
    """The recorded calls of package kernels, and for each of the optimizers' masked (GPU) kernels
    that the suite did not call, the signatures of those of its family it did (they take the same
    arguments): every option combination is traced."""
    recorded = [(module, name, args) for module, name, args in SIGNATURES + _live_signatures()
                if module.startswith("tinygrad_cnn")]
    recorded = [json.loads(e) for e in sorted({json.dumps(r) for r in recorded})]
    names = {name for _, name, _ in recorded}
    extra = []
    for family in ("adam", "sgd", "rmsprop", "adadelta"):
        siblings = [args for module, name, args in recorded if name.startswith(family) and name.endswith("_masked")]
        for (module, name) in _all_kernels():
            if name.startswith(family) and name.endswith("_masked") and name not in names:
                extra += [(module, name, args) for args in siblings]
    return recorded + extra


def _host_arguments(real, args):
    """Arguments of the recorded kinds: arrays of ones (shape 1 along each axis: any broadcast works)
    on host memory, for real CuPy and for NumPy; scalars as recorded."""
    for kind, what, *rest in args:
        if kind == "array":
            array = np.ones((1,) * rest[0], dtype=what)
            yield real_fuse.host_array(real, array), array
        elif kind == "numpy":
            yield np.dtype(what).type(1), np.dtype(what).type(1)
        else:
            yield PYTHON_VALUES[what], PYTHON_VALUES[what]


# ---------------------------------------------------------------- the NumPy path's types, operation by operation

class _Traced:
    """A value in the NumPy path, recording each operation's types (as cupy.fuse's trace does)."""

    def __init__(self, value, log):
        self.value, self.log = value, log


def _weak_or_dtype(value):
    """resolve_dtypes' view of an operand: Python int/float/complex stay weak (NEP 50), others a dtype."""
    if type(value) in (int, float, complex):
        return type(value)
    return np.asarray(value).dtype


def _ufunc(name, log):
    ufunc = getattr(np, name)

    def call(*args, out=None):
        values = [a.value if isinstance(a, _Traced) else a for a in args]
        if len(values) > ufunc.nin:
            values, out = values[:ufunc.nin], values[ufunc.nin]
        loop = ufunc.resolve_dtypes(tuple(_weak_or_dtype(v) for v in values) + (None,) * ufunc.nout)
        log.append((name, "".join(np.dtype(t).char for t in loop)))
        if all(type(v) in (int, float, complex, bool) for v in values):
            result = ufunc(*values).item()  # Python arithmetic: the result is a Python number again
            result = {"b": bool, "i": int, "u": int, "f": float, "c": complex}[loop[-1].kind](result)
        else:
            result = ufunc(*values)
        if out is not None:
            target = out.value if isinstance(out, _Traced) else out
            np.copyto(target, result, casting="same_kind")
            return out
        return _Traced(result, log)
    return call


def _where(log):
    def call(condition, x, y):
        values = [a.value if isinstance(a, _Traced) else a for a in (condition, x, y)]
        result = np.where(*values)
        log.append(("where", "?" + result.dtype.char * 3))
        return _Traced(result, log)
    return call


def _binary(name, reflected=False):
    def method(self, other):
        args = (other, self) if reflected else (self, other)
        return _ufunc(name, self.log)(*args)
    return method


def _inplace(name):
    def method(self, other):
        return _ufunc(name, self.log)(self, other, out=self)
    return method


for _op, _name in {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "true_divide",
                   "pow": "power", "and": "bitwise_and", "or": "bitwise_or"}.items():
    setattr(_Traced, f"__{_op}__", _binary(_name))
    setattr(_Traced, f"__r{_op}__", _binary(_name, reflected=True))
    setattr(_Traced, f"__i{_op}__", _inplace(_name))
for _op, _name in {"lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal", "eq": "equal",
                   "ne": "not_equal"}.items():
    setattr(_Traced, f"__{_op}__", _binary(_name))
_Traced.__neg__ = lambda self: _ufunc("negative", self.log)(self)
_Traced.__hash__ = None


def _setitem(self, key, value):
    source = value.value if isinstance(value, _Traced) else value
    self.log.append(("copy", np.asarray(source).dtype.char * 2))
    np.copyto(self.value, source, casting="same_kind")


_Traced.__setitem__ = _setitem


class _TracedNumpy:
    """The `xp` a kernel sees on the NumPy path, recording its operations."""

    def __init__(self, log):
        self._ops = log

    def __getattr__(self, name):
        if name == "where":
            return _where(self._ops)
        if isinstance(getattr(np, name, None), np.ufunc):
            return _ufunc(name, self._ops)
        raise AttributeError(f"the kernel uses numpy.{name}, which this check does not trace")


def numpy_operations(kernel, args):
    log = []
    with np.errstate(all="ignore"):
            kernel(_TracedNumpy(log), *[_Traced(a, log) if isinstance(a, np.ndarray) or np.isscalar(a) else a
                                     for a in args])
    return log


# ---------------------------------------------------------------- the checks

def _same_types(on_gpu, on_cpu):
    """The same operations, each with the NumPy path's output (intermediate) dtypes, and inputs that
    hold NumPy's exactly. NOTE: CuPy 14 compares integers in int64 or uint64 only (its comparison
    ufuncs have no narrower loops), exact for every narrower integer: such a widening is allowed."""
    if [name for name, _ in on_gpu] != [name for name, _ in on_cpu]:
        return False
    for (_, gpu), (_, cpu) in zip(on_gpu, on_cpu):  # every operation here has one output, the last type
        if len(gpu) != len(cpu) or np.dtype(gpu[-1]) != np.dtype(cpu[-1]):
            return False
        if not all(np.can_cast(np.dtype(b), np.dtype(a), "safe") for a, b in zip(gpu[:-1], cpu[:-1])):
            return False
    return True


def _show(operations):
    return ", ".join(f"{name} {'/'.join(np.dtype(c).name for c in types)}" for name, types in operations)


def _cupy_name(c_function):
    name = c_function.removeprefix("cupy_")
    return {"true_divide": "true_divide", "divide": "true_divide"}.get(name, name)


def test_every_package_kernel_was_recorded_and_every_record_names_one():
    kernels = _all_kernels()
    recorded = {(module, name) for module, name, _ in SIGNATURES if module.startswith("tinygrad_cnn")}
    assert recorded, "tests/fuse_signatures.json holds no package kernel: run tests/record_fuse_signatures.py"
    missing = recorded - set(kernels)
    assert not missing, f"recorded kernels that no longer exist (rerun the recording): {sorted(missing)}"
    # the factories make every option combination (the optimizers' unmasked kernels run on the CPU
    # only); these are the ones the suite must have called on a GPU
    module_level = {key for key, call in kernels.items()
                    if not key[1].startswith(("adam", "sgd", "rmsprop", "adadelta", "max_and_first_offset"))}
    used_factories = {"adam_masked", "adam_decoupled_masked", "adam_l2_masked", "sgd_masked", "sgd_momentum_masked", "sgd_momentum_nesterov_masked",
                      "max_and_first_offset", "max_and_first_offset_relu"}
    expected = module_level | {key for key in kernels if key[1] in used_factories}
    assert not expected - recorded, f"kernels the suite never called on the emulation: {sorted(expected - recorded)}"


def test_every_recorded_kernel_traces_in_numpys_types_and_compiles_for_sm_90(real):
    kernels, signatures = _all_kernels(), _package_signatures()
    with cupy_emulation.real_cupy():
        problems, compiled, sources = _trace_and_compile(real, kernels, signatures)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
    assert sum(compiled.values()) == len(sources)


def _trace_and_compile(real, kernels, signatures):
    problems, compiled, sources = [], collections.Counter(), {}
    for module, name, signature in signatures:
        call = kernels[(module, name)]
        pairs = list(_host_arguments(real, signature))
        cupy_args, numpy_args = [p[0] for p in pairs], [p[1] for p in pairs]
        where = f"{name}{tuple(tuple(s) for s in signature)}"
        try:
            kernel = real_fuse.trace(real, lambda *a, _k=call.__wrapped__: _k(real, *a), cupy_args, name)
        except Exception as e:  # noqa: BLE001 (report every kernel, not only the first)
            problems.append(f"{where}: does not trace: {type(e).__name__}: {e}")
            continue
        on_gpu = [(_cupy_name(f), types) for f, types in real_fuse.operations(kernel)]
        on_cpu = numpy_operations(call.__wrapped__, numpy_args)
        if not _same_types(on_gpu, on_cpu):
            problems.append(f"{where}: CuPy computes {_show(on_gpu)}; NumPy {_show(on_cpu)}")
        has_half = any(kind == "array" and what == "<f2" or kind == "numpy" and what == "<f2"
                       for kind, what, *_ in signature)
        if not has_half and any(np.dtype("e") in map(np.dtype, types) for _, types in on_gpu):
            problems.append(f"{where}: float16 inside the kernel, and no input is float16: {on_gpu}")
        code, options = real_fuse.source(real, kernel, cupy_args)
        sources.setdefault(hashlib.sha1(code.encode()).hexdigest(), (where, code, options))
    for where, code, options in sources.values():
        try:
            compiled[where.split("(")[0]] += bool(real_fuse.compile_sm90(code, options))
        except Exception as e:  # noqa: BLE001
            problems.append(f"{where}: does not compile for sm_90: {e}"[:2000])
    return problems, compiled, sources


def test_the_check_catches_issue_23s_kernel(real):
    """The check of a check: Adam's old `1 - b1` on a Python float computes in float16 inside real
    cupy.fuse, which the comparison with the NumPy path (float64 Python arithmetic) reports."""
    def kernel(xp, p, g, b1):
        p -= g * (1 - b1)

    def numpy_scalar_kernel(xp, p, g, one_minus_b1):
        p -= g * one_minus_b1

    arrays = [np.ones(3, np.float32), np.ones(3, np.float32)]
    with cupy_emulation.real_cupy():
        for body, scalar, same in [(kernel, 0.9, False), (numpy_scalar_kernel, np.float32(0.1), True)]:
            traced = real_fuse.trace(real, lambda *a, _b=body: _b(real, *a),
                                     [real_fuse.host_array(real, a) for a in arrays] + [scalar])
            on_gpu = [(_cupy_name(f), t) for f, t in real_fuse.operations(traced)]
            assert _same_types(on_gpu, numpy_operations(body, arrays + [scalar])) is same, on_gpu
    assert on_gpu == [("multiply", list("fff")), ("subtract", list("fff"))]
