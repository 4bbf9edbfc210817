"""Keras' functional API: `inputs = keras.Input(shape=...)`, layers called on it give symbolic tensors
(shapes only, no values), and `keras.Model(inputs, outputs)` is the model that maps one to the other.

Supported: one input and one output, each layer used once; between them a chain of layers (as in the
tutorials' functional models, which then is a Sequential of them) or a graph with branches that merge
again (Add, Concatenate: residual blocks, parallel towers). Several outputs make a model that runs
(model(x) and predict give a list, as a feature extractor does) but does not compile. Several inputs
and shared layers raise NotImplementedError naming the limit. Subclassing (`class M(keras.Model)` with call())
works for calling the model and for fit/evaluate/predict."""
import inspect
import re
from collections.abc import Mapping

import numpy

from ..autograd import no_grad
from ..nn.layers import (Layer, Sequential as _NNSequential, Softmax, Sigmoid, Activated, Elementwise, trainable_mark,
                         weight_counts)
from ..tensor import Tensor
from .layers import InputLayer
from .models import Sequential


class KerasTensor:
    """The symbolic output of a layer called on keras.Input: a shape (without the batch axis) and the
    layer that made it from its parent."""

    _symbolic = True
    dtype = "float32"  # NOTE: every layer here computes in float32

    def __init__(self, shape, layer=None, parents=(), name=None):
        self.shape = (None,) + tuple(shape)
        self._sample_shape = tuple(shape)
        self.layer, self.parents, self.name = layer, list(parents), name

    @property
    def ndim(self):
        """Number of axes, the batch axis included."""
        return len(self.shape)

    def _apply(self, layer):
        """layer(self): build the layer for this shape and record the call."""
        return apply(self, layer)

    def _apply_merge(self, layer, nodes):
        """layer([self, ...]) for a merge layer (Add, Concatenate)."""
        return apply_merge(nodes, layer)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}{', from ' + self.layer.name if self.layer else ''}>"


def apply(node, layer):
    """layer called on a symbolic node (keras.Input or a KerasTensor): build the layer, record the call."""
    shape = node._sample_shape
    if not layer.built:
        layer.build(shape)
    return _recorded(KerasTensor(layer.compute_output_shape(shape), layer, [node]))


def apply_merge(nodes, layer):
    """A merge layer called on several symbolic nodes: check their shapes, record the call."""
    shapes = [n._sample_shape for n in nodes]
    return _recorded(KerasTensor(layer.compute_output_shape(shapes), layer, nodes))


def _recorded(node):
    """The node, also kept as its layer's `output` (Keras' layer.output: its latest call's)."""
    node.layer.__dict__["_keras_output"] = node
    return node


def _parents(node):
    return getattr(node, "parents", [])


def _graph(inputs, outputs):
    """(the input, the nodes from it to `outputs` in an order where each comes after its parents, the output
    nodes: one, or several for a model that only runs: a feature extractor)."""
    if isinstance(inputs, (list, tuple, dict)) and len(inputs) != 1:
        raise NotImplementedError(f"keras.Model: several inputs are not supported here (one input); got "
                                  f"{len(inputs)}")
    if isinstance(outputs, (list, tuple, dict)) and len(outputs) == 0:
        raise ValueError("keras.Model: outputs is empty")
    inputs = next(iter(inputs.values())) if isinstance(inputs, dict) else inputs
    inputs = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
    ends = list(outputs.values()) if isinstance(outputs, dict) else \
        list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    if not getattr(inputs, "_symbolic", False) or not all(getattr(end, "_symbolic", False) for end in ends):
        raise TypeError(f"keras.Model(inputs, outputs) takes keras.Input(...) and what layers made of it, got "
                        f"{type(inputs).__name__} and {', '.join(type(end).__name__ for end in ends)}")
    order, done, stack = [], set(), [(end, False) for end in reversed(ends)]
    while stack:  # NOTE: depth-first, parents before children, without recursion (deep models)
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        if node is inputs:
            done.add(id(node))
            continue
        if getattr(node, "layer", None) is None:
            raise ValueError("keras.Model: the outputs were not computed from these inputs (another keras.Input "
                             "feeds them; several inputs are not supported here)")
        if expanded:
            done.add(id(node))
            order.append(node)
            continue
        stack.append((node, True))
        stack.extend((parent, False) for parent in reversed(_parents(node)) if id(parent) not in done)
    seen = set()
    for node in order:
        if id(node.layer) in seen:
            raise NotImplementedError(f"keras.Model: layer {node.layer.name or type(node.layer).__name__!r} is used "
                                      f"twice (shared layers are not supported here)")
        seen.add(id(node.layer))
    if any(end is inputs for end in ends) and len(ends) > 1:
        raise NotImplementedError("keras.Model: the input itself as one of several outputs is not supported here")
    return inputs, order, ends


def nn_add(model, layer):
    """nn.Sequential.add without building (a graph's layers are built when called on keras.Input)."""
    _NNSequential.add(model, layer)


class Model(Sequential):
    """keras.Model(inputs, outputs) for a functional model, or a base class with call(x) (subclassing).

    A functional model whose layers form a chain is a Sequential of them (summary, compile, fit, evaluate,
    predict, save as for Sequential); one with branches (merged by Add or Concatenate) runs its graph,
    with the same compile, fit, evaluate and predict. Either is declared for the Input's shape."""

    default_name = "functional"

    def __init__(self, inputs=None, outputs=None, name=None, **kwargs):
        if kwargs:
            raise TypeError(f"keras.Model got unexpected arguments {sorted(kwargs)}")
        self._subclassed = inputs is None and outputs is None
        self._nodes, self._several = None, False  # the graph, for a functional model with branches
        if not self._subclassed:
            if inputs is None or outputs is None:
                raise ValueError("keras.Model needs both inputs= and outputs= (or neither, when subclassing)")
            inputs, nodes, ends = _graph(inputs, outputs)
        Sequential.__init__(self, name=name or self.default_name)
        if self._subclassed:
            return
        self._declared_shape = tuple(inputs._sample_shape)
        self._graph_ends = (inputs, ends)
        self._several = len(ends) > 1  # several outputs: a model that runs (a feature extractor), not trained
        # NOTE: as Keras, a functional model lists its InputLayer first: model.layers[i] is Keras' layer i
        nn_add(self, InputLayer(shape=self._declared_shape, name=getattr(inputs, "name", None)))
        self.layers[0].__dict__["_keras_output"] = inputs  # Keras' InputLayer.output: the input itself
        if not self._several and all(len(_parents(node)) == 1 for node in nodes) and \
                all(node.parents[0] is (nodes[i - 1] if i else inputs) for i, node in enumerate(nodes)):
            for node in nodes:  # a chain: a Sequential of its layers
                Sequential.add(self, node.layer)
            self.build(self._declared_shape)
            return
        self._input, self._nodes = inputs, nodes
        for node in nodes:
            nn_add(self, node.layer)  # names the layers (conv2d, add, ...) and lists them, in graph order
        self.built_input_shape, self.built = self._declared_shape, True

    _traces_symbolic = False

    def _traced(self):
        """The graph's (input, output) as given to keras.Model (a subclassed model has none)."""
        if self._subclassed:
            raise ValueError(f"{self.label()}: a subclassed model has no symbolic inputs or outputs (Keras' "
                             f"model.inputs); build a functional keras.Model(inputs, outputs) for a feature extractor")
        return self._graph_ends[0], self._graph_ends[1][0]

    @property
    def outputs(self):
        """[the symbolic outputs], as given to keras.Model."""
        self._traced()
        return list(self._graph_ends[1])

    def compile(self, *args, **kwargs):
        """Sequential.compile; refused for a model of several outputs, which here only runs (model(x), predict)."""
        if self._several:
            raise NotImplementedError(f"compile: a keras.Model of several outputs ({len(self._graph_ends[1])}) runs "
                                      f"here (model(x), predict) but does not train: one loss for one output; "
                                      f"make a model per output to train it")
        return super().compile(*args, **kwargs)

    def __setattr__(self, name, value):
        # NOTE: a subclass assigns layers before its call() uses them: they need names, as Sequential's do
        if isinstance(value, Layer) and not value.name and self.__dict__.get("_subclassed"):
            used = {getattr(m, "name", None) for m in self.__dict__.values() if isinstance(m, Layer)}
            base, k = value.default_name, 0
            while (f"{base}_{k}" if k else base) in used:
                k += 1
            value.name = f"{base}_{k}" if k else base
        object.__setattr__(self, name, value)

    @property
    def layers(self):
        """The layers in order; a subclassed model's are the layers it holds as attributes, in the order they were
        assigned, as Keras lists them (so that `for layer in model.layers: layer.trainable = False` reaches them)."""
        if self.__dict__.get("_subclassed"):
            return [module for _, module in self.named_children() if isinstance(module, Layer)]
        return self.__dict__["layers"]

    @layers.setter
    def layers(self, value):
        self.__dict__["layers"] = value

    def load_state_dict(self, state, strict=True):
        """Module.load_state_dict, also for a file saved before the InputLayer was listed first.

        NOTE: until 2026-12-08 a functional model's layers were numbered without their InputLayer, so its
        saved names (`layers.0.kernel`, ...) are one position lower than today's. A state whose names are not
        this model's but are all of them once every `layers.<i>.` becomes `layers.<i + 1>.` is such a file
        (a file of today's names never needs the shift), and loads shifted; anything else loads as given."""
        if not self.__dict__.get("_subclassed") and isinstance(state, Mapping):
            own = set(name for name, _ in self._named_tensors())
            if set(state) != own:
                shifted = {re.sub(r"^layers\.(\d+)\.", lambda m: f"layers.{int(m.group(1)) + 1}.", key): value
                           for key, value in state.items()}
                if set(shifted) == own:
                    state = shifted
        return super().load_state_dict(state, strict=strict)

    def pop(self):
        """Refused: only a Sequential's last layer can be removed."""
        raise TypeError("keras.Model has no pop(): only keras.Sequential's last layer can be removed")

    def _final_activation(self):
        # NOTE: a subclass's call() may do anything after its last layer: its output is taken as it is
        return None if self._subclassed else super()._final_activation()

    def __getitem__(self, index):
        """A layer by position; a slice of a model with branches is no model, and is refused."""
        if self.is_graph and isinstance(index, slice):
            raise TypeError("a functional model with branches cannot be sliced; use get_layer or model.layers")
        return super().__getitem__(index)

    def add(self, layer):
        """Refused: a functional model's layers come from keras.Model(inputs, outputs)."""
        raise TypeError("keras.Model has no add(): its layers come from keras.Model(inputs, outputs); use "
                        "keras.Sequential to add layers one by one")

    # ------------------------------------------------------------ subclassing: call(x)

    def call(self, inputs, training=None):
        """The forward pass of a subclassed model (override it)."""
        raise NotImplementedError(f"{type(self).__name__} must define call(self, inputs) (or be made with "
                                  f"keras.Model(inputs, outputs))")

    @property
    def is_graph(self):
        """Whether this is a functional model with branches (its layers are no chain)."""
        return self._nodes is not None

    def _run_graph(self, x, stop_before_output=False):
        """The graph's values from input x: the output, or the values reaching the output's layer."""
        values = {id(self._input): x}
        for node in self._nodes:
            args = [values[id(parent)] for parent in node.parents]
            if stop_before_output and node is self._nodes[-1]:
                return args
            values[id(node)] = node.layer(args[0] if len(args) == 1 else args)
        if self._several:
            return [values[id(end)] for end in self._graph_ends[1]]
        return values[id(self._nodes[-1])]

    def forward(self, x):
        """The layers in order (functional), the graph (functional with branches), or call(x) (subclassed)."""
        if self.is_graph:
            return self._run_graph(x)
        if not self._subclassed:
            return super().forward(x)
        if "training" in inspect.signature(self.call).parameters:
            return self.call(x, training=self.training)
        return self.call(x)

    def prepare(self, x):
        """A subclassed model takes any input its call() takes, and builds on the first call."""
        if not self._subclassed:
            return super().prepare(x)
        x = x if isinstance(x, Tensor) else self._from_array(x)
        if not self.built:
            self.built_input_shape, self.built = tuple(x.shape[1:]), True
        return x

    def build(self, input_shape):
        """Build a functional model's layers; a subclassed one builds by running call() on one zero sample."""
        if not self._subclassed:
            return super().build(input_shape)
        if isinstance(input_shape, (tuple, list)) and len(input_shape) > 1 and input_shape[0] is None:
            input_shape = tuple(input_shape[1:])
        if not self.built:
            self._output_shape(tuple(input_shape))
            self.built_input_shape, self.built = tuple(input_shape), True
        return self

    def _validate(self, shape):
        """A functional model checks as Sequential does (with branches: the declared input shape, each layer
        then checks what reaches it); a subclassed one leaves it to call()."""
        if self.is_graph:
            if tuple(shape[1:]) != self._declared_shape:
                raise ValueError(f"{self.label()}: expects inputs of shape {(None,) + self._declared_shape} "
                                 f"(declared by Input(shape=...)), got {tuple(shape)}")
        elif not self._subclassed:
            super()._validate(shape)

    def _output_shape(self, input_shape):
        if self.is_graph:
            if self._several:
                raise NotImplementedError(f"{self.label()}: a model of several outputs has several output shapes: "
                                          f"read them from model.outputs")
            return self._nodes[-1]._sample_shape
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
        if self.is_graph:
            self._validate((None,) + tuple(input_shape))
            return self._output_shape(tuple(input_shape))
        if not self._subclassed:
            return super().compute_output_shape(input_shape)
        return self._output_shape(tuple(input_shape))

    def logits(self, x):
        """The output without a final softmax or sigmoid (a subclassed model's output as is)."""
        if self.is_graph:
            x = self.prepare(x)
            last = self._nodes[-1].layer
            args = self._run_graph(x, stop_before_output=True)
            if isinstance(last, (Softmax, Sigmoid)):
                return last.prepare(args[0])
            if isinstance(last, Activated) and last.activation_name in ("softmax", "sigmoid", None):
                return last.pre_activation(last.prepare(args[0]))
            if isinstance(last, (Activated, Elementwise)):
                raise ValueError(f"logits(): the model ends in {last.label()}, whose output is not logits")
            return last(args[0] if len(args) == 1 else args)
        if not self._subclassed:
            return super().logits(x)
        return self(x)  # NOTE: a subclass's final activation is inside call(): the loss takes its output as is

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False,
                layer_range=None):
        """Keras' table of layers (a subclassed model lists the layers it holds as attributes; a graph adds
        what each layer is connected to); show_trainable adds Keras' Trainable column, Keras' layout options
        change nothing here."""
        if self.is_graph:
            mark = (lambda layer: (trainable_mark(layer),)) if show_trainable else (lambda layer: ())
            rows = [("input_layer (InputLayer)", str((None,) + self._declared_shape), "0", "-") +
                    (("-",) if show_trainable else ())]
            names = {id(self._input): "input_layer"}
            for node in self._nodes:
                names[id(node)] = node.layer.name
                rows.append((f"{node.layer.name} ({type(node.layer).__name__})", str(node.shape),
                             f"{node.layer.count_params():,}", ", ".join(names[id(p)] for p in node.parents))
                            + mark(node.layer))
            header = ("Layer (type)", "Output Shape", "Param #", "Connected to") + \
                (("Trainable",) if show_trainable else ())
            widths = [max(len(r[i]) for r in rows + [header]) + 3 for i in range(len(header) - 1)]
            line = "_" * (sum(widths) + max(len(r[-1]) for r in rows + [header]))
            lines = [f'Model: "{self.name}"', line, "".join(c.ljust(w) for c, w in zip(header, widths)) + header[-1],
                     "=" * len(line)]
            for r in rows:
                lines += ["".join(c.ljust(w) for c, w in zip(r, widths)) + r[-1], "_" * len(line)]
            trainable, fixed = weight_counts(self)
            lines += [f"Total params: {trainable + fixed:,}", f"Trainable params: {trainable:,}",
                      f"Non-trainable params: {fixed:,}", "_" * len(line)]
            (print_fn or print)("\n".join(lines))
            return None
        if self._subclassed:
            if not self.built:
                raise ValueError("summary() of a subclassed model needs it built: call it on a batch first")
            return Sequential.summary(self, print_fn=print_fn, show_trainable=show_trainable)
        return super().summary(print_fn=print_fn, show_trainable=show_trainable)


__all__ = ["Model", "KerasTensor"]
