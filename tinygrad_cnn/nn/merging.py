"""Layers that merge several inputs into one, for models with branches (keras.Model's functional API):
Add (elementwise sum, as a residual connection) and Concatenate (along an axis)."""
import numbers

from ..tensor import Tensor, concatenate
from .layers import Layer


class _Merge(Layer):
    """A layer called on a list of inputs (Tensors, arrays, or keras.Input and what layers made of it)."""

    def __call__(self, inputs, training=None):
        """The merged input list; every input is checked, and the error names the layer and the shapes."""
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
            raise TypeError(f"{self.label()}: takes a list of at least two inputs, got "
                            f"{type(inputs).__name__}{'' if not hasattr(inputs, '__len__') else ' of ' + str(len(inputs))}")
        symbolic = [getattr(x, "_symbolic", False) for x in inputs]
        if any(symbolic):
            if not all(symbolic):
                raise TypeError(f"{self.label()}: mixes symbolic inputs (keras.Input) with values")
            return inputs[0]._apply_merge(self, list(inputs))
        tensors = [x if isinstance(x, Tensor) else self._from_array(x) for x in inputs]
        for x in tensors:
            self._check_float(x)
        self._check_shapes([x.shape for x in tensors], batch=True)
        self.built = True
        return self.merge(tensors)

    def compute_output_shape(self, input_shapes):
        """Output shape (no batch axis) for a list of input shapes (no batch axes)."""
        shapes = [tuple(s) for s in input_shapes]
        self._check_shapes(shapes, batch=False)
        return self._merged_shape(shapes)

    def makes_weights(self):
        """False: a merge has no weights (its build only checks shapes), so its not being built yet keeps no
        state_dict from loading."""
        return False

    def build(self, input_shapes):
        """Nothing to create: a merge has no weights; checks the shapes."""
        self.compute_output_shape(input_shapes)
        self.built = True
        return self


class Add(_Merge):
    """The elementwise sum of inputs of one shape (Keras' Add): a residual connection is Add()([x, f(x)])."""

    default_name = "add"

    def _check_shapes(self, shapes, batch):
        if any(s != shapes[0] for s in shapes):
            raise ValueError(f"{self.label()}: the inputs must have one shape, got {shapes}")

    def _merged_shape(self, shapes):
        return shapes[0]

    def merge(self, tensors):
        """The sum of the tensors."""
        out = tensors[0]
        for t in tensors[1:]:
            out = out + t
        return out


class Concatenate(_Merge):
    """Inputs joined along `axis` (default the last, as Keras), equal in every other axis."""

    default_name = "concatenate"

    def __init__(self, axis=-1, name=None):
        super().__init__(name)
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"Concatenate axis must be an int, got {axis!r}")
        self.axis = int(axis)

    def _axis(self, rank, shapes):
        if not -rank <= self.axis < rank:
            raise ValueError(f"{self.label()}: axis {self.axis} is out of range for inputs of shapes {shapes}")
        return self.axis % rank

    def _check_shapes(self, shapes, batch):
        rank = len(shapes[0])
        axis = self._axis(rank + (0 if batch else 1), shapes) - (0 if batch else 1)
        if axis < 0 or (batch and axis == 0):
            raise ValueError(f"{self.label()}: axis {self.axis} is the batch axis")
        if any(len(s) != rank or s[:axis] + s[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:] for s in shapes):
            raise ValueError(f"{self.label()}: the inputs must agree on every axis but {self.axis}, got {shapes}")

    def _merged_shape(self, shapes):
        axis = self._axis(len(shapes[0]) + 1, shapes) - 1
        return shapes[0][:axis] + (sum(s[axis] for s in shapes),) + shapes[0][axis + 1:]

    def merge(self, tensors):
        """The tensors joined along the axis."""
        return concatenate(tensors, axis=self.axis)

    def _repr_args(self):
        return f"axis={self.axis}"


__all__ = ["Add", "Concatenate"]
