"""Layers without weights that pool or reshape whole inputs: GlobalAveragePooling2D,
GlobalMaxPooling2D, Reshape and Rescaling (Keras' names and arguments)."""
import math
import numbers

from .layers import Layer, checked_data_format, Spatial, flag


class _GlobalPool(Spatial, Layer):
    """Pool each channel over all of H and W: (N, C, H, W) -> (N, C), or (N, 1, 1, C)-style with keepdims."""

    def __init__(self, data_format="channels_first", keepdims=False, name=None):
        super().__init__(name)
        self.data_format = checked_data_format(data_format, type(self).__name__)
        self.keepdims = flag(keepdims, f"{type(self).__name__} keepdims")

    def _validate(self, shape):
        if len(shape) != 4:
            self._fail(shape, f"expects 4-D input {self._layout()}")
        if 0 in self._nchw_shape(shape)[2:]:
            self._fail(shape, "has no pixels to pool over")

    def _spatial_axes(self):
        return (1, 2) if self._channels_last else (2, 3)

    def _output_shape(self, input_shape):
        c = self.chw(input_shape)[0]
        return self._own_order((c, 1, 1)) if self.keepdims else (c,)

    def forward(self, x):
        """The pooled channels."""
        self._check_float(x)
        return self._reduce(x, self._spatial_axes())

    def _repr_args(self):
        return f"keepdims={self.keepdims}{self._format_repr()}"


class GlobalAveragePooling2D(_GlobalPool):
    """The mean of each channel over the image: (N, C, H, W) -> (N, C) (Keras' GlobalAveragePooling2D)."""

    default_name = "global_average_pooling2d"

    def _reduce(self, x, axes):
        return x.mean(axis=axes, keepdims=self.keepdims)


class GlobalMaxPooling2D(_GlobalPool):
    """The max of each channel over the image: (N, C, H, W) -> (N, C); tied maxima share the gradient."""

    default_name = "global_max_pooling2d"

    def _reduce(self, x, axes):
        return x.max(axis=axes, keepdims=self.keepdims)


GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D


class Reshape(Layer):
    """Each sample reshaped to `target_shape` (without the batch axis; one size may be -1), as Keras' Reshape."""

    default_name = "reshape"

    def __init__(self, target_shape, name=None):
        super().__init__(name)
        if isinstance(target_shape, numbers.Integral):
            target_shape = (target_shape,)
        sizes = tuple(target_shape) if hasattr(target_shape, "__iter__") and not isinstance(target_shape, str) else None
        if sizes is None or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in sizes):
            # NOTE: int() made (2.5,) into (2,) and "3" into (3,) before (issue 27)
            raise TypeError(f"Reshape target_shape must be a tuple of ints, got {target_shape!r}")
        target = tuple(int(s) for s in sizes)
        if target.count(-1) > 1 or any(s < 1 and s != -1 for s in target):
            raise ValueError(f"Reshape target_shape must hold sizes >= 1 and at most one -1, got {target_shape!r}")
        self.target_shape = target

    def _resolved(self, shape):
        """target_shape with the -1 worked out for samples of `shape` (ValueError when it does not fit)."""
        size, known = math.prod(shape), math.prod(s for s in self.target_shape if s != -1)
        if -1 in self.target_shape:
            if known == 0 or size % known:
                self._fail((None,) + tuple(shape), f"cannot reshape {size} values per sample into {self.target_shape}")
            return tuple(size // known if s == -1 else s for s in self.target_shape)
        if known != size:
            self._fail((None,) + tuple(shape), f"cannot reshape {size} values per sample into {self.target_shape}")
        return self.target_shape

    def _validate(self, shape):
        if len(shape) < 2:
            self._fail(shape, "expects a batch axis and at least one more")
        self._resolved(shape[1:])

    def _output_shape(self, input_shape):
        return self._resolved(input_shape)

    def forward(self, x):
        """x.reshape(N, *target_shape)."""
        return x.reshape((x.shape[0],) + self._resolved(x.shape[1:]))

    def _repr_args(self):
        return f"{self.target_shape}"


class Rescaling(Layer):
    """x * scale + offset, elementwise (Keras' Rescaling(1 / 255) for images of 0..255); integer
    inputs become the layer's dtype first."""

    default_name = "rescaling"

    def __init__(self, scale, offset=0.0, name=None, dtype=None):
        super().__init__(name, dtype)
        for what, value in (("scale", scale), ("offset", offset)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"Rescaling {what} must be a finite number, got {value!r}")
        self.scale, self.offset = float(scale), float(offset)

    def forward(self, x):
        """x * scale + offset."""
        if x.dtype.kind != "f":
            x = x.astype(self.dtype)
        y = x * self.scale
        return y + self.offset if self.offset else y

    def _repr_args(self):
        return f"scale={self.scale}, offset={self.offset}"


__all__ = ["GlobalAveragePooling2D", "GlobalMaxPooling2D", "GlobalAvgPool2D", "GlobalMaxPool2D", "Reshape",
           "Rescaling"]
