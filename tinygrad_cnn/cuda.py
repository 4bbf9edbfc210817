"""`torch.cuda.is_available()` after `import tinygrad_cnn as torch`: whether CuPy can use a GPU here."""
from .device import cuda_available


def is_available():
    """True when CuPy is installed and a CUDA GPU answers (tinygrad_cnn.cuda_available())."""
    return cuda_available()


__all__ = ["is_available"]
