"""Keras-style layers over NCHW tensors, built lazily from the first input shape, and Sequential.

Layer names and constructor arguments follow Keras (Conv2D(filters, kernel_size, strides, padding,
activation)); weights follow PyTorch's layouts: conv (filters, in_channels, KH, KW), dense
(units, in_features). Shapes given to build() and compute_output_shape() exclude the batch axis."""
import math
import numbers

import numpy

from .. import conv as conv
from ..autograd import kernel_for
from ..device import canonical_device, to_numpy
from ..tensor import Tensor, float32, generator_or_global
from . import functional as F
from . import init as initializers
from .module import Module

ACTIVATIONS = {"relu": F.relu, "sigmoid": F.sigmoid, "softmax": F.softmax, "tanh": F.tanh, "linear": None}


def get_activation(activation, softmax_axis=-1):
    """(function or None, name) for an activation given as a name, None, or a callable.

    softmax is taken over `softmax_axis`: the features of Dense (-1), the channels of Conv2D (1)."""
    if activation is None:
        return None, None
    if isinstance(activation, str):
        key = activation.lower()
        if key not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}: use one of "
                             f"{', '.join(repr(k) for k in ACTIVATIONS)}, None, or a callable")
        if key == "softmax":
            return (lambda x: F.softmax(x, axis=softmax_axis)), key
        return ACTIVATIONS[key], (None if key == "linear" else key)
    if callable(activation):
        for key, fn in ACTIVATIONS.items():  # nn.relu, nn.softmax, ... (tf.nn.relu in the tutorial): by name, so
            if fn is not None and activation is fn:  # that relu fuses into the conv and softmax is stripped by logits()
                return get_activation(key, softmax_axis)
        return activation, getattr(activation, "__name__", type(activation).__name__)
    raise TypeError(f"activation must be a name, None or a callable, got {type(activation).__name__}")


def positive_int(value, name):
    """`value` as an int >= 1 (NumPy integers too, not bools), else a ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _positive_pair(value, name):
    pair = conv.pair(value, name)
    if min(pair) < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return pair


def _same_pads(size, kernel, stride):
    """Keras 'same': output ceil(size / stride), the padding split evenly with any extra after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


DATA_FORMATS = ("channels_first", "channels_last")


def checked_data_format(value, kind):
    """`value` when it is one of DATA_FORMATS, else a ValueError naming the layer `kind` and both choices."""
    if value not in DATA_FORMATS:
        raise ValueError(f"{kind} data_format must be 'channels_first' (N, C, H, W) or 'channels_last' "
                         f"(N, H, W, C), got {value!r}")
    return value


class Spatial:
    """Image layers in either axis order. The ops work on (N, C, H, W) tensors whose memory is
    channels-last inside, so a channels-last layer hands them a transposed view and transposes
    the result back: no copies either way."""

    data_format = "channels_first"

    @property
    def _channels_last(self):
        return self.data_format == "channels_last"

    def _layout(self):
        return "(N, H, W, C)" if self._channels_last else "(N, C, H, W)"

    def _nchw_shape(self, shape):
        """A 4-D shape (batch axis first) in (N, C, H, W) order."""
        return (shape[0], shape[3], shape[1], shape[2]) if self._channels_last else tuple(shape)

    def chw(self, input_shape):
        """An input shape without the batch axis as (C, H, W)."""
        return self._nchw_shape((None,) + tuple(input_shape))[1:]

    def _own_order(self, chw):
        """A (C, H, W) shape without the batch axis in the layer's own order."""
        c, h, w = chw
        return (h, w, c) if self._channels_last else (c, h, w)

    def _format_repr(self):
        return ", data_format='channels_last'" if self._channels_last else ""

    def _to_nchw(self, x):
        return x.transpose(0, 3, 1, 2) if self._channels_last else x

    def _from_nchw(self, y):
        return y.transpose(0, 2, 3, 1) if self._channels_last else y


def flag(value, what):
    """`value` as a bool, or a TypeError naming `what`: a string such as "no" or "False" would be true."""
    if not isinstance(value, (bool, numpy.bool_)):
        raise TypeError(f"{what} must be True or False, got {value!r}")
    return bool(value)


def shape_tuple(shape):
    """`shape` (an int or a sequence of ints) as a tuple of positive ints, or a TypeError/ValueError
    naming input_shape.

    NOTE: sizes must be whole numbers: int() made (2.5,) into (2,) and the string "3" into (3,) before
    (issue 27)."""
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    sizes = tuple(shape) if hasattr(shape, "__iter__") and not isinstance(shape, (str, bytes)) else None
    if sizes is None or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in sizes):
        raise TypeError(f"input_shape must be a tuple of ints (without the batch axis), got {shape!r}")
    shape = tuple(int(s) for s in sizes)
    if any(s < 1 for s in shape):
        raise ValueError(f"input_shape must hold positive sizes (without the batch axis), got {shape}")
    return shape


class Layer(Module):
    """A module whose weights wait for the first input shape: build(input_shape) creates them once
    the channels or features are known, and a layer called before being built builds itself from
    the input (on the input's device unless given one). Every call validates the input and names
    the layer and the shapes when it does not fit."""

    default_name = "layer"

    def __init__(self, name=None, dtype=None, device=None):
        dtype = numpy.dtype(float32 if dtype is None else dtype)
        if dtype.kind != "f":
            raise TypeError(f"{type(self).__name__}: dtype must be a floating-point type, got {dtype}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string or None, got {name!r}")
        self.name = name
        self.dtype = dtype
        self.device = None if device is None else canonical_device(device)
        self.built = False
        self.built_input_shape = None

    def label(self):
        """How errors name the layer: its class, and its name when it has one."""
        return f"{type(self).__name__} layer {self.name!r}" if self.name else type(self).__name__

    def _fail(self, shape, why):
        raise ValueError(f"{self.label()}: {why}; got input shape {tuple(shape)}")

    def _validate(self, shape):
        """Check a full input shape (batch axis first, None in build) and raise ValueError naming both."""

    def _build(self, input_shape):
        """Create the weights for `input_shape` (no batch axis); layers without weights do nothing."""

    def makes_weights(self):
        """Whether building this layer creates weights (its class overrides _build or build): ReLU, Dropout,
        Flatten and pooling make none, so their not being built yet keeps no checkpoint from loading."""
        return type(self)._build is not Layer._build or type(self).build is not Layer.build

    def build(self, input_shape):
        """Create the weights for inputs of `input_shape` (no batch axis, e.g. (1, 28, 28)). A built layer
        only checks that the shape fits its weights."""
        input_shape = shape_tuple(input_shape)
        self._validate((None,) + input_shape)
        if not self.built:
            self._build(input_shape)
            self.built_input_shape = input_shape
            self.built = True
        return self

    @property
    def input_shape(self):
        """The input shape the layer was built for, without the batch axis (None before it is built);
        the keras wing's layers and models give Keras' form, with it: (None, 28, 28, 1)."""
        return self.built_input_shape

    def compute_output_shape(self, input_shape):
        """Output shape (no batch axis) for inputs of `input_shape`; validates the shape."""
        input_shape = shape_tuple(input_shape)
        self._validate((None,) + input_shape)
        return self._output_shape(input_shape)

    def _output_shape(self, input_shape):
        return input_shape

    def prepare(self, x):
        """Type-check, build on the first call, and validate the actual input shape. A NumPy or
        CuPy array or a list becomes a Tensor in this layer's dtype, on its device (Keras' habit)."""
        if not isinstance(x, Tensor):
            x = self._from_array(x)
        if x.ndim == 0:
            self._fail(x.shape, "expects a batch of inputs, not a scalar")
        self._validate(x.shape)
        if not self.built:
            if self.device is None:
                self.device = x.device
            self.build(x.shape[1:])
        return x

    def _from_array(self, x):
        """An array-like input as a Tensor of this layer's dtype on its device (the default device
        before the layer has one); anything else is a TypeError naming the layer."""
        dtype = getattr(x, "dtype", None)
        if dtype is None and not isinstance(x, (list, tuple, int, float)):
            raise TypeError(f"{self.label()}: input must be a Tensor or an array, got {type(x).__name__}")
        try:
            array = x if dtype is not None else numpy.asarray(x)
            if numpy.dtype(array.dtype).kind not in "biuf":
                raise TypeError(f"dtype {array.dtype} is not numeric")
            return Tensor(array, device=canonical_device(self.device), dtype=self.dtype)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{self.label()}: input must be a numeric Tensor or array: {e}") from None

    def __call__(self, x, training=None):
        """forward(x) after checks; x may be a Tensor, an array or a list. training=True/False runs this
        call in that mode (dropout, batch statistics) and puts every sub-layer's mode back after."""
        if getattr(x, "_symbolic", False):  # keras.Input(...) and what layers made of it: record, compute nothing
            return x._apply(self)
        if training is None:
            return self.forward(self.prepare(x))
        modes = [(m, m.training) for m in self.modules()]
        self.train(bool(training))
        try:
            return self.forward(self.prepare(x))
        finally:
            for m, mode in modes:
                m.training = mode

    def _new_weight(self, initializer, shape):
        """A parameter on this layer's device, drawn on the CPU (so seeds agree across devices)."""
        values = to_numpy(initializer(tuple(shape), self.dtype))  # an initializer may return a CuPy array
        if values.shape != tuple(shape):
            raise ValueError(f"{self.label()}: initializer returned shape {values.shape}, expected {tuple(shape)}")
        return Tensor(values.astype(self.dtype, copy=False), device=canonical_device(self.device),
                      requires_grad=True)

    def _check_float(self, x):
        if x.dtype.kind != "f":
            raise TypeError(f"{self.label()}: input must be floating-point, got {x.dtype.name}; use .float()")

    def _cast(self, x):
        """Compute in the weights' dtype, as Keras layers do (float32 images into a float64 model)."""
        self._check_float(x)
        dtype = self.weight.dtype
        return x if x.dtype == dtype else x.astype(dtype)

    def _repr_args(self):
        return ""

    def __repr__(self):
        return f"{type(self).__name__}({self._repr_args()})"


class Activated(Layer):
    """A layer computing activation(pre_activation(x)); Sequential.logits calls pre_activation alone."""

    def forward(self, x):
        """activation(pre_activation(x)), or pre_activation(x) without an activation."""
        z = self.pre_activation(x)
        return z if self.activation is None else self.activation(z)

    def _activation_repr(self):
        return f", activation={self.activation_name!r}" if self.activation_name else ""


class Conv2D(Spatial, Activated):
    """2-D convolution over (N, C, H, W) inputs, or (N, H, W, C) with data_format='channels_last'
    (Keras' order; the same speed); weight (filters, C, KH, KW), bias (filters,) either way.

    padding: 'valid' (none), 'same' (Keras: output ceil(H / stride), any odd extra padding after),
    or, by keyword, an int / pair of ints of explicit zero padding (PyTorch style): given by position,
    an int padding is refused, since Conv2D(1, 5, 3, 1) is PyTorch's Conv2d(in, out, kernel, stride)
    order, which here would build another layer. in_channels= creates the weights at once (else the
    first input does). activation='softmax' is taken over the channels axis, as in Keras."""

    default_name = "conv2d"

    def __init__(self, filters, kernel_size, strides=1, *positional, padding="valid", activation=None, use_bias=True,
                 dilation_rate=1, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 name=None, dtype=None, device=None, data_format="channels_first", in_channels=None):
        super().__init__(name, dtype, device)
        if len(positional) > 1:
            raise TypeError(f"Conv2D takes at most 4 positional arguments (filters, kernel_size, strides, padding), "
                            f"got {3 + len(positional)}; give the rest by keyword")
        if positional:
            padding = positional[0]
            if not isinstance(padding, str):
                raise TypeError(f"Conv2D{(filters, kernel_size, strides, padding)}: the arguments are Keras' "
                                f"(filters, kernel_size, strides, padding), and a 4th positional argument must be "
                                f"'valid' or 'same'. This looks like PyTorch's Conv2d(in_channels, out_channels, "
                                f"kernel_size, stride) order, which would build another layer here: write "
                                f"Conv2D({kernel_size}, {strides}, strides={padding}) (the input channels come "
                                f"from the input, or in_channels={filters}), and explicit zero padding as padding=N")
        self.data_format = checked_data_format(data_format, "Conv2D")
        self.filters = positive_int(filters, "Conv2D filters")
        self.kernel_size = _positive_pair(kernel_size, "Conv2D kernel_size")
        self.strides = _positive_pair(strides, "Conv2D strides")
        self.dilation_rate = _positive_pair(dilation_rate, "Conv2D dilation_rate")
        if isinstance(padding, str):
            padding = padding.lower()
            if padding not in ("valid", "same"):
                raise ValueError(f"Conv2D padding must be 'valid', 'same' or an int/pair, got {padding!r}")
        else:
            if min(conv.pair(padding, "Conv2D padding")) < 0:
                raise ValueError(f"Conv2D padding must be >= 0, got {padding!r}")
            padding = conv.pair(padding, "Conv2D padding")
        self.padding = padding
        self.use_bias = flag(use_bias, "Conv2D use_bias")
        self.activation, self.activation_name = get_activation(activation, -1 if self._channels_last else 1)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.weight = None
        self.bias = None
        if in_channels is not None:  # PyTorch's habit: the weights exist before the first forward pass
            self._build(self._own_order((positive_int(in_channels, "Conv2D in_channels"), 1, 1)))
            self.built = True

    def pads(self, h, w):
        """((top, bottom), (left, right)) zero padding of an h x w input, from `padding`."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation_rate
        if self.padding == "valid":
            return (0, 0), (0, 0)
        if self.padding == "same":
            return _same_pads(h, dh * (kh - 1) + 1, sh), _same_pads(w, dw * (kw - 1) + 1, sw)
        ph, pw = self.padding
        return (ph, ph), (pw, pw)

    def _validate(self, shape):
        if len(shape) != 4:
            self._fail(shape, f"expects 4-D input {self._layout()}")
        _, c, h, w = self._nchw_shape(shape)
        if self.built and c != self.weight.shape[1]:
            self._fail(shape, f"expects {self.weight.shape[1]} input channels on axis "
                              f"{3 if self._channels_last else 1} of {self._layout()} (weight shape {self.weight.shape})")
        (top, bottom), (left, right) = self.pads(h, w)
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation_rate
        if dh * (kh - 1) + 1 > h + top + bottom or dw * (kw - 1) + 1 > w + left + right:
            self._fail(shape, f"kernel {kh}x{kw} (dilation {self.dilation_rate}) is larger than the "
                              f"{self.padding!r}-padded input")

    def _build(self, input_shape):
        kh, kw = self.kernel_size
        self.weight = self._new_weight(self.kernel_initializer, (self.filters, self.chw(input_shape)[0], kh, kw))
        if self.use_bias:
            self.bias = self._new_weight(self.bias_initializer, (self.filters,))

    def _output_shape(self, input_shape):
        _, h, w = self.chw(input_shape)
        (top, bottom), (left, right) = self.pads(h, w)
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation_rate
        return self._own_order((self.filters, conv.output_size(h + top + bottom, kh, sh, 0, dh),
                                conv.output_size(w + left + right, kw, sw, 0, dw)))

    def pre_activation(self, x):
        """The convolution plus bias, before the activation (Sequential.logits uses it)."""
        return self.convolve(x)

    def forward(self, x):
        """activation(pre_activation(x)); a ReLU in the same op as the convolution (conv_pool_relu)."""
        if self.activation_name == "relu":
            return self.convolve(x, relu=True)
        return super().forward(x)

    def convolve(self, x, max_pool=None, relu=False):
        """The convolution, optionally followed by max-pooling over tiling max_pool=(PH, PW) windows
        and by ReLU: conv.conv_pool_relu, which kernels/ run as one op."""
        x = self._to_nchw(self._cast(x))
        pads = self.pads(x.shape[2], x.shape[3])
        inputs = (x, self.weight) if self.bias is None else (x, self.weight, self.bias)
        run = kernel_for(conv.conv_pool_relu, x.device)
        return self._from_nchw(run(*inputs, stride=self.strides, padding=pads, dilation=self.dilation_rate,
                                   pool=max_pool, relu=relu))

    def _repr_args(self):
        return (f"{self.filters}, kernel_size={self.kernel_size}, strides={self.strides}, "
                f"padding={self.padding!r}{self._activation_repr()}{self._format_repr()}")


class Dense(Activated):
    """Fully connected layer on the last axis: x @ weight.T + bias, weight (units, in_features).
    in_features= creates the weights at once (else the first input does)."""

    default_name = "dense"

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", name=None, dtype=None, device=None, in_features=None):
        super().__init__(name, dtype, device)
        self.units = positive_int(units, "Dense units")
        self.use_bias = flag(use_bias, "Dense use_bias")
        self.activation, self.activation_name = get_activation(activation, softmax_axis=-1)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.weight = None
        self.bias = None
        if in_features is not None:  # PyTorch's habit: the weights exist before the first forward pass
            self.build((positive_int(in_features, "Dense in_features"),))

    def _validate(self, shape):
        if len(shape) < 2:
            self._fail(shape, "expects input (N, features)")
        if self.built and shape[-1] != self.weight.shape[1]:
            advice = "; put a Flatten() before Dense" if len(shape) > 2 else ""  # a flat input needs no Flatten
            self._fail(shape, f"expects {self.weight.shape[1]} input features on the last axis "
                              f"(weight shape {self.weight.shape}){advice}")

    def _build(self, input_shape):
        self.weight = self._new_weight(self.kernel_initializer, (self.units, input_shape[-1]))
        if self.use_bias:
            self.bias = self._new_weight(self.bias_initializer, (self.units,))

    def _output_shape(self, input_shape):
        return input_shape[:-1] + (self.units,)

    def pre_activation(self, x):
        """x @ weight.T + bias, before the activation (Sequential.logits uses it)."""
        return F.linear(self._cast(x), self.weight, self.bias)

    def forward(self, x):
        """activation(pre_activation(x)); a ReLU runs inside the linear op (F.linear(relu=True))."""
        if self.activation_name == "relu":
            return F.linear(self._cast(x), self.weight, self.bias, relu=True)
        return super().forward(x)

    def _repr_args(self):
        return f"{self.units}{self._activation_repr()}"


class _Pool(Spatial, Layer):
    """Shared arguments of the pooling layers: padding 'valid' or 'same' (Keras semantics: windows
    that overhang the edge only see real pixels), data_format as Conv2D's."""

    def __init__(self, pool_size=2, strides=None, padding="valid", name=None, data_format="channels_first"):
        super().__init__(name)
        kind = type(self).__name__
        self.data_format = checked_data_format(data_format, kind)
        self.pool_size = _positive_pair(pool_size, f"{kind} pool_size")
        self.strides = self.pool_size if strides is None else _positive_pair(strides, f"{kind} strides")
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise ValueError(f"{kind} padding must be 'valid' or 'same', got {padding!r}")
        self.padding = padding.lower()

    def pads(self, h, w):
        """((top, bottom), (left, right)) padding of an h x w input: none for 'valid', Keras' for 'same'."""
        if self.padding == "valid":
            return (0, 0), (0, 0)
        return _same_pads(h, self.pool_size[0], self.strides[0]), _same_pads(w, self.pool_size[1], self.strides[1])

    def _validate(self, shape):
        if len(shape) != 4:
            self._fail(shape, f"expects 4-D input {self._layout()}")
        _, _, h, w = self._nchw_shape(shape)
        (top, bottom), (left, right) = self.pads(h, w)
        if self.pool_size[0] > h + top + bottom or self.pool_size[1] > w + left + right:
            self._fail(shape, f"pool window {self.pool_size} is larger than the input ({h}x{w} pixels in "
                              f"{self._layout()}); use padding='same'")

    def _output_shape(self, input_shape):
        c, h, w = self.chw(input_shape)
        (top, bottom), (left, right) = self.pads(h, w)
        return self._own_order((c, conv.output_size(h + top + bottom, self.pool_size[0], self.strides[0]),
                                conv.output_size(w + left + right, self.pool_size[1], self.strides[1])))

    def forward(self, x):
        """Pool x in its data format."""
        self._check_float(x)
        return self._from_nchw(self._pool(self._to_nchw(x)))

    def _repr_args(self):
        return f"pool_size={self.pool_size}, strides={self.strides}, padding={self.padding!r}{self._format_repr()}"


class MaxPool2D(_Pool):
    """Max over pool_size windows of (N, C, H, W) inputs; strides default to pool_size."""

    default_name = "max_pool2d"

    def _pool(self, x):
        """Max over each window of x (N, C, H, W); 'same' padding pads with -inf."""
        (top, bottom), (left, right) = self.pads(x.shape[2], x.shape[3])
        if top or bottom or left or right:  # NOTE: -inf padding is never the max of a window
            x = x.pad(((0, 0), (0, 0), (top, bottom), (left, right)), value=-numpy.inf)
        return F.max_pool2d(x, self.pool_size, self.strides)


class AvgPool2D(_Pool):
    """Mean over pool_size windows; with padding='same' the mean counts only real pixels (Keras)."""

    default_name = "avg_pool2d"

    def _pool(self, x):
        """Mean over each window of x (N, C, H, W), counting only real pixels with 'same' padding."""
        h, w = x.shape[2:]
        (top, bottom), (left, right) = self.pads(h, w)
        if not (top or bottom or left or right):
            return F.avg_pool2d(x, self.pool_size, self.strides)
        x = x.pad(((0, 0), (0, 0), (top, bottom), (left, right)))
        return F.avg_pool2d(x, self.pool_size, self.strides) / self._real_fraction(h, w, x.dtype, x.device)

    def _real_fraction(self, h, w, dtype, device):
        """Each window's share of real (not padded) pixels, made once per size, dtype and device.

        NOTE: cached, so that a GPU gets it in one host->device copy, not one per call."""
        cache = self.__dict__.setdefault("_fractions", {})
        key = (h, w, numpy.dtype(dtype).str, device)
        if key not in cache:
            (top, bottom), (left, right) = self.pads(h, w)
            real = numpy.zeros((1, 1, h + top + bottom, w + left + right), dtype=dtype)
            real[:, :, top:top + h, left:left + w] = 1
            fraction = F.avg_pool2d(Tensor(real), self.pool_size, self.strides).numpy()
            cache[key] = Tensor(fraction, device=device)
        return cache[key]


MaxPooling2D = MaxPool2D


def run_layers(layers, x, pre_activation=False):
    """Apply layers in order: what Sequential does (kernels/ plan which neighbours fuse). With
    pre_activation=True the last layer (an Activated one) gives its pre-activation (Sequential.logits)."""
    for layer in layers[:-1] if pre_activation else layers:
        x = layer(x)
    if pre_activation:
        last = layers[-1]
        x = last.pre_activation(last.prepare(x))
    return x


AveragePooling2D = AvgPool2D


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1*d2*...), as x.flatten(1): features in the input's axis order.

    data_format='channels_first' flattens as Keras does for (N, C, H, W) input: channels moved
    last first, so that features come in (H, W, C) order and the next Dense layer's weights mean
    what they mean in a channels-last model. None (the default) and 'channels_last' flatten as is."""

    default_name = "flatten"

    def __init__(self, data_format=None, name=None):
        super().__init__(name)
        self.data_format = None if data_format is None else checked_data_format(data_format, "Flatten")

    def _validate(self, shape):
        if len(shape) < 2:
            self._fail(shape, "expects a batch axis and at least one more")

    def _output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x):
        """x.flatten(1): one feature axis after the batch axis (channels moved last first for
        data_format='channels_first')."""
        if self.data_format == "channels_first" and x.ndim > 2:
            x = x.transpose(0, *range(2, x.ndim), 1)
        return x.flatten(1)


class Elementwise(Layer):
    """An activation as a layer (no weights)."""

    fn = None

    def forward(self, x):
        """fn(x), elementwise, for a floating-point x (`fn` is the layer's function, e.g. nn.functional.relu)."""
        self._check_float(x)
        return type(self).fn(x)


class ReLU(Elementwise):
    """relu as a layer, for models written as a list of layers (Keras' ReLU)."""
    default_name = "relu"
    fn = staticmethod(F.relu)


class Sigmoid(Elementwise):
    """sigmoid as a layer; `Sequential.logits` strips it when it is last."""
    default_name = "sigmoid"
    fn = staticmethod(F.sigmoid)


class Tanh(Elementwise):
    """tanh as a layer."""
    default_name = "tanh"
    fn = staticmethod(F.tanh)


class Softmax(Layer):
    """softmax over `axis` of the full input (batch axis included, as in Keras)."""

    default_name = "softmax"

    def __init__(self, axis=-1, name=None):
        super().__init__(name)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"Softmax axis must be an int, got {axis!r}")
        self.axis = axis

    def _validate(self, shape):
        if not -len(shape) <= self.axis < len(shape) or self.axis % len(shape) == 0:
            self._fail(shape, f"axis {self.axis} is not a feature axis of the input")

    def forward(self, x):
        """softmax(x) over `axis`."""
        self._check_float(x)
        return F.softmax(x, self.axis)

    def _repr_args(self):
        return f"axis={self.axis}"


class Dropout(Layer):
    """Zeroes a fraction `rate` of the inputs while training and scales the rest by 1/(1-rate);
    the identity in eval mode. Masks come from `generator` (a numpy.random.Generator of this
    layer's own) when given, else from the global generator (see manual_seed)."""

    default_name = "dropout"

    def __init__(self, rate, name=None, generator=None):
        super().__init__(name)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)
        generator_or_global(generator, "Dropout")  # a clear error now, not at the first forward
        self.generator = generator

    def forward(self, x):
        """Dropout while training; the identity in eval mode."""
        return F.dropout(x, self.rate, training=self.training, generator=self.generator)

    def _repr_args(self):
        return f"{self.rate}"


def weight_counts(module):
    """(trainable scalars, non-trainable ones: frozen parameters and floating-point buffers such as the
    running statistics), as summary() reports them. NOTE: an integer buffer (torch's BatchNorm
    num_batches_tracked) is a counter, not a weight: Keras counts no counter (its seed generators' state),
    torch's parameter count no buffer at all."""
    params = module.parameters()
    trainable = sum(p.size for p in params if p.requires_grad)
    statistics = sum(b.size for _, b in module.named_buffers() if b.dtype.kind == "f")
    return trainable, sum(p.size for p in params) - trainable + statistics


def trainable_mark(layer):
    """Keras' summary(show_trainable=True) cell: Y, N (frozen: no parameter requires a gradient), - (none)."""
    params = layer.parameters()
    return "-" if not params else "Y" if any(p.requires_grad for p in params) else "N"


class Sequential(Layer):
    """Layers applied in order. With input_shape (no batch axis, e.g. (1, 28, 28)) every layer is
    built at construction; otherwise on the first call. Layers without a name get Keras-style
    ones, unique within the model: conv2d, conv2d_1, ...

    Sequential.logits(x) is the output before a final softmax or sigmoid: train on it with
    F.cross_entropy / F.binary_cross_entropy_with_logits (Keras' from_logits=True), which is
    more stable than taking the log of probabilities."""

    default_name = "sequential"

    def __init__(self, layers=None, *more, input_shape=None, name=None):
        super().__init__(name or self.default_name)
        self.layers = []
        if isinstance(layers, Layer):  # PyTorch's Sequential(a, b, c)
            layers = [layers, *more]
        elif more:
            if input_shape is not None or len(more) > 1:
                raise TypeError("Sequential takes a list of layers or the layers themselves, Sequential(a, b), "
                                "and input_shape= by keyword")
            input_shape = more[0]  # Sequential([layers], input_shape), as before
        if layers is not None and (isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__")):
            raise TypeError(f"Sequential takes a list of layers, got {type(layers).__name__}")
        for layer in layers or []:
            self.add(layer)
        if input_shape is not None:
            self.build(input_shape)

    def add(self, layer):
        """Append a layer (built at once when the model already is)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add needs a Layer (it infers shapes through build), got "
                            f"{type(layer).__name__}; subclass Layer for custom code")
        if not layer.name:
            used = {getattr(m, "name", None) for m in self.layers}
            base, k = layer.default_name, 0
            while (f"{base}_{k}" if k else base) in used:
                k += 1
            layer.name = f"{base}_{k}" if k else base
        if self.built:
            if layer.device is None:
                layer.device = self.device
            layer.build(self.compute_output_shape(self.built_input_shape))
        self.layers.append(layer)
        return self

    def __getitem__(self, index):
        """A layer, or for a slice a Sequential of the same layer objects (weights shared). A slice of
        consecutive layers of a built model is built too, for the shape that reaches its first layer."""
        if not isinstance(index, slice):
            return self.layers[index]
        positions = range(len(self.layers))[index]
        model = Sequential(self.layers[index])
        model.device, model.training = self.device, self.training
        if self.built and len(positions) and (len(positions) == 1 or positions.step == 1):
            shape = self.built_input_shape
            for layer in self.layers[:positions[0]]:
                shape = layer.compute_output_shape(shape)
            model.build(shape)
        return model

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def _validate(self, shape):
        """The first layer checks the input; when the model is not built yet, or the input's shape
        differs from the one it was built for, every layer checks what would reach it, and an error
        says which layer fails, for which model input, and whether the channel order looks swapped."""
        if not self.layers:
            return
        if self.built and tuple(shape[1:]) == self.built_input_shape:
            self.layers[0]._validate(shape)
            return
        given = tuple(shape[1:])
        current = given
        for i, layer in enumerate(self.layers):
            try:
                if i == 0:
                    layer._validate(shape)  # with the real batch size, for the message
                current = layer.compute_output_shape(current) if i < len(self.layers) - 1 \
                    else layer._validate((None,) + tuple(current))
            except ValueError as e:
                built = (f"it was built for inputs of shape {self.built_input_shape} and got {given} (shapes without "
                         f"the batch axis); " if self.built else f"for inputs of shape {given} (without the batch "
                                                                  f"axis), ")
                where = "" if i == 0 else f"layer {i} ({layer.label()}) cannot take the shape that reaches it: "
                raise ValueError(f"{self.label()}: {built}{where}{e}{self._channel_order_hint(given)}") from None

    def _channel_order_hint(self, shape):
        """A sentence when an image shape looks like the other data format than the model's layers'."""
        formats = [layer.data_format for layer in self.layers if isinstance(layer, Spatial)]
        if len(shape) != 3 or not formats:
            return ""
        small = (1, 3, 4)  # channels of grey, colour, colour + alpha images
        if formats[0] == "channels_first" and shape[2] in small and shape[0] not in small:
            h, w, c = shape
            return (f". The input shape {shape} looks channels-last (H, W, C), but this model's layers take the "
                    f"channels first (C, H, W): use input_shape=({c}, {h}, {w}) and images x.transpose(0, 3, 1, 2), "
                    f"or layers with data_format='channels_last' (the default of tinygrad_cnn.keras)")
        if formats[0] == "channels_last" and shape[0] in small and shape[2] not in small:
            c, h, w = shape
            return (f". The input shape {shape} looks channels-first (C, H, W), but this model's layers take the "
                    f"channels last (H, W, C): use input_shape=({h}, {w}, {c}) and images x.transpose(0, 2, 3, 1), "
                    f"or layers with data_format='channels_first'")
        return ""

    def _build(self, input_shape):
        shape = input_shape
        for layer in self.layers:
            if layer.device is None:
                layer.device = self.device
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def _output_shape(self, input_shape):
        shape = input_shape
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def forward(self, x):
        """Apply the layers in order (each builds itself on the first call)."""
        return kernel_for(run_layers, x.device if isinstance(x, Tensor) else "cpu")(self.layers, x)

    def logits(self, x):
        """The output without the final softmax/sigmoid: the last layer's pre-activation, or the
        input of a final Softmax/Sigmoid layer. A model whose output needs no such stripping (no
        final activation) returns its output; one ending in another activation (relu, tanh, a
        callable) raises ValueError, since that output is not logits."""
        if not self.layers:
            raise ValueError("logits() of an empty Sequential")
        x = self.prepare(x)
        *body, last = self.layers
        if isinstance(last, Activated):
            if last.activation_name not in ("softmax", "sigmoid", None):
                raise ValueError(f"logits(): the last layer ({last.label()}) ends in activation "
                                 f"{last.activation_name!r}, whose output is not logits; only a final "
                                 f"softmax or sigmoid is stripped")
            # NOTE: one call with the last layer in it, so that the plan fuses it with the layer
            # before as the model's forward does (the same bits either way)
            return kernel_for(run_layers, x.device)(self.layers, x, pre_activation=True)
        x = kernel_for(run_layers, x.device)(body, x)
        if isinstance(last, (Softmax, Sigmoid)):
            return last.prepare(x)
        if isinstance(last, Elementwise):
            raise ValueError(f"logits(): the model ends in {last.label()}, whose output is not logits")
        return last(x)

    def summary(self, print_fn=print, show_trainable=False):
        """A Keras-like table of layers, output shapes and parameter counts, printed with print_fn
        (None to only return it) and returned as a string; show_trainable adds Keras' "Trainable" column
        (Y, N for a frozen layer, - for one without weights). As Keras', a row counts all of a layer's
        weights, frozen ones and running statistics included (so the rows add up to the total), and
        integer counters (torch's num_batches_tracked) count nowhere."""
        if not self.built:
            raise ValueError("summary() needs the input shape: pass input_shape=... to Sequential, call "
                             "model.build(input_shape), or call the model on a batch first")
        rows, shape = [], self.built_input_shape
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
            rows.append((f"{layer.name} ({type(layer).__name__})", str((None,) + tuple(shape)),
                         f"{sum(weight_counts(layer)):,}") + ((trainable_mark(layer),) if show_trainable else ()))
        header = ("Layer (type)", "Output Shape", "Param #") + (("Trainable",) if show_trainable else ())
        widths = [max([len(r[i]) + 3 for r in rows + [header]] + [minimum]) for i, minimum in enumerate((28, 26))]
        if show_trainable:
            widths.append(max(len(r[2]) for r in rows + [header]) + 3)
        line_length = max(sum(widths) + max(len(r[-1]) for r in rows + [header]) + 1, 65)

        def row(cells):
            return " " + "".join(cell.ljust(width) for cell, width in zip(cells, widths)) + cells[-1]

        trainable, fixed = weight_counts(self)
        lines = [f'Model: "{self.name}"', "_" * line_length, row(header), "=" * line_length]
        for i, r in enumerate(rows):
            lines.append(row(r))
            lines.append("=" * line_length if i == len(rows) - 1 else "_" * line_length)
        if not rows:
            lines.append("=" * line_length)
        lines += [f"Total params: {trainable + fixed:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {fixed:,}", "_" * line_length]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def __repr__(self):
        inner = "".join(f"\n  ({i}) {layer.name}: {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)" if inner else "Sequential()"
