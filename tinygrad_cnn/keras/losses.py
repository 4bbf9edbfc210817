"""Keras' losses, called as Keras calls them, loss(y_true, y_pred), each the mean over the batch.

NOTE: fit() computes a cross-entropy from the logits when the model ends in the matching
softmax or sigmoid (and from_logits is False): the same loss, without the log of a rounded
probability (Keras clips probabilities to [1e-7, 1 - 1e-7] instead)."""
import numpy

from ..nn import functional as F
from ..tensor import Tensor
from .backend import epsilon
from .offered import not_offered

EPSILON = 1e-7  # Keras' clip for probabilities, by default (keras.backend.set_epsilon changes it, as Keras')


def _tensor(value, like, dtype=None):
    if isinstance(value, Tensor):
        return value
    return Tensor(numpy.asarray(value, dtype=dtype), device=like.device)


class Loss:
    """A loss over (y_true, y_pred). `kind` says which targets it takes and which final
    activation it can strip: 'sparse' (class indices; softmax), 'categorical' (one-hot; softmax),
    'binary' (0/1 per output; sigmoid), 'regression' (none)."""

    kind = "regression"
    name = "loss"
    activation = None  # the final activation whose logits this loss can take instead

    def __init__(self, from_logits=False, name=None, reduction="sum_over_batch_size", dtype=None):
        if not isinstance(from_logits, bool):
            raise TypeError(f"{type(self).__name__} from_logits must be True or False, got {from_logits!r}")
        self.from_logits = from_logits
        if name is not None:
            if not isinstance(name, str):
                raise TypeError(f"{type(self).__name__} name must be a string, got {name!r}")
            self.name = name
        if reduction != "sum_over_batch_size":  # NOTE: Keras' default, the only one fit uses here
            raise NotImplementedError(f"{type(self).__name__}: reduction={reduction!r} is not supported here, only "
                                      f"Keras' default 'sum_over_batch_size' (the mean over the batch)")
        if dtype not in (None, "float32"):
            raise NotImplementedError(f"{type(self).__name__}: dtype={dtype!r} is not supported (float32)")

    def call(self, y_true, y_pred):
        """Keras' custom loss: a subclass defines call(y_true, y_pred) returning each sample's loss (a Tensor,
        keras.ops on it); fit takes its mean over the batch."""
        raise NotImplementedError(f"{type(self).__name__} must define call(self, y_true, y_pred), returning the loss "
                                  f"of each sample")

    def __call__(self, y_true, y_pred):
        """The mean loss, a 0-d Tensor (differentiable in y_pred)."""
        if not isinstance(y_pred, Tensor):
            y_pred = Tensor(numpy.asarray(y_pred, dtype="float32"))
        y = self.targets(numpy.asarray(y_true.numpy() if isinstance(y_true, Tensor) else y_true), y_pred.shape)
        return self.compute(y_pred, _tensor(y, y_pred), logits=self.from_logits)

    def targets(self, y, output_shape):
        """Check NumPy targets for outputs of `output_shape` (batch axis first) and return them in the
        dtype and shape compute() takes; ValueError naming the problem otherwise."""
        if type(self).call is not Loss.call:  # a custom loss takes the targets as given (floats as float32)
            return _as_float(y, type(self).__name__) if y.dtype.kind == "f" else y
        y = _as_float(y, type(self).__name__)
        return _like_output(y, output_shape, type(self).__name__)

    def compute(self, out, y, logits):
        """The mean loss of outputs `out` (logits when `logits`) against prepared targets `y`."""
        loss = self.per_sample(out, y, logits)
        return loss if loss.ndim == 0 else loss.mean()

    def per_sample(self, out, y, logits):
        """The loss of each sample (a Tensor of N values), as Keras' loss functions give it: call()'s."""
        loss = self.call(y, out)
        if not isinstance(loss, Tensor):
            raise TypeError(f"{type(self).__name__}.call must return a Tensor (use keras.ops), got "
                            f"{type(loss).__name__}")
        return loss

    def weighted(self, out, y, logits, weights):
        """Keras' weighted mean: sum(weight * per-sample loss) / N (divided by the batch size, not by the
        weights' sum, as Keras' default reduction 'sum_over_batch_size')."""
        each = self.per_sample(out, y, logits)
        if each.ndim > 1:  # NOTE: the mean over the other axes first: the same sum / (N x those values) as Keras'
            each = each.reshape((each.shape[0], -1)).mean(axis=1)
        return (each * weights).sum() / each.shape[0]

    def __repr__(self):
        return f"{type(self).__name__}(from_logits={self.from_logits})"


def _as_float(y, who):
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{who}: targets must be numeric, got dtype {y.dtype}")
    return y.astype("float32", copy=False)


def _like_output(y, output_shape, who):
    """Targets reshaped to the output's shape when they hold as many values per sample ((N,) for (N, 1))."""
    per_sample = int(numpy.prod(output_shape[1:]))
    if y.shape[1:] != tuple(output_shape[1:]):
        if y.ndim >= 1 and int(numpy.prod(y.shape[1:])) == per_sample:
            y = y.reshape((len(y),) + tuple(output_shape[1:]))
        else:
            raise ValueError(f"{who}: targets of shape {y.shape} do not fit model outputs of shape "
                             f"{tuple(output_shape)}")
    return y


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy against integer class indices (N,) or (N, 1)."""

    kind, name, activation = "sparse", "sparse_categorical_crossentropy", "softmax"

    def targets(self, y, output_shape):
        """Integer class indices (N,), checked against the number of classes."""
        who = type(self).__name__
        if y.dtype.kind not in "biuf":
            raise TypeError(f"{who}: labels must be integer class indices, got dtype {y.dtype}")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"{who}: labels must be class indices of shape (N,) or (N, 1), got shape {y.shape}"
                             + ("; for one-hot labels use 'categorical_crossentropy'" if y.ndim == 2 else ""))
        if y.dtype.kind == "f":
            if not numpy.all(numpy.isfinite(y)) or not numpy.all(y == numpy.round(y)):
                raise ValueError(f"{who}: labels must be whole numbers (class indices), got e.g. "
                                 f"{y[~(y == numpy.round(y))][:3].tolist()}")
        classes = output_shape[-1]
        if len(y) and (y.min() < 0 or y.max() >= classes):
            raise ValueError(f"{who}: labels must lie in [0, {classes - 1}] for a model with {classes} outputs, got "
                             f"values from {y.min():g} to {y.max():g}")
        return y.astype("int64", copy=False)

    def compute(self, out, y, logits):
        """Softmax cross-entropy of logits, or -log of clipped probabilities."""
        if logits:
            # NOTE: the op itself, not F.cross_entropy, whose check of the label range reads the labels
            # back from the device each batch; targets() checked them once, on the host
            return F.softmax_cross_entropy(out, y, reduction="mean")
        return F.nll_loss(_normalized(out).clip(epsilon(), 1 - epsilon()).log(), y)

    def per_sample(self, out, y, logits):
        """-log p of each sample's class."""
        log_p = out.log_softmax(axis=-1) if logits else _normalized(out).clip(epsilon(), 1 - epsilon()).log()
        return F.nll_loss(log_p, y, reduction="none")


def _normalized(p):
    """Probabilities divided by their sum over the last axis, as Keras' cross-entropies take them: a y_pred
    that does not sum to 1 ([0.2, 0.7]) is read as [0.22, 0.78] (-log(0.7 / 0.9) = 0.251, not 0.357)."""
    return p / p.sum(axis=-1, keepdims=True)


class CategoricalCrossentropy(Loss):
    """Cross-entropy against one-hot (or soft) targets (N, classes)."""

    kind, name, activation = "categorical", "categorical_crossentropy", "softmax"

    def compute(self, out, y, logits):
        """-sum(y * log softmax(logits)), or of clipped probabilities; mean over the batch."""
        return self.per_sample(out, y, logits).mean()

    def per_sample(self, out, y, logits):
        """-sum(y * log p) of each sample."""
        log_p = out.log_softmax(axis=-1) if logits else _normalized(out).clip(epsilon(), 1 - epsilon()).log()
        return -(y * log_p).sum(axis=-1)


class BinaryCrossentropy(Loss):
    """Binary cross-entropy against 0/1 targets shaped like the outputs ((N,) for (N, 1) outputs)."""

    kind, name, activation = "binary", "binary_crossentropy", "sigmoid"

    def targets(self, y, output_shape):
        """Float targets in [0, 1], shaped like the outputs."""
        y = super().targets(y, output_shape)
        if y.size and (numpy.nanmin(y) < 0 or numpy.nanmax(y) > 1 or numpy.isnan(y).any()):
            raise ValueError(f"{type(self).__name__}: targets must lie in [0, 1], got values from {numpy.nanmin(y):g} "
                             f"to {numpy.nanmax(y):g}")
        return y

    def compute(self, out, y, logits):
        """BCE of logits (stable) or of clipped probabilities."""
        if logits:
            return F.binary_cross_entropy_with_logits(out, y)
        # NOTE: checked here first so that the hint for logits is Keras' own argument
        F.check_unit_interval(out, "input", type(self).__name__, logits_hint="BinaryCrossentropy(from_logits=True)")
        return F.binary_cross_entropy(out, y, eps=epsilon())

    def per_sample(self, out, y, logits):
        """BCE of each sample, the mean over its last axis."""
        each = (F.binary_cross_entropy_with_logits(out, y, reduction="none") if logits
                else F.binary_cross_entropy(out, y, reduction="none", eps=epsilon()))
        return each.mean(axis=-1)


class MeanSquaredError(Loss):
    """Mean of (y_pred - y_true)^2."""

    kind, name = "regression", "mean_squared_error"

    def __init__(self, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(False, name, reduction, dtype)

    def compute(self, out, y, logits):
        """mse of the outputs."""
        return F.mse_loss(out, y)

    def per_sample(self, out, y, logits):
        """Squared error of each sample, the mean over its last axis."""
        return ((out - y) ** 2).mean(axis=-1)


NAMES = {"sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
         "categorical_crossentropy": CategoricalCrossentropy, "binary_crossentropy": BinaryCrossentropy,
         "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError}


def _per_sample(cls, y_true, y_pred, from_logits):
    """`cls`'s loss of each sample, as Keras' loss functions return it (not the batch mean)."""
    loss = cls() if cls is MeanSquaredError else cls(from_logits=from_logits)
    pred = y_pred if isinstance(y_pred, Tensor) else Tensor(numpy.asarray(y_pred, dtype="float32"))
    y = loss.targets(numpy.asarray(y_true.numpy() if isinstance(y_true, Tensor) else y_true), pred.shape)
    return loss.per_sample(pred, _tensor(y, pred), from_logits)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """Cross-entropy of each sample against class indices (a Tensor of N values), as Keras' function;
    compile(loss=sparse_categorical_crossentropy) trains with SparseCategoricalCrossentropy."""
    return _per_sample(SparseCategoricalCrossentropy, y_true, y_pred, from_logits)


def categorical_crossentropy(y_true, y_pred, from_logits=False):
    """Cross-entropy of each sample against one-hot targets (N values), as Keras' function;
    compile(loss=categorical_crossentropy) trains with CategoricalCrossentropy."""
    return _per_sample(CategoricalCrossentropy, y_true, y_pred, from_logits)


def binary_crossentropy(y_true, y_pred, from_logits=False):
    """Binary cross-entropy of each sample (the mean over its last axis), as Keras' function."""
    return _per_sample(BinaryCrossentropy, y_true, y_pred, from_logits)


def mean_squared_error(y_true, y_pred):
    """Squared error of each sample (the mean over its last axis), as Keras' function."""
    return _per_sample(MeanSquaredError, y_true, y_pred, False)


mse = mean_squared_error
# NOTE: compile(loss=<one of these functions>) takes the named loss: the same value, its checks of the targets,
# and a final softmax or sigmoid taken as logits
_FUNCTIONS = {sparse_categorical_crossentropy: "sparse_categorical_crossentropy",
              categorical_crossentropy: "categorical_crossentropy", binary_crossentropy: "binary_crossentropy",
              mean_squared_error: "mean_squared_error"}


def get(identifier):
    """A loss from a name ('sparse_categorical_crossentropy', 'categorical_crossentropy',
    'binary_crossentropy', 'mse'), a Loss, or a callable(y_true, y_pred) returning a Tensor."""
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in NAMES:
            raise ValueError(f"unknown loss {identifier!r}: use one of {', '.join(map(repr, NAMES))}, a "
                             f"tinygrad_cnn.keras.losses object or a callable(y_true, y_pred)")
        return NAMES[key]()
    if isinstance(identifier, Loss):
        return identifier
    for function, name in _FUNCTIONS.items():
        if identifier is function:
            return NAMES[name]()
    if callable(identifier):
        return _Custom(identifier)
    raise TypeError(f"loss must be a name, a Loss or a callable, got {type(identifier).__name__}")


class _Custom(Loss):
    """A user's function(y_true, y_pred) -> Tensor (per sample or already reduced), averaged."""

    def __init__(self, fn):
        super().__init__(False)
        self.fn = fn
        self.name = getattr(fn, "__name__", "loss")

    def targets(self, y, output_shape):
        return _as_float(y, self.name) if y.dtype.kind == "f" else y

    def compute(self, out, y, logits):
        loss = self.per_sample(out, y, logits)
        return loss if loss.ndim == 0 else loss.mean()

    def per_sample(self, out, y, logits):
        loss = self.fn(y, out)
        if not isinstance(loss, Tensor):
            raise TypeError(f"loss function {self.name!r} must return a Tensor, got {type(loss).__name__}")
        return loss

    def weighted(self, out, y, logits, weights):
        each = self.per_sample(out, y, logits)
        if each.ndim == 0 or each.shape[0] != out.shape[0]:
            raise ValueError(f"loss function {self.name!r} returned shape {each.shape}: to weight samples "
                             f"(sample_weight, class_weight) it must return one loss per sample ({out.shape[0]})")
        return super().weighted(out, y, logits, weights)


__all__ = ["Loss", "SparseCategoricalCrossentropy", "CategoricalCrossentropy", "BinaryCrossentropy", "MeanSquaredError", "get", "NAMES", "EPSILON",
           "sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy", "mean_squared_error",
           "mse"]
__getattr__ = not_offered('keras.losses', __all__)
