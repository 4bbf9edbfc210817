"""Keras' Sequential: nn.Sequential plus compile, fit, evaluate and predict with Keras' semantics.

A training step is the loop one writes by hand: forward, loss, zero_grad, backward, step; fit()
adds the batching, shuffling, validation, progress and callbacks around it. Data stay NumPy
arrays on the host; each batch is copied to the model's device as it is used."""
import itertools
import math
import os
import warnings

import numpy

from .. import nn
from ..device import to_device
from ..autograd import no_grad
from ..nn import functional as F
from ..nn.layers import Activated
from ..tensor import Tensor, concatenate, get_rng
from . import callbacks as callbacks_module
from . import losses, optimizers
from . import metrics as metrics_module
from .iterables import BatchesMixin, is_batches
from .layers import (Input, InputLayer, Trainable, apply_trainable, from_keras_layouts, model_call, outside_model_calls,
                     thawed, to_keras_layout)
from .progress import Progress

METRICS = ("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy",
           "mae", "mean_absolute_error", "mse", "mean_squared_error")
# NOTE: Keras' short and long names of the two error metrics; each is logged under the name given
ERRORS = {"mae": "mae", "mean_absolute_error": "mae", "mse": "mse", "mean_squared_error": "mse"}


def _count(value, name, low=1):
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _callback_list(callbacks, who):
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"{who}: callbacks must be a list of Callback objects, got {type(callbacks).__name__} "
                        f"(wrap a single callback in a list)")


def _verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return verbose


def _is_array(value):
    return isinstance(value, (numpy.ndarray, Tensor)) or hasattr(value, "__cuda_array_interface__")


def _array(value, what):
    """NumPy data from an array-like or a Tensor (any numeric dtype). As Keras, a list or tuple of arrays is one
    array per model input: the model's one input is its only entry."""
    if value is None:
        raise ValueError(f"{what} is missing")
    if isinstance(value, (list, tuple)) and value and any(_is_array(item) for item in value):
        if len(value) != 1:
            raise ValueError(f"{what} is a {type(value).__name__} of {len(value)} arrays, which Keras reads as one "
                             f"array per model input; the model has one input: pass one array (numpy.stack or "
                             f"numpy.concatenate the samples into it)")
        value = value[0]
    if isinstance(value, Tensor):
        array = value.numpy()
    else:
        try:
            array = numpy.asarray(value.get() if _is_array(value) and hasattr(value, "get") else value)
        except ValueError as e:  # NOTE: NumPy's "inhomogeneous shape" of a ragged nested list
            raise ValueError(f"{what}: a nested list must be rectangular, one shape per sample ({e})") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be numeric, got dtype {array.dtype}")
    if array.ndim == 0:
        raise ValueError(f"{what} must have a first (sample) axis, got a scalar")
    return array


def _weights_h5(path):
    """Whether `path` names a Keras 3 weights file (.weights.h5); anything else goes to Module.save/load,
    which names a bad path."""
    return isinstance(path, (str, os.PathLike)) and os.fspath(path).endswith(".weights.h5")


def _refuse_overwrite(path, overwrite, who):
    """overwrite=False and the file exists: an error naming it (it was accepted and the file overwritten).
    NOTE: Keras asks on the terminal (y/n) instead; a script here stops rather than waits."""
    if not overwrite and isinstance(path, (str, os.PathLike)) and os.path.exists(path):
        raise FileExistsError(f"{who}: {os.fspath(path)!r} exists and overwrite=False; give overwrite=True or "
                              f"another name")


def _metric_names(metrics, who):
    """(the names compile knows them by, the names they are logged under) of compile's metrics or
    weighted_metrics: names, or keras.metrics objects (logged under their own name= as Keras does)."""
    if isinstance(metrics, str):  # NOTE: Keras 3.15 refuses it too (Keras 2 read it as one metric)
        raise ValueError(f"compile: {who} must be a list of metrics, got the string {metrics!r}; write "
                         f"{who}=[{metrics!r}] (Keras 3 takes a list, a tuple or a dict)")
    if metrics is not None and not isinstance(metrics, (list, tuple)):
        raise TypeError(f"compile: {who} must be a list of metrics (names such as {', '.join(map(repr, METRICS))}, "
                        f"metric objects or functions), got {metrics!r}")
    names = [metrics_module.name_of(m) for m in metrics or []]
    labels = [m.name if isinstance(m, metrics_module.Metric) else o.name if isinstance(o, metrics_module.Metric)
              else m for m, o in zip(names, metrics or [])]
    for name in names:
        if isinstance(name, metrics_module.Metric):
            continue
        if not isinstance(name, str) or name.lower() not in METRICS:
            raise ValueError(f"compile: unknown metric {name!r}: use one of {', '.join(map(repr, METRICS))}, a "
                             f"keras.metrics.Metric object or a function fn(y_true, y_pred)")
    return names, labels


def _unique(labels):
    """The names with a repeated one numbered, as Keras logs two 'accuracy' metrics: 'accuracy', 'accuracy_1'."""
    taken, unique = set(), []
    for label in labels:
        name, number = label, 0
        while name in taken:
            number += 1
            name = f"{label}_{number}"
        taken.add(name)
        unique.append(name)
    return unique


class _Metric:
    """An accuracy: sum of hits per batch (a Tensor, no sync) and hits possible per sample; or an error
    ('mae', 'mse'): the sum of absolute or squared errors per batch and outputs per sample. `activation` is
    the final activation fit skipped for the loss (softmax, sigmoid), which an error applies again."""

    def __init__(self, name, kind, weighted=False, activation=None):
        self.name, self.kind, self.weighted, self.activation = name, kind, weighted, activation

    def hits(self, out, y, logits, weights=None):
        """(hits in the batch, hits possible per sample); a weighted metric given the samples' weights
        counts each sample's hits times its weight."""
        with no_grad():
            if self.kind in ("mae", "mse"):
                if logits and self.activation is not None:
                    out = F.softmax(out, axis=-1) if self.activation == "softmax" else F.sigmoid(out)
                if y.size != out.size:
                    raise ValueError(f"metric {self.name!r}: the targets (shape {tuple(y.shape)}) must have the "
                                     f"output's shape {tuple(out.shape)} (give one-hot targets for class outputs)")
                error = out - y.reshape(out.shape).astype(out.dtype)
                hit, per = (error.abs() if self.kind == "mae" else error * error), int(numpy.prod(out.shape[1:]))
            elif self.kind == "sparse":
                hit, per = out.argmax(axis=-1) == y, 1
            elif self.kind == "categorical":
                hit, per = out.argmax(axis=-1) == y.argmax(axis=-1), 1
            else:
                threshold = 0.0 if logits else 0.5  # sigmoid(z) > 0.5 exactly when z > 0
                # NOTE: as Keras 3, the labels are not rounded: a soft label 0.3 or 0.8 is never a hit
                hit, per = (out > threshold).astype(y.dtype) == y, int(numpy.prod(out.shape[1:]))
            if weights is None or not self.weighted:
                return hit.sum(), per
            return (hit.reshape((hit.shape[0], -1)).astype(weights.dtype).sum(axis=1) * weights).sum(), per


class _Stateful:
    """A keras.metrics.Metric object in compile (a subclass with state, or a function wrapped in one): given
    each batch with update_state(y_true, y_pred), as Keras gives it: y_true as the data hold it (floats as
    float32), y_pred the model's output with its final activation."""

    def __init__(self, name, metric, weighted=False, activation=None):
        self.name, self.metric, self.weighted, self.activation = name, metric, weighted, activation

    def update(self, out, y_true, logits, weights=None):
        with no_grad():
            if logits and self.activation is not None:
                out = F.softmax(out, axis=-1) if self.activation == "softmax" else F.sigmoid(out)
            self.metric._to(out.device)
            self.metric.update_state(y_true, out, sample_weight=weights if self.weighted else None)


def _keras_y(y):
    """The targets as Keras hands them to a metric: the data as given, floats as float32."""
    y = _array(y, "y")
    return y.astype("float32") if y.dtype.kind == "f" else y


class RunningMeans:
    """Sample-weighted running means of the loss and metrics, kept on the device until read."""

    def __init__(self):
        self.sums, self.per, self.stateful = {}, {}, {}
        self.seen, self.weight_sum, self.weighted = 0, None, set()

    def record(self, loss, metrics, out, yb, logits, wb=None, y_true=None):
        """Add one batch: its loss (a mean over it, weighted or not) and each metric's hits. NOTE: as Keras',
        compile's metrics are never weighted by sample_weight or class_weight; its weighted_metrics are
        weighted means (they divide by the weights' sum)."""
        self.seen += len(yb)
        self.add("loss", loss, weight=len(yb))
        if wb is not None:
            total = wb.detach().data.sum(dtype="float64")
            self.weight_sum = total if self.weight_sum is None else self.weight_sum + total
        for metric in metrics:
            if isinstance(metric, _Stateful):  # NOTE: as Keras, its state starts afresh each epoch and evaluate
                if metric.name not in self.stateful:
                    metric.metric.reset_state()
                    self.stateful[metric.name] = metric.metric
                metric.update(out, yb if y_true is None else y_true, logits, wb)
                continue
            self.add(metric.name, *metric.hits(out, yb, logits, wb))
            if metric.weighted and wb is not None:
                self.weighted.add(metric.name)

    def add(self, name, total, per_sample=1, weight=1):
        # NOTE: the weight multiplies the device array itself: a Python number there is a kernel
        # argument, where Tensor * number would first copy the number to the device.
        total = total.detach().data.astype("float64") * weight
        self.sums[name] = total if name not in self.sums else self.sums[name] + total
        self.per[name] = per_sample

    def logs(self):
        """{name: mean} as Python floats (one read per value: a device sync on a GPU), sorted by name."""
        weight_sum = None if self.weight_sum is None else float(self.weight_sum)
        # NOTE: weights summing to 0 give a weighted metric of 0, as Keras' divide_no_nan
        logs = {name: (float(self.sums[name]) / (weight_sum * self.per[name]) if weight_sum else 0.0)
                if name in self.weighted else float(self.sums[name]) / (self.seen * self.per[name])
                for name in self.sums}
        logs.update({name: _result(metric) for name, metric in self.stateful.items()})
        return dict(sorted(logs.items()))


def _result(metric):
    """A Metric's result() as a Python float (a sync on a GPU), or as Keras a float32 array where it gives
    several numbers (F1Score per class, Precision per threshold); an error naming the metric otherwise."""
    value = metric.result()
    try:
        array = numpy.asarray(value.numpy() if isinstance(value, Tensor) else value, dtype="float32")
    except (TypeError, ValueError):
        raise ValueError(f"metric {metric.name!r}: result() must return a number (a 0-d Tensor) or an array of "
                         f"them, got {value!r}") from None
    return float(array) if array.ndim == 0 else array


def _no_weights(who, **weights):
    """Refuse Keras' per-sample or per-class weights by name where they are not taken (with batches)."""
    for name, value in weights.items():
        if value is not None:
            raise NotImplementedError(f"{who}: {name} is not supported with an iterable of batches (got "
                                      f"{type(value).__name__}); pass x and y as arrays to weight samples")


def sample_weights(sample_weight, class_weight, y, who):
    """Keras' per-sample weights as float32 (N,) from sample_weight (one number per sample) or class_weight
    ({class index: weight}, 1 for a class not named; the class of a one-hot or probability row is its
    argmax, of a 0/1 target its rounded value), or None for neither; y as the loss's targets() gave it."""
    if sample_weight is not None and class_weight is not None:
        raise ValueError(f"{who}: give sample_weight or class_weight, not both (as Keras)")
    if class_weight is not None:
        if not isinstance(class_weight, dict):
            raise TypeError(f"{who}: class_weight must be a dict {{class index: weight}}, got "
                            f"{type(class_weight).__name__}")
        for key, value in class_weight.items():
            if isinstance(key, bool) or not isinstance(key, (int, numpy.integer)):
                raise ValueError(f"{who}: class_weight keys must be class indices (ints), got {key!r}")
            if isinstance(value, bool) or not isinstance(value, (int, float, numpy.number)) or not math.isfinite(value):
                raise ValueError(f"{who}: class_weight[{key}] must be a finite number, got {value!r}")
        classes = y.argmax(axis=-1) if y.ndim > 1 and y.shape[-1] != 1 else numpy.round(y.reshape(len(y), -1)[:, 0])
        table = {int(key): float(value) for key, value in class_weight.items()}
        return numpy.array([table.get(int(c), 1.0) for c in classes], dtype="float32")
    if sample_weight is None:
        return None
    weights = _array(sample_weight, f"{who}: sample_weight")
    if weights.ndim == 2 and weights.shape[1] == 1:
        weights = weights[:, 0]
    if weights.shape != (len(y),):
        raise ValueError(f"{who}: sample_weight must hold one number per sample, shape ({len(y)},), got "
                         f"{weights.shape}")
    if not numpy.all(numpy.isfinite(weights)):
        raise ValueError(f"{who}: sample_weight must be finite, got e.g. {weights[~numpy.isfinite(weights)][:3]}")
    return weights.astype("float32")


class Sequential(Trainable, BatchesMixin, nn.Sequential):
    """nn.Sequential with Keras' training API. The input shape comes from a first Input(shape=...)
    or from `input_shape=` on the first layer (the model is then built at once), else from the
    first batch. device=None puts the weights on the default device."""

    def __init__(self, layers=None, name=None, device=None):
        self._declared_shape = None
        if layers is not None and not isinstance(layers, (list, tuple)):
            raise TypeError(f"Sequential: layers must be a list of layers, got {type(layers).__name__} "
                            f"(wrap a single layer in a list: Sequential([layer]))")
        super().__init__(None, name=name)
        if device is not None:
            self.to(device)
        for layer in layers or []:
            self.add(layer)
        self.optimizer, self.loss, self.metric_names, self._metric_labels = None, None, [], []
        self.weighted_metric_names, self._weighted_labels = [], []
        self.stop_training = False

    def add(self, layer):
        """Append a layer; Input(shape=...) or input_shape= on the first layer builds the model."""
        if isinstance(layer, (Input, InputLayer)):  # NOTE: as Keras 3, not listed in a Sequential's layers
            if self.layers or self._declared_shape is not None:
                raise ValueError("Input(...) must be the first entry of a Sequential")
            self._declared_shape = layer._sample_shape if isinstance(layer, Input) else layer.declared._sample_shape
            return self
        super().add(layer)
        shape = self._declared_shape or getattr(layer, "keras_input_shape", None)
        if not self.built and len(self.layers) == 1 and shape is not None:
            self.build(shape)
        if self.built and self._traces_symbolic:
            self._traced()  # NOTE: as Keras, each layer's `output` exists once the input shape is known
        return self

    _traces_symbolic = True  # a functional keras.Model keeps the graph it was made from instead

    @property
    def inputs(self):
        """[the symbolic input], Keras' model.inputs, once the input shape is known (keras.Input or a build):
        with a layer's `output`, a feature extractor is keras.Model(inputs=model.inputs, outputs=layer.output)."""
        return [self._traced()[0]]

    @property
    def outputs(self):
        """[the symbolic output], Keras' model.outputs (see inputs)."""
        return [self._traced()[1]]

    def _traced(self):
        """(symbolic input, symbolic output) of the layers called in turn on keras.Input of the input shape,
        which also sets each layer's `output`; made again when the layers change."""
        shape = self._declared_input_shape() or (self.built_input_shape if self.built else None)
        if shape is None:
            raise ValueError(f"{self.label()}: the model has no inputs yet: give keras.Input(shape=...) as its first "
                             f"entry, or build it")
        key = (tuple(shape), tuple(id(layer) for layer in self.layers))
        cached = self.__dict__.get("_symbolic")
        if cached is None or cached[0] != key:
            from .functional import apply
            start = node = Input(shape)
            for layer in self.layers:
                node = apply(node, layer)
            self.__dict__["_symbolic"] = cached = (key, start, node)
        return cached[1], cached[2]

    def pop(self):
        """Remove the last layer and return it, as Keras (the declared input shape stays)."""
        if not self.layers:
            raise TypeError("pop: there are no layers in the model")
        declared = self._declared_input_shape()
        layer = self.layers.pop()
        if self._declared_shape is None and declared is not None and not self.layers:
            self._declared_shape = declared  # it came with the layer just removed
        return layer

    def build(self, input_shape):
        """Build for inputs of `input_shape`; Keras' (None, 28, 28, 1), with the batch axis, is accepted."""
        if isinstance(input_shape, (tuple, list)) and len(input_shape) > 1 and input_shape[0] is None:
            input_shape = tuple(input_shape[1:])
        return super().build(input_shape)

    def _declared_input_shape(self):
        """The input shape (no batch axis) given by Input(shape=...) or input_shape= on the first layer, or None."""
        if self._declared_shape is not None:
            return self._declared_shape
        return getattr(self.layers[0], "keras_input_shape", None) if self.layers else None

    def _validate(self, shape):
        """As Keras: inputs must have the declared input shape (a model declared for 8x8 images refuses 9x9
        ones, even where its layers could take them); then the layers check what reaches them."""
        declared = self._declared_input_shape()
        if declared is not None and len(shape) > 0 and tuple(shape[1:]) != tuple(declared):
            raise ValueError(f"{self.label()}: expects inputs of shape {(None,) + tuple(declared)} (declared by "
                             f"Input(shape=...) or input_shape=), got {tuple(shape)}"
                             f"{self._channel_order_hint(tuple(shape[1:]))}")
        super()._validate(shape)

    def __call__(self, x, training=None):
        """As Keras: model(x) without training= runs in inference mode (no dropout, BatchNormalization's
        moving statistics left alone), whatever mode fit() left the model in; training=True trains."""
        if training is None and outside_model_calls():
            training = False
        with model_call():
            return super().__call__(x, training)

    # ------------------------------------------------------------ Keras' model API

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False,
                layer_range=None):
        """Print the table of layers, output shapes and parameter counts (with print_fn when given), and
        return None, as Keras does (a notebook cell ending in summary() shows it once). show_trainable adds
        Keras' Trainable column (Y, N, -); line_length, positions, expand_nested and layer_range, Keras' layout
        options, change nothing here."""
        super().summary(print_fn=print_fn or print, show_trainable=show_trainable)

    def get_layer(self, name=None, index=None):
        """The layer called `name`, or at position `index`; ValueError naming the layers otherwise."""
        if (name is None) == (index is None):
            raise ValueError("get_layer needs a name or an index (one of them)")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, int) or not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"get_layer: index {index!r} is out of range for a model of {len(self.layers)} layers")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"get_layer: no layer named {name!r}; the layers are {[layer.name for layer in self.layers]}")

    # ------------------------------------------------------------ compile

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True):
        """Choose the optimizer ('rmsprop', Keras' default, 'adam', 'sgd', 'adamw', a keras.optimizers object
        or a tinygrad_cnn.optim optimizer), the loss (a name, a keras.losses object or a callable(y_true,
        y_pred)), metrics (['accuracy'], the named accuracies, or keras.metrics objects) and
        weighted_metrics (the same, weighted by fit's and evaluate's sample_weight). Keras' argument order;
        run_eagerly, steps_per_execution, jit_compile and auto_scale_loss change no result and are accepted
        (this runs eagerly, one step per batch); loss_weights (for several outputs) is not supported."""
        if isinstance(loss_weights, (list, tuple)) and \
                any(isinstance(m, (str, metrics_module.Metric)) for m in loss_weights):
            raise TypeError(f"compile: the third argument is loss_weights in Keras 3, got {loss_weights!r}; pass the "
                            f"metrics by name: compile(optimizer, loss, metrics={loss_weights!r})")
        if loss_weights is not None:
            raise NotImplementedError("compile: loss_weights (weights of several outputs' losses) is not supported: "
                                      "a model here has one output")
        self.optimizer = optimizers.get(optimizer)
        self.loss = None if loss is None else losses.get(loss)
        names, labels = _metric_names(metrics, "metrics")
        weighted_names, weighted_labels = _metric_names(weighted_metrics, "weighted_metrics")
        # NOTE: as Keras, a weighted metric named as an unweighted one is logged as 'weighted_<name>'
        weighted_labels = [f"weighted_{label}" if label in labels else label for label in weighted_labels]
        labels = _unique(labels + weighted_labels)
        self.metric_names, self._metric_labels = names, labels[:len(names)]
        self.weighted_metric_names, self._weighted_labels = weighted_names, labels[len(names):]
        self._compiled_metrics = metrics is not None or weighted_metrics is not None
        self._given_metrics = (list(metrics or []), list(weighted_metrics or []))
        return self

    @property
    def metrics_names(self):
        """Keras 3's list: [] before compile, ['loss'] after a compile without metrics, ['loss',
        'compile_metrics'] with metrics= or weighted_metrics= given (even []). NOTE: Keras 3 no longer lists
        the metrics' own names here; they are the keys of evaluate(..., return_dict=True) and of History."""
        if "_compiled_metrics" not in self.__dict__:
            return []
        return ["loss", "compile_metrics"] if self._compiled_metrics else ["loss"]

    def _ready(self, x):
        """Build the model (from x's shape) and the optimizer before the first step."""
        if self.loss is None or self.optimizer is None:
            raise ValueError("call model.compile(optimizer=..., loss=...) before fit() or evaluate()")
        if not self.built:
            self.build(x.shape[1:])
        self._validate((None,) + x.shape[1:])
        if isinstance(self.optimizer, optimizers.Optimizer):
            with thawed(self):
                self.optimizer.build(self.parameters())
            step_optimizer = self.optimizer.optimizer
        else:
            step_optimizer = self.optimizer
        if {id(p) for p in step_optimizer.params} != {id(p) for p in self.parameters()}:
            raise ValueError(f"the optimizer was made for other parameters than this model's "
                             f"({len(step_optimizer.params)} tensors against {len(self.parameters())}); "
                             f"give compile() a new one")
        return step_optimizer

    def _samples(self, x, y, who):
        """(the step optimizer, x, y) for fit, evaluate and the *_on_batch methods: x checked to hold
        samples first (a mean loss over none would be nan), then the model built and the data checked."""
        x = _array(x, f"{who}: x")
        if len(x) == 0:
            raise ValueError(f"{who}: no samples (x has shape {x.shape}): a loss or metric over none is undefined")
        return (self._ready(x),) + self._data(x, y, who)

    def _data(self, x, y, who):
        """x as float32 and y as the loss wants it, both checked against the model."""
        x = _array(x, f"{who}: x").astype("float32", copy=False)
        y = _array(y, f"{who}: y")
        if len(x) != len(y):
            raise ValueError(f"{who}: x and y must hold the same number of samples, got {len(x)} and {len(y)}")
        if len(x) == 0:
            raise ValueError(f"{who}: no samples (x has shape {x.shape}): a loss or metric over none is undefined")
        output_shape = (len(x),) + tuple(self.compute_output_shape(x.shape[1:]))
        return x, self.loss.targets(y, output_shape)

    def _metrics(self, y):
        out_shape = self.compute_output_shape(self.built_input_shape)
        found = []
        weighted = [False] * len(self.metric_names) + [True] * len(self.weighted_metric_names)
        for name, label, weighs in zip(self.metric_names + self.weighted_metric_names,
                                       self._metric_labels + self._weighted_labels, weighted):
            if isinstance(name, metrics_module.Metric):
                found.append(_Stateful(label, name, weighs, self._skipped_activation()))
                continue
            key = name.lower()
            if key in ERRORS:
                found.append(_Metric(label, ERRORS[key], weighs, self._skipped_activation()))
                continue
            if key in ("accuracy", "acc"):  # Keras' choice, from the shapes
                if out_shape[-1] == 1:
                    kind = "binary"
                elif y.ndim < len(out_shape) + 1:
                    kind = "sparse"
                else:
                    kind = "categorical"
            else:
                kind = key.split("_accuracy")[0].replace("sparse_categorical", "sparse")
            found.append(_Metric(label, kind, weighs))
        return found

    @staticmethod
    def _raw_y(metrics, y):
        """The targets as Keras gives them to Metric objects (floats as float32), when compile has one; else None."""
        return _keras_y(y) if any(isinstance(m, _Stateful) for m in metrics) else None

    def _skipped_activation(self):
        """The final activation ('softmax', 'sigmoid') fit skips for the loss (it takes the logits), or None."""
        skipped = not self.loss.from_logits and self.loss.activation is not None and \
            self._final_activation() == self.loss.activation
        return self.loss.activation if skipped else None

    def _final_activation(self):
        last = self.layers[-1] if self.layers else None
        if isinstance(last, nn.Softmax):
            return "softmax"
        if isinstance(last, nn.Sigmoid):
            return "sigmoid"
        return last.activation_name if isinstance(last, Activated) else None

    def _output(self, xb):
        """(output, whether it is logits): a softmax or sigmoid the loss can take as logits is skipped."""
        with model_call():  # NOTE: fit and evaluate have set the mode (train or eval): the call keeps it
            return self._output_in_mode(xb)

    def _output_in_mode(self, xb):
        loss = self.loss
        if not loss.from_logits and loss.activation is not None and self._final_activation() == loss.activation:
            return self.logits(xb), True
        return self(xb), loss.from_logits

    def _device(self):
        params = self.parameters()
        return params[0].device if params else self.device

    @staticmethod
    def _resident(device, *arrays):
        """The arrays on `device`, copied there once: on a GPU each batch is then gathered on the
        device instead of sent from the host (the tutorial's 47 MB of images fit many times over)."""
        # NOTE: on the CPU to_device returns the very same arrays, so nothing is copied there.
        return tuple(to_device(a, device) for a in arrays)

    def _batches(self, n, batch_size, order=None):
        for step, start in enumerate(range(0, n, batch_size)):
            yield step, (slice(start, start + batch_size) if order is None else order[start:start + batch_size])

    # ------------------------------------------------------------ fit

    def train_step(self, xb, yb, step_optimizer=None, wb=None):
        """One step on Tensors xb, yb (yb as the loss's targets() gives them; wb the samples' weights or
        None): forward, loss, zero_grad, backward, optimizer step. Returns (output, whether it is logits, loss)."""
        step_optimizer = step_optimizer or self._ready(xb.numpy())
        trains = apply_trainable(self)
        out, logits = self._output(xb)
        loss = self._loss(out, yb, logits, wb)
        step_optimizer.zero_grad()
        if trains:
            loss.backward()
            step_optimizer.step()
        else:  # NOTE: as Keras: with every weight frozen the step computes the loss and changes nothing
            warnings.warn(f"{self.label()}: the model has no trainable weights (every layer is trainable=False): "
                          f"training changes nothing", stacklevel=2)
        return out, logits, loss

    def _loss(self, out, yb, logits, wb=None):
        """The batch's loss: the mean, or Keras' weighted one with sample weights wb."""
        return self.loss.compute(out, yb, logits) if wb is None else self.loss.weighted(out, yb, logits, wb)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Train for epochs initial_epoch..epochs-1 over NumPy x, y (any numeric dtype; x cast to
        float32) in batches of batch_size (32), shuffled each epoch from the global generator
        (tinygrad_cnn.manual_seed). validation_data=(x, y), or validation_split: the last fraction of
        the samples, taken before shuffling. Returns a History; logs use Keras' keys.

        x may instead be an iterable of (x, y) batches with y left out (a generator, a list of pairs, a
        DataLoader), as Keras takes a dataset: each epoch is one pass over it (steps_per_epoch batches of
        one running iterator when given); validation_data may be one too, also beside arrays. With arrays,
        steps_per_epoch=k makes an epoch the next k batches of a running pass over x (shuffled as it
        starts; an epoch ends early where the pass ends, with a warning) and validation_steps the
        validation its first batches, as Keras. Keras' argument order.

        sample_weight (one number per sample) or class_weight ({class index: weight}) weight each
        sample's loss as Keras does (sum(weight x loss) / batch size; `metrics` stay unweighted, and
        `weighted_metrics` are weighted means); validation_split splits sample_weight too, validation_data
        may be (x, y, sample_weight); the validation is never class-weighted, as in Keras. Arrays only (not
        with batches)."""
        batch_size = 32 if batch_size is None else _count(batch_size, "batch_size")
        epochs, initial_epoch = _count(epochs, "epochs", 0), _count(initial_epoch, "initial_epoch", 0)
        verbose, validation_freq = _verbose(verbose), _count(validation_freq, "validation_freq")
        if not isinstance(shuffle, (bool, numpy.bool_)):
            raise TypeError(f"fit: shuffle must be True or False, got {shuffle!r}")
        _callback_list(callbacks, "fit")
        if is_batches(x, y):
            steps_per_epoch = None if steps_per_epoch is None else _count(steps_per_epoch, "steps_per_epoch")
            validation_steps = None if validation_steps is None else _count(validation_steps, "validation_steps")
            _no_weights("fit", class_weight=class_weight, sample_weight=sample_weight)
            return self._fit_batches(x, epochs, verbose, callbacks, validation_data, initial_epoch, steps_per_epoch,
                                     validation_steps, validation_freq)
        given_y = y
        step_optimizer, x, y = self._samples(x, y, "fit")
        w = sample_weights(sample_weight, class_weight, y, "fit")
        metrics = self._metrics(y)
        raw = self._raw_y(metrics, given_y)
        if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
                or not 0 <= validation_split < 1:
            raise ValueError(f"validation_split must be a number in [0, 1), got {validation_split!r}")
        steps_per_epoch = None if steps_per_epoch is None else _count(steps_per_epoch, "steps_per_epoch")
        validation_steps = None if validation_steps is None else _count(validation_steps, "validation_steps")
        val = val_batches = None
        if validation_data is not None and is_batches(validation_data, None):
            val_batches = validation_data  # an iterable of (x, y) batches, as with an iterable x
        elif validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be a pair (x_val, y_val), a triple (x_val, y_val, "
                                 "val_sample_weight) or an iterable of (x, y) batches")
            val = self._data(*validation_data[:2], "fit: validation_data")
            val += (sample_weights(validation_data[2] if len(validation_data) == 3 else None, None, val[1],
                                   "fit: validation_data"), self._raw_y(metrics, validation_data[1]))
        elif validation_split:
            split = int(math.floor(len(x) * (1 - validation_split)))
            if split == 0 or split == len(x):
                raise ValueError(f"validation_split={validation_split} leaves no training or no validation samples "
                                 f"out of {len(x)}")
            # NOTE: as Keras, the validation samples keep their sample_weight, but class_weight weights training only
            val_w = None if w is None or class_weight is not None else w[split:]
            x, y, val = x[:split], y[:split], (x[split:], y[split:], val_w, None if raw is None else raw[split:])
            w = None if w is None else w[:split]
            raw = None if raw is None else raw[:split]
        device = self._device()
        x, y = self._resident(device, x, y)
        w, raw = (None if a is None else self._resident(device, a)[0] for a in (w, raw))
        if val is not None:
            val = tuple(None if part is None else self._resident(device, part)[0] for part in val)
            if validation_steps is not None:  # the first batches, as Keras
                val = tuple(None if part is None else part[:validation_steps * (validation_batch_size or batch_size)]
                            for part in val)
        steps = -(-len(x) // batch_size)
        if steps_per_epoch is not None and steps_per_epoch > steps:
            warnings.warn(f"fit: steps_per_epoch={steps_per_epoch} is more than the {steps} batches of x (batch_size "
                          f"{batch_size}): each epoch runs {steps}", stacklevel=2)
        history = callbacks_module.History()
        hooks = callbacks_module.CallbackList(list(callbacks or []) + [history], self,
                                              {"epochs": epochs, "steps": steps_per_epoch or steps, "verbose": verbose})
        batch_logs_wanted = hooks.wants("on_train_batch_end")
        self.stop_training = False
        hooks.call("on_train_begin", None)
        logs = {}
        batches, left = None, 0  # the pass over x that epochs take their batches from, its batches not yet taken
        for epoch in range(initial_epoch, epochs):
            hooks.call("on_epoch_begin", epoch, None)
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
            self.train()
            if not left:  # a new pass, shuffled anew
                order = get_rng().permutation(len(x)) if shuffle else None
                order = None if order is None else self._resident(device, order)[0]
                batches, left = self._batches(len(x), batch_size, order), steps
            # NOTE: as Keras 3, steps_per_epoch=k takes the next k batches of the running pass, not the first
            # k again: an epoch ends early where the pass ends (with a warning), and the next starts a new pass
            if steps_per_epoch is not None and left < steps_per_epoch <= steps:
                warnings.warn(f"fit: epoch {epoch + 1} runs the {left} batch(es) left in this pass over x, fewer than "
                              f"steps_per_epoch={steps_per_epoch} (as Keras; x has {steps} batches of {batch_size})",
                              stacklevel=2)
            taken = min(left, steps_per_epoch or steps)
            left -= taken
            running, progress = RunningMeans(), Progress(taken, verbose)
            for step, (_, index) in enumerate(itertools.islice(batches, taken)):
                hooks.call("on_train_batch_begin", step, None)
                xb, yb = Tensor(x[index], device=device), Tensor(y[index], device=device)
                wb = None if w is None else Tensor(w[index], device=device)
                out, logits, loss = self.train_step(xb, yb, step_optimizer, wb)
                running.record(loss, metrics, out, yb, logits, wb, None if raw is None else Tensor(raw[index],
                                                                                                  device=device))
                batch_logs = running.logs() if batch_logs_wanted else None
                hooks.call("on_train_batch_end", step, batch_logs)
                if progress.due(step + 1):
                    progress.update(step + 1, batch_logs or running.logs())
                if self.stop_training:
                    break
            logs = running.logs()
            if (val is not None or val_batches is not None) and (epoch + 1) % validation_freq == 0:
                val_logs = (self._evaluate(*val[:2], validation_batch_size or batch_size, hooks, metrics, 0, val[2],
                                           val[3])
                            if val_batches is None
                            else self._evaluate_batches(val_batches, validation_steps, hooks, 0, "fit: validation_data"))
                logs.update({f"val_{key}": value for key, value in val_logs.items()})
            progress.finish(logs)
            hooks.call("on_epoch_end", epoch, logs)
            if self.stop_training:
                break
        hooks.call("on_train_end", logs)
        return history

    # ------------------------------------------------------------ evaluate and predict

    def _evaluate(self, x, y, batch_size, hooks, metrics, verbose, w=None, raw=None):
        """Mean loss and metrics over prepared x, y (weighted by w when given; raw: the targets as Keras gives
        them to Metric objects, or None), without a graph and in eval mode."""
        device, was_training = self._device(), self.training
        x, y = self._resident(device, x, y)
        w, raw = (None if a is None else self._resident(device, a)[0] for a in (w, raw))
        self.eval()
        running, progress = RunningMeans(), Progress(-(-len(x) // batch_size), verbose)
        batch_logs_wanted = hooks.wants("on_test_batch_end")
        hooks.call("on_test_begin", None)
        try:
            with no_grad():
                for step, index in self._batches(len(x), batch_size):
                    hooks.call("on_test_batch_begin", step, None)
                    xb, yb = Tensor(x[index], device=device), Tensor(y[index], device=device)
                    wb = None if w is None else Tensor(w[index], device=device)
                    out, logits = self._output(xb)
                    running.record(self._loss(out, yb, logits, wb), metrics, out, yb, logits, wb,
                                   None if raw is None else Tensor(raw[index], device=device))
                    # NOTE: as Keras, the running means so far (read only when a callback wants them: a sync)
                    batch_logs = running.logs() if batch_logs_wanted else None
                    hooks.call("on_test_batch_end", step, batch_logs)
                    if progress.due(step + 1):
                        progress.update(step + 1, batch_logs or running.logs())
        finally:
            self.train(was_training)
        logs = running.logs()
        progress.finish(logs)
        hooks.call("on_test_end", logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None, callbacks=None,
                 return_dict=False):
        """The loss, or [loss, metric, ...] (a dict with return_dict=True), over x, y in batches of
        batch_size (32), or over an iterable x of (x, y) batches (the first `steps` batches when given).
        Keras' argument order; sample_weight (arrays only) weights the loss and metrics as in fit."""
        batch_size = 32 if batch_size is None else _count(batch_size, "batch_size")
        verbose = _verbose(verbose)
        _callback_list(callbacks, "evaluate")
        if is_batches(x, y):
            _no_weights("evaluate", sample_weight=sample_weight)
            hooks = callbacks_module.CallbackList(callbacks, self, {"steps": steps, "verbose": verbose})
            logs = self._evaluate_batches(x, None if steps is None else _count(steps, "steps"), hooks, verbose)
            if return_dict:
                return logs
            values = [logs["loss"]] + [logs[name] for name in self._last_metric_names]
            return values[0] if len(values) == 1 else values
        given_y = y
        _, x, y = self._samples(x, y, "evaluate")
        w, metrics = sample_weights(sample_weight, None, y, "evaluate"), self._metrics(y)
        raw = self._raw_y(metrics, given_y)
        if steps is not None:  # Keras: the first `steps` batches (it was ignored with arrays)
            end = _count(steps, "steps") * batch_size
            x, y, w, raw = x[:end], y[:end], None if w is None else w[:end], None if raw is None else raw[:end]
        hooks = callbacks_module.CallbackList(callbacks, self, {"steps": -(-len(x) // batch_size), "verbose": verbose})
        return self._returned(self._evaluate(x, y, batch_size, hooks, metrics, verbose, w, raw), metrics, return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's outputs (its final activation included) for x, as one NumPy array, computed
        in batches of batch_size (32) in eval mode (the first `steps` batches when given); x may be an
        iterable of batches (x or (x, y))."""
        batch_size = 32 if batch_size is None else _count(batch_size, "batch_size")
        verbose = _verbose(verbose)
        _callback_list(callbacks, "predict")
        if is_batches(x, None):
            return self._predict_batches(x, None if steps is None else _count(steps, "steps"), verbose, callbacks)
        x = _array(x, "predict: x").astype("float32", copy=False)
        if steps is not None:  # Keras: the first `steps` batches (it was ignored with arrays)
            x = x[:_count(steps, "steps") * batch_size]
        if not self.built:
            self.build(x.shape[1:])
        self._validate((None,) + x.shape[1:])
        steps = -(-len(x) // batch_size)
        hooks = callbacks_module.CallbackList(callbacks, self, {"steps": steps, "verbose": verbose})
        device, was_training = self._device(), self.training
        (x,) = self._resident(device, x)
        progress, outputs = Progress(steps, verbose), []
        self.eval()
        hooks.call("on_predict_begin", None)
        try:
            with no_grad():
                for step, index in self._batches(len(x), batch_size):
                    hooks.call("on_predict_batch_begin", step, None)
                    outputs.append(self(Tensor(x[index], device=device)))  # read back once, at the end
                    hooks.call("on_predict_batch_end", step, {"outputs": outputs[-1]})  # NOTE: Keras' logs
                    if progress.due(step + 1):
                        progress.update(step + 1, {})
        finally:
            self.train(was_training)
        progress.finish({})
        hooks.call("on_predict_end", None)
        if outputs and isinstance(outputs[0], list):  # a functional model of several outputs: one array each
            return [concatenate([batch[i] for batch in outputs]).numpy() for i in range(len(outputs[0]))]
        if not outputs:
            return numpy.zeros((0,) + tuple(self.compute_output_shape(x.shape[1:])), dtype="float32")
        return concatenate(outputs).numpy()

    # ------------------------------------------------------------ one batch

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One training step on the arrays x, y as one batch; its loss (taken before the step), or
        [loss, metric, ...] (a dict with return_dict=True), as Keras 3: for this batch alone.
        Keras' argument order; sample_weight or class_weight weight it as in fit."""
        given_y = y
        step_optimizer, x, y = self._samples(x, y, "train_on_batch")
        w = sample_weights(sample_weight, class_weight, y, "train_on_batch")
        metrics, device = self._metrics(y), self._device()
        raw = self._raw_y(metrics, given_y)
        self.train()
        xb, yb = Tensor(x, device=device), Tensor(y, device=device)
        wb = None if w is None else Tensor(w, device=device)
        out, logits, loss = self.train_step(xb, yb, step_optimizer, wb)
        running = RunningMeans()
        running.record(loss, metrics, out, yb, logits, wb, None if raw is None else Tensor(raw, device=device))
        return self._returned(running.logs(), metrics, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """evaluate() on the arrays x, y as one batch (in eval mode, no graph, no callbacks); Keras'
        argument order; sample_weight weights it as in evaluate."""
        given_y = y
        _, x, y = self._samples(x, y, "test_on_batch")
        w, metrics = sample_weights(sample_weight, None, y, "test_on_batch"), self._metrics(y)
        logs = self._evaluate(x, y, len(x), callbacks_module.CallbackList(None, self, {}), metrics, 0, w,
                              self._raw_y(metrics, given_y))
        return self._returned(logs, metrics, return_dict)

    def predict_on_batch(self, x):
        """predict() on the array x as one batch: (0, ...) outputs for no samples, as Keras."""
        x = _array(x, "predict_on_batch: x")
        return self.predict(x, batch_size=max(len(x), 1), verbose=0)

    @staticmethod
    def _returned(logs, metrics, return_dict):
        """Keras' return value: the logs, or the loss alone, or [loss, metric, ...]."""
        if return_dict:
            return logs
        values = [logs["loss"]] + [logs[m.name] for m in metrics]
        return values[0] if len(values) == 1 else values

    # ------------------------------------------------------------ weights

    def get_weights(self):
        """Copies of the parameters and buffers as NumPy arrays, in state_dict() order, each in Keras' layout
        (a conv kernel (KH, KW, channels, filters), a dense kernel (inputs, units)), as Keras gives them:
        `model.set_weights(keras_model.get_weights())` copies a real Keras model's weights."""
        owners = dict(self.named_modules())
        return [to_keras_layout(owners[name.rpartition(".")[0]], name.rpartition(".")[2], value)
                for name, value in self.state_dict().items()]

    def set_weights(self, weights):
        """Load arrays in get_weights() order and layouts (Keras'); count and shapes are checked first."""
        names = list(self.state_dict())
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"set_weights: weights must be a list of arrays (as get_weights() returns), got "
                            f"{type(weights).__name__}")
        weights = list(weights)
        if len(weights) != len(names):
            raise ValueError(f"set_weights: the model has {len(names)} weight arrays, got {len(weights)}")
        self.load_state_dict(from_keras_layouts(self, list(zip(names, weights)), "set_weights"))

    @property
    def output_shape(self):
        """The outputs' shape with Keras' batch axis, (None, 10); AttributeError before the model is built."""
        if not self.built:
            raise AttributeError(f"{self.label()}.output_shape: the model is not built yet (give it an Input, or "
                                 f"call it on a batch)")
        return (None,) + tuple(self.compute_output_shape(self.built_input_shape))

    def to_json(self, **kwargs):
        """The model's architecture as Keras' JSON (the config.json of a .keras file), for
        keras.models.model_from_json; no weights (json.dumps' arguments, such as indent, pass through)."""
        import json
        from .saving import model_config
        if getattr(self, "_subclassed", False) or getattr(self, "is_graph", False):
            self.get_config()  # raises, naming what to do
        return json.dumps(model_config(self), **kwargs)

    def get_config(self):
        """Keras' config of the model: each layer's config and the input shape once known (a functional chain's
        as Keras' Functional); `Sequential.from_config(config)` rebuilds it with fresh weights."""
        if getattr(self, "_subclassed", False) or getattr(self, "is_graph", False):
            raise NotImplementedError(f"get_config: a {'subclassed model' if getattr(self, '_subclassed', False) else 'functional model with branches'} "
                                      f"has no config here; rebuild it in code and copy the weights "
                                      f"(new.set_weights(model.get_weights()))")
        from .saving import in_memory, model_config
        return in_memory(model_config(self)["config"])

    @classmethod
    def from_config(cls, config):
        """A new model with fresh weights from get_config()'s dict, or from a Keras Sequential's or functional
        chain's config."""
        from .saving import model_from_config
        if not isinstance(config, dict):
            raise TypeError(f"{cls.__name__}.from_config: config must be a dict (as get_config() returns), got "
                            f"{type(config).__name__}")
        kind = "Functional" if "input_layers" in config or "output_layers" in config else "Sequential"
        return model_from_config({"class_name": kind, "config": config}, f"{cls.__name__}.from_config")[0]

    def save(self, path, overwrite=True):
        """A name ending in .keras: the Keras 3 file real Keras opens (keras.models.load_model), with the
        architecture; any other: Module.save (the weights as .safetensors or .npz), atomically.
        overwrite=False refuses an existing file (FileExistsError)."""
        _refuse_overwrite(path, overwrite, "save")
        if os.fspath(path).endswith(".keras"):
            from .saving import save_model
            return save_model(self, path)
        return super().save(path)

    def save_weights(self, path, overwrite=True):
        """The weights, atomically: a name ending in .weights.h5 writes Keras 3's file (what Keras'
        load_weights reads); any other Module.save (.safetensors or .npz). overwrite=False refuses an
        existing file (FileExistsError)."""
        _refuse_overwrite(path, overwrite, "save_weights")
        if isinstance(path, (str, os.PathLike)) and os.fspath(path).endswith(".h5") and not _weights_h5(path):
            raise ValueError(f"save_weights: {os.fspath(path)!r}: Keras 3 writes weights to a name ending in "
                             f"'.weights.h5' (as here), or this project's .safetensors / .npz")
        if _weights_h5(path):
            from .saving import save_weights
            return save_weights(self, path)
        return self.save(path, overwrite)

    def load_weights(self, path):
        """Weights saved by save_weights: a .weights.h5 file (Keras 3's, from Keras or from here), or
        Module.load's formats."""
        if _weights_h5(path):
            from .saving import load_weights
            return load_weights(self, path)
        return self.load(path)


def clone_model(model, input_tensors=None, clone_function=None, call_function=None, recursive=False, **kwargs):
    """A new model of the same layers with fresh weights, not compiled, as Keras' clone_model (for a
    Sequential or a functional chain, which stays a keras.Model): from_config(get_config())."""
    for name, value in (("input_tensors", input_tensors), ("clone_function", clone_function),
                        ("call_function", call_function)):
        if value is not None:
            raise NotImplementedError(f"clone_model: {name} is not supported here; build the new model in code")
    if not isinstance(model, Sequential):
        raise TypeError(f"clone_model: model must be a keras Sequential or Model, got {type(model).__name__}")
    from .layers import Layer
    from .registry import custom_object_scope, get_registered_name
    # NOTE: as Keras' (each layer's own class.from_config): your own layers need no registering to be cloned
    own = {get_registered_name(type(layer)): type(layer) for layer in model.layers if isinstance(layer, Layer)}
    with custom_object_scope(own):
        return Sequential.from_config(model.get_config())


def model_from_json(json_string, custom_objects=None):
    """A new model, fresh weights, from to_json()'s string (or the JSON of a Keras Sequential or functional chain)."""
    import json
    from .registry import loading
    from .saving import model_from_config
    with loading(custom_objects):
        return model_from_config(json.loads(json_string), "model_from_json")[0]
