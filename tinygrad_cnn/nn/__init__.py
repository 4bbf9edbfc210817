"""Neural-network building blocks: Module, Keras-style layers, Sequential, initialisers, and
the functional API (also importable as `F`)."""
from . import functional, init
from . import functional as F
from .layers import (ACTIVATIONS, DATA_FORMATS, AveragePooling2D, AvgPool2D, Conv2D, Dense, Dropout, Flatten, Layer,
                     MaxPool2D, MaxPooling2D, ReLU, Sequential, Sigmoid, Softmax, Tanh, get_activation)
from .merging import Add, Concatenate
from .normalization import BatchNormalization
from .reshaping import (GlobalAveragePooling2D, GlobalAvgPool2D, GlobalMaxPool2D, GlobalMaxPooling2D, Rescaling,
                        Reshape)
from .functional import relu, sigmoid, softmax, tanh
from .module import Module

__all__ = ["Module", "Layer", "Sequential", "Conv2D", "Dense", "MaxPool2D", "MaxPooling2D", "AvgPool2D",
           "AveragePooling2D", "Flatten", "ReLU", "Sigmoid", "Tanh", "Softmax", "Dropout", "ACTIVATIONS",
           "get_activation", "functional", "F", "init", "relu", "sigmoid", "softmax", "tanh", "DATA_FORMATS",
           "BatchNormalization", "GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPooling2D", "GlobalMaxPool2D",
           "Reshape", "Rescaling", "Add", "Concatenate"]

# NOTE: PyTorch's Conv2d and Linear moved to tinygrad_cnn.torch_nn (issue 24), so that no two layers here
# differ only by a letter's case; code that still asks here is told where they went
_MOVED = {"Conv2d": "Conv2D(filters, kernel_size, strides, padding)", "Linear": "Dense(units)"}


def __getattr__(name):
    if name in _MOVED:
        raise AttributeError(f"tinygrad_cnn.nn has no {name}: PyTorch's {name}, in PyTorch's argument order, is "
                             f"tinygrad_cnn.torch_nn.{name} (`import tinygrad_cnn.torch_nn as nn`, where PyTorch "
                             f"code has `import torch.nn as nn`); tinygrad_cnn.nn.{_MOVED[name]} is the same layer "
                             f"in Keras' argument order")
    if name in ("utils", "CrossEntropyLoss", "NLLLoss", "MSELoss"):  # torch.nn's, after `import tinygrad_cnn as torch`
        raise AttributeError(f"tinygrad_cnn.nn has no {name}: torch.nn's {name} is tinygrad_cnn.torch_nn.{name} "
                             f"(`import tinygrad_cnn.torch_nn as nn`, where PyTorch code has `import torch.nn as nn`)")
    raise AttributeError(f"module 'tinygrad_cnn.nn' has no attribute {name!r}")
