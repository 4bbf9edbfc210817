"""Keras' layers over tinygrad_cnn.nn's: the same classes with Keras' defaults (channels-last images,
Keras 3's layer names) and Keras' constructor arguments (`input_shape=` on a first layer).

Weights keep the project's layouts inside (a conv kernel (filters, channels, KH, KW), a dense kernel
(units, in_features)), but get_weights/set_weights speak Keras' ((KH, KW, channels, filters) and
(in_features, units)), so that arrays from a real Keras model load as they are."""
import contextlib
import functools
import inspect
import numbers
import re
import threading

import numpy

from .. import nn
from ..autograd import no_grad
from ..device import canonical_device, to_numpy
from ..tensor import Tensor, get_rng
from ..nn.layers import Activated, shape_tuple, get_activation
from .offered import not_offered

DEFAULT_DATA_FORMAT = "channels_last"


def _format(data_format):
    return DEFAULT_DATA_FORMAT if data_format is None else data_format


# keras model calls under way in this thread (per thread, as grad mode): only a call outside any picks
# inference by default (a layer inside a model's call, and the calls inside fit/evaluate, follow the mode set)
_calls = threading.local()


def outside_model_calls():
    """Whether no keras model call is under way in this thread."""
    return getattr(_calls, "depth", 0) == 0


@contextlib.contextmanager
def model_call():
    """Mark a keras model call under way in this thread (see outside_model_calls)."""
    _calls.depth = getattr(_calls, "depth", 0) + 1
    try:
        yield
    finally:
        _calls.depth -= 1


class Trainable:
    """`trainable` as Keras layers and models have it. False freezes the weights of the layer and of every
    layer inside it (set on a model, on all its layers, as Keras does): fit leaves them as they are and a
    frozen BatchNormalization runs in inference mode. As in Keras 3, each training step reads the flags
    (no recompile needed), and a layer trains only while every model around it is trainable too."""

    @property
    def input_shape(self):
        """The input shape with Keras' batch axis first, (None, 28, 28, 1); AttributeError before the layer
        (or model) is built, as a Keras model raises. NOTE: nn's layers give it without the batch axis, which
        built_input_shape keeps here too."""
        if self.built_input_shape is None:
            raise AttributeError(f"{self.label()}.input_shape: not built yet (give the model an Input, or call it "
                                 f"on a batch)")
        return (None,) + tuple(self.built_input_shape)

    @property
    def trainable(self):
        """Whether this layer's (or model's) weights train; True unless set False."""
        return self.__dict__.get("_trainable", True)

    @trainable.setter
    def trainable(self, value):
        if not isinstance(value, (bool, numpy.bool_)):
            raise TypeError(f"{type(self).__name__}.trainable must be True or False, got {value!r}")
        for _, module in self.named_modules():
            if isinstance(module, Trainable):
                module.__dict__["_trainable"] = bool(value)
        apply_trainable(self)  # NOTE: at once, so that summary() counts the frozen weights as Keras does

    @property
    def trainable_weights(self):
        """The weights that train: the parameters of layers not frozen (nor inside a frozen model)."""
        frozen = frozen_parameters(self)
        return [p for p in self.parameters() if id(p) not in frozen]

    @property
    def non_trainable_weights(self):
        """The weights that never train: frozen layers' parameters, then the buffers (BatchNormalization's
        moving statistics)."""
        frozen = frozen_parameters(self)
        return [p for p in self.parameters() if id(p) in frozen] + [t for _, t in self.named_buffers()]

    @property
    def weights(self):
        """Every weight, layer by layer in get_weights() order (Keras': kernel, bias, gamma, beta, moving mean...)."""
        return [t for _, t in self._named_tensors()]

    # NOTE: Keras 3's other names of the three lists
    trainable_variables, non_trainable_variables, variables = trainable_weights, non_trainable_weights, weights

    @property
    def output(self):
        """The symbolic tensor this layer made when called on keras.Input (in a functional model, or in a
        Sequential declared with keras.Input), as Keras' layer.output: a feature extractor is then
        `keras.Model(inputs=model.inputs, outputs=model.get_layer("conv").output)`."""
        node = self.__dict__.get("_keras_output")
        if node is None:
            raise ValueError(f"{self.label()}.output: the layer has never been called on a symbolic input, so it "
                             f"has no output yet (declare the model's input with keras.Input(shape=...) first)")
        return node

    def count_params(self):
        """The number of scalars in all the weights, frozen ones and BatchNormalization's moving statistics
        included, as Keras counts them; a ValueError before the weights exist (it was 0), as Keras."""
        if not getattr(self, "built", True) and self.makes_weights():  # NOTE: Flatten, Add... count 0 unbuilt
            raise ValueError(f"count_params: {self.label()} is not built yet, so it has no weights to count; give "
                             f"it an Input or build(input_shape) first")
        return sum(t.size for t in self.weights)


def frozen_parameters(model):
    """ids of `model`'s parameters that Keras' trainable flags freeze: those of a layer set trainable=False
    or inside one (a parameter's dotted name starts with the frozen module's)."""
    off = [name for name, module in model.named_modules() if not getattr(module, "trainable", True)]
    if not off:
        return set()
    return {id(p) for name, p in model.named_parameters()
            if any(prefix == "" or name.startswith(prefix + ".") for prefix in off)}


@contextlib.contextmanager
def thawed(model):
    """Every parameter frozen by the trainable flags takes a gradient again inside the block, then the flags
    apply: an optimizer is made over all the weights (as Keras', which a later unfreeze then trains)."""
    for p in model.parameters():
        if getattr(p, "frozen_by_trainable", False):
            p.requires_grad_(True)
            p.frozen_by_trainable = False
    try:
        yield
    finally:
        apply_trainable(model)


def apply_trainable(model):
    """Make requires_grad follow the trainable flags before a training step: frozen parameters get no
    gradient (so the optimizer skips them); a parameter frozen here earlier and now trainable gets its
    gradient back. NOTE: one frozen by hand (p.requires_grad_(False)) is left as it is. Returns whether
    any parameter trains."""
    frozen, trains = frozen_parameters(model), False
    for p in model.parameters():
        if id(p) in frozen and p.requires_grad:
            p.requires_grad_(False)
            p.frozen_by_trainable = True
        elif id(p) not in frozen and getattr(p, "frozen_by_trainable", False):
            p.requires_grad_(True)
            p.frozen_by_trainable = False
        trains = trains or p.requires_grad
    return trains


class _InputShape(Trainable):
    """`input_shape=` as Keras 2 layers take it: the model's input shape without the batch axis,
    for the first layer of a Sequential (which then builds at once)."""

    def _keep_input_shape(self, input_shape):
        self.keras_input_shape = None if input_shape is None else shape_tuple(input_shape)

    def __call__(self, x, training=None):
        """As Keras: a layer called on its own without training= runs in inference mode (Dropout passes x
        through, BatchNormalization uses and keeps its moving statistics); inside a keras model it follows
        the model's mode. NOTE: so in a hand-written loop over nn.Sequential, pass training=True."""
        if training is None and outside_model_calls() and not getattr(x, "_symbolic", False):
            training = False
        return super().__call__(x, training)

    def build(self, input_shape):
        """Make the weights for inputs of `input_shape`; Keras' shape with the batch axis, (None, 4), is taken
        as Keras' layer.build takes it."""
        if isinstance(input_shape, (tuple, list)) and len(input_shape) > 1 and input_shape[0] is None:
            input_shape = tuple(input_shape[1:])
        return super().build(input_shape)

    def get_config(self):
        """Keras' config of this layer (as a .keras file holds it); `type(layer).from_config(config)` makes a
        new one, with fresh weights, as Keras' does."""
        from .saving import layer_config
        return layer_config(self)

    @classmethod
    def from_config(cls, config):
        """A new layer from get_config()'s dict (or a Keras layer's of the same class)."""
        from .saving import layer_from_config
        if not isinstance(config, dict):
            raise TypeError(f"{cls.__name__}.from_config: config must be a dict (as get_config() returns), got "
                            f"{type(config).__name__}")
        return layer_from_config(cls.__name__, config, f"{cls.__name__}.from_config")

    def get_weights(self):
        """Copies of the layer's weights as NumPy arrays, in Keras' order (kernel, bias; gamma, beta, moving
        mean, moving variance) and Keras' layouts (a conv kernel (KH, KW, channels, filters), a dense kernel
        (inputs, units)), as Keras' get_weights gives them."""
        return [to_keras_layout(self, name, value) for name, value in self.state_dict().items()]

    def set_weights(self, weights):
        """Load arrays in get_weights() order and layouts (Keras'); count and shapes are checked first."""
        names = list(self.state_dict())
        if not isinstance(weights, (list, tuple)) or len(weights) != len(names):
            got = f"{len(weights)} arrays" if isinstance(weights, (list, tuple)) else type(weights).__name__
            raise ValueError(f"{self.label()}.set_weights: the layer has {len(names)} weight arrays "
                             f"({', '.join(names) or 'none'}), got {got}")
        self.load_state_dict(from_keras_layouts(self, list(zip(names, weights)), f"{self.label()}.set_weights"))


# Keras' layout of each project weight that differs: (to Keras, back, how Keras' shape reads)
_KERAS_LAYOUTS = {
    "conv": (lambda w: w.transpose(2, 3, 1, 0), lambda w: w.transpose(3, 2, 0, 1), "(KH, KW, channels, filters)"),
    "dense": (lambda w: w.T, lambda w: w.T, "(inputs, units)"),
}


def _layout(module, name):
    """The _KERAS_LAYOUTS entry of `module`'s weight `name` (a parameter name, no dots), or None."""
    if name == "weight" and isinstance(module, nn.Conv2D):
        return _KERAS_LAYOUTS["conv"]
    if name == "weight" and isinstance(module, nn.Dense):
        return _KERAS_LAYOUTS["dense"]
    return None


def to_keras_layout(module, name, value):
    """A copy of weight `name` of `module` (a project-layout array) in Keras' layout, C-contiguous."""
    layout = _layout(module, name)
    return value if layout is None else numpy.ascontiguousarray(layout[0](value))


def from_keras_layouts(model, named_weights, where):
    """{state_dict name: project-layout array} from (state_dict name, Keras-layout array) pairs of `model`'s
    weights; each shape is checked against Keras' for that weight first, so that a kernel in the project's
    own layout (or a square one that fits either way) is named, never silently transposed."""
    owners, tensors, problems = dict(model.named_modules()), dict(model._named_tensors()), []
    loaded = {}
    for name, value in named_weights:
        module_name, _, attribute = name.rpartition(".")
        layout = _layout(owners[module_name], attribute)
        value = value.numpy() if hasattr(value, "numpy") and not isinstance(value, numpy.ndarray) else value
        value = numpy.asarray(to_numpy(value))  # (a CuPy array refuses numpy.asarray)
        shape = tensors[name].shape  # Keras' shape of it, from a view of no memory (nothing copied)
        want = shape if layout is None else layout[0](numpy.broadcast_to(numpy.float32(0), shape)).shape
        if value.shape != want:
            form = f" in Keras' layout {layout[2]}" if layout is not None else ""
            problems.append(f"{name!r}: got shape {value.shape}, expected {want}{form}")
            continue
        loaded[name] = value if layout is None else layout[1](value)
    if problems:
        raise ValueError(f"{where}: the weights do not fit:\n  " + "\n  ".join(problems))
    return loaded


class Conv2D(_InputShape, nn.Conv2D):
    """nn.Conv2D with Keras' defaults: data_format 'channels_last', (N, H, W, C) images."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None, dilation_rate=(1, 1),
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 input_shape=None, name=None, dtype=None, device=None):
        if not isinstance(padding, str):  # Keras refuses it too; PyTorch's Conv2d(in, out, kernel, stride, padding)?
            raise TypeError(f"Conv2D padding must be 'valid' or 'same' (Keras), got {padding!r}. The arguments are "
                            f"Keras' (filters, kernel_size, strides, padding); Conv2D{(filters, kernel_size, strides, padding)} "
                            f"looks like PyTorch's Conv2d(in_channels, out_channels, kernel_size, stride) order, which "
                            f"would build another layer here: write Conv2D({kernel_size}, {strides}, strides={padding})")
        super().__init__(filters, kernel_size, strides, padding=padding, activation=activation, use_bias=use_bias,
                         dilation_rate=dilation_rate, kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer, name=name, dtype=dtype, device=device,
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
                 bias_initializer="zeros", input_shape=None, name=None, dtype=None, device=None, input_dim=None):
        super().__init__(units, activation, use_bias, kernel_initializer, bias_initializer, name=name, dtype=dtype,
                         device=device, in_features=input_dim)
        self._keep_input_shape((input_dim,) if input_shape is None and input_dim is not None else input_shape)


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


class BatchNormalization(_InputShape, nn.BatchNormalization):
    """nn.BatchNormalization with Keras' default axis=-1 (the channels of (N, H, W, C) images, the features
    of (N, F) inputs), momentum 0.99 and epsilon 1e-3."""

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 input_shape=None, name=None, dtype=None, device=None):
        super().__init__(axis, momentum, epsilon, center, scale, beta_initializer, gamma_initializer,
                         moving_mean_initializer, moving_variance_initializer, name=name, dtype=dtype, device=device)
        self._keep_input_shape(input_shape)

    def forward(self, x):
        """As Keras 3: a frozen BatchNormalization (trainable=False) runs in inference mode, even in fit (its
        moving statistics normalise and stay as they are), as fine-tuning a pretrained model needs."""
        if not self.training or self.trainable:
            return super().forward(x)
        self.training = False
        try:
            return super().forward(x)
        finally:
            self.training = True


class GlobalAveragePooling2D(_InputShape, nn.GlobalAveragePooling2D):
    """nn.GlobalAveragePooling2D with Keras' default data_format (channels-last)."""

    def __init__(self, data_format=None, keepdims=False, input_shape=None, name=None):
        super().__init__(_format(data_format), keepdims, name=name)
        self._keep_input_shape(input_shape)


class GlobalMaxPooling2D(_InputShape, nn.GlobalMaxPooling2D):
    """nn.GlobalMaxPooling2D with Keras' default data_format (channels-last)."""

    def __init__(self, data_format=None, keepdims=False, input_shape=None, name=None):
        super().__init__(_format(data_format), keepdims, name=name)
        self._keep_input_shape(input_shape)


GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D


class Reshape(_InputShape, nn.Reshape):
    """nn.Reshape (Keras' Reshape(target_shape)): Reshape((28, 28, 1)) after Input((784,))."""

    def __init__(self, target_shape, input_shape=None, name=None):
        super().__init__(target_shape, name=name)
        self._keep_input_shape(input_shape)


class Rescaling(_InputShape, nn.Rescaling):
    """nn.Rescaling (Keras' Rescaling(scale, offset=0.0)): Rescaling(1 / 255) first in an image model."""

    def __init__(self, scale, offset=0.0, input_shape=None, name=None, dtype=None):
        super().__init__(scale, offset, name=name, dtype=dtype)
        self._keep_input_shape(input_shape)


class Add(_InputShape, nn.Add):
    """nn.Add with Keras' layer methods (trainable, get_weights: none), as model.layers' other entries."""


class Concatenate(_InputShape, nn.Concatenate):
    """nn.Concatenate with Keras' layer methods (trainable, get_weights: none), as model.layers' other entries."""


class Input:
    """Keras' Input(shape=...): the model's input shape without the batch axis, as the first
    entry of a Sequential's list (it holds no weights and is not a layer of the model), or the
    symbolic input of a functional keras.Model: `x = Dense(8)(inputs)`."""

    def __init__(self, shape, name=None, batch_size=None, dtype=None):
        self._sample_shape = shape_tuple(shape)
        self.name = name
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral)
                                       or batch_size < 1):
            raise ValueError(f"Input batch_size must be a positive int or None, got {batch_size!r}")
        self.batch_size = batch_size
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Input name must be a string or None, got {name!r}")
        try:
            self.dtype = "float32" if dtype is None else numpy.dtype(dtype).name  # NOTE: Keras' default, a name
        except TypeError:
            raise TypeError(f"Input dtype must be a NumPy dtype or its name (such as 'float32'), got {dtype!r}") from None

    _symbolic = True  # layers called on it record the call (keras.Model's functional API)

    @property
    def shape(self):
        """The shape with Keras' batch axis first, (None, 28, 28, 1) (batch_size when given), as Keras' Input."""
        return (self.batch_size,) + self._sample_shape

    @property
    def ndim(self):
        """Number of axes, the batch axis included."""
        return len(self.shape)

    def _apply(self, layer):
        from .functional import apply
        return apply(self, layer)

    def _apply_merge(self, layer, nodes):
        from .functional import apply_merge
        return apply_merge(nodes, layer)

    def __repr__(self):
        return f"Input(shape={self._sample_shape})"


class InputLayer(_InputShape, nn.Layer):
    """Keras' InputLayer: listed first in a functional model's `layers`, as Keras lists it (so `model.layers[i]`
    is Keras' layer i); it passes its input through, checks the declared shape and has no weights. As the first
    entry of a Sequential it declares the input shape, as Input(...) does, and is not listed there (nor in Keras)."""

    default_name = "input_layer"
    passes_input_through = True  # interop and onnx leave it out

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None):
        if (shape is None) == (batch_shape is None):
            raise ValueError("InputLayer needs shape= (without the batch axis) or batch_shape= (with it), one of them")
        if batch_shape is not None:
            batch_shape = tuple(batch_shape)
            shape, batch_size = batch_shape[1:], batch_shape[0] if batch_shape else None
        self.declared = Input(shape, name=name, batch_size=batch_size, dtype=dtype)
        super().__init__(name=name)
        self.build(self.declared._sample_shape)

    @property
    def batch_shape(self):
        """The declared shape with the batch axis first, as Keras' InputLayer has it: (None, 28, 28, 1)."""
        return (self.declared.batch_size,) + self.declared._sample_shape

    def _validate(self, shape):
        if len(shape) != len(self.declared._sample_shape) + 1 or tuple(shape[1:]) != self.declared._sample_shape:
            self._fail(shape, f"expects inputs of shape {(None,) + self.declared._sample_shape} (declared by Input)")

    def forward(self, x):
        """x as it is."""
        return x

    def _repr_args(self):
        return f"shape={self.declared._sample_shape}"


_CUSTOM_NAME = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def _keras_fans_draw(fn):
    """A project initializer (fans counted in its layouts, the input axis second) drawing a weight in Keras'
    layout (the input axis next to last: a dense kernel (inputs, units)): drawn reversed, then transposed back."""
    return lambda shape, dtype: fn(tuple(shape)[::-1], dtype).T


def _scaled(draw, scale):
    return lambda shape, dtype: (draw(tuple(shape)) * scale).astype(dtype)


_WEIGHT_INITIALIZERS = {
    "glorot_uniform": _keras_fans_draw(nn.init.glorot_uniform), "he_uniform": _keras_fans_draw(nn.init.he_uniform),
    "he_normal": _keras_fans_draw(nn.init.he_normal), "zeros": nn.init.zeros, "ones": nn.init.ones,
    # NOTE: Keras' defaults for these two: standard deviation 0.05, and limits +-0.05
    "random_normal": _scaled(lambda shape: get_rng().standard_normal(shape), 0.05),
    "random_uniform": _scaled(lambda shape: get_rng().uniform(-1.0, 1.0, shape), 0.05),
}


def _recording(init):
    """An __init__ that first keeps the arguments the layer was made with, where all are plain (str, numbers,
    bools, None, and lists, tuples or dicts of them): Keras' auto-config, the config of a class without its own
    get_config. NOTE: only the outermost __init__ (the class's own) records; super().__init__ calls do not."""
    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if "_auto_config" not in self.__dict__:
            self.__dict__["_auto_config"] = _given_arguments(init, self, args, kwargs)
        init(self, *args, **kwargs)
    return __init__


def _given_arguments(init, layer, args, kwargs):
    signature = inspect.signature(init)
    try:
        bound = signature.bind(layer, *args, **kwargs)
    except TypeError:
        return None  # NOTE: init itself raises the error, naming the argument
    bound.apply_defaults()
    given = dict(bound.arguments)
    given.pop(next(iter(signature.parameters)))  # self
    for name, parameter in signature.parameters.items():
        if parameter.kind is parameter.VAR_KEYWORD:
            given.update(given.pop(name, {}))
        elif parameter.kind is parameter.VAR_POSITIONAL and given.pop(name, ()):
            return None
    given.pop("name", None)
    if given.get("input_shape", 0) is None:
        given.pop("input_shape")
    return given if _plain(given) else None


class Layer(_InputShape, nn.Layer):
    """Keras' base class for your own layers: build(input_shape) makes the weights with add_weight (input_shape
    with Keras' batch axis, (None, 4)), call(inputs) computes with keras.ops (or Tensor methods), and fit trains
    every add_weight(trainable=True) weight. The output shape comes from your compute_output_shape, or from
    running call on one sample of zeros. Weights keep the shapes you give (Keras' layout), so get_weights and
    set_weights pass them as they are."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "default_name" not in cls.__dict__:  # Keras' name: the class name in snake case
            cls.default_name = _CUSTOM_NAME.sub("_", cls.__name__).lower()
        # NOTE: the framework builds and asks for shapes without the batch axis; your methods get Keras' forms
        if "build" in cls.__dict__ and cls.__dict__["build"] is not Layer.build:
            cls._keras_build, cls.build = cls.__dict__["build"], Layer.build
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording(cls.__dict__["__init__"])
        if "compute_output_shape" in cls.__dict__ and cls.__dict__["compute_output_shape"] is not \
                Layer.compute_output_shape:
            cls._keras_output_shape, cls.compute_output_shape = cls.__dict__["compute_output_shape"], \
                Layer.compute_output_shape

    @_recording
    def __init__(self, name=None, dtype=None, trainable=True, input_shape=None, activity_regularizer=None,
                 autocast=True, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: keras.layers.Layer takes name=, dtype=, trainable= and "
                            f"input_shape=, not {', '.join(sorted(kwargs))}")
        if activity_regularizer is not None:
            raise NotImplementedError(f"{type(self).__name__}: activity_regularizer= is not supported here")
        if isinstance(dtype, dict):  # NOTE: Keras' config form, {'class_name': 'DTypePolicy', 'config': {'name': ...}}
            dtype = (dtype.get("config") or {}).get("name")
        nn.Layer.__init__(self, name=name, dtype=dtype)
        self._keep_input_shape(input_shape)
        if not trainable:
            self.trainable = False

    def add_weight(self, shape=None, initializer=None, dtype=None, trainable=True, name=None, regularizer=None,
                   constraint=None, **kwargs):
        """A weight of `shape` (Keras' layout), drawn by `initializer` ('glorot_uniform', Keras' default,
        'he_uniform', 'he_normal', 'random_normal', 'random_uniform', 'zeros', 'ones', a number or a
        callable(shape, dtype)) on this layer's device; trainable=False keeps it out of training (saved, and
        changed with assign)."""
        from .metrics import Variable, initial_values
        if "_param_names" not in self.__dict__ and "built" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__(**kwargs) in __init__ before add_weight")
        for what, value in (("regularizer", regularizer), ("constraint", constraint)):
            if value is not None:
                raise NotImplementedError(f"{self.label()}.add_weight: {what}= is not supported here")
        shape = () if shape is None else tuple(int(s) for s in shape)
        dtype = numpy.dtype(dtype or self.dtype)
        values = initial_values("glorot_uniform" if initializer is None else initializer, shape, dtype,
                                _WEIGHT_INITIALIZERS, f"{self.label()}.add_weight")
        if values.shape != shape:
            raise ValueError(f"{self.label()}.add_weight: the initializer gave shape {values.shape}, not {shape}")
        weight = Variable(values, name, device=canonical_device(self._weights_device()))
        if trainable and dtype.kind == "f":
            weight.requires_grad_(True)
        else:
            self.__dict__.setdefault("_pending_buffers", set()).add(id(weight))
        return weight

    def __setattr__(self, name, value):
        if id(value) in self.__dict__.get("_pending_buffers", ()):  # a weight made with trainable=False
            self.__dict__["_pending_buffers"].discard(id(value))
            self.__dict__.setdefault("_buffer_names", set()).add(name)
        super().__setattr__(name, value)
        if isinstance(value, Tensor) and value.requires_grad:
            # NOTE: Keras orders a layer's weights trainable first, then the others (get_weights, .keras files)
            for buffer in [key for key in self.__dict__ if key in self.__dict__.get("_buffer_names", ())]:
                self.__dict__[buffer] = self.__dict__.pop(buffer)

    def _weights_device(self):
        params = [t for _, t in self._named_tensors()]
        return params[0].device if params else self.device

    def build(self, input_shape):
        """Keras' build: your build(input_shape) runs once, with the batch axis (None, ...); calling
        super().build(input_shape) inside it is Keras' and does nothing more."""
        if self.__dict__.get("_in_build"):
            return None
        shape = tuple(input_shape)
        shape = shape[1:] if shape and shape[0] is None else shape
        shape = shape_tuple(shape)
        if not self.built:
            user = getattr(type(self), "_keras_build", None)
            self.__dict__["_in_build"] = True
            try:
                if user is not None:
                    user(self, (None,) + shape)
            finally:
                self.__dict__["_in_build"] = False
            self.built, self.built_input_shape = True, shape
        return self

    def compute_output_shape(self, input_shape):
        """The output shape for `input_shape` (the batch axis kept if given): your compute_output_shape, else
        call run once on one sample of zeros (then remembered per input shape)."""
        shape = tuple(input_shape)
        batch = bool(shape) and shape[0] is None
        sample = shape_tuple(shape[1:] if batch else shape)
        cache = self.__dict__.setdefault("_output_shapes", {})
        if sample not in cache:
            user = getattr(type(self), "_keras_output_shape", None)
            if user is not None:
                cache[sample] = tuple(user(self, (None,) + sample))[1:]
            else:
                self.build(sample)
                with no_grad():
                    out = self.forward(Tensor(numpy.zeros((1,) + sample, self.dtype),
                                              device=canonical_device(self._weights_device())))
                if not isinstance(out, Tensor):
                    raise TypeError(f"{self.label()}: call() must return a Tensor (use keras.ops), got "
                                    f"{type(out).__name__}")
                cache[sample] = tuple(out.shape[1:])
        return (None,) + cache[sample] if batch else cache[sample]

    def call(self, inputs):
        """Your layer's computation (a subclass says how)."""
        raise NotImplementedError(f"{type(self).__name__} must define call(self, inputs)")

    def forward(self, x):
        """call(x), with training= when your call takes it (the layer's mode)."""
        takes = self.__dict__.get("_call_takes_training")
        if takes is None:
            takes = self.__dict__["_call_takes_training"] = "training" in inspect.signature(self.call).parameters
        return self.call(x, training=self.training) if takes else self.call(x)

    def get_config(self):
        """Keras' config: name, trainable and dtype (as Keras' DTypePolicy); a subclass adds its own arguments
        (config = super().get_config(); config.update(...)), as in Keras. A class without get_config gets the
        arguments it was made with, where they are plain values (Keras' auto-config), else an error."""
        config = {"name": self.name}
        if type(self).get_config is Layer.get_config:
            auto = self.__dict__.get("_auto_config")
            if auto is None:
                raise NotImplementedError(f"{type(self).__name__} was made with arguments that are not plain values "
                                          f"(str, numbers, bools, None), so it must define get_config() (config = "
                                          f"super().get_config(); config.update(...); return config) to be saved")
            config.update(auto)
        config.update(trainable=self.trainable, dtype={"module": "keras", "class_name": "DTypePolicy",
                                                       "config": {"name": self.dtype.name}, "registered_name": None})
        return config

    @classmethod
    def from_config(cls, config):
        """A new layer from get_config()'s dict: cls(**config), as Keras' default."""
        if not isinstance(config, dict):
            raise TypeError(f"{cls.__name__}.from_config: config must be a dict (as get_config() returns), got "
                            f"{type(config).__name__}")
        return cls(**config)


def _plain(value):
    """Whether a value is what Keras' auto-config keeps: str, numbers, bools, None, and containers of them."""
    if isinstance(value, (list, tuple)):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _plain(item) for key, item in value.items())
    return value is None or isinstance(value, (str, int, float, bool))


__all__ = ["Layer", "Conv2D", "MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D", "Flatten", "Dense", "Dropout", "ReLU", "Softmax", "Activation", "Input", "InputLayer", "DEFAULT_DATA_FORMAT",
           "BatchNormalization", "GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPooling2D", "GlobalMaxPool2D",
           "Reshape", "Rescaling", "Add", "Concatenate"]
__getattr__ = not_offered('keras.layers', __all__)
