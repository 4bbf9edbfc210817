"""torch's top-level names for code written for PyTorch (`import tinygrad_cnn as torch`): torch.cat,
torch.tensor, torch.from_numpy, torch.device, the dtypes torch.long and torch.float, torch.max(x, 1) and the
other functions that torch offers beside the Tensor methods, set_grad_enabled, inference_mode, and torch.save /
torch.load of state dicts (as .safetensors or .npz files: nothing here pickles). The package re-exports them."""
import sys
import types
from collections.abc import Mapping

import numpy

from . import checkpoint
from .autograd import enable_grad, no_grad
from .device import canonical_device, to_numpy
from .nn.functional import as_tensor
from .spellings import torch_names
from .tensor import Tensor, concatenate

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
    if isinstance(data, (numpy.ndarray, numpy.generic)) or hasattr(data, "__cuda_array_interface__"):
        data = data.copy()  # NOTE: Tensor(array) shares the array's memory (torch.from_numpy's rule); this copies
    return Tensor(data, device=device, dtype=dtype, requires_grad=requires_grad)


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
        return getattr(as_tensor(input, f"{name} input"), name)(axis=axis, keepdims=keepdims)
    arg.__name__ = name
    arg.__doc__ = (f"torch.{name}(x, dim=None, keepdim=False): the index of the {name[3:]}imum along dim (axis=); "
                   f"without one, the index into the flattened input, as torch's and keras.ops' (TensorFlow's "
                   f"tf.{name} takes axis 0 there: give axis=). Accepts arrays and lists too.")
    return arg


argmax = _arg("argmax")
argmin = _arg("argmin")


def _method(name):
    """torch.<name>(x, *args, **kwargs) as x.<name>(*args, **kwargs)."""
    def call(input, *args, **kwargs):  # noqa: A002
        if not isinstance(input, Tensor):
            raise TypeError(f"torch.{name}: input must be a Tensor, got {type(input).__name__}")
        return getattr(input, name)(*args, **kwargs)
    call.__name__ = name
    call.__doc__ = f"torch.{name}(x, ...): x.{name}(...)."
    return call


# NOTE: the functions whose torch meaning is the method's (sum(x, dim) sums over dim, as x.sum(dim) does)
METHODS = ("sum", "mean", "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "softmax", "log_softmax",
           "clamp", "mm", "pow", "squeeze", "unsqueeze", "reshape", "transpose", "permute", "t", "norm")
for _name in METHODS:
    globals()[_name] = _method(_name)
del _name


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
    switch = enable_grad() if mode else no_grad()
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


def inference_mode(mode=True):
    """torch.inference_mode(): no_grad() here (nothing inside records a graph), a `with` block or a decorator."""
    if mode is not True:
        raise NotImplementedError(f"inference_mode({mode!r}): only inference_mode() is offered (it is no_grad()); "
                                  f"use enable_grad() to record a graph inside no_grad")
    return no_grad()


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
    "randint": "write tinygrad_cnn.Tensor(tinygrad_cnn.get_rng().integers(low, high, size))",
    "randperm": "write tinygrad_cnn.Tensor(tinygrad_cnn.get_rng().permutation(n))",
    "linspace": "write tinygrad_cnn.Tensor(numpy.linspace(start, end, steps, dtype='float32'))",
    "Generator": "a generator= here (DataLoader, RandomSampler, random_split, Dropout) is NumPy's: "
                 "numpy.random.default_rng(seed)",
    "Size": "a plain tuple: x.size() and x.shape are tuples",
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
           "set_grad_enabled", "inference_mode", "save", "load", "linalg"]
