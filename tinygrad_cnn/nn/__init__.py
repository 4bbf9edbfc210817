"""Neural-network building blocks: Module, Keras-style layers, Sequential, initialisers, and
the functional API (also importable as `F`)."""
from . import functional, init
from . import functional as F
from .layers import (ACTIVATIONS, DATA_FORMATS, AveragePooling2D, AvgPool2D, Conv2D, Dense, Dropout, Flatten, Layer,
                     MaxPool2D, MaxPooling2D, ReLU, Sequential, Sigmoid, Softmax, Tanh, get_activation)
from .merging import Add, Concatenate
from .normalization import BatchNormalization
from .torch_layers import Conv2d, Linear
from .reshaping import (GlobalAveragePooling2D, GlobalAvgPool2D, GlobalMaxPool2D, GlobalMaxPooling2D, Rescaling,
                        Reshape)
from .functional import relu, sigmoid, softmax, tanh
from .module import Module

__all__ = ["Module", "Layer", "Sequential", "Conv2D", "Dense", "MaxPool2D", "MaxPooling2D", "AvgPool2D",
           "AveragePooling2D", "Flatten", "ReLU", "Sigmoid", "Tanh", "Softmax", "Dropout", "ACTIVATIONS",
           "get_activation", "functional", "F", "init", "relu", "sigmoid", "softmax", "tanh", "DATA_FORMATS",
           "BatchNormalization", "GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPooling2D", "GlobalMaxPool2D",
           "Reshape", "Rescaling", "Conv2d", "Linear", "Add", "Concatenate"]
