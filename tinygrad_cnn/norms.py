"""torch's vector norms (x.norm, torch.norm, torch.linalg.vector_norm): one op, off the reading path.

The tutorial's CNN never takes a norm; PyTorch code does (gradient penalties, clipping by hand), so the op
lives here beside the torch spellings rather than in ops.py. It is a reference op like those: the same
property tests (tests/op_specs.py, float64 gradcheck and gradgradcheck, CPU and the emulated GPU)."""
import math

from . import checks
from .autograd import Function, constant
from .ops import Reshape, keep_axes


class Norm(Function):
    """The vector p-norm over `axis` (None: all elements) for p = 1, 2, inf or any p > 0 (torch's x.norm).
    NOTE: one op rather than (x ** 2).sum().sqrt(), so that the gradient where the norm is 0 is 0, as
    torch's, not 0/0; inf's tied maxima share the gradient equally, as Max (and torch) do."""

    def forward(self, x, p=2.0, axis=None, keepdims=False):
        xp = self.xp
        self.x, self.p, self.axis = x, p, axis
        a = xp.abs(x)
        if p == math.inf:
            out = a.max(axis=axis, keepdims=True)
            mask = (a == out).astype(x.dtype)
            self.sign = xp.sign(x) * (mask / mask.sum(axis=axis, keepdims=True))  # the slope: shared at ties
        else:
            if p == 1:
                out = a.sum(axis=axis, keepdims=True)
            elif p == 2:
                out = xp.sqrt((x * x).sum(axis=axis, keepdims=True))
            else:
                out = (a ** p).sum(axis=axis, keepdims=True) ** (1 / p)
            self.sign, self.zero_x, self.zero_norm = xp.sign(x), (a == 0).astype(x.dtype), (out == 0).astype(x.dtype)
        self.n = out  # NOTE: with the reduced axes kept, so that it broadcasts against x in backward
        return out if keepdims else out.squeeze(axis=axis) if axis is not None else out.reshape(())

    def backward(self, g):
        return keep_axes(g, self.x.shape, self.axis) * self._slope(self.x, self.n, lambda a: a)

    def _slope(self, x, n, wrap):
        """d norm / dx from arrays or (backward_graph) Tensors; signs and masks, whose own derivative is 0,
        come from forward through `wrap`."""
        if self.p in (1, math.inf):
            return wrap(self.sign)
        n = n + wrap(self.zero_norm)  # NOTE: 1 where the norm is 0: x is 0 there, so the gradient is 0 (torch's)
        if self.p == 2:
            return x / n
        ratio = x * wrap(self.sign) / n + wrap(self.zero_x)  # |x| / norm, 1 where x is 0 (then times sign 0)
        return wrap(self.sign) * ratio ** (self.p - 1)

    def backward_graph(self, g, inputs, output):
        kept = self.n.shape
        slope = self._slope(inputs[0], Reshape.apply(output, shape=kept), lambda a: constant(a, self.device))
        return Reshape.apply(g, shape=kept) * slope


def norm(x, p="fro", axis=None, keepdims=False):
    """x.norm(p="fro", dim=None, keepdim=False) (see spellings._TorchMethods.norm)."""
    p, axis = checks.norm_order(p), x._axis(axis)
    if p == math.inf:
        checks.something_to_pick(x, "norm(p=inf)", axis)
    return x._float_op(Norm, "norm", p=p, axis=axis, keepdims=keepdims)
