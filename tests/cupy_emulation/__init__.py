"""A strict CuPy stand-in on NumPy, for proving the GPU path on a machine without a GPU.

`install()` puts it in sys.modules as `cupy` (tests/conftest.py does so when no real GPU answers;
a real GPU always takes precedence). It follows CuPy 14's rules, not NumPy's:
- only the names real CuPy has exist (names.json, written by make_names.py from the real package),
  and calls accept only the keywords CuPy's signatures have (e.g. no `where=` on ufuncs);
- implicit conversion to NumPy raises TypeError as CuPy does (`numpy.asarray(a)`); `.get()` works;
- NumPy arrays given as arguments raise TypeError ("Unsupported type"), except where CuPy
  copies them to the device (asarray, array, indices);
- arrays live on a device; an op on an array of another device than the current one raises,
  and integer-array indices out of range wrap around silently, as on CuPy;
- inside `fuse`, every operation computes in the loop CuPy's fusion picks (its weak-scalar rule and
  loop tables, fuse_rules.json from make_fuse_rules.py; CuPy 13's rule with fuse_rules('v13'));
- `flags` has only CuPy's attributes; asking for another (e.g. `writeable`) is recorded.

It counts, by file and line of the calling code: kernel launches (one per call that writes
device memory; allocation and views launch nothing), blocking syncs (int/float/bool/item/tolist/
repr/str/get and synchronize) and bytes moved each way. `record()` gives the counts of a block.

Limits: one launch per call is a model, not CuPy's exact count (cuBLAS may split a GEMM), except
for concatenate, stack, matmul and dot, counted by CuPy's own code paths (launch_rules.json, written by
make_launch_rules.py); timing, streams and memory pools are not modelled."""
import collections
import contextlib
import json
import os
import sys
import types

import numpy

_NAMES = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "names.json")))
_TOP = _NAMES["cupy"]
_METHODS = _NAMES["cupy.ndarray"]
_FLAGS = set(_NAMES["flags"])
_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_HERE))
# device.fuse's wrapper, which calls cupy.fuse's kernels: a fused launch is counted at its caller's line
_FUSE_WRAPPER = (os.path.join(_ROOT, "tinygrad_cnn", "kernels", "fusion.py"), "call")
DEVICE_COUNT = int(os.environ.get("TINYGRAD_CNN_EMULATED_GPUS", "2"))
# CuPy's scatter (ufunc.at, scatter_add) runs on atomics, which exist for these dtypes only
_AT_DTYPES = {"add": "iILQefd", "maximum": "iILQfd", "minimum": "iILQfd"}


# ---------------------------------------------------------------- counting

class Counts:
    """Launches, blocking syncs and transfers, in total and by (event, 'file:line')."""

    def __init__(self):
        self.launches = self.syncs = self.h2d = self.d2h = self.h2d_bytes = self.d2h_bytes = 0
        self.sites = collections.Counter()
        self.missing_attributes = collections.Counter()

    def as_dict(self):
        return dict(launches=self.launches, syncs=self.syncs, h2d=self.h2d, d2h=self.d2h,
                    h2d_bytes=self.h2d_bytes, d2h_bytes=self.d2h_bytes)

    def __repr__(self):
        return f"Counts({self.as_dict()})"


_recorders = [Counts()]  # the first counts everything since install
_fusing = [0]


def totals():
    """Counts since the emulation was installed."""
    return _recorders[0]


@contextlib.contextmanager
def record():
    """`with record() as counts:` counts what the block does."""
    counts = Counts()
    _recorders.append(counts)
    try:
        yield counts
    finally:
        _recorders.remove(counts)


def _site():
    frame = sys._getframe(2)
    while frame is not None and (frame.f_code.co_filename.startswith(_HERE)
                                 or "/numpy/" in frame.f_code.co_filename
                                 or (frame.f_code.co_filename, frame.f_code.co_name) == _FUSE_WRAPPER):
        frame = frame.f_back
    if frame is None:
        return "?"
    return f"{os.path.relpath(frame.f_code.co_filename, _ROOT)}:{frame.f_lineno}"


def _event(kind, nbytes=0):
    if kind == "launch" and _fusing[0]:
        return
    site = _site()
    for c in _recorders:
        if kind == "launch":
            c.launches += 1
        elif kind == "sync":
            c.syncs += 1
        elif kind == "h2d":
            c.h2d += 1
            c.h2d_bytes += nbytes
        elif kind == "d2h":
            c.d2h += 1
            c.d2h_bytes += nbytes
        c.sites[(kind, site)] += 1


# ---------------------------------------------------------------- devices

_current = [0]


class Device:
    """cupy.cuda.Device: a context manager that makes `id` the current device."""

    def __init__(self, device=None):
        self.id = _current[0] if device is None else int(device)
        if not 0 <= self.id < DEVICE_COUNT:
            raise RuntimeError(f"cudaErrorInvalidDevice: invalid device ordinal ({self.id})")
        self._previous = []

    def __enter__(self):
        self._previous.append(_current[0])
        _current[0] = self.id
        return self

    def __exit__(self, *exc):
        _current[0] = self._previous.pop()

    def use(self):
        _current[0] = self.id

    def synchronize(self):
        _event("sync")

    def __repr__(self):
        return f"<CUDA Device {self.id}>"

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)


class _Stream:
    def synchronize(self):
        _event("sync")


def _check_device(arrays):
    for a in arrays:
        if a._dev != _current[0]:
            raise ValueError(f"The device where the array resides ({a._dev}) is different from the current "
                             f"device ({_current[0]}). Peer access is unavailable between these devices.")


# ---------------------------------------------------------------- arrays

_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy "
             "array explicitly.")


class Flags:
    """CuPy's flags: c_contiguous, f_contiguous, owndata (no writeable, aligned, ...)."""

    def __init__(self, array):
        self._flags = array.flags

    def __getattr__(self, name):
        if name in _FLAGS:
            return {"fnc": self._flags.fnc, "forc": self._flags.forc}.get(name, getattr(self._flags, name, None))
        for c in _recorders:
            c.missing_attributes[("flags." + name, _site())] += 1
        raise AttributeError(f"'cupy._core.flags.Flags' object has no attribute {name!r}")

    def __getitem__(self, key):
        return getattr(self, key.lower())


def _unwrap(value, arrays):
    """The NumPy array behind an emulated one (collected in `arrays`); NumPy arrays are refused."""
    if isinstance(value, ndarray):
        arrays.append(value)
        return value._a
    if isinstance(value, numpy.ndarray):
        raise TypeError(f"Unsupported type {type(value)}")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, arrays) for v in value)
    return value


def _wrap(result, inputs, launched, device=None):
    """Emulated arrays for NumPy results; one launch unless every result is a view of an input."""
    dev = _current[0] if device is None else device
    if isinstance(result, tuple):
        return tuple(_wrap(r, inputs, launched, device) for r in result)
    if isinstance(result, list):
        return [_wrap(r, inputs, launched, device) for r in result]
    if isinstance(result, numpy.generic):
        result = numpy.asarray(result)
    if isinstance(result, numpy.ndarray):
        view_of = next((a for a in inputs if numpy.may_share_memory(result, a._a)), None)
        if view_of is not None:
            out = ndarray(result, view_of._dev)
            out._base = view_of if view_of._base is None else view_of._base
        else:
            if launched is None:
                _event("launch")
            out = ndarray(result, dev)
        return out
    return result


def _check_kwargs(name, params, kwargs):
    if params is None or "**" in params:
        return
    bad = [k for k in kwargs if k not in params]
    if bad:
        raise TypeError(f"cupy.{name}() got an unexpected keyword argument {bad[0]!r} (not in CuPy 14)")


class ndarray:  # noqa: N801 (CuPy's name)
    """cupy.ndarray: a NumPy array that is on a (pretend) device."""

    __slots__ = ("_a", "_dev", "_base")
    __array_priority__ = 100

    def __init__(self, a, device=None):
        if not isinstance(a, numpy.ndarray):  # cupy.ndarray(shape, dtype)
            a = numpy.empty(a, dtype=device if device is not None else float)
            device = None
        self._a = a
        self._dev = _current[0] if device is None else device
        self._base = None  # the array whose memory this one views, held as CuPy's views hold it

    # attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: Flags(self._a))
    device = property(lambda self: Device(self._dev))
    T = property(lambda self: _wrap(self._a.T, [self], None))
    base = property(lambda self: self._base)

    @property
    def __cuda_array_interface__(self):
        return dict(shape=self._a.shape, typestr=self._a.dtype.str, strides=self._a.strides,
                    data=(self._a.__array_interface__["data"][0], False), version=3)

    # conversions CuPy refuses, and the ones that sync
    def __array__(self, *args, **kwargs):
        raise TypeError(_IMPLICIT)

    def get(self, stream=None, order="C", out=None, blocking=True):
        _event("sync")
        _event("d2h", self._a.nbytes)
        return numpy.array(self._a, order=order)

    def set(self, arr, stream=None):
        if not isinstance(arr, numpy.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, got {type(arr)}")
        _event("h2d", arr.nbytes)
        self._a[...] = arr

    def _sync(self):
        _event("sync")
        _event("d2h", self._a.nbytes)
        return self._a

    def item(self):
        return self._sync().item()

    def tolist(self):
        return self._sync().tolist()

    def __bool__(self):
        return bool(self._sync())

    def __int__(self):
        return int(self._sync())

    def __float__(self):
        return float(self._sync())

    def __complex__(self):
        return complex(self._sync())

    def __index__(self):
        if self._a.ndim or self._a.dtype.kind not in "biu":
            raise TypeError("only integer scalar arrays can be converted to a scalar index")
        return int(self._sync())

    def __repr__(self):
        return repr(self._sync()).replace("array(", "array(", 1)

    def __str__(self):
        return str(self._sync())

    def __format__(self, spec):
        return format(self._sync(), spec)

    def __len__(self):
        if not self._a.ndim:
            raise TypeError("len() of unsized object")
        return len(self._a)

    def __iter__(self):
        if not self._a.ndim:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    def __reduce__(self):
        raise TypeError("the emulated cupy.ndarray is not picklable")

    # NumPy's protocols: dispatch to the emulated module, as CuPy does
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        emulated = _MODULE.__dict__.get(ufunc.__name__)
        if not isinstance(emulated, Ufunc):
            return NotImplemented
        return getattr(emulated, method)(*inputs, **kwargs) if method != "__call__" else emulated(*inputs, **kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        emulated = _MODULE.__dict__.get(func.__name__)
        if emulated is None:
            return NotImplemented
        return emulated(*args, **kwargs)

    # indexing
    def _index(self, key, inputs):
        items = key if isinstance(key, tuple) else (key,)
        out, axis, advanced = [], 0, False
        for item in items:
            if isinstance(item, numpy.ndarray):  # CuPy copies NumPy indices to the device
                _event("h2d", item.nbytes)
                item = ndarray(item)
            if isinstance(item, list):
                item = numpy.asarray(item)
                item = ndarray(item) if item.dtype.kind in "biu" else item
            if isinstance(item, ndarray):
                inputs.append(item)
                a, advanced = item._a, True
                if a.dtype.kind in "iu" and axis < self._a.ndim and self._a.shape[axis]:
                    a = _wrap_indices(a, self._a.shape[axis])  # NOTE: as CuPy's kernels do (below)
                out.append(a)
                axis += a.ndim if a.dtype.kind == "b" else 1
                continue
            if item is Ellipsis:
                axis = self._a.ndim - sum(1 for i in items[items.index(item) + 1:] if i is not None)
            elif item is not None:
                axis += 1
            out.append(item)
        return (tuple(out) if isinstance(key, tuple) else out[0]), advanced

    def __getitem__(self, key):
        inputs = [self]
        index, advanced = self._index(key, inputs)
        if advanced:
            _check_device(inputs)
        return _wrap(self._a[index], [] if advanced else [self], None)

    def __setitem__(self, key, value):
        inputs = [self]
        index, _ = self._index(key, inputs)
        if isinstance(value, numpy.ndarray):
            _event("h2d", value.nbytes)
            value_a = value
        else:
            value_a = _unwrap(value, inputs)
        _check_device(inputs)
        self._a[index] = value_a
        _event("launch")


def _method(name):
    params = _METHODS[name]["params"]

    def method(self, *args, **kwargs):
        _check_kwargs(f"ndarray.{name}", params, kwargs)
        inputs = [self]
        args = _unwrap(list(args), inputs)
        out = kwargs.get("out")
        kwargs = {k: _unwrap(v, inputs) for k, v in kwargs.items()}
        if name not in ("reshape", "transpose", "view", "squeeze", "swapaxes", "ravel"):
            _check_device(inputs)
        if _fusing[0]:
            raise TypeError(f"cupy.fuse: ndarray.{name} is not supported inside a fused function")
        result = getattr(self._a, name)(*args, **kwargs)
        if result is None or out is not None:
            _event("launch")
            return out
        if name == "astype" and result is self._a:
            return self
        return _wrap(result, [self] if name in ("reshape", "transpose", "view", "squeeze", "swapaxes", "ravel",
                                                "diagonal") else [], None, self._dev)

    method.__name__ = name
    return method


for _name in _METHODS:
    if _name in ("get", "set", "item", "tolist", "flags", "device", "T", "base", "shape", "dtype", "ndim",
                 "size", "itemsize", "nbytes", "strides", "data", "real", "imag", "flat", "mT"):
        continue
    if _name.startswith("_") or not callable(getattr(numpy.ndarray, _name, None)):
        continue
    setattr(ndarray, _name, _method(_name))


# ---------------------------------------------------------------- ufuncs and functions

class Ufunc:
    """A CuPy ufunc: out=, casting= and dtype= only (no where=, order=, subok=)."""

    def __init__(self, name):
        self.name = self.__name__ = name
        self._np = getattr(numpy, name)
        self.nin, self.nout = self._np.nin, self._np.nout
        self.nargs, self.types = self._np.nargs, self._np.types

    def __call__(self, *args, **kwargs):
        _check_kwargs(self.name, ["out", "casting", "dtype"], kwargs)
        inputs = []
        args = _unwrap(list(args), inputs)
        out = kwargs.pop("out", None)
        if out is not None:
            kwargs["out"] = _unwrap(out, inputs)
        _check_device(inputs)
        result = self._np(*args, **kwargs)
        _event("launch")
        if out is not None:
            return out
        return _wrap(result, [], False)

    def at(self, a, indices, b=None):
        if self.name not in _AT_DTYPES or a.dtype.char not in _AT_DTYPES[self.name]:
            raise TypeError(f"cupy.{self.name}.at does not support dtype {a.dtype} "
                            f"(only {', '.join(str(numpy.dtype(c)) for c in _AT_DTYPES.get(self.name, ''))})")
        inputs = []
        arr = _unwrap(a, inputs)
        index, _ = a._index(indices, inputs)
        b = _unwrap(b, inputs)
        _check_device(inputs)
        self._np.at(arr, index, b)
        _event("launch")

    def reduce(self, array, axis=0, dtype=None, out=None, keepdims=False):
        inputs = []
        result = self._np.reduce(_unwrap(array, inputs), axis=axis, dtype=dtype, keepdims=keepdims)
        _event("launch")
        return _wrap(result, [], False)

    def __repr__(self):
        return f"<ufunc 'cupy_{self.name}'>"


_ELEMENTWISE = set()
_NO_LAUNCH = {"empty", "empty_like", "result_type", "can_cast", "promote_types", "dtype", "iinfo", "finfo",
              "isscalar", "ndim", "shape", "size", "broadcast_shapes", "split", "array_split", "broadcast_to",
              "expand_dims", "squeeze", "moveaxis", "swapaxes", "transpose", "reshape", "ravel", "atleast_1d",
              "atleast_2d", "atleast_3d", "may_share_memory", "shares_memory", "issubdtype", "min_scalar_type",
              "flip", "fliplr", "flipud", "rollaxis", "real", "imag", "get_array_module", "broadcast_arrays"}
_TRANSFER = {"asarray", "array", "asanyarray", "ascontiguousarray", "asfortranarray"}


def _function(name):
    params = _TOP[name]["params"]
    np_func = getattr(numpy, name)

    def function(*args, **kwargs):
        _check_kwargs(name, params, kwargs)
        if _fusing[0] and name not in _ELEMENTWISE:
            raise TypeError(f"cupy.fuse: cupy.{name} is not supported inside a fused function")
        if name in _TRANSFER:
            return _to_device(name, np_func, *args, **kwargs)
        inputs = []
        args = _unwrap(list(args), inputs)
        out = kwargs.get("out")
        kwargs = {k: _unwrap(v, inputs) for k, v in kwargs.items()}
        if name not in _NO_LAUNCH:
            _check_device(inputs)
        result = np_func(*args, **kwargs)
        if name in ("empty", "empty_like"):
            return ndarray(result)
        if result is None or out is not None:
            _event("launch")
            return out
        return _wrap(result, inputs if name in _NO_LAUNCH else [], None)

    function.__name__ = name
    return function


def _to_device(name, np_func, a, dtype=None, *args, **kwargs):
    if isinstance(a, ndarray):
        result = np_func(a._a, dtype, *args, **kwargs) if name in ("array", "asarray") else np_func(a._a, dtype=dtype)
        if result is a._a:
            return a
        return _wrap(result, [a] if name != "array" or kwargs.get("copy") is False else [], None, a._dev)
    if isinstance(a, (list, tuple)) and any(isinstance(v, ndarray) for v in a):
        raise TypeError("Unsupported type: a list of cupy arrays (use cupy.stack)")
    kwargs.pop("blocking", None)
    host = numpy.array(a, dtype=dtype, copy=True) if name == "array" else numpy.asarray(a, dtype=dtype)
    _event("h2d", host.nbytes)
    return ndarray(numpy.array(host, copy=True))


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    """cupy.asnumpy: a blocking copy to the host (NumPy arrays pass through)."""
    if isinstance(a, ndarray):
        return a.get()
    return numpy.asarray(a)


def copyto(dst, src, casting="same_kind", where=None):
    """cupy.copyto; NumPy sources are refused, like any NumPy argument."""
    inputs = []
    d = _unwrap(dst, inputs)
    s = _unwrap(src, inputs)
    w = _unwrap(where, inputs)
    _check_device(inputs)
    numpy.copyto(d, s, casting=casting, where=True if w is None else w)
    _event("launch")


def fuse(*args, **kwargs):
    """cupy.fuse: the function runs as one kernel; inside it only elementwise operations are allowed.
    On NumPy arguments it runs the plain function, as CuPy's does."""
    def decorate(fn):
        def fused(*call_args):
            if not any(isinstance(a, ndarray) for a in call_args):
                return fn(*call_args)
            _record_signature(fn, call_args)
            _fusing[0] += 1
            try:
                result = _fused_results(fn(*_fused_arguments(call_args)))
            finally:
                _fusing[0] -= 1
            _event("launch")
            return result
        fused.__name__ = getattr(fn, "__name__", "fused")
        return fused
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return decorate(args[0])
    return decorate


# ---------------------------------------------------------------- index wrapping

def _wrap_indices(indices, length):
    """Integer-array indices as CuPy's indexing kernels use them: out-of-range ones wrap around,
    silently (a[n] is a[0]), where NumPy raises. make_fuse_rules.py reads the rule from CuPy's
    kernels (_prepare_array_indexing: i - floor(i / n) * n; _take_kernel: i % n, plus n if negative)
    into fuse_rules.json, and refuses to write it if they change."""
    if not _FUSE_RULES["indexing"]["wraps"]:
        raise AssertionError("fuse_rules.json says CuPy no longer wraps indices: update the emulation")
    return indices - numpy.floor_divide(indices, length) * length


# ---------------------------------------------------------------- recording fused kernels' signatures

RECORD_ENV = "TINYGRAD_CNN_RECORD_FUSE"  # a path: the run writes there every fused call's signature
_signatures = set()


def _signature(value):
    if isinstance(value, ndarray):
        return ["array", value._a.dtype.str, value._a.ndim]
    if isinstance(value, numpy.generic):
        return ["numpy", value.dtype.str]
    return ["python", type(value).__name__]


_live = []  # the sets that recording() blocks collect into


@contextlib.contextmanager
def recording():
    """`with recording() as signatures:` the (module, name, argument kinds) of the block's fused calls."""
    found = set()
    _live.append(found)
    try:
        yield found
    finally:
        _live.remove(found)


def _record_signature(fn, args):
    """Remember (kernel name, argument kinds) when $TINYGRAD_CNN_RECORD_FUSE is set (see
    tests/record_fuse_signatures.py; tests/test_cupy_real.py traces each through real CuPy)."""
    for found in _live:
        found.add(json.dumps([getattr(fn, "__module__", "?"), getattr(fn, "__name__", "?"),
                              [_signature(a) for a in args]]))
    if os.environ.get(RECORD_ENV):
        if not _signatures:
            import atexit
            atexit.register(_write_signatures, os.environ[RECORD_ENV])
        _signatures.add(json.dumps([getattr(fn, "__module__", "?"), getattr(fn, "__name__", "?"),
                                    [_signature(a) for a in args]]))


def _write_signatures(path):
    """Merge this process's signatures into `path` (several processes may write it in turn)."""
    known = set()
    if os.path.exists(path):
        with open(path) as f:
            known = {json.dumps(entry) for entry in json.load(f)}
    with open(path, "w") as f:
        json.dump(sorted((json.loads(e) for e in known | _signatures), key=json.dumps), f, indent=0)
        f.write("\n")


# ---------------------------------------------------------------- type rules inside fuse

# CuPy's loop tables and the loops real cupy.fuse chose (make_fuse_rules.py writes them from the
# installed package). Inside an emulated fused kernel every ufunc, `where` and `x[...] = y` picks its
# loop by CuPy's rule over these tables, computes in that loop's types and casts to the output, as
# the generated CUDA code does: a kernel that computes in float16 on a GPU does so here too.
_FUSE_RULES = json.load(open(os.path.join(_HERE, "fuse_rules.json")))
_UFUNC_LOOPS = {name: [(tuple(numpy.dtype(c) for c in i), tuple(numpy.dtype(c) for c in o))
                       for i, o, _ in entry["ops"] if all(c in numpy.typecodes["All"] for c in i + o)]
                for name, entry in _FUSE_RULES["ufuncs"].items()}  # NOTE: loops of types NumPy lacks are left out
FUSE_RULES_ENV = "TINYGRAD_CNN_EMULATED_FUSE_RULES"
_fuse_rule = [os.environ.get(FUSE_RULES_ENV, "v14")]
_KIND_SCORE_V13 = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 2}


@contextlib.contextmanager
def fuse_rules(version):
    """`with fuse_rules("v13"):` fused kernels type their operations by CuPy 13's rule (default "v14",
    or $TINYGRAD_CNN_EMULATED_FUSE_RULES)."""
    if version not in ("v13", "v14"):
        raise ValueError(f"unknown fuse rules {version!r}: 'v13' or 'v14'")
    before, _fuse_rule[0] = _fuse_rule[0], version
    try:
        yield
    finally:
        _fuse_rule[0] = before


class _FusedScalar(ndarray):
    """A scalar inside a fused kernel (an argument, or an operation's result on scalars alone):
    0-d, with what CuPy's rules ask of it: `_weak`, the Python type that v14 treats as weak (any
    scalar argument or constant; False for results), and `_const`, the value v13 reads (constants
    written in the body only)."""

    __slots__ = ("_weak", "_const")

    def __init__(self, a, weak, const=None):
        super().__init__(a)
        self._weak, self._const = weak, const


def _fused_arguments(args):
    """Kernel arguments as the trace sees them: scalars become typed, weak _FusedScalars."""
    return tuple(_FusedScalar(numpy.asarray(a, dtype=numpy.dtype(type(a))), type(a))
                 if isinstance(a, (bool, int, float, complex, numpy.generic)) else a for a in args)


def _fused_results(result):
    if isinstance(result, tuple):
        return tuple(_fused_results(r) for r in result)
    if isinstance(result, _FusedScalar):
        return ndarray(result._a, result._dev)
    return result


def _operand(value):
    """(dtype, is a scalar, weak type, constant value) of an operand inside a fused kernel."""
    if isinstance(value, _FusedScalar):
        return value._a.dtype, True, value._weak, value._const
    if isinstance(value, ndarray):
        return value._a.dtype, False, False, None
    if isinstance(value, (bool, int, float, complex, numpy.generic)):  # a constant in the body
        return numpy.dtype(type(value)), True, type(value), value
    raise TypeError(f"Unsupported type {type(value)}")


def _fits_v14(operand, loop_type):
    dtype, scalar, weak, _ = operand
    if numpy.can_cast(dtype, loop_type):
        return True
    if not weak:
        return False
    try:
        return numpy.result_type(weak(0), loop_type) == loop_type
    except TypeError:
        return False


def _choose_loop(name, ins, outs):
    """The loop CuPy's fuse picks for ufunc `name` over operands `ins` (outputs `outs`), or None."""
    loops = _UFUNC_LOOPS[name]
    if _fuse_rule[0] == "v14":  # CuPy 14: fusion.pyx call_ufunc, _guess_routine_from_in_types
        return next((loop for loop in loops if all(_fits_v14(o, t) for o, t in zip(ins, loop[0]))), None)
    # CuPy 13: fusion.pyx call_ufunc, _should_use_min_scalar then can_cast1 (scalars by value) or can_cast2
    array_kind = max([_KIND_SCORE_V13[o[0].kind] for o in ins + outs if not o[1]], default=-2)
    scalar_kind = max([_KIND_SCORE_V13[o[0].kind] for o in ins + outs if o[1]], default=-1)
    by_value = scalar_kind != -1 and array_kind >= scalar_kind
    for loop in loops:
        for (dtype, scalar, _, const), t in zip(ins, loop[0]):
            if by_value and scalar:
                if numpy.result_type(const if const is not None else dtype.type(0), t) != t:
                    break
            elif not numpy.can_cast(dtype, t):
                break
        else:
            return loop
    return None


def _fused_call(name, args, out=None):
    """One operation inside a fused kernel, typed by CuPy's rule (see fuse_rules.json)."""
    nin = _FUSE_RULES["ufuncs"][name]["nin"]
    if len(args) > nin:
        out, args = args[nin], args[:nin]
    if isinstance(out, tuple):
        out = out[0] if len(out) == 1 else out
    ins = [_operand(a) for a in args]
    outs = [_operand(out)] if out is not None else []
    loop = _choose_loop(name, ins, outs)
    if loop is None:
        raise TypeError(f"Invalid type cast in '{name}': {[o[0] for o in ins]} -> {[o[0] for o in outs]}")
    values = [(a._a if isinstance(a, ndarray) else numpy.asarray(a)).astype(t) for a, t in zip(args, loop[0])]
    with numpy.errstate(all="ignore"):  # a GPU computes inf and NaN silently
        if name == "where":
            result = numpy.where(*values)
        elif name == "copy":
            result = values[0]
        else:
            result = getattr(numpy, name)(*values)
    result = numpy.asarray(result).astype(loop[1][0])
    if out is not None:
        if not numpy.can_cast(loop[1][0], out._a.dtype, "same_kind"):
            raise TypeError(f"output 0: cannot cast {loop[1][0]} to {out._a.dtype} (same_kind), in '{name}'")
        _check_device([out] + [a for a in args if isinstance(a, ndarray)])
        out._a[...] = result
        return out
    if all(o[1] for o in ins):
        return _FusedScalar(result, False)
    return ndarray(result)


_plain_ufunc_call = Ufunc.__call__
_plain_setitem = ndarray.__setitem__


def _ufunc_call(self, *args, **kwargs):
    if _fusing[0]:
        _check_kwargs(self.name, ["out"], kwargs)
        return _fused_call(self.name, args, kwargs.get("out"))
    return _plain_ufunc_call(self, *args, **kwargs)


def _setitem(self, key, value):
    if _fusing[0]:
        if not (key is Ellipsis or key == slice(None)):
            raise ValueError("The fusion supports `[...]` or `[:]`.")
        _fused_call("copy", (value,), self)
        return
    _plain_setitem(self, key, value)


Ufunc.__call__ = _ufunc_call
ndarray.__setitem__ = _setitem


class _Generator:
    """cupy.random.Generator (from default_rng): random() only, one launch a call."""

    def __init__(self, seed=None):
        self._np = numpy.random.default_rng(seed)

    def random(self, size=None, dtype=numpy.float64, out=None):
        if numpy.dtype(dtype) not in (numpy.float32, numpy.float64):
            raise TypeError(f"cupy.random.Generator.random: dtype {numpy.dtype(dtype)} is not supported "
                            f"(only float32 and float64)")
        values = ndarray(self._np.random(size, dtype=dtype))
        _event("launch")
        if out is not None:
            out[...] = values
            return out
        return values


def as_strided(x, shape=None, strides=None):
    """cupy.lib.stride_tricks.as_strided: a view, no launch."""
    return _wrap(numpy.lib.stride_tricks.as_strided(x._a, shape=shape, strides=strides), [x], None)


# ---------------------------------------------------------------- launch rules of concatenate and matmul
# NOTE: these routines launch as many kernels as CuPy's code paths do, by the rules in launch_rules.json
# (written by make_launch_rules.py from CuPy's sources, checked against the installed package), not one a
# call: a count here is never lower than CuPy's for them.

_RULES = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "launch_rules.json")))


def _launches(n):
    for _ in range(n):
        _event("launch")


def concatenate(tup, axis=0, out=None, dtype=None, casting="same_kind"):
    """cupy.concatenate: one kernel when more than 8 small arrays of one dtype, else one copy per array."""
    rules = _RULES["concatenate"]
    arrays = list(tup)
    inputs = []
    np_arrays = _unwrap(arrays, inputs)
    if len(inputs) != len(arrays):
        raise TypeError("Only cupy arrays can be concatenated")
    np_out = _unwrap(out, inputs) if out is not None else None
    _check_device(inputs)
    result = numpy.concatenate(np_arrays, axis=axis, out=np_out, dtype=dtype, casting=casting)
    kind = result.dtype
    ax = axis % result.ndim
    total = sum(a.size * kind.itemsize for a in np_arrays)
    if (len(arrays) > rules["single_kernel_if_more_than"] and all(a.dtype == kind for a in np_arrays)
            and total < rules["single_kernel_if_bytes_below_per_array"] * len(arrays)):
        same = all(a.flags.c_contiguous and a.shape[ax] == result.shape[ax] // len(arrays) for a in np_arrays)
        for _ in range(rules["single_kernel_h2d_same_shape_contiguous" if same else "single_kernel_h2d_otherwise"]):
            _event("h2d", 8 * len(arrays))
        _launches(rules["single_kernel_launches"])
    else:
        _launches(rules["otherwise_launches_per_array"] * sum(1 for a in np_arrays if a.size))
    return out if out is not None else _wrap(result, [], True)  # launches counted above


def stack(tup, axis=0, out=None, dtype=None, casting="same_kind"):
    """cupy.stack: concatenate of the arrays with a new axis (so its launch rules)."""
    arrays = list(tup)
    if not arrays:
        raise ValueError("need at least one array to stack")
    ax = axis % (arrays[0].ndim + 1) if isinstance(arrays[0], ndarray) else axis
    return concatenate([_MODULE.expand_dims(a, ax) for a in arrays], ax, out=out, dtype=dtype, casting=casting)


def _rows_ok(a):
    return a.flags.c_contiguous or a.flags.f_contiguous


def _matmul_launches(a, b, out, result_dtype):
    """Kernels CuPy 14's matmul (or dot, for 2-D) launches for NumPy operands a, b into `out` (or None)."""
    rules = _RULES["matmul"]
    if a.size == 0 or b.size == 0:
        return 1  # a fill of the output with zeros
    ndim = max(a.ndim, b.ndim)
    if ndim <= 2:
        launches = 0
        if out is not None and not (out.flags.c_contiguous and out.dtype == result_dtype):
            launches += 1  # into a temporary, then copied
            out = None
        a2 = a.reshape(1, -1) if a.ndim == 1 else a
        b2 = b.reshape(-1, 1) if b.ndim == 1 else b
        if a2.shape[0] == 1 and b2.shape[1] == 1:
            return launches + 1  # a reduction
        launches += sum(1 for x in (a2, b2) if x.dtype != result_dtype)  # astype
        launches += sum(1 for x in (a2, b2) if x.dtype == result_dtype and not _rows_ok(x))
        if out is not None and (numpy.may_share_memory(out, a) or numpy.may_share_memory(out, b)):
            launches += 1
        return launches + 1
    dtype = numpy.dtype("float32") if result_dtype == numpy.float16 else result_dtype
    a3 = a.reshape((1,) * (ndim - a.ndim) + (a.shape if a.ndim > 1 else (1,) + a.shape))
    b3 = b.reshape((1,) * (ndim - b.ndim) + (b.shape if b.ndim > 1 else b.shape + (1,)))
    launches = 0
    if rules["batched_operand_copy_unless_c_contiguous_of_dtype"]:
        launches += sum(1 for x in (a3, b3) if not (x.flags.c_contiguous and x.dtype == dtype))
    broadcast = any((sa == 1) != (sb == 1) for sa, sb in zip(a3.shape[:-2], b3.shape[:-2]))
    if broadcast:
        per_array = (rules["pointer_array_launches_first_batch_axis"]
                     + rules["pointer_array_launches_per_further_batch_axis"] * (ndim - 3))
        launches += rules["broadcast_pointer_arrays"] * per_array + rules["broadcast_gemm_launches"]
    else:
        launches += rules["strided_gemm_launches"]
    if out is not None:
        in_place = (out.dtype == dtype and out.flags.c_contiguous and not numpy.may_share_memory(out, a)
                    and not numpy.may_share_memory(out, b))
        launches += 0 if in_place else 1
    elif dtype != result_dtype:
        launches += 1
    return launches


def matmul(a, b, out=None, **kwargs):
    """cupy.matmul, counted as CuPy launches it (see _matmul_launches)."""
    _check_kwargs("matmul", _TOP["matmul"]["params"], kwargs)
    if _fusing[0]:
        raise TypeError("cupy.fuse: cupy.matmul is not supported inside a fused function")
    inputs = []
    na, nb = _unwrap(a, inputs), _unwrap(b, inputs)
    nout = _unwrap(out, inputs) if out is not None else None
    _check_device(inputs)
    launches = _matmul_launches(na, nb, nout, numpy.result_type(na, nb))
    result = numpy.matmul(na, nb, out=nout, **kwargs)
    _launches(launches)
    return out if out is not None else _wrap(result, [], True)  # launches counted above


def dot(a, b, out=None):
    """cupy.dot; for 2-D (and 1-D) operands the path and launches of 2-D matmul."""
    inputs = []
    na, nb = _unwrap(a, inputs), _unwrap(b, inputs)
    nout = _unwrap(out, inputs) if out is not None else None
    _check_device(inputs)
    if max(na.ndim, nb.ndim) > 2 or min(na.ndim, nb.ndim) == 0:
        launches = 1
    else:
        if nout is not None and not nout.flags.c_contiguous:
            raise ValueError("Output array must be C-contiguous")
        launches = _matmul_launches(na, nb, nout, numpy.result_type(na, nb))
    result = numpy.dot(na, nb, out=nout)
    _launches(launches)
    return out if out is not None else _wrap(result, [], True)  # launches counted above


_COUNTED = {"concatenate": concatenate, "stack": stack, "matmul": matmul, "dot": dot}


# ---------------------------------------------------------------- operators

_BINARY = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "true_divide", "floordiv": "floor_divide",
           "mod": "remainder", "pow": "power", "and": "bitwise_and", "or": "bitwise_or", "xor": "bitwise_xor",
           "lshift": "left_shift", "rshift": "right_shift"}
_COMPARE = {"lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal", "eq": "equal",
            "ne": "not_equal"}


def _operators():
    for op, uname in _BINARY.items():
        def forward(self, other, _u=uname):
            return _MODULE.__dict__[_u](self, other)

        def reverse(self, other, _u=uname):
            return _MODULE.__dict__[_u](other, self)

        def inplace(self, other, _u=uname):
            return _MODULE.__dict__[_u](self, other, out=self)
        setattr(ndarray, f"__{op}__", forward)
        setattr(ndarray, f"__r{op}__", reverse)
        setattr(ndarray, f"__i{op}__", inplace)
    for op, uname in _COMPARE.items():
        setattr(ndarray, f"__{op}__", lambda self, other, _u=uname: _MODULE.__dict__[_u](self, other))
    ndarray.__hash__ = None
    ndarray.__neg__ = lambda self: _MODULE.negative(self)
    ndarray.__abs__ = lambda self: _MODULE.absolute(self)
    ndarray.__invert__ = lambda self: _MODULE.invert(self)
    ndarray.__pos__ = lambda self: _MODULE.positive(self)
    ndarray.__matmul__ = lambda self, other: _MODULE.matmul(self, other)
    ndarray.__rmatmul__ = lambda self, other: _MODULE.matmul(other, self)


# ---------------------------------------------------------------- the module

class _Module(types.ModuleType):
    def __getattr__(self, name):
        if name in _TOP:
            raise AttributeError(f"cupy.{name} exists in CuPy {_NAMES['cupy_version']} but is not emulated "
                                 f"(tests/cupy_emulation)")
        raise AttributeError(f"module 'cupy' has no attribute {name!r}")


_MODULE = _Module("cupy", __doc__)


def _build():
    m = _MODULE
    m.__version__ = _NAMES["cupy_version"] + "+emulated"
    m.__file__ = __file__
    m.EMULATED = True
    m.ndarray = ndarray
    m.ufunc = Ufunc
    for name, entry in _TOP.items():
        np_obj = getattr(numpy, name, None)
        if entry["kind"] == "ufunc" and isinstance(np_obj, numpy.ufunc):
            m.__dict__[name] = Ufunc(name)
            _ELEMENTWISE.add(name)
        elif entry["kind"] == "function" and callable(np_obj) and not isinstance(np_obj, type):
            m.__dict__[name] = _function(name)
        elif entry["kind"] in ("class", "value") and np_obj is not None:
            m.__dict__[name] = np_obj  # dtypes (float32, ...), constants (inf, pi, newaxis), errstate
    _ELEMENTWISE.update({"where", "clip", "copysign", "around", "round"})
    m.asnumpy, m.copyto, m.fuse = asnumpy, copyto, fuse
    m.__dict__.update(_COUNTED)  # launch rules from CuPy (launch_rules.json)
    m.ndarray = ndarray
    lib = types.ModuleType("cupy.lib")
    lib.stride_tricks = types.ModuleType("cupy.lib.stride_tricks")
    lib.stride_tricks.as_strided = as_strided
    m.lib = lib
    random = types.ModuleType("cupy.random")
    random.default_rng = lambda seed=None: _Generator(seed)
    random.Generator = _Generator
    m.random = random
    cuda = types.ModuleType("cupy.cuda")
    cuda.Device = Device
    cuda.Stream = type("Stream", (_Stream,), {})
    cuda.Stream.null = _Stream()
    cuda.get_current_stream = lambda device=None: cuda.Stream.null
    cuda.is_available = lambda: DEVICE_COUNT > 0
    runtime = types.ModuleType("cupy.cuda.runtime")
    runtime.getDeviceCount = lambda: DEVICE_COUNT
    runtime.deviceSynchronize = lambda: _event("sync")
    runtime.runtimeGetVersion = lambda: 12080
    cuda.runtime = runtime
    m.cuda = cuda
    m.is_available = cuda.is_available

    def show_config(*, _full=False):
        print(f"CuPy Version          : {m.__version__} (NumPy-backed emulation, no GPU)")
        print(f"NumPy Version         : {numpy.__version__}")
        print(f"Device Count          : {DEVICE_COUNT}")
    m.show_config = show_config
    m.get_array_module = lambda *args: m if any(isinstance(a, ndarray) for a in args) else numpy
    _operators()
    return m


_build()
_plain_where = _MODULE.where


def _where(condition, x=None, y=None):
    """cupy.where; inside a fused kernel the cupy_where ufunc, typed by CuPy's rule."""
    if _fusing[0] and x is not None and y is not None:
        return _fused_call("where", (condition, x, y))
    return _plain_where(condition, x, y)


_MODULE.where = _where


def install():
    """Put the emulation in sys.modules as `cupy` (and its submodules); returns it. A real CuPy
    imported before is kept aside (see real_cupy)."""
    _keep_real_modules()
    sys.modules["cupy"] = _MODULE
    sys.modules["cupy.cuda"] = _MODULE.cuda
    sys.modules["cupy.cuda.runtime"] = _MODULE.cuda.runtime
    sys.modules["cupy.lib"] = _MODULE.lib
    sys.modules["cupy.random"] = _MODULE.random
    sys.modules["cupy.lib.stride_tricks"] = _MODULE.lib.stride_tricks
    return _MODULE


# ---------------------------------------------------------------- the real package beside the emulation

_INSTALLED = ("cupy", "cupy.cuda", "cupy.cuda.runtime", "cupy.lib", "cupy.random", "cupy.lib.stride_tricks")
_real_modules = {}


def _keep_real_modules():
    for name in _INSTALLED:
        module = sys.modules.get(name)
        if module is not None and not _is_emulated(module):
            _real_modules[name] = module


def _is_emulated(module):
    return module is _MODULE or getattr(module, "__name__", "").startswith("cupy") and \
        getattr(module, "__file__", None) in (None, __file__)


@contextlib.contextmanager
def real_cupy():
    """`with real_cupy() as cupy:` the real CuPy package (None when it does not import), in
    sys.modules while the block runs (CuPy imports its own submodules lazily); the emulation is put
    back after. NOTE: without a GPU, real CuPy traces and compiles fused kernels but launches nothing
    (tests/test_cupy_real.py)."""
    import importlib
    emulated = {name: sys.modules.pop(name) for name in _INSTALLED
                if name in sys.modules and _is_emulated(sys.modules[name])}
    sys.modules.update(_real_modules)
    try:
        try:
            module = importlib.import_module("cupy")
        except Exception:  # noqa: BLE001 (not installed, or broken without CUDA libraries)
            module = None
        yield module
    finally:
        if emulated:
            _keep_real_modules()
            sys.modules.update(emulated)


def reset():
    """Back to a fresh process's state: device 0 current (tests/conftest.py calls it before each test,
    so that a test that failed inside `with Device(1)` or called Device(1).use() leaks nothing)."""
    _current[0] = 0
    _fusing[0] = 0


def real_gpu_available():
    """True when a real CuPy imports and sees a GPU (it then always takes precedence)."""
    if isinstance(sys.modules.get("cupy"), _Module):
        return False
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 (not installed, or no driver)
        return False
