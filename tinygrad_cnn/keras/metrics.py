"""Keras' metric objects: running values with update_state(y_true, y_pred), result() and reset_state(),
usable on their own (arrays or Tensors) and in compile(metrics=[...]), where each accuracy object
stands for the accuracy fit() and evaluate() compute by that name."""
import re

import numpy

from ..device import module_for, to_device
from ..tensor import Tensor
from .offered import not_offered


def _numpy(value):
    if isinstance(value, Tensor):
        return value.numpy()
    if hasattr(value, "get") and hasattr(value, "__cuda_array_interface__"):
        return value.get()
    return numpy.asarray(value)


_NAMES_TAKEN = {}


def _auto_name(cls):
    """Keras' name for an unnamed metric: the class name in snake case, numbered after the first (hits, hits_1)."""
    base = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", cls.__name__).lower()
    number = _NAMES_TAKEN.get(base, 0)
    _NAMES_TAKEN[base] = number + 1
    return base if number == 0 else f"{base}_{number}"


class Variable(Tensor):
    """A metric's state (Keras' Variable): a Tensor that `assign`, `assign_add` and `assign_sub` replace in
    place, so that `self.true_positives.assign_add(ops.sum(values))` and `self.tp / (self.tp + self.fp)`
    read as in Keras. Never part of a graph."""

    name = None

    def __init__(self, value, name=None, device=None):
        super().__init__(value, device=device)
        self.name = name

    def assign(self, value):
        """Set the value (a number, an array or a Tensor), cast to the variable's dtype; the shape stays."""
        data = value.detach().data if isinstance(value, Tensor) else value
        if not hasattr(data, "__cuda_array_interface__"):
            data = numpy.asarray(_numpy(data))  # a number, a NumPy scalar, a list
        array = to_device(data, self.device)
        if tuple(array.shape) != self.shape:
            try:
                array = self.xp.broadcast_to(array, self.shape)
            except ValueError:
                raise ValueError(f"metric variable {self.name!r}: can't assign a value of shape {tuple(array.shape)} "
                                 f"to a variable of shape {self.shape}") from None
        self.data = self.xp.array(array, dtype=self.dtype)
        return self

    def assign_add(self, value):
        """Add to the value in place (Keras' assign_add)."""
        return self.assign(self.detach() + value)

    def assign_sub(self, value):
        """Subtract from the value in place (Keras' assign_sub)."""
        return self.assign(self.detach() - value)

    @property
    def value(self):
        """The value as a plain Tensor (Keras' variable.value)."""
        return self.detach()

    def _to(self, device):
        self.data, self.device, self.xp = to_device(self.data, device), device, module_for(device)

    def __repr__(self):
        return f"<Variable name={self.name}, shape={self.shape}, dtype={self.dtype.name}, value={self.numpy()}>"


_INITIALIZERS = {"zeros": numpy.zeros, "ones": numpy.ones}


class Metric:
    """Keras' base class for a metric with state: subclass it with add_variable() in __init__ (after
    super().__init__(name=name, **kwargs)), update_state(y_true, y_pred, sample_weight=None) and
    result(); compile(metrics=[...]) resets it as each epoch and each evaluate starts and logs result()
    under its name. reset_state() sets every variable back to zeros, as Keras' does."""

    default_name = None  # None: the class name in snake case, as Keras' auto_name

    def __init__(self, name=None, dtype=None):
        self.name = name or self.default_name or _auto_name(type(self))
        self.dtype = "float32" if dtype is None else numpy.dtype(dtype).name
        self._variables = []

    def add_variable(self, shape, initializer, dtype=None, aggregation="sum", name=None):
        """A state Variable of `shape` ('zeros' or 'ones', a number or a callable(shape, dtype))."""
        if "_variables" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__(name=name, **kwargs) in __init__ before "
                               f"add_variable")
        shape = () if shape is None else tuple(shape)
        dtype = numpy.dtype(dtype or self.dtype)
        if isinstance(initializer, str):
            if initializer not in _INITIALIZERS:
                raise ValueError(f"add_variable: initializer {initializer!r} is not offered for a metric's state; "
                                 f"use 'zeros', 'ones' or a number")
            value = _INITIALIZERS[initializer](shape, dtype)
        elif callable(initializer):
            value = numpy.asarray(_numpy(initializer(shape, dtype)), dtype)
        elif initializer is None:
            value = numpy.zeros(shape, dtype)
        else:
            value = numpy.full(shape, _numpy(initializer), dtype)
        variable = Variable(value, name)
        self._variables.append(variable)
        return variable

    def add_weight(self, shape=(), initializer=None, dtype=None, name=None):
        """add_variable under its older name (Keras keeps both)."""
        return self.add_variable(shape, initializer, dtype, name=name)

    @property
    def variables(self):
        """The state variables, in the order made."""
        return list(self.__dict__.get("_variables", []))

    def reset_state(self):
        """Every variable back to zeros (Keras' default; override for other starting values)."""
        for variable in self.variables:
            variable.assign(numpy.zeros(variable.shape, variable.dtype))

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add a batch to the state (a subclass says how)."""
        raise NotImplementedError(f"{type(self).__name__} must define update_state(y_true, y_pred, sample_weight=None)")

    def result(self):
        """The metric's value from the state (a subclass says how)."""
        raise NotImplementedError(f"{type(self).__name__} must define result()")

    def get_config(self):
        """Keras' config of a metric, {'name': ..., 'dtype': ...}; a subclass whose __init__ takes more adds them
        (config = super().get_config(); config.update(...)), as in Keras."""
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        """A new metric from get_config()'s dict: cls(**config), as Keras' default."""
        return cls(**config)

    def _to(self, device):
        """The state on `device` (the model's), so that update_state mixes it with the batches' Tensors."""
        for variable in self.variables:
            variable._to(device)

    def __call__(self, y_true, y_pred=None, sample_weight=None):
        """update_state, then result()."""
        self.update_state(y_true, y_pred, sample_weight=sample_weight)
        return self.result()

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class _MeanMetric(Metric):
    """A running, sample-weighted mean of per-sample values (the built-in metrics' base, Keras' Mean)."""

    def __init__(self, name=None, dtype=None):
        super().__init__(name, dtype)
        self.reset_state()

    def reset_state(self):
        """Forget everything seen so far."""
        self.total, self.count = 0.0, 0.0

    def values(self, y_true, y_pred):
        """Per-sample values of one batch (NumPy)."""
        raise NotImplementedError

    def update_state(self, y_true, y_pred=None, sample_weight=None):
        """Add a batch: y_true and y_pred as arrays or Tensors, sample_weight optional (one per sample)."""
        values = numpy.asarray(_numpy(self.values(_numpy(y_true), _numpy(y_pred))), dtype="float64")
        if values.ndim > 1:  # NOTE: as Keras, each sample's mean first: a sample weight weighs the sample once
            values = values.reshape(len(values), int(numpy.prod(values.shape[1:]))).mean(axis=1)
        values = values.reshape(-1)
        weights = numpy.ones_like(values) if sample_weight is None else \
            numpy.broadcast_to(numpy.asarray(_numpy(sample_weight), "float64").reshape(-1), values.shape)
        self.total += float((values * weights).sum())
        self.count += float(weights.sum())

    def result(self):
        """The mean so far, a 0-d Tensor (0 before any update, as Keras)."""
        return Tensor(numpy.float32(self.total / self.count if self.count else 0.0))

    def _to(self, device):
        pass  # NOTE: the running sums are Python floats


class Mean(_MeanMetric):
    """The running mean of the values given: update_state(values)."""

    default_name = "mean"

    def update_state(self, values, y_pred=None, sample_weight=None):
        """Add values (and their weights)."""
        super().update_state(values, None, sample_weight)

    def values(self, y_true, y_pred):
        """The values themselves."""
        return y_true


class MeanMetricWrapper(Mean):
    """A metric function fn(y_true, y_pred) as a metric (Keras' MeanMetricWrapper, what compile makes of one):
    the running mean of its values, each sample counted once (a function returning one number per batch
    counts as one sample: Keras' plain mean over batches)."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"MeanMetricWrapper: fn must be a function fn(y_true, y_pred), got {fn!r}")
        self.fn, self.kwargs = fn, kwargs
        super().__init__(name or getattr(fn, "__name__", None) or "mean_metric_wrapper", dtype)

    def update_state(self, y_true, y_pred=None, sample_weight=None):
        """Add fn(y_true, y_pred) of a batch (y_true and y_pred as Tensors, for keras.ops)."""
        values = self.fn(y_true, y_pred, **self.kwargs)
        super().update_state(values, None, sample_weight)


class Accuracy(_MeanMetric):
    """How often y_pred equals y_true exactly (Keras' Accuracy)."""

    default_name = "accuracy"

    def values(self, y_true, y_pred):
        """1 where y_pred equals y_true, else 0."""
        return (y_true.reshape(y_pred.shape) == y_pred) if y_true.size == y_pred.size else y_true == y_pred


class SparseCategoricalAccuracy(_MeanMetric):
    """How often the class index y_true is the argmax of y_pred's last axis."""

    default_name = "sparse_categorical_accuracy"

    def values(self, y_true, y_pred):
        """1 where the argmax of y_pred is the class y_true."""
        return y_pred.argmax(-1) == y_true.reshape(y_pred.shape[:-1])


class CategoricalAccuracy(_MeanMetric):
    """How often the argmax of the one-hot y_true is the argmax of y_pred."""

    default_name = "categorical_accuracy"

    def values(self, y_true, y_pred):
        """1 where the argmaxes of y_pred and y_true agree."""
        return y_pred.argmax(-1) == y_true.argmax(-1)


class BinaryAccuracy(_MeanMetric):
    """How often (y_pred > threshold) equals y_true, per output (a soft label such as 0.3 never does)."""

    default_name = "binary_accuracy"

    def __init__(self, name=None, dtype=None, threshold=0.5):
        super().__init__(name, dtype)
        self.threshold = float(threshold)

    def get_config(self):
        """Keras' config: name, dtype and threshold."""
        return {**super().get_config(), "threshold": self.threshold}

    def values(self, y_true, y_pred):
        """1 per output where (y_pred > threshold), cast to y_true's dtype, equals y_true."""
        # NOTE: as Keras 3, the labels are not rounded: a soft label 0.3 or 0.8 is never a hit
        return (y_pred > self.threshold).astype(y_true.dtype) == y_true.reshape(y_pred.shape)


_KINDS = {SparseCategoricalAccuracy: "sparse_categorical_accuracy", CategoricalAccuracy: "categorical_accuracy",
          BinaryAccuracy: "binary_accuracy"}


def name_of(metric):
    """What compile() knows a metric by: a string as given, an accuracy object by its kind; any other Metric
    (a subclass with state, Mean, Accuracy, a BinaryAccuracy of another threshold) stays the object, and a
    function fn(y_true, y_pred) becomes a MeanMetricWrapper, both updated batch by batch."""
    if isinstance(metric, Metric):
        for kind, name in _KINDS.items():
            if type(metric) is kind and not (kind is BinaryAccuracy and metric.threshold != 0.5):
                return name
        return metric
    if callable(metric) and not isinstance(metric, str):
        return MeanMetricWrapper(metric)
    return metric


def get(identifier):
    """A metric object from its class name or Keras' snake-case name."""
    table = {cls.default_name: cls for cls in (Mean, Accuracy, SparseCategoricalAccuracy, CategoricalAccuracy,
                                               BinaryAccuracy)}
    table.update({cls.__name__: cls for cls in table.values()})
    if isinstance(identifier, Metric):
        return identifier
    if identifier not in table:
        raise ValueError(f"unknown metric {identifier!r}: use one of {', '.join(map(repr, table))}")
    return table[identifier]()


__all__ = ["Metric", "Variable", "Mean", "MeanMetricWrapper", "Accuracy", "SparseCategoricalAccuracy", "CategoricalAccuracy", "BinaryAccuracy",
           "get", "name_of"]
__getattr__ = not_offered('keras.metrics', __all__)
