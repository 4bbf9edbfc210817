"""torch's top-level names for code written for PyTorch (`import tinygrad_cnn as torch`): torch.cat,
torch.tensor, torch.from_numpy, torch.device, the dtypes torch.long and torch.float, torch.max(x, 1) and the
other functions that torch offers beside the Tensor methods, set_grad_enabled, inference_mode, and torch.save /
torch.load of state dicts (as .safetensors or .npz files: nothing here pickles). The package re-exports them."""
import builtins
import sys
import types
from collections.abc import Mapping

import numpy

from . import checkpoint
from . import autograd as _autograd
from .device import canonical_device, to_numpy
from .nn.functional import as_tensor as _checked_tensor
from .spellings import torch_names
from .tensor import Tensor, concatenate, generator_or_global
from . import tensor as _tensor

# torch's dtype names, as the NumPy dtypes a Tensor holds (a dtype here is NumPy's)
DTYPES = {"float": "float32", "float32": "float32", "double": "float64", "float64": "float64", "half": "float16",
          "float16": "float16", "long": "int64", "int64": "int64", "int": "int32", "int32": "int32",
          "int16": "int16", "int8": "int8", "uint8": "uint8", "bool": "bool"}


def cat(tensors, dim=0):
    """torch.cat: join tensors along an existing dim (concatenate's torch name)."""
    return concatenate(tensors, axis=dim)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """torch.tensor: a new leaf holding a copy of `data` (a list, a number, a NumPy or CuPy array, a Tensor).
    Python floats become float32 and Python ints int64, as torch's; an array keeps its dtype."""
    if isinstance(data, Tensor):
        data = data.data
    elif isinstance(data, (list, tuple)):
        data = _host_values(data)
    if isinstance(data, (numpy.ndarray, numpy.generic)) or hasattr(data, "__cuda_array_interface__"):
        data = data.copy()  # NOTE: Tensor(array) shares the array's memory (torch.from_numpy's rule); this copies
    return Tensor(data, device=device, dtype=dtype, requires_grad=requires_grad)


def _host_values(data):
    """Nested lists with the Tensors in them as NumPy arrays: torch.tensor([loss1, loss2]) of 0-d tensors."""
    if isinstance(data, Tensor):
        return data.numpy()
    if isinstance(data, (list, tuple)) and builtins.any(isinstance(x, (Tensor, list, tuple)) for x in data):
        return [_host_values(x) for x in data]
    return data


def as_tensor(data, dtype=None, device=None):
    """torch.as_tensor: a Tensor as it is; a NumPy array (on the CPU, in its own dtype) shared, not copied, as
    from_numpy; other data (lists, numbers) copied as tensor(data) would."""
    if isinstance(data, Tensor):
        return data.to(device=device, dtype=dtype) if device is not None or dtype is not None else data
    if isinstance(data, numpy.ndarray) and dtype in (None, data.dtype) and device in (None, "cpu"):
        return Tensor(data, device="cpu")
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array):
    """torch.from_numpy: a CPU tensor over the same memory as the NumPy array (writes show in both)."""
    if not isinstance(array, numpy.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}; "
                        f"tensor(data) copies other data")
    return Tensor(array, device="cpu")


def device(type, index=None):  # noqa: A002 (torch's argument name)
    """torch.device("cuda"), torch.device("cuda", 1), torch.device("cpu"): here a device is its name, so
    this gives the canonical name ("cuda:0", "cuda:1", "cpu"), which to(), Tensor(device=) and
    model.to() take. NOTE: a plain string, not torch's device object (no .type or .index)."""
    if index is not None:
        if isinstance(index, bool) or not isinstance(index, int) or index < 0 or ":" in str(type):
            raise ValueError(f"device({type!r}, {index!r}): the index must be an int >= 0, given once")
        type = f"{type}:{index}"
    return canonical_device(type)


def is_tensor(obj):
    """True for a Tensor, as torch.is_tensor."""
    return isinstance(obj, Tensor)


def numel(input):  # noqa: A002
    """The number of elements, an int."""
    return input.numel()


def _pair(name):
    """torch.max(x), torch.max(x, dim, keepdim=False) (values and indices) and torch.max(x, other) (the
    elementwise maximum), and the same for min: torch's three meanings."""
    def reduce(input, dim=None, keepdim=False):  # noqa: A002
        if isinstance(dim, Tensor):
            return getattr(input, "maximum" if name == "max" else "minimum")(dim)
        if dim is None:
            return getattr(input, name)()
        return getattr(input, name)(dim=dim, keepdim=keepdim)  # torch's spelling: (values, indices)
    reduce.__name__ = name
    reduce.__doc__ = (f"torch.{name}: torch.{name}(x) the {name}imum, torch.{name}(x, dim, keepdim=False) the pair "
                      f"(values, indices), torch.{name}(x, other) the elementwise {name}imum.")
    return reduce


max = _pair("max")  # noqa: A001 (torch's names)
min = _pair("min")  # noqa: A001


def _arg(name):
    """torch.argmax / argmin, also keras.ops' and the top-level tinygrad_cnn.argmax."""
    @torch_names
    def arg(input, axis=None, keepdims=False):  # noqa: A002
        return getattr(_checked_tensor(input, f"{name} input"), name)(axis=axis, keepdims=keepdims)
    arg.__name__ = name
    arg.__doc__ = (f"torch.{name}(x, dim=None, keepdim=False): the index of the {name[3:]}imum along dim (axis=); "
                   f"without one, the index into the flattened input, as torch's and keras.ops' (TensorFlow's "
                   f"tf.{name} takes axis 0 there: give axis=). Accepts arrays and lists too.")
    return arg


argmax = _arg("argmax")
argmin = _arg("argmin")


def _method(name):
    """torch.<name>(x, *args, **kwargs) as x.<name>(*args, **kwargs); out=, as torch's, is written in place."""
    def call(input, *args, out=None, **kwargs):  # noqa: A002
        if not isinstance(input, Tensor):
            raise TypeError(f"torch.{name}: input must be a Tensor, got {type(input).__name__}")
        return _into(out, getattr(input, name)(*args, **kwargs), name)
    call.__name__ = name
    call.__doc__ = f"torch.{name}(x, ..., out=None): x.{name}(...) (written into `out` when given, as torch's)."
    return call


def _into(out, result, name):
    """torch's out=: the result copied into `out` (a tensor of its shape, not recording a graph), and returned."""
    if out is None:
        return result
    if not isinstance(out, Tensor) or out.shape != result.shape:
        raise ValueError(f"torch.{name}(..., out=): out must be a Tensor of the result's shape {result.shape}, got "
                         f"{getattr(out, 'shape', type(out).__name__)}")
    return out.copy_(result.detach())


def matmul(input, other, out=None):  # noqa: A002
    """torch.matmul(a, b, out=None): a @ b (written into `out` when given, as torch's)."""
    return _into(out, _tensor.matmul(input, other), "matmul")


# NOTE: the functions whose torch meaning is the method's (sum(x, dim) sums over dim, as x.sum(dim) does)
METHODS = ("sum", "mean", "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "softmax", "log_softmax",
           "clamp", "clip", "mm", "mul", "add", "sub", "div", "is_floating_point", "eq", "ne", "round", "floor", "ceil", "trunc", "sign", "pow", "squeeze", "unsqueeze", "reshape", "transpose", "permute", "t", "norm")
for _name in METHODS:
    globals()[_name] = _method(_name)
del _name


# ---------------------------------------------------------------- torch's factories beside tensor.py's


def _sizes(size, where):
    """torch's size arguments: f(2, 3), f((2, 3)) or f([2, 3])."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if not builtins.all(isinstance(n, (int, numpy.integer)) and not isinstance(n, bool) and n >= 0 for n in size):
        raise TypeError(f"{where}: sizes must be ints >= 0, got {size!r}")
    return tuple(int(n) for n in size)


def _new(array, device, requires_grad):
    """A new leaf on `device` holding `array` (drawn or made on the CPU, as every random number here)."""
    return Tensor(array, device=device).requires_grad_(requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    """torch.full(size, fill_value): the dtype follows the value when not given, as torch's: bool for a
    bool, int64 for an int, float32 for a float (tinygrad_cnn.tensor.full, NumPy-named, is float32 always)."""
    if dtype is None:
        dtype = "bool" if isinstance(fill_value, (bool, numpy.bool_)) else \
            "int64" if isinstance(fill_value, (int, numpy.integer)) else "float32"
    return _tensor.full(size, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def empty(*size, dtype="float32", device=None, requires_grad=False):
    """torch.empty(2, 3): here zeros (torch leaves the values unset; reading them is a bug either way)."""
    return _tensor.zeros(_sizes(size, "empty"), dtype=dtype, device=device, requires_grad=requires_grad)


def empty_like(input, dtype=None, device=None, requires_grad=False):  # noqa: A002 (torch's argument name)
    """torch.empty_like(x): zeros of x's shape, dtype and device (see empty)."""
    return _tensor.zeros(input.shape, dtype=dtype or input.dtype, device=device or input.device,
                         requires_grad=requires_grad)


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False):  # noqa: A002
    """torch.full_like(x, value): x's shape, dtype and device, filled with `value`."""
    return _tensor.full(input.shape, fill_value, dtype=dtype or input.dtype, device=device or input.device,
                        requires_grad=requires_grad)


def _random_like(name, draw):
    def like(input, dtype=None, device=None, requires_grad=False):  # noqa: A002
        dtype = numpy.dtype(dtype or input.dtype)
        if dtype.kind != "f":
            raise TypeError(f"{name}: needs a float dtype, got {dtype} (give dtype=torch.float, as torch's "
                            f"{name} of an integer tensor asks for)")
        return _new(draw(generator_or_global(None, name), input.shape).astype(dtype), device or input.device,
                    requires_grad)
    like.__name__ = name
    like.__doc__ = (f"torch.{name}(x, dtype=None): a tensor of x's shape and device drawn as "
                    f"{name[:-5]}() draws (the global generator, see manual_seed); x must be float or dtype= given.")
    return like


rand_like = _random_like("rand_like", lambda rng, shape: rng.random(shape))
randn_like = _random_like("randn_like", lambda rng, shape: rng.standard_normal(shape))


def randint(*args, size=None, dtype="int64", device=None, requires_grad=False, generator=None):
    """torch.randint(high, size) or randint(low, high, size): ints uniform on [low, high), int64 (the Datasets
    tutorial's `torch.randint(len(data), size=(1,)).item()`); generator= is a NumPy one, as everywhere here."""
    if size is None and args and isinstance(args[-1], (tuple, list)):
        *args, size = args
    if size is None or not 1 <= len(args) <= 2:
        raise TypeError(f"randint: write randint(high, size) or randint(low, high, size) with size a tuple, "
                        f"got randint({', '.join(map(repr, args))}, size={size!r})")
    low, high = (0, args[0]) if len(args) == 1 else args
    if not high > low:
        raise ValueError(f"randint: high ({high}) must be greater than low ({low})")
    values = generator_or_global(generator, "randint").integers(low, high, _sizes((size,), "randint"))
    return _new(values.astype(dtype), device, requires_grad)


def randperm(n, dtype="int64", device=None, requires_grad=False, generator=None):
    """torch.randperm(n): a random order of 0 .. n-1, int64 (a manual shuffle's `x[torch.randperm(len(x))]`)."""
    if isinstance(n, bool) or not isinstance(n, (int, numpy.integer)) or n < 0:
        raise TypeError(f"randperm: n must be an int >= 0, got {n!r}")
    return _new(generator_or_global(generator, "randperm").permutation(int(n)).astype(dtype), device, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    """torch.linspace(start, end, steps): `steps` evenly spaced values from start to end, both included;
    float32 unless dtype= says otherwise."""
    if isinstance(steps, bool) or not isinstance(steps, (int, numpy.integer)) or steps < 0:
        raise TypeError(f"linspace: steps must be an int >= 0, got {steps!r}")
    return _new(numpy.linspace(start, end, int(steps)).astype(dtype or "float32"), device, requires_grad)


# torch.all/any(x, dim=None, keepdim=False): the methods, which are torch's (bool tensors)
all = _method("all")  # noqa: A001 (torch's names)
any = _method("any")  # noqa: A001


def vector_norm(x, ord=2, dim=None, keepdim=False):  # noqa: A002 (torch's argument name)
    """torch.linalg.vector_norm(x, ord=2, dim=None, keepdim=False): x.norm(ord, dim, keepdim)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"linalg.vector_norm: x must be a Tensor, got {type(x).__name__}")
    return x.norm(ord, dim=dim, keepdim=keepdim)


# NOTE: torch.linalg holds vector_norm alone here (matrix norms, solvers and decompositions are not offered)
linalg = types.ModuleType(__name__.rsplit(".", 1)[0] + ".linalg", "torch.linalg's spelling: vector_norm only.")
linalg.vector_norm = vector_norm
sys.modules[linalg.__name__] = linalg  # `from tinygrad_cnn.linalg import vector_norm` too


def set_grad_enabled(mode):
    """torch.set_grad_enabled(mode): turn graph recording on or off, as a call or as a `with` block
    (`with torch.set_grad_enabled(phase == "train"):`, which switches back at its end)."""
    if not isinstance(mode, (bool, numpy.bool_)):
        raise TypeError(f"set_grad_enabled: mode must be True or False, got {mode!r}")
    switch = _autograd.enable_grad() if mode else _autograd.no_grad()
    switch.__enter__()  # NOTE: a plain call switches at once and for good, as torch's
    return _Restoring(switch)


class _Restoring:
    """What set_grad_enabled returns: already switched, it restores the previous mode at the end of a
    `with` block (a plain call leaves the new mode on)."""

    def __init__(self, switch):
        self.switch = switch

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.switch.__exit__(*exc)


def _grad_switch(make):
    def switch(func=None):
        if func is None:
            return make()
        if not callable(func):
            raise TypeError(f"{make.__name__}(): takes no arguments, or a function to decorate (@{make.__name__} "
                            f"without parentheses, as torch's), got {func!r}")
        return make()(func)
    switch.__name__ = make.__name__
    switch.__doc__ = (f"{make.__doc__} As torch's, also a decorator without parentheses: @{make.__name__} as "
                      f"@{make.__name__}().")
    return switch


no_grad = _grad_switch(_autograd.no_grad)
enable_grad = _grad_switch(_autograd.enable_grad)


def inference_mode(mode=True):
    """torch.inference_mode(): no_grad() here (nothing inside records a graph), a `with` block or a decorator
    (@inference_mode() or, as torch's, @inference_mode)."""
    if callable(mode):
        return _autograd.no_grad()(mode)
    if mode is not True:
        raise NotImplementedError(f"inference_mode({mode!r}): only inference_mode() is offered (it is no_grad()); "
                                  f"use enable_grad() to record a graph inside no_grad")
    return _autograd.no_grad()


_STR = "tinygrad_cnn.save/str/"  # the metadata keys of save()'s string values start so


def save(obj, f):
    """torch.save(model.state_dict(), path) and torch.save({"epoch": e, "model": ..., "optimizer": ...},
    path): a dict of arrays, Tensors, numbers and strings (nested dicts too; a scheduler's state_dict()
    holds strings) written as .safetensors or .npz (the name's extension says which). NOTE: never pickled:
    torch's .pt/.pth names raise an error naming .safetensors, and other objects than dicts (a whole model)
    are refused: save its state_dict()."""
    if not isinstance(obj, Mapping):
        raise TypeError(f"save: saves a dict (model.state_dict(), optimizer.state_dict(), or a dict of them), "
                        f"not a {type(obj).__name__}: nothing here pickles; for a model save model.state_dict()")
    name = str(f)
    if name.lower().endswith((".pt", ".pth", ".pkl", ".tar", ".ckpt", ".bin")):
        raise checkpoint.CheckpointError(f"save: {name!r} is torch's pickle format, which is not written here; "
                                         f"name the file .safetensors (or .npz): same dict, loaded by load()")
    arrays, strings = {}, {}
    for key, value in _flat(obj, ""):
        (strings if isinstance(value, str) else arrays)[key] = value
    # NOTE: strings travel in the file's str -> str metadata, each under _STR + its key, so that load() tells
    # them from another writer's metadata (a safetensors file's {"format": "pt"} is not put in the dict)
    checkpoint.save_arrays(f, arrays, {_STR + key: value for key, value in strings.items()})


def _flat(obj, prefix):
    for key, value in obj.items():
        if not isinstance(key, str) or "/" in key:
            raise TypeError(f"save: keys must be strings without '/', got {key!r}")
        if isinstance(value, Mapping):
            yield from _flat(value, f"{prefix}{key}/")
        else:
            yield f"{prefix}{key}", value if isinstance(value, str) else \
                value.numpy() if isinstance(value, Tensor) else numpy.asarray(to_numpy(value))


def load(f, map_location=None, weights_only=True):
    """torch.load of what save() wrote: the dict again (nested as saved), arrays as NumPy arrays,
    0-d ones as Python numbers and strings as strings, ready for model.load_state_dict(...) or optimizer.load_state_dict(...).
    map_location: None or "cpu" (arrays load on the CPU; load_state_dict puts them on the model's device)."""
    if map_location not in (None, "cpu") or weights_only is not True:
        raise ValueError(f"load: map_location must be None or 'cpu' (load_state_dict moves weights to the model's "
                         f"device) and weights_only True (nothing is unpickled), got {map_location!r}, {weights_only!r}")
    out = {}
    arrays, metadata = checkpoint.load_file(f)
    strings = {key[len(_STR):]: value for key, value in metadata.items() if key.startswith(_STR)}
    for key, value in {**arrays, **strings}.items():
        *parents, leaf = key.split("/")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value if isinstance(value, str) else value.item() if value.ndim == 0 else value
    return out


# torch's top-level names not offered here, and what to write instead (the package's __getattr__ says so)
TORCH_ONLY = {
    "backends": "drop the torch.backends lines: there is no cuDNN here (the convolutions are this "
                "package's own kernels)",
    "Generator": "a generator= here (DataLoader, RandomSampler, random_split, Dropout) is NumPy's: "
                 "numpy.random.default_rng(seed)",
    "Size": "a plain tuple: x.size() and x.shape are tuples",
    "FloatTensor": "write tinygrad_cnn.tensor(data, dtype=tinygrad_cnn.float) (or zeros(*sizes)); x.type() "
                   "reads 'torch.FloatTensor' and x.type(tinygrad_cnn.float) casts",
    "LongTensor": "write tinygrad_cnn.tensor(data, dtype=tinygrad_cnn.long) (or zeros(*sizes, dtype=tinygrad_cnn.long))",
    "unique": "write tinygrad_cnn.tensor(numpy.unique(x.numpy())) (no gradient)",
    "nonzero": "write tinygrad_cnn.tensor(numpy.argwhere(x.numpy())) (torch.nonzero's (n, ndim) indices)",
    "compile": "drop torch.compile: there is no compiler here",
    "jit": "there is no TorchScript: save the weights with model.save(...)",
    "set_default_dtype": "write dtype= on each factory and layer (float32 is the default)",
    "autocast": "drop it: no automatic mixed precision here (float16 tensors exist: x.to(tinygrad_cnn.half))",
}


def missing(name):
    """The AttributeError for tinygrad_cnn.<name>: naming what to write for torch's names not offered."""
    if name in TORCH_ONLY:
        return AttributeError(f"tinygrad_cnn has no {name} (torch's): {TORCH_ONLY[name]}")
    return AttributeError(f"module 'tinygrad_cnn' has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """A module that can also be called: tinygrad_cnn.tensor and tinygrad_cnn.device are modules here,
    where torch.tensor(...) and torch.device(...) are functions."""

    def __call__(self, *args, **kwargs):
        return self.__torch_call__(*args, **kwargs)


def make_callable(module, fn):
    """Let `module` be called as `fn`, keeping it a module (its attributes and imports are unchanged).

    NOTE: the package's submodules `tensor` and `device` hold the names torch gives to functions; renaming
    them would break `tg.device.canonical_device` and every import of them."""
    module.__class__ = _CallableModule
    module.__torch_call__ = fn


__all__ = ["cat", "tensor", "from_numpy", "device", "is_tensor", "numel", "max", "min", "argmax", "argmin", *METHODS,
           "set_grad_enabled", "inference_mode", "save", "load", "linalg", "full", "empty", "empty_like", "full_like",
           "rand_like", "randn_like", "randint", "randperm", "linspace", "all", "any", "accelerator", "matmul", "no_grad", "enable_grad", "as_tensor"]


class _Accelerator(types.ModuleType):
    """torch.accelerator, as the current PyTorch tutorials and examples probe for a device:
    `torch.accelerator.current_accelerator().type if torch.accelerator.is_available() else "cpu"`. Here the
    only accelerator is a CUDA GPU through CuPy."""

    @staticmethod
    def is_available():
        """True when a CUDA GPU answers (tinygrad_cnn.cuda_available())."""
        from .device import cuda_available
        return cuda_available()

    def current_accelerator(self, check_available=False):
        """torch.device("cuda:0") when a GPU answers, else None (torch's answer without an accelerator)."""
        return device("cuda") if self.is_available() else None

    def device_count(self):
        """How many GPUs answer (0 without CuPy or a GPU)."""
        from .cuda import device_count
        return device_count()


accelerator = _Accelerator(__name__.rsplit(".", 1)[0] + ".accelerator", _Accelerator.__doc__)
