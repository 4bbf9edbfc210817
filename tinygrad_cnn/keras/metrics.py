"""Keras' metric objects: running values with update_state(y_true, y_pred), result() and reset_state(),
usable on their own (arrays or Tensors) and in compile(metrics=[...]), where each accuracy object
stands for the accuracy fit() and evaluate() compute by that name."""
import numpy

from ..tensor import Tensor
from .offered import not_offered


def _numpy(value):
    if isinstance(value, Tensor):
        return value.numpy()
    if hasattr(value, "get") and hasattr(value, "__cuda_array_interface__"):
        return value.get()
    return numpy.asarray(value)


class Metric:
    """A running, sample-weighted mean of per-sample values (Keras' Metric)."""

    default_name = "metric"

    def __init__(self, name=None, dtype=None):
        self.name = name or self.default_name
        self.dtype = dtype
        self.reset_state()

    def reset_state(self):
        """Forget everything seen so far."""
        self.total, self.count = 0.0, 0.0

    def values(self, y_true, y_pred):
        """Per-sample values of one batch (NumPy)."""
        raise NotImplementedError

    def update_state(self, y_true, y_pred=None, sample_weight=None):
        """Add a batch: y_true and y_pred as arrays or Tensors, sample_weight optional (one per sample)."""
        values = numpy.asarray(self.values(_numpy(y_true), _numpy(y_pred)), dtype="float64").reshape(-1)
        weights = numpy.ones_like(values) if sample_weight is None else \
            numpy.broadcast_to(numpy.asarray(_numpy(sample_weight), "float64").reshape(-1), values.shape)
        self.total += float((values * weights).sum())
        self.count += float(weights.sum())

    def result(self):
        """The mean so far, a 0-d Tensor (0 before any update, as Keras)."""
        return Tensor(numpy.float32(self.total / self.count if self.count else 0.0))

    def __call__(self, y_true, y_pred=None, sample_weight=None):
        """update_state, then result()."""
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class Mean(Metric):
    """The running mean of the values given: update_state(values)."""

    default_name = "mean"

    def update_state(self, values, y_pred=None, sample_weight=None):
        """Add values (and their weights)."""
        super().update_state(values, None, sample_weight)

    def values(self, y_true, y_pred):
        """The values themselves."""
        return y_true


class Accuracy(Metric):
    """How often y_pred equals y_true exactly (Keras' Accuracy)."""

    default_name = "accuracy"

    def values(self, y_true, y_pred):
        """1 where y_pred equals y_true, else 0."""
        return (y_true.reshape(y_pred.shape) == y_pred) if y_true.size == y_pred.size else y_true == y_pred


class SparseCategoricalAccuracy(Metric):
    """How often the class index y_true is the argmax of y_pred's last axis."""

    default_name = "sparse_categorical_accuracy"

    def values(self, y_true, y_pred):
        """1 where the argmax of y_pred is the class y_true."""
        return y_pred.argmax(-1) == y_true.reshape(y_pred.shape[:-1])


class CategoricalAccuracy(Metric):
    """How often the argmax of the one-hot y_true is the argmax of y_pred."""

    default_name = "categorical_accuracy"

    def values(self, y_true, y_pred):
        """1 where the argmaxes of y_pred and y_true agree."""
        return y_pred.argmax(-1) == y_true.argmax(-1)


class BinaryAccuracy(Metric):
    """How often (y_pred > threshold) equals y_true, per output (a soft label such as 0.3 never does)."""

    default_name = "binary_accuracy"

    def __init__(self, name=None, dtype=None, threshold=0.5):
        super().__init__(name, dtype)
        self.threshold = float(threshold)

    def values(self, y_true, y_pred):
        """1 per output where (y_pred > threshold), cast to y_true's dtype, equals y_true."""
        # NOTE: as Keras 3, the labels are not rounded: a soft label 0.3 or 0.8 is never a hit
        return (y_pred > self.threshold).astype(y_true.dtype) == y_true.reshape(y_pred.shape)


_KINDS = {SparseCategoricalAccuracy: "sparse_categorical_accuracy", CategoricalAccuracy: "categorical_accuracy",
          BinaryAccuracy: "binary_accuracy"}


def name_of(metric):
    """The name compile() knows a metric by: a string as given, an accuracy object by its kind."""
    if isinstance(metric, Metric):
        for kind, name in _KINDS.items():
            if type(metric) is kind:
                if kind is BinaryAccuracy and metric.threshold != 0.5:
                    raise ValueError("compile: BinaryAccuracy with a threshold other than 0.5 is not supported")
                return name
        raise ValueError(f"compile: metric {metric!r} is not supported in compile (use 'accuracy' or "
                         f"SparseCategoricalAccuracy, CategoricalAccuracy, BinaryAccuracy); it works on its own "
                         f"with update_state and result")
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


__all__ = ["Metric", "Mean", "Accuracy", "SparseCategoricalAccuracy", "CategoricalAccuracy", "BinaryAccuracy",
           "get", "name_of"]
__getattr__ = not_offered('keras.metrics', __all__)
