"""Kernels for convolution and max-pooling (phase 1: the fast ops still live in tinygrad_cnn/conv.py)."""
from .. import conv
from .homes import GradientHomes


class FusedConvolution(GradientHomes, conv.Conv2d):
    """conv_reference.Convolution, channels-last in cache-sized chunks over CPU threads (conv.Conv2d)."""


class RoutedMaxPool(conv.MaxPool2d):
    """conv_reference.MaxPool keeping one byte per window (its first maximum's offset) and routing by it."""


def conv_pool_relu(x, weight, *bias, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), pool=None,
                   relu=False):
    """conv_reference.conv_pool_relu as one op: the convolution's output pooled and passed through
    ReLU chunk by chunk while in cache, its gradient formed the same way."""
    return FusedConvolution.apply(x, weight, *bias, stride=stride, padding=padding, dilation=dilation, pool=pool,
                                  relu=relu)
