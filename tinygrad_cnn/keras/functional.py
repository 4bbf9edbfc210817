"""Keras' functional API: `inputs = keras.Input(shape=...)`, layers called on it give symbolic tensors
(shapes only, no values), and `keras.Model(inputs, outputs)` is the model that maps one to the other.

Supported: one input, one output, each layer used once along the way (the layer graph is a chain, as in
the tutorials' functional models); a model calling a sub-model works too. Several inputs or outputs, or
a layer whose output feeds two layers, raise NotImplementedError naming the limit. Subclassing
(`class M(keras.Model)` with call()) works for calling the model and for fit/evaluate/predict."""
import inspect

import numpy

from ..function import no_grad
from ..nn.layers import Layer
from ..tensor import Tensor
from .models import Sequential


class KerasTensor:
    """The symbolic output of a layer called on keras.Input: a shape (without the batch axis) and the
    layer that made it from its parent."""

    _symbolic = True

    def __init__(self, shape, layer=None, parent=None, name=None):
        self.shape = (None,) + tuple(shape)
        self._sample_shape = tuple(shape)
        self.layer, self.parent, self.name = layer, parent, name

    @property
    def ndim(self):
        """Number of axes, the batch axis included."""
        return len(self.shape)

    def _apply(self, layer):
        """layer(self): build the layer for this shape and record the call."""
        return apply(self, layer)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}{', from ' + self.layer.name if self.layer else ''}>"


def apply(node, layer):
    """layer called on a symbolic node (keras.Input or a KerasTensor): build the layer, record the call."""
    shape = node._sample_shape
    if not layer.built:
        layer.build(shape)
    return KerasTensor(layer.compute_output_shape(shape), layer, node)


def _chain(inputs, outputs):
    """The layers from `inputs` to `outputs`, first to last."""
    for what, value in (("inputs", inputs), ("outputs", outputs)):
        if isinstance(value, (list, tuple, dict)):
            if len(value) != 1:
                raise NotImplementedError(f"keras.Model: several {what} are not supported here (one input and one "
                                          f"output, a chain of layers); got {len(value)}")
    inputs = next(iter(inputs.values())) if isinstance(inputs, dict) else inputs
    outputs = next(iter(outputs.values())) if isinstance(outputs, dict) else outputs
    inputs = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
    outputs = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    if not getattr(inputs, "_symbolic", False) or not getattr(outputs, "_symbolic", False):
        raise TypeError(f"keras.Model(inputs, outputs) takes keras.Input(...) and what layers made of it, got "
                        f"{type(inputs).__name__} and {type(outputs).__name__}")
    layers, node = [], outputs
    while node is not inputs:
        if getattr(node, "layer", None) is None:
            raise ValueError("keras.Model: the outputs were not computed from these inputs")
        layers.append(node.layer)
        node = node.parent
    layers.reverse()
    seen = set()
    for layer in layers:
        if id(layer) in seen:
            raise NotImplementedError(f"keras.Model: layer {layer.name!r} is used twice (shared layers are not "
                                      f"supported here)")
        seen.add(id(layer))
    return inputs, layers


class Model(Sequential):
    """keras.Model(inputs, outputs) for a functional model, or a base class with call(x) (subclassing).

    A functional model is a Sequential of its layers (summary, compile, fit, evaluate, predict, save
    as for Sequential), declared for the Input's shape."""

    default_name = "functional"

    def __init__(self, inputs=None, outputs=None, name=None, **kwargs):
        if kwargs:
            raise TypeError(f"keras.Model got unexpected arguments {sorted(kwargs)}")
        self._subclassed = inputs is None and outputs is None
        if not self._subclassed:
            if inputs is None or outputs is None:
                raise ValueError("keras.Model needs both inputs= and outputs= (or neither, when subclassing)")
            inputs, layers = _chain(inputs, outputs)
        Sequential.__init__(self, name=name or self.default_name)
        if self._subclassed:
            return
        self._declared_shape = tuple(inputs._sample_shape)
        for layer in layers:
            Sequential.add(self, layer)
        self.build(self._declared_shape)

    def __setattr__(self, name, value):
        # NOTE: a subclass assigns layers before its call() uses them: they need names, as Sequential's do
        if isinstance(value, Layer) and not value.name and self.__dict__.get("_subclassed"):
            used = {getattr(m, "name", None) for m in self.__dict__.values() if isinstance(m, Layer)}
            base, k = value.default_name, 0
            while (f"{base}_{k}" if k else base) in used:
                k += 1
            value.name = f"{base}_{k}" if k else base
        object.__setattr__(self, name, value)

    def add(self, layer):
        """Refused: a functional model's layers come from keras.Model(inputs, outputs)."""
        raise TypeError("keras.Model has no add(): its layers come from keras.Model(inputs, outputs); use "
                        "keras.Sequential to add layers one by one")

    # ------------------------------------------------------------ subclassing: call(x)

    def call(self, inputs, training=None):
        """The forward pass of a subclassed model (override it)."""
        raise NotImplementedError(f"{type(self).__name__} must define call(self, inputs) (or be made with "
                                  f"keras.Model(inputs, outputs))")

    def forward(self, x):
        """The layers in order (functional), or call(x) (subclassed)."""
        if not self._subclassed:
            return super().forward(x)
        if "training" in inspect.signature(self.call).parameters:
            return self.call(x, training=self.training)
        return self.call(x)

    def _prepare(self, x):
        """A subclassed model takes any input its call() takes, and builds on the first call."""
        if not self._subclassed:
            return super()._prepare(x)
        x = x if isinstance(x, Tensor) else self._from_array(x)
        if not self.built:
            self.input_shape, self.built = tuple(x.shape[1:]), True
        return x

    def build(self, input_shape):
        """Build a functional model's layers; a subclassed one builds by running call() on one zero sample."""
        if not self._subclassed:
            return super().build(input_shape)
        if isinstance(input_shape, (tuple, list)) and len(input_shape) > 1 and input_shape[0] is None:
            input_shape = tuple(input_shape[1:])
        if not self.built:
            self._output_shape(tuple(input_shape))
            self.input_shape, self.built = tuple(input_shape), True
        return self

    def _validate(self, shape):
        """A functional model checks as Sequential does; a subclassed one leaves it to call()."""
        if not self._subclassed:
            super()._validate(shape)

    def _output_shape(self, input_shape):
        if not self._subclassed:
            return super()._output_shape(input_shape)
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                return tuple(self.forward(Tensor(numpy.zeros((1,) + tuple(input_shape), self.dtype))).shape[1:])
        finally:
            self.train(was_training)

    def compute_output_shape(self, input_shape):
        """Output shape (no batch axis) for inputs of `input_shape`."""
        if not self._subclassed:
            return super().compute_output_shape(input_shape)
        return self._output_shape(tuple(input_shape))

    def logits(self, x):
        """The output without a final softmax or sigmoid (a subclassed model's output as is)."""
        if not self._subclassed:
            return super().logits(x)
        return self(x)  # NOTE: a subclass's final activation is inside call(): the loss takes its output as is

    def summary(self, *args, print_fn=None, **kwargs):
        """Keras' table of layers (a subclassed model lists the layers it holds as attributes)."""
        if self._subclassed:
            if not self.built:
                raise ValueError("summary() of a subclassed model needs it built: call it on a batch first")
            self.layers = [m for _, m in self.named_children() if isinstance(m, Layer)]
            try:
                return Sequential.summary(self, print_fn=print_fn)
            finally:
                self.layers = []
        return super().summary(print_fn=print_fn)


__all__ = ["Model", "KerasTensor"]
