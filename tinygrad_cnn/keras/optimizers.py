"""Keras' optimizers: made with hyperparameters only (`Adam(learning_rate=1e-3)`); compile() or
fit() gives them the model's parameters, and they then run tinygrad_cnn.optim's own update.

Defaults are Keras' (Adam's epsilon 1e-7, AdamW's weight decay 0.004, SGD's learning rate 0.01)."""
import math

import numpy

from .. import optim
from ..tensor import Tensor
from .offered import not_offered


def _rate(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _keras_named(owner, below_one=(), up_to_one=(), non_negative=(), **values):
    """Check Keras-named hyperparameters under their own names (optim's checks name its own: betas,
    alpha, eps): each a finite number in [0, 1) (below_one), [0, 1] (up_to_one) or >= 0."""
    for name, value in values.items():
        number = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        allowed = ("[0, 1)" if name in below_one else "[0, 1]" if name in up_to_one else ">= 0")
        if not number or value < 0 or (name in below_one and value >= 1) or (name in up_to_one and value > 1):
            raise ValueError(f"{owner} {name} must be a finite number in {allowed}".replace("in >=", ">=") +
                             f", got {value!r}")


class Optimizer:
    """Hyperparameters waiting for parameters: build(parameters) creates the tinygrad_cnn.optim
    optimizer that does the work (`.optimizer`); `learning_rate` reads and sets its rate."""

    def __init__(self, learning_rate, **hyper):
        self._learning_rate = _rate(learning_rate, f"{type(self).__name__} learning_rate")
        self.hyper = hyper
        self.optimizer = None
        self._make([Tensor(numpy.zeros(1, dtype="float32"), requires_grad=True)])  # bad hyperparameters fail now

    def _make(self, parameters):
        raise NotImplementedError

    def build(self, parameters):
        """Create the underlying optimizer over `parameters` (once; later calls keep it)."""
        if self.optimizer is None:
            self.optimizer = self._make(list(parameters))
        return self

    @property
    def learning_rate(self):
        """The current learning rate (a float); setting it changes the next steps."""
        return self.optimizer.lr if self.optimizer is not None else self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self._learning_rate = _rate(value, "learning_rate")
        if self.optimizer is not None:
            self.optimizer.lr = self._learning_rate

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper.items())
        return f"{type(self).__name__}(learning_rate={self.learning_rate!r}{', ' if args else ''}{args})"


class SGD(Optimizer):
    """Keras' SGD(learning_rate=0.01, momentum=0.0, nesterov=False) as optim.SGD."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(learning_rate, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay or 0.0)

    def _make(self, parameters):
        return optim.SGD(parameters, lr=self._learning_rate, **self.hyper)


class Adam(Optimizer):
    """Keras' Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7) as optim.Adam, with
    Keras' placement of epsilon (eps_hat=True: added to sqrt(v) before the bias correction)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=0.0):
        _keras_named("Adam", below_one=("beta_1", "beta_2"), beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
        super().__init__(learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, weight_decay=weight_decay or 0.0)

    def _make(self, parameters):
        h = self.hyper
        return optim.Adam(parameters, lr=self._learning_rate, betas=(h["beta_1"], h["beta_2"]), eps=h["epsilon"],
                          weight_decay=h["weight_decay"], eps_hat=True)


class AdamW(Optimizer):
    """Keras' AdamW(learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        _keras_named("AdamW", below_one=("beta_1", "beta_2"), beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
        super().__init__(learning_rate, weight_decay=weight_decay, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)

    def _make(self, parameters):
        h = self.hyper
        return optim.AdamW(parameters, lr=self._learning_rate, betas=(h["beta_1"], h["beta_2"]), eps=h["epsilon"],
                           weight_decay=h["weight_decay"], eps_hat=True)


class RMSprop(Optimizer):
    """Keras' RMSprop(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False) as
    optim.RMSprop, with Keras' placement of epsilon (eps_inside=True: sqrt(velocity + epsilon))."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, weight_decay=0.0):
        _keras_named("RMSprop", up_to_one=("rho",), rho=rho, epsilon=epsilon)
        super().__init__(learning_rate, rho=rho, momentum=momentum, epsilon=epsilon, centered=centered,
                         weight_decay=weight_decay or 0.0)

    def _make(self, parameters):
        h = self.hyper
        return optim.RMSprop(parameters, lr=self._learning_rate, alpha=h["rho"], eps=h["epsilon"],
                             momentum=h["momentum"], centered=h["centered"], weight_decay=h["weight_decay"],
                             eps_inside=True)


NAMES = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}


def get(identifier):
    """An optimizer from a name ('adam', 'sgd', 'adamw', 'rmsprop'), a keras optimizer, or a
    tinygrad_cnn.optim optimizer already made over the model's parameters (used as is)."""
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in NAMES:
            raise ValueError(f"unknown optimizer {identifier!r}: use one of {', '.join(map(repr, NAMES))}, "
                             f"a tinygrad_cnn.keras.optimizers object or a tinygrad_cnn.optim optimizer")
        return NAMES[key]()
    if isinstance(identifier, (Optimizer, optim.Optimizer)):
        return identifier
    raise TypeError(f"optimizer must be a name, a tinygrad_cnn.keras.optimizers object or a tinygrad_cnn.optim "
                    f"optimizer, got {type(identifier).__name__}")


def learning_rate(optimizer):
    """The learning rate of a keras or tinygrad_cnn.optim optimizer."""
    return optimizer.learning_rate if isinstance(optimizer, Optimizer) else optimizer.lr


def set_learning_rate(optimizer, value):
    """Set the learning rate of a keras or tinygrad_cnn.optim optimizer."""
    if isinstance(optimizer, Optimizer):
        optimizer.learning_rate = value
    else:
        optimizer.lr = _rate(value, "learning_rate")


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "get", "learning_rate", "set_learning_rate", "NAMES"]
__getattr__ = not_offered('keras.optimizers', __all__)
