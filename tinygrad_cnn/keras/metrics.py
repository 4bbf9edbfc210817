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


def forget_names():
    """Start the automatic metric names afresh (keras.backend.clear_session)."""
    _NAMES_TAKEN.clear()


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


def initial_values(initializer, shape, dtype, offered, where):
    """The starting values (a NumPy array of `shape`) of a layer's weight or a metric's state: a name from
    `offered`, a callable(shape, dtype) (called once: a random one draws anew at each call) or a number."""
    if isinstance(initializer, str):
        if initializer not in offered:
            raise ValueError(f"{where}: initializer {initializer!r} is not offered; use one of "
                             f"{', '.join(sorted(offered))}, a number or a callable(shape, dtype)")
        return numpy.asarray(offered[initializer](shape, dtype), dtype)
    if callable(initializer):
        return numpy.asarray(_numpy(initializer(shape, dtype)), dtype)
    return numpy.full(shape, _numpy(initializer), dtype)


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
        value = initial_values("zeros" if initializer is None else initializer, shape, dtype, _INITIALIZERS,
                               "add_variable")
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


NEG_INF = -1e10  # NOTE: Keras' threshold with top_k: every prediction kept in the top k counts as positive


def _same_rank(x1, x2, expand_rank_1=True):
    """Keras' squeeze_or_expand_to_same_rank: a trailing axis of 1 dropped (or added) where the ranks differ by one."""
    if x1.ndim == x2.ndim + 1 and x1.shape[-1] == 1:
        if x2.ndim == 1 and expand_rank_1:
            x2 = x2[..., None]
        else:
            x1 = x1[..., 0]
    elif x2.ndim == x1.ndim + 1 and x2.shape[-1] == 1:
        if x1.ndim == 1 and expand_rank_1:
            x1 = x1[..., None]
        else:
            x2 = x2[..., 0]
    return x1, x2


class _Confusion(Metric):
    """Keras' confusion-matrix counts (true positives and one other) per threshold: y_pred > threshold is a
    positive, y_true cast to bool the truth, each value weighted by its sample's weight; top_k keeps each row's
    k largest predictions, class_id looks at one class (the last axis)."""

    other = None  # 'false_positives' (Precision) or 'false_negatives' (Recall)

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(name, dtype)
        for what, value in (("top_k", top_k), ("class_id", class_id)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, numpy.integer))
                                      or value < (1 if what == "top_k" else 0)):
                raise ValueError(f"{type(self).__name__}: {what} must be an int >= {1 if what == 'top_k' else 0} or "
                                 f"None, got {value!r}")
        self.init_thresholds, self.top_k, self.class_id = thresholds, top_k, class_id
        default = 0.5 if top_k is None else NEG_INF
        given = [default] if thresholds is None else list(thresholds) if isinstance(thresholds, (list, tuple)) \
            else [thresholds]
        if thresholds is not None and not all(isinstance(t, (int, float, numpy.number)) and 0 <= t <= 1 for t in given):
            raise ValueError(f"Threshold values must be in [0, 1]. Received: {thresholds}")
        self.thresholds = given if isinstance(thresholds, (list, tuple)) else given[0]
        self._cuts = numpy.asarray(given, "float32")
        self.true_positives = self.add_variable((len(given),), "zeros", name="true_positives")
        setattr(self, self.other, self.add_variable((len(given),), "zeros", name=self.other))

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add a batch's counts (y_true and y_pred of the same shape, or one with a trailing axis of 1)."""
        y_true = numpy.asarray(_numpy(y_true), "float32")
        y_pred = numpy.asarray(_numpy(y_pred), "float32")
        y_pred, y_true = _same_rank(y_pred, y_true)
        weights = None
        if sample_weight is not None:
            weights = numpy.asarray(_numpy(sample_weight), "float32")[..., None]
            _, weights = _same_rank(y_true, weights, expand_rank_1=False)
        if self.top_k is not None:  # NOTE: Keras' _filter_top_k: the others pushed to NEG_INF
            keep = numpy.zeros(y_pred.shape, bool)
            numpy.put_along_axis(keep, numpy.argsort(-y_pred, axis=-1, kind="stable")[..., :self.top_k], True, -1)
            y_pred = numpy.where(keep, y_pred, NEG_INF)
        if self.class_id is not None:
            if y_pred.ndim < 2 or self.class_id >= y_pred.shape[-1]:
                raise ValueError(f"{self.name}: class_id={self.class_id} needs y_pred of shape (batch, classes) with "
                                 f"more than {self.class_id} classes, got {y_pred.shape}")
            y_true, y_pred = y_true[..., self.class_id, None], y_pred[..., self.class_id, None]
        if y_true.size != y_pred.size:
            raise ValueError(f"{self.name}: y_true of shape {y_true.shape} does not match y_pred of shape "
                             f"{y_pred.shape} (give one label per prediction, e.g. one-hot rows)")
        positive = y_pred.reshape(1, -1) > self._cuts[:, None]
        truth = numpy.broadcast_to(y_true.reshape(1, -1) != 0, positive.shape)
        each = numpy.ones(positive.shape[1], "float32") if weights is None else \
            numpy.broadcast_to(weights, y_pred.shape).reshape(-1)
        missed = (truth & ~positive) if self.other == "false_negatives" else (~truth & positive)
        self.true_positives.assign_add(((truth & positive) * each).sum(axis=1))
        getattr(self, self.other).assign_add((missed * each).sum(axis=1))

    def result(self):
        """tp / (tp + the other count), 0 where both are 0: one number, or one per threshold for a list."""
        tp, other = self.true_positives.numpy(), getattr(self, self.other).numpy()
        with numpy.errstate(divide="ignore", invalid="ignore"):
            value = numpy.where(tp + other > 0, tp / (tp + other), 0.0).astype("float32")
        return Tensor(value if isinstance(self.thresholds, list) else value[0])

    def get_config(self):
        """Keras' config: name, dtype, thresholds, top_k, class_id."""
        return {**super().get_config(), "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


class Precision(_Confusion):
    """Keras' Precision: true positives / predicted positives (y_pred > 0.5 by default), over the whole
    epoch's counts, as Keras (not a mean over batches)."""

    other = "false_positives"


class Recall(_Confusion):
    """Keras' Recall: true positives / actual positives (y_pred > 0.5 by default), over the epoch's counts."""

    other = "false_negatives"


class FBetaScore(Metric):
    """Keras' FBetaScore over (batch, classes) data: per class (average=None), 'micro' (counts summed over the
    classes first), 'macro' (the classes' mean) or 'weighted' (by each class's count of true labels). With
    threshold None each row's largest prediction is its positive; else y_pred > threshold."""

    default_name = "fbeta_score"

    def __init__(self, average=None, beta=1.0, threshold=None, name=None, dtype=None):
        super().__init__(name, dtype)
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError(f"Invalid `average` argument value. Expected one of: {{None, 'micro', 'macro', "
                             f"'weighted'}}. Received: average={average}")
        if not isinstance(beta, float) or beta <= 0.0:
            raise ValueError(f"Invalid `beta` argument value. It should be a Python float > 0. Received: beta={beta!r}")
        if threshold is not None and (not isinstance(threshold, float) or not 0.0 < threshold <= 1.0):
            raise ValueError(f"Invalid `threshold` argument value. It should be a Python float with 0 < threshold "
                             f"<= 1. Received: threshold={threshold!r}")
        self.average, self.beta, self.threshold = average, beta, threshold
        self._built = False

    def _build(self, classes):
        shape = () if self.average == "micro" else (classes,)
        for name in ("true_positives", "false_positives", "false_negatives", "intermediate_weights"):
            setattr(self, name, self.add_variable(shape, "zeros", name=name))
        self._built = True

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add a batch of (batch, classes) labels and predictions."""
        y_true = numpy.asarray(_numpy(y_true), "float32")
        y_pred = numpy.asarray(_numpy(y_pred), "float32")
        if y_pred.ndim != 2 or y_true.ndim != 2:
            raise ValueError(f"FBetaScore expects 2D inputs with shape (batch_size, output_dim). Received input "
                             f"shapes: y_pred.shape={y_pred.shape} and y_true.shape={y_true.shape}.")
        if not self._built:
            self._build(y_pred.shape[-1])
        if self.threshold is None:  # NOTE: as Keras, a row's largest value (ties all count), never a 0
            y_pred = (y_pred >= y_pred.max(axis=-1, keepdims=True)) & (numpy.abs(y_pred) > 1e-9)
        else:
            y_pred = y_pred > self.threshold
        y_pred = y_pred.astype("float32")
        weights = None if sample_weight is None else numpy.asarray(_numpy(sample_weight), "float32")[:, None]
        axis = None if self.average == "micro" else 0

        def weighted_sum(values):
            return (values if weights is None else values * weights).sum(axis=axis)

        self.true_positives.assign_add(weighted_sum(y_pred * y_true))
        self.false_positives.assign_add(weighted_sum(y_pred * (1 - y_true)))
        self.false_negatives.assign_add(weighted_sum((1 - y_pred) * y_true))
        self.intermediate_weights.assign_add(weighted_sum(y_true))

    def result(self):
        """The F-beta score (per class for average=None), with Keras' epsilon() in each denominator."""
        from .backend import epsilon
        if not self._built:
            return Tensor(numpy.float32(0.0))
        tp, fp, fn = (v.numpy().astype("float32") for v in (self.true_positives, self.false_positives,
                                                              self.false_negatives))
        precision = tp / (tp + fp + numpy.float32(epsilon()))
        recall = tp / (tp + fn + numpy.float32(epsilon()))
        beta2 = numpy.float32(self.beta ** 2)
        score = precision * recall / (beta2 * precision + recall + numpy.float32(epsilon())) * (1 + beta2)
        if self.average == "weighted":
            weights = self.intermediate_weights.numpy()
            score = (score * (weights / (weights.sum() + numpy.float32(epsilon())))).sum()
        elif self.average is not None:
            score = score.mean()
        return Tensor(numpy.asarray(score, "float32"))

    def get_config(self):
        """Keras' config: name, dtype, average, beta, threshold."""
        return {**super().get_config(), "average": self.average, "beta": self.beta, "threshold": self.threshold}


class F1Score(FBetaScore):
    """Keras' F1Score: FBetaScore with beta 1."""

    default_name = "f1_score"

    def __init__(self, average=None, threshold=None, name=None, dtype=None):
        super().__init__(average, 1.0, threshold, name, dtype)

    def get_config(self):
        """Keras' config: name, dtype, average, threshold."""
        config = super().get_config()
        del config["beta"]
        return config


class AUC(Metric):
    """Keras' AUC: the area under the ROC curve (true- against false-positive rate), the PR curve (precision
    against recall) or the PRGAIN curve, as a Riemann sum over confusion matrices counted at fixed thresholds
    over the whole epoch. The thresholds are num_thresholds evenly spaced ones in [0, 1] (or the sorted
    `thresholds` given) with -epsilon and 1 + epsilon added at the ends, so that predictions of exactly 0 or 1
    are counted. summation_method 'interpolation' takes the mean of each step's two heights (for PR, Davis &
    Goadrich's interpolation of the counts, not of precision), 'minoring' the lower, 'majoring' the higher.
    multi_label=True keeps one curve per label (last axis) and averages their areas (by label_weights if
    given); with False every label-prediction pair is one data point, weighted by its label's label_weights."""

    default_name = "auc"
    _CURVES = {"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}
    _SUMS = ("interpolation", "minoring", "majoring")

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None, dtype=None,
                 thresholds=None, multi_label=False, num_labels=None, label_weights=None, from_logits=False):
        from .backend import epsilon
        if str(curve).lower() not in self._CURVES:
            raise ValueError(f'Invalid AUC curve value: "{curve}". Expected values are ["PR", "ROC", "PRGAIN"]')
        if str(summation_method).lower() not in self._SUMS:
            raise ValueError(f'Invalid AUC summation method value: "{summation_method}". Expected values are '
                             f'["interpolation", "majoring", "minoring"]')
        if num_labels and not multi_label:
            raise ValueError("`num_labels` is needed only when `multi_label` is True.")
        super().__init__(name, dtype)
        self.curve, self.summation_method = self._CURVES[str(curve).lower()], str(summation_method).lower()
        self.multi_label, self.num_labels, self.from_logits = bool(multi_label), num_labels, bool(from_logits)
        self.label_weights = None if label_weights is None else numpy.asarray(_numpy(label_weights), "float32")
        if self.label_weights is not None and (self.label_weights.ndim != 1 or (self.label_weights < 0).any()):
            raise ValueError(f"AUC: label_weights must be a list of non-negative weights, one per label, got "
                             f"{label_weights!r}")
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(float(t) for t in (thresholds if isinstance(thresholds, (list, tuple, numpy.ndarray))
                                              else [thresholds]))
            self.num_thresholds = len(inner) + 2
            ends = numpy.array([0.0] + inner + [1.0])
            even = numpy.arange(len(ends), dtype="float32") / (len(ends) - 1)
            self._evenly = len(ends) >= 3 and numpy.allclose(ends, even, atol=epsilon())
        else:
            if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, (int, numpy.integer)) \
                    or num_thresholds <= 1:
                raise ValueError(f"Argument `num_thresholds` must be an integer > 1. Received: "
                                 f"num_thresholds={num_thresholds}")
            self.num_thresholds = int(num_thresholds)
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self._evenly = True
        self._thresholds = numpy.array([0.0 - epsilon()] + inner + [1.0 + epsilon()])
        self._labels = None  # the number of labels of multi_label's state, once known
        if not self.multi_label:
            self._build(())
        elif num_labels:
            self._build((int(num_labels),))

    def _build(self, labels):
        self._labels = labels[0] if labels else None
        for name_ in ("true_positives", "false_positives", "true_negatives", "false_negatives"):
            setattr(self, name_, self.add_variable((self.num_thresholds,) + labels, "zeros", name=name_))

    @property
    def thresholds(self):
        """The thresholds, the two end ones included."""
        return [float(t) for t in self._thresholds]

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add a batch's four counts at every threshold (y_true nonzero is a positive; a sample's weight counts
        for each of its labels)."""
        y_true = numpy.asarray(_numpy(y_true), "float32")
        y_pred = numpy.asarray(_numpy(y_pred), "float32")
        if self.multi_label and "true_positives" not in self.__dict__:
            if y_pred.ndim != 2:
                raise ValueError(f"`y_pred` must have rank 2 when `multi_label=True`. Found rank {y_pred.ndim}. "
                                 f"Full shape received for `y_pred`: {y_pred.shape}")
            self._build((y_pred.shape[1],))
        if self.from_logits:
            y_pred = (1 / (1 + numpy.exp(-y_pred.astype("float64")))).astype("float32")
        y_pred, y_true = _same_rank(y_pred, y_true)
        weights = numpy.ones(y_pred.shape, "float32")
        try:
            if sample_weight is not None:
                given = numpy.asarray(_numpy(sample_weight), "float32")[..., None]
                _, given = _same_rank(y_true, given, expand_rank_1=False)
                weights = numpy.broadcast_to(given, y_pred.shape)
            if self.label_weights is not None and not self.multi_label:
                weights = weights * numpy.broadcast_to(self.label_weights, y_pred.shape)
        except ValueError:
            raise ValueError(f"{self.name}: sample_weight of shape {numpy.shape(sample_weight)} or label_weights do "
                             f"not fit y_pred of shape {y_pred.shape}") from None
        if y_true.size != y_pred.size:
            raise ValueError(f"{self.name}: y_true of shape {y_true.shape} does not match y_pred of shape "
                             f"{y_pred.shape} (give one label per prediction)")
        labels = self._labels or 1
        if self.multi_label and (y_pred.ndim != 2 or y_pred.shape[1] != labels):
            raise ValueError(f"{self.name}: multi_label=True with {labels} labels needs y_pred of shape "
                             f"(batch, {labels}), got {y_pred.shape}")
        # every array (data points, labels): one label column unless multi_label
        truth, pred = y_true.reshape(-1, labels) != 0, y_pred.reshape(-1, labels)
        weights = weights.reshape(-1, labels).astype("float64")
        hits, misses = numpy.where(truth, weights, 0.0), numpy.where(truth, 0.0, weights)
        n = self.num_thresholds
        if self._evenly:
            # NOTE: as Keras for evenly spaced thresholds: each prediction falls in one bucket, ceil(p (n - 1)) - 1
            # in float32, and counts as positive at that threshold and every lower one (a reversed cumulative sum)
            bucket = numpy.ceil(numpy.clip(pred, 0, 1) * numpy.float32(n - 1)) - 1
            bucket = (numpy.maximum(bucket, 0).astype("int64") + n * numpy.arange(labels)).reshape(-1)

            def counts(values):
                per_bucket = numpy.bincount(bucket, values.reshape(-1), n * labels).reshape(labels, n).T
                return per_bucket[::-1].cumsum(axis=0)[::-1]

            tp, fp = counts(hits), counts(misses)
        else:
            positive = pred[None] > self._thresholds.astype("float32")[:, None, None]
            tp, fp = (positive * hits).sum(axis=1), (positive * misses).sum(axis=1)
        fn, tn = hits.sum(axis=0) - tp, misses.sum(axis=0) - fp
        if not self.multi_label:
            tp, fp, tn, fn = tp[:, 0], fp[:, 0], tn[:, 0], fn[:, 0]
        self.true_positives.assign_add(tp)
        self.false_positives.assign_add(fp)
        self.true_negatives.assign_add(tn)
        self.false_negatives.assign_add(fn)

    def result(self):
        """The area, a 0-d float32 Tensor (0 before any update)."""
        if "true_positives" not in self.__dict__:
            return Tensor(numpy.float32(0.0))
        tp, fp, tn, fn = (v.numpy().astype("float64") for v in (self.true_positives, self.false_positives,
                                                                 self.true_negatives, self.false_negatives))

        def ratio(a, b):  # NOTE: Keras' divide_no_nan: 0 where the denominator is 0
            with numpy.errstate(divide="ignore", invalid="ignore"):
                return numpy.where(b != 0, a / numpy.where(b != 0, b, 1), 0.0)

        if self.curve == "PR" and self.summation_method == "interpolation":
            # NOTE: Davis & Goadrich: between two thresholds tp and p = tp + fp move linearly, so precision is
            # (intercept + slope p) / p and its integral over recall has a closed form with log(p_a / p_b)
            d_tp, p = tp[:-1] - tp[1:], tp + fp
            slope = ratio(d_tp, numpy.maximum(p[:-1] - p[1:], 0))
            intercept = tp[1:] - slope * p[1:]
            p_ratio = numpy.where((p[:-1] > 0) & (p[1:] > 0), ratio(p[:-1], numpy.maximum(p[1:], 0)), 1.0)
            areas = ratio(slope * (d_tp + intercept * numpy.log(p_ratio)), numpy.maximum(tp[1:] + fn[1:], 0))
        else:
            recall = ratio(tp, tp + fn)
            if self.curve == "ROC":
                x, y = ratio(fp, fp + tn), recall
            elif self.curve == "PR":
                x, y = recall, ratio(tp, tp + fp)
            else:  # NOTE: PRGAIN as Keras: gains 0 (recall) and 1 (precision) where tp is 0, recall gain >= 0
                scale = ratio(tp + fn, tn + fp)
                x = numpy.maximum(numpy.where(tp == 0, 0.0, 1 - scale * ratio(fn, tp)), 0.0)
                y = numpy.where(tp == 0, 1.0, 1 - scale * ratio(fp, tp))
            pick = {"interpolation": lambda a, b: (a + b) / 2, "minoring": numpy.minimum, "majoring": numpy.maximum}
            areas = (x[:-1] - x[1:]) * pick[self.summation_method](y[:-1], y[1:])
        area = areas.sum(axis=0)
        if self.multi_label:  # the labels' mean, or their label_weights-weighted mean
            area = area.mean() if self.label_weights is None else \
                ratio((area * self.label_weights).sum(), self.label_weights.astype("float64").sum())
        return Tensor(numpy.float32(area))

    def get_config(self):
        """Keras' config: name, dtype, num_thresholds, curve, summation_method, multi_label, num_labels,
        label_weights, from_logits (and thresholds, without the two end ones, where given)."""
        config = {**super().get_config(), "num_thresholds": self.num_thresholds, "curve": self.curve,
                  "summation_method": self.summation_method, "multi_label": self.multi_label,
                  "num_labels": self.num_labels, "from_logits": self.from_logits,
                  "label_weights": None if self.label_weights is None else  # NOTE: a tensor in Keras' form
                  {"class_name": "__tensor__", "config": {"value": self.label_weights.tolist(), "dtype": "float32"}}}
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config

    @classmethod
    def from_config(cls, config):
        """A new AUC from get_config()'s dict (label_weights as Keras writes a tensor, or a list)."""
        weights = config.get("label_weights")
        if isinstance(weights, dict) and weights.get("class_name") == "__tensor__":
            config = {**config, "label_weights": weights["config"]["value"]}
        return cls(**config)


_KINDS = {SparseCategoricalAccuracy: "sparse_categorical_accuracy", CategoricalAccuracy: "categorical_accuracy",
          BinaryAccuracy: "binary_accuracy"}


_BY_NAME = {"auc": AUC, "AUC": AUC, "precision": Precision, "recall": Recall, "f1_score": F1Score, "Precision": Precision, "Recall": Recall,
            "F1Score": F1Score}


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
    if isinstance(metric, str) and metric in _BY_NAME:  # NOTE: as Keras' metrics.get: logged under the name given
        cls = _BY_NAME[metric]
        return cls(name=metric)  # ('Precision' logs as 'Precision', 'precision' as 'precision', as Keras)
    return metric


def get(identifier):
    """A metric object from its class name or Keras' snake-case name."""
    table = {cls.default_name: cls for cls in (Mean, Accuracy, SparseCategoricalAccuracy, CategoricalAccuracy,
                                               BinaryAccuracy, F1Score, FBetaScore, AUC)}
    table.update(precision=Precision, recall=Recall)
    table.update({cls.__name__: cls for cls in table.values()})
    if isinstance(identifier, Metric):
        return identifier
    if identifier not in table:
        raise ValueError(f"unknown metric {identifier!r}: use one of {', '.join(map(repr, table))}")
    return table[identifier]()


__all__ = ["Metric", "Variable", "Mean", "MeanMetricWrapper", "Accuracy", "SparseCategoricalAccuracy", "CategoricalAccuracy", "BinaryAccuracy",
           "Precision", "Recall", "FBetaScore", "F1Score", "AUC",
           "get", "name_of", "forget_names"]
__getattr__ = not_offered('keras.metrics', __all__)
