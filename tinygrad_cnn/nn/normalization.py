"""BatchNormalization: normalise each channel (or feature) over the batch, with Keras' arguments.

Composed of Tensor ops (mean, subtraction, sqrt, ...), so its gradient is autograd's through them and
it runs wherever they run; the moving statistics are buffers (saved in checkpoints, never trained)."""
import numpy

from ..autograd import no_grad
from ..tensor import Tensor
from . import init as initializers
from .layers import Layer, flag


def _fraction(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"BatchNormalization {name} must be a number in [0, 1], got {value!r}")
    return float(value)


class BatchNormalization(Layer):
    """y = gamma * (x - mean) / sqrt(variance + epsilon) + beta over the channel axis `axis`.

    While training (`model.train()`, fit(), or `layer(x, training=True)`) mean and variance are the
    batch's (biased variance, over every axis but `axis`), and the moving statistics follow them:
    moving = moving * momentum + batch * (1 - momentum). In eval mode (evaluate, predict,
    `training=False`) the moving statistics are used. Defaults are Keras' (momentum 0.99, epsilon 1e-3);
    PyTorch's BatchNorm2d(momentum=m, eps=e) is momentum=1 - m, epsilon=e here (see interop.py).

    axis defaults to 1, the channels of (N, C, H, W) images and the features of (N, F) inputs;
    tinygrad_cnn.keras' BatchNormalization takes -1, as Keras does."""

    default_name = "batch_normalization"

    def __init__(self, axis=1, momentum=0.99, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 name=None, dtype=None, device=None):
        super().__init__(name, dtype, device)
        if isinstance(axis, bool) or not isinstance(axis, (int, numpy.integer)):
            raise TypeError(f"BatchNormalization axis must be an int, got {axis!r}")
        self.axis = int(axis)
        self.momentum = _fraction(momentum, "momentum")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
            raise ValueError(f"BatchNormalization epsilon must be a number > 0, got {epsilon!r}")
        self.epsilon = float(epsilon)
        self.center, self.scale = flag(center, "BatchNormalization center"), flag(scale, "BatchNormalization scale")
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.gamma = None
        self.beta = None

    def _channel_axis(self, rank):
        """`axis` as an index into a full shape of `rank` axes (batch first), or None if it is not a feature axis."""
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            return None
        return self.axis % rank

    def _validate(self, shape):
        if len(shape) < 2:
            self._fail(shape, "expects a batch axis and at least one feature axis")
        axis = self._channel_axis(len(shape))
        if axis is None:
            self._fail(shape, f"axis {self.axis} is not a feature axis of the input (axis 0 is the batch)")
        if self.built and shape[axis] != self.moving_mean.shape[0]:
            self._fail(shape, f"expects {self.moving_mean.shape[0]} channels on axis {axis} (the size it was "
                              f"built for)")

    def _build(self, input_shape):
        channels = input_shape[self._channel_axis(len(input_shape) + 1) - 1]
        if self.scale:
            self.gamma = self._new_weight(self.gamma_initializer, (channels,))
        if self.center:
            self.beta = self._new_weight(self.beta_initializer, (channels,))
        for name, initializer in (("moving_mean", self.moving_mean_initializer),
                                  ("moving_variance", self.moving_variance_initializer)):
            buffer = self._new_weight(initializer, (channels,))
            buffer.requires_grad = False
            self.register_buffer(name, buffer)

    def _broadcast(self, t, rank, axis):
        """A (C,) tensor shaped to broadcast against inputs of `rank` axes along `axis`."""
        return t.reshape((t.shape[0],) + (1,) * (rank - 1 - axis))

    def forward(self, x):
        """Normalise with the batch's statistics (training) or the moving ones (eval)."""
        self._check_float(x)
        x = x if x.dtype == self.dtype else x.astype(self.dtype)  # compute in the layer's dtype, as Keras does
        rank = x.ndim
        axis = self._channel_axis(rank)
        if self.training:
            others = tuple(a for a in range(rank) if a != axis)
            mean = x.mean(axis=others, keepdims=True)
            centered = x - mean
            variance = (centered * centered).mean(axis=others, keepdims=True)
            if x.size:  # NOTE: an empty batch has no statistics (NaN); the moving ones stay as they are
                self._follow(mean, variance)
            y = centered / (variance + self.epsilon).sqrt()
        else:
            mean = self._broadcast(self.moving_mean, rank, axis)
            variance = self._broadcast(self.moving_variance, rank, axis)
            y = (x - mean) / (variance + self.epsilon).sqrt()
        if self.gamma is not None:
            y = y * self._broadcast(self.gamma, rank, axis)
        if self.beta is not None:
            y = y + self._broadcast(self.beta, rank, axis)
        return y

    def _follow(self, mean, variance):
        """moving = moving * momentum + batch * (1 - momentum), outside the graph."""
        with no_grad():
            for name, batch in (("moving_mean", mean), ("moving_variance", variance)):
                moving = getattr(self, name)
                new = moving * self.decay + batch.detach().reshape(moving.shape) * (1.0 - self.decay)
                moving.data = new.data.astype(moving.dtype, copy=False)

    @property
    def decay(self):
        """The old statistic's weight in the moving statistics: Keras' momentum, this layer's. NOTE: the name
        the code that reads it uses (the step, .keras configs, interop), since torch_nn.BatchNorm2d's momentum
        is torch's, the new statistic's weight."""
        return self.momentum

    def _repr_args(self):
        return f"axis={self.axis}, momentum={self.momentum}, epsilon={self.epsilon}"


__all__ = ["BatchNormalization"]
