"""Keras' layers over tinygrad_cnn.nn's: the same classes with Keras' defaults (channels-last images,
Keras 3's layer names) and Keras' constructor arguments (`input_shape=` on a first layer).

Weights keep the project's layouts: a conv kernel (filters, channels, KH, KW), a dense kernel
(units, in_features), whatever the data format."""
from .. import nn
from ..nn.layers import Activated, _shape_tuple, get_activation

DEFAULT_DATA_FORMAT = "channels_last"


def _format(data_format):
    return DEFAULT_DATA_FORMAT if data_format is None else data_format


class _InputShape:
    """`input_shape=` as Keras 2 layers take it: the model's input shape without the batch axis,
    for the first layer of a Sequential (which then builds at once)."""

    def _keep_input_shape(self, input_shape):
        self.keras_input_shape = None if input_shape is None else _shape_tuple(input_shape)


class Conv2D(_InputShape, nn.Conv2D):
    """nn.Conv2D with Keras' defaults: data_format 'channels_last', (N, H, W, C) images."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None, dilation_rate=(1, 1),
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 input_shape=None, name=None, dtype=None, device=None):
        super().__init__(filters, kernel_size, strides, padding, activation, use_bias, dilation_rate,
                         kernel_initializer, bias_initializer, name=name, dtype=dtype, device=device,
                         data_format=_format(data_format))
        self._keep_input_shape(input_shape)


class MaxPooling2D(_InputShape, nn.MaxPool2D):
    """nn.MaxPool2D with Keras' defaults (channels-last; Keras 3's name max_pooling2d)."""

    default_name = "max_pooling2d"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, input_shape=None, name=None):
        super().__init__(pool_size, strides, padding, name=name, data_format=_format(data_format))
        self._keep_input_shape(input_shape)


class AveragePooling2D(_InputShape, nn.AvgPool2D):
    """nn.AvgPool2D with Keras' defaults (channels-last; Keras 3's name average_pooling2d)."""

    default_name = "average_pooling2d"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, input_shape=None, name=None):
        super().__init__(pool_size, strides, padding, name=name, data_format=_format(data_format))
        self._keep_input_shape(input_shape)


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D


class Flatten(_InputShape, nn.Flatten):
    """nn.Flatten with Keras' default data_format: features in (H, W, C) order, as in Keras, so a
    following Dense layer's weights mean the same in either format."""

    def __init__(self, data_format=None, input_shape=None, name=None):
        super().__init__(data_format=_format(data_format), name=name)
        self._keep_input_shape(input_shape)


class Dense(_InputShape, nn.Dense):
    """nn.Dense with Keras' arguments (input_shape= for a first layer)."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", input_shape=None, name=None, dtype=None, device=None):
        super().__init__(units, activation, use_bias, kernel_initializer, bias_initializer, name=name, dtype=dtype,
                         device=device)
        self._keep_input_shape(input_shape)


class Dropout(_InputShape, nn.Dropout):
    """nn.Dropout (Keras' Dropout(rate))."""

    def __init__(self, rate, input_shape=None, name=None):
        super().__init__(rate, name=name)
        self._keep_input_shape(input_shape)


class ReLU(_InputShape, nn.ReLU):
    """nn.ReLU (Keras' ReLU())."""

    def __init__(self, input_shape=None, name=None):
        super().__init__(name=name)
        self._keep_input_shape(input_shape)


class Softmax(_InputShape, nn.Softmax):
    """nn.Softmax (Keras' Softmax(axis=-1))."""

    def __init__(self, axis=-1, input_shape=None, name=None):
        super().__init__(axis, name=name)
        self._keep_input_shape(input_shape)


class Activation(_InputShape, Activated):
    """An activation as a layer: Activation('relu'), Activation(tf.nn.softmax); softmax over the
    last axis. A final softmax or sigmoid is stripped by logits(), as a Dense layer's is."""

    default_name = "activation"

    def __init__(self, activation, input_shape=None, name=None):
        super().__init__(name)
        self.activation, self.activation_name = get_activation(activation, softmax_axis=-1)
        self._keep_input_shape(input_shape)

    def pre_activation(self, x):
        """The input itself (a floating-point one)."""
        self._check_float(x)
        return x

    def _repr_args(self):
        return repr(self.activation_name)


class Input:
    """Keras' Input(shape=...): the model's input shape without the batch axis, as the first
    entry of a Sequential's list (it holds no weights and is not a layer of the model)."""

    def __init__(self, shape, name=None, batch_size=None, dtype=None):
        self.shape = _shape_tuple(shape)
        self.name = name
        self.batch_size = batch_size
        self.dtype = dtype

    def __repr__(self):
        return f"Input(shape={self.shape})"


InputLayer = Input


__all__ = ["Conv2D", "MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D", "Flatten", "Dense", "Dropout", "ReLU", "Softmax", "Activation", "Input", "InputLayer", "DEFAULT_DATA_FORMAT"]
