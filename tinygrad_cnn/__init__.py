"""tinygrad_cnn: a small deep-learning framework on NumPy (CPU) and CuPy (GPU)."""
import sys as _sys
import types as _types

from .anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from .device import DeviceError, cuda_available
from .autograd import Function, enable_grad, is_grad_enabled, no_grad
from .higher_order import grad
from .kernels.parallel import get_num_threads, set_num_threads
from .dlpack import from_dlpack
from .tensor import (AxisError, Tensor, arange, concatenate, eye, float32, float64, full, get_rng, manual_seed, matmul,
                     maximum, minimum, ones, ones_like, rand, randn, stack, where, zeros, zeros_like)

# The submodules, so that `import tinygrad_cnn as tg` gives tg.nn, tg.optim, ...; testing.strategies needs
# hypothesis (an optional extra), so it is imported on its own.
from . import autograd, checkpoint, higher_order, data, datasets, device, memory, nn, optim, testing
from . import keras  # after nn and optim, which it builds on
from . import torch_nn  # torch.nn's spelling: Conv2d, Linear (import tinygrad_cnn.torch_nn as nn)
from . import random  # tf.random.set_seed
from .keras.ops import convert_to_tensor  # tf.convert_to_tensor
from .nn.functional import flatten  # torch.flatten(x, 1)
from . import cuda  # torch.cuda.is_available()
from . import kernels  # NOTE: registers the fast kernels in place of the reference ops (see kernels.TABLE)
from . import torch_functions, torch_data
from . import autograd_functional  # torch.autograd.functional (jacobian, hessian, vjp, ...)

# torch.utils.data's import path, `from tinygrad_cnn.utils.data import DataLoader` (torch_data.py)
utils = _types.ModuleType(__name__ + ".utils", "torch.utils' spelling: utils.data (tinygrad_cnn.torch_data).")
utils.data = _sys.modules[__name__ + ".utils.data"] = torch_data
_sys.modules[utils.__name__] = utils
from .torch_functions import argmax  # torch.argmax and tf.argmax: without an axis, over the flattened input

# torch's top-level names (torch.cat, torch.max(x, 1), torch.save, torch.long, ...): attributes, left out of
# __all__ so that `from tinygrad_cnn import *` shadows no builtin (max, sum, float, ...); torch.tensor(...)
# and torch.device(...) call the submodules of those names
for _name in torch_functions.__all__:
    if _name not in ("tensor", "device", "argmax"):
        globals()[_name] = getattr(torch_functions, _name)
for _name, _dtype in torch_functions.DTYPES.items():
    globals()[_name] = torch_functions.numpy.dtype(_dtype)
torch_functions.make_callable(tensor, torch_functions.tensor)  # noqa: F821 (the submodule, imported above)
torch_functions.make_callable(device, torch_functions.device)
del _name, _dtype


def __getattr__(name):
    raise torch_functions.missing(name)

__version__ = "0.1.0"

__all__ = ["Tensor", "Function", "grad", "DeviceError", "AxisError", "no_grad", "enable_grad", "is_grad_enabled", "cuda_available",
           "detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled", "AnomalyError",
           "manual_seed", "get_rng", "set_num_threads", "get_num_threads", "from_dlpack", "zeros", "ones", "full", "rand", "randn", "arange", "eye", "zeros_like",
           "ones_like", "matmul", "concatenate", "stack", "where", "maximum", "minimum", "float32", "float64",
           "nn", "optim", "kernels", "autograd", "higher_order", "data", "datasets", "device", "memory", "checkpoint", "testing", "keras",
           "torch_nn", "random", "argmax", "convert_to_tensor", "flatten", "cuda"]
