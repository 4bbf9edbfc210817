"""Tensors that share memory with other libraries' arrays (NumPy, CuPy, PyTorch) through DLPack."""
from .device import DeviceError, array_module
from .tensor import Tensor


def from_dlpack(array, requires_grad=False):
    """A Tensor that shares memory with `array`, any object with __dlpack__ (a NumPy or CuPy array, a
    PyTorch tensor): no copy, on the CPU or the CUDA device the array lives on."""
    if not (hasattr(array, "__dlpack__") and hasattr(array, "__dlpack_device__")):
        raise TypeError(f"from_dlpack needs an object with __dlpack__ and __dlpack_device__ (NumPy, CuPy, "
                        f"PyTorch), got {type(array).__name__}")
    kind, index = array.__dlpack_device__()
    if kind == 1:  # kDLCPU
        device = "cpu"
    elif kind == 2:  # kDLCUDA
        device = f"cuda:{int(index)}"
    else:
        raise DeviceError(f"from_dlpack: DLPack device type {kind} is neither the CPU (1) nor CUDA (2)")
    xp = array_module(device)
    data = xp.from_dlpack(array)
    if requires_grad and data.dtype.kind != "f":
        raise TypeError(f"from_dlpack: only float tensors can require gradients, got {data.dtype}")
    return Tensor.wrap(data, device, requires_grad=requires_grad)
