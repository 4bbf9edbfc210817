"""`torch.cuda.is_available()` and `torch.cuda.manual_seed(seed)` after `import tinygrad_cnn as torch`: whether CuPy can use a GPU here."""
from .device import cuda_available


def is_available():
    """True when CuPy is installed and a CUDA GPU answers (tinygrad_cnn.cuda_available())."""
    return cuda_available()


def manual_seed(seed):
    """torch.cuda.manual_seed(seed): tinygrad_cnn.manual_seed(seed). NOTE: every random number here is drawn
    on the CPU by one generator (so seeds agree across devices): seeding the GPU seeds that one."""
    from .tensor import manual_seed as seed_all
    seed_all(seed)


manual_seed_all = manual_seed


def device_count():
    """torch.cuda.device_count(): how many GPUs CuPy sees (0 without CuPy or a GPU)."""
    if not cuda_available():
        return 0
    from .device import array_module
    return int(array_module("cuda:0").cuda.runtime.getDeviceCount())


__all__ = ["is_available", "manual_seed", "manual_seed_all", "device_count"]
