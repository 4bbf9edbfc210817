"""torch.nn's spelling, for code written for PyTorch: where it has `import torch.nn as nn`, write
`import tinygrad_cnn.torch_nn as nn`. Conv2d(in_channels, out_channels, kernel_size, stride, padding) and
Linear(in_features, out_features) take PyTorch's argument order and create their weights at once (the input
size is given), with PyTorch's default initialisation; they are tinygrad_cnn.nn's Conv2D and Dense underneath
(NCHW images, weight layouts as torch's). The rest of tinygrad_cnn.nn is here under the same names (Module,
Sequential, ReLU, Dropout, Flatten, MaxPool2D, BatchNormalization, functional, init, ...).

NOTE: a namespace of its own, so that none holds two names that differ only by a letter's case: tinygrad_cnn.nn
has Keras' Conv2D(filters, kernel_size, strides, padding) and Dense(units), this one PyTorch's Conv2d and Linear
and not Keras' two (a typo of one case would otherwise silently take the other argument order)."""
import math

import numpy

from . import nn as _nn
from .nn import *  # noqa: F401,F403  (all of nn's names; Conv2D and Dense are removed below)
from .nn import F, functional, init  # noqa: F401
from .nn.layers import flag, positive_int
from .tensor import generator_or_global


def _torch_uniform(fan_in):
    """PyTorch's default for Conv2d and Linear weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    NOTE: kaiming_uniform with a = sqrt(5), torch's weight default, has exactly this bound."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0

    def draw(shape, dtype=numpy.float32):
        return generator_or_global(None, "initializer").uniform(-bound, bound, shape).astype(dtype)
    return draw


class Conv2d(_nn.Conv2D):
    """torch.nn.Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True):
    Conv2D in PyTorch's argument order, weights made at once. padding: an int, a pair, 'valid' or 'same'."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True,
                 name=None, dtype=None, device=None):
        in_channels = positive_int(in_channels, "Conv2d in_channels")
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        init = _torch_uniform(in_channels * kh * kw)
        super().__init__(out_channels, kernel_size, stride, padding=padding, use_bias=flag(bias, "Conv2d bias"), dilation_rate=dilation,
                         kernel_initializer=init, bias_initializer=init, name=name, dtype=dtype, device=device,
                         in_channels=in_channels)


class Linear(_nn.Dense):
    """torch.nn.Linear(in_features, out_features, bias=True): Dense in PyTorch's argument order, weights
    (out_features, in_features) made at once."""

    def __init__(self, in_features, out_features, bias=True, name=None, dtype=None, device=None):
        in_features = positive_int(in_features, "Linear in_features")
        init = _torch_uniform(in_features)
        super().__init__(out_features, use_bias=flag(bias, "Linear bias"), kernel_initializer=init, bias_initializer=init, name=name,
                         dtype=dtype, device=device, in_features=in_features)


del Conv2D, Dense  # Keras' argument order: tinygrad_cnn.nn.Conv2D and nn.Dense

__all__ = ["Conv2d", "Linear"]  # what is this module's own; nn's other names are here as attributes
