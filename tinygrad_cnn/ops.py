"""Primitive differentiable ops on raw arrays: elementwise, reductions, movement and matmul.

Each op's forward sits directly above its backward. Ops use `self.xp` (numpy or cupy), never
an imported array module, and may return gradients in the output's broadcast shape: the
engine reduces them to each input's shape.

backward_graph, below backward, is the same gradient written with Tensor ops (DeZero's way): what
runs when a graph of the gradient is asked for (create_graph=True), so that it can be differentiated
again. It reads what depends on the inputs from the `inputs` and `output` Tensors, never from the
arrays forward saved, which would be constants to the next derivative; masks, shapes and indices,
whose derivative is zero, may come from `self`."""
import itertools
import math

from .autograd import Function, constant
from .device import quiet_division


# ---------------------------------------------------------------- elementwise, binary

class Add(Function):
    """a + b; the gradient passes to both unchanged."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g

    def backward_graph(self, g, inputs, output):
        return g, g


class Sub(Function):
    """a - b; the gradient passes to a and, negated, to b."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, a, b):
        return a - b

    def backward(self, g):
        return g, -g

    def backward_graph(self, g, inputs, output):
        return g, -g


class Mul(Function):
    """a * b; each input's gradient is g times the other input."""
    keeps_output = False

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        need_a, need_b = self.needs_input_grad
        return (g * self.b if need_a else None), (g * self.a if need_b else None)

    def backward_graph(self, g, inputs, output):
        (a, b), (need_a, need_b) = inputs, self.needs_input_grad
        return (g * b if need_a else None), (g * a if need_b else None)


class Div(Function):
    """a / b; the gradients are g / b and -g * a / b**2."""
    keeps_output = False

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        need_a, need_b = self.needs_input_grad
        grad_a = g / self.b if need_a else None
        grad_b = -g * self.a / (self.b * self.b) if need_b else None
        return grad_a, grad_b

    def backward_graph(self, g, inputs, output):
        (a, b), (need_a, need_b) = inputs, self.needs_input_grad
        return (g / b if need_a else None), (-g * a / (b * b) if need_b else None)


class Pow(Function):
    """a ** b; the gradient for b needs log(a), so it is only defined for a > 0, and at a = 0
    for b >= 0, where it is 0 (0 ** b is constant there), as in PyTorch."""
    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a ** b
        return self.out

    def backward(self, g):
        xp, a, b = self.xp, self.a, self.b
        need_a, need_b = self.needs_input_grad
        # NOTE: for b == 0 the exponent b - 1 becomes 0: b * a**0 is 0, where b * a**-1 is nan at a = 0
        grad_a = g * b * a ** (b - 1 + (b == 0)) if need_a else None
        # NOTE: log(1) = 0 in place of log(0) = -inf where a == 0 <= b, so 0 * -inf is no nan
        grad_b = g * self.out * xp.log(xp.where((a == 0) & (b >= 0), a.dtype.type(1), a)) if need_b else None
        return grad_a, grad_b

    def backward_graph(self, g, inputs, output):
        xp, (a, b), (need_a, need_b) = self.xp, inputs, self.needs_input_grad
        grad_a = grad_b = None
        if need_a:  # NOTE: as in backward, but the exponent is raised only where a == 0 too: elsewhere
            # b - 1 must stay, for the derivative in b of a ** (b - 1) at b = 0
            lift = (b.data == 0) & (a.data == 0)
            grad_a = g * b * a ** (b - 1 + constant(lift.astype(b.dtype), self.device))
        if need_b:
            one = constant(xp.ones((), dtype=a.dtype), self.device)
            grad_b = g * output * Where.apply(one, a, condition=(a.data == 0) & (b.data >= 0)).log()
        return grad_a, grad_b


class Maximum(Function):
    """Elementwise max; at a tie the gradient is split equally, as for the reductions."""
    keeps_output = False

    def forward(self, a, b):
        self.a, self.b = a, b
        return self.xp.maximum(a, b)

    def backward(self, g):
        share_a = (self.a > self.b).astype(g.dtype) + 0.5 * (self.a == self.b).astype(g.dtype)
        return g * share_a, g * (1 - share_a)

    def backward_graph(self, g, inputs, output):
        a, b = self.a, self.b
        share_a = (a > b).astype(g.dtype) + 0.5 * (a == b).astype(g.dtype)
        return g * constant(share_a, self.device), g * constant(1 - share_a, self.device)


class Where(Function):
    """Picks from a where `condition` holds, else from b; `condition` is a constant boolean array."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, a, b, condition):
        self.condition = condition
        return self.xp.where(condition, a, b)

    def backward(self, g):
        return self.xp.where(self.condition, g, 0), self.xp.where(self.condition, 0, g)

    def backward_graph(self, g, inputs, output):
        zero = constant(self.xp.zeros((), dtype=g.dtype), self.device)
        return Where.apply(g, zero, condition=self.condition), Where.apply(zero, g, condition=self.condition)


# ---------------------------------------------------------------- elementwise, unary

class Neg(Function):
    """-x; the gradient is -g."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, x):
        return -x

    def backward(self, g):
        return -g

    def backward_graph(self, g, inputs, output):
        return -g


class Exp(Function):
    """exp(x); the gradient is g * exp(x), from the saved output."""
    keeps_inputs = False

    def forward(self, x):
        self.out = self.xp.exp(x)
        return self.out

    def backward(self, g):
        return g * self.out

    def backward_graph(self, g, inputs, output):
        return g * output


class Log(Function):
    """Natural logarithm; the gradient is g / x."""
    keeps_output = False

    def forward(self, x):
        self.x = x
        return self.xp.log(x)

    def backward(self, g):
        return g / self.x

    def backward_graph(self, g, inputs, output):
        return g / inputs[0]


class Sqrt(Function):
    """Square root; the gradient is g / (2 sqrt(x)), from the saved output."""
    keeps_inputs = False

    def forward(self, x):
        self.out = self.xp.sqrt(x)
        return self.out

    def backward(self, g):
        with quiet_division():  # NOTE: inf at 0 (nan where g is 0 too), with no warning: anomaly mode reports it
            return g / (2 * self.out)

    def backward_graph(self, g, inputs, output):
        with quiet_division():
            return g / (output * 2)


class Abs(Function):
    """|x|; the gradient is g * sign(x), 0 at 0."""
    keeps_output = False

    def forward(self, x):
        self.x = x
        return self.xp.abs(x)

    def backward(self, g):
        return g * self.xp.sign(self.x)

    def backward_graph(self, g, inputs, output):
        return g * constant(self.xp.sign(inputs[0].data), self.device)


class Tanh(Function):
    """tanh(x); the gradient is g * (1 - tanh(x)**2), from the saved output."""
    keeps_inputs = False

    def forward(self, x):
        self.out = self.xp.tanh(x)
        return self.out

    def backward(self, g):
        return g * (1 - self.out * self.out)

    def backward_graph(self, g, inputs, output):
        return g * (1 - output * output)


class ReLU(Function):
    """max(x, 0); the gradient is g where x > 0, else 0 (at 0 included)."""
    keeps_inputs = False

    def forward(self, x):
        self.out = self.xp.maximum(x, 0)  # NOTE: keeps the output (shared with the next op), not a mask
        return self.out

    def backward(self, g):
        return g * (self.out > 0)

    def backward_graph(self, g, inputs, output):
        return g * constant((output.data > 0).astype(g.dtype), self.device)



class Sigmoid(Function):
    """Logistic function via tanh, so large |x| cannot overflow exp."""
    keeps_inputs = False

    def forward(self, x):
        # NOTE: the constant has x's dtype: NumPy 1.x makes a float32 0-d result float64 with a Python 0.5
        half = x.dtype.type(0.5)
        self.out = half * self.xp.tanh(half * x) + half
        return self.out

    def backward(self, g):
        return g * self.out * (1 - self.out)

    def backward_graph(self, g, inputs, output):
        return g * output * (1 - output)


class Clip(Function):
    """Clamp to [low, high]; the gradient passes where x lies inside, boundaries included."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, x, low=None, high=None):
        xp = self.xp
        self.inside = xp.ones(x.shape, dtype=bool)
        if low is not None:
            self.inside &= x >= low
        if high is not None:
            self.inside &= x <= high
        if x.dtype.kind == "f":  # NOTE: bounds in x's dtype, or NumPy 1.x turns a float32 0-d input float64
            low = None if low is None else x.dtype.type(low)
            high = None if high is None else x.dtype.type(high)
        return xp.clip(x, low, high)

    def backward(self, g):
        return g * self.inside

    def backward_graph(self, g, inputs, output):
        return g * constant(self.inside.astype(g.dtype), self.device)


class Cast(Function):
    """Change the float dtype; the gradient is cast back."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, x, dtype):
        self.dtype = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return g.astype(self.dtype)

    def backward_graph(self, g, inputs, output):
        return Cast.apply(g, dtype=self.dtype)


# ---------------------------------------------------------------- reductions

class Sum(Function):
    """Sum over `axis` (None: all); the gradient is g broadcast back to the input's shape."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.axis = x.shape, axis
        return x.sum(axis=axis, keepdims=keepdims)

    def backward(self, g):
        return self.xp.broadcast_to(keep_axes(g, self.shape, self.axis), self.shape)

    def backward_graph(self, g, inputs, output):
        kept = Reshape.apply(g, shape=keep_axes(g.data, self.shape, self.axis).shape)  # (a view: no copy)
        return Expand.apply(kept, shape=self.shape)


class Max(Function):
    """Max over axes; tied maxima share the gradient equally (the subgradient PyTorch's amax uses)."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, x, axis=None, keepdims=False):
        self.axis = axis
        out = x.max(axis=axis, keepdims=True)
        self.mask = x == out
        return out if keepdims else out.squeeze(axis=axis) if axis is not None else out.reshape(())

    def backward(self, g):
        mask = self.mask.astype(g.dtype)
        count = mask.sum(axis=self.axis, keepdims=True)
        return keep_axes(g, mask.shape, self.axis) * (mask / count)

    def backward_graph(self, g, inputs, output):
        mask = self.mask.astype(g.dtype)
        share = constant(mask / mask.sum(axis=self.axis, keepdims=True), self.device)
        return Reshape.apply(g, shape=keep_axes(g.data, mask.shape, self.axis).shape) * share


class LogSumExp(Function):
    """log(sum(exp(x))) with the max subtracted first, so inputs of size 1e4 do not overflow."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, x, axis=None, keepdims=False):
        xp = self.xp
        self.axis = axis
        m = x.max(axis=axis, keepdims=True)
        # NOTE: an infinite max is not subtracted (x - m would be nan), as in PyTorch; a slice of -inf
        # only then sums to 0: its logsumexp is -inf and its gradient nan (PyTorch's), without a warning
        m = xp.where(xp.isinf(m), m.dtype.type(0), m)
        e = xp.exp(x - m)
        s = e.sum(axis=axis, keepdims=True)
        empty = s == 0  # NOTE: not isnan(s) afterwards: a NaN in the input must stay NaN, not become -inf
        s = xp.where(empty, s.dtype.type("nan"), s)
        self.softmax = e / s
        out = xp.where(empty, x.dtype.type("-inf"), xp.log(s) + m)
        return out if keepdims else out.squeeze(axis=axis) if axis is not None else out.reshape(())

    def backward(self, g):
        return keep_axes(g, self.softmax.shape, self.axis) * self.softmax

    def backward_graph(self, g, inputs, output):
        kept = keep_axes(g.data, inputs[0].shape, self.axis).shape
        return Reshape.apply(g, shape=kept) * (inputs[0] - Reshape.apply(output, shape=kept)).exp()


class Softmax(Function):
    """exp(x - max) / sum: subtracting the max keeps exp below 1 for any input."""
    keeps_inputs = False

    def forward(self, x, axis=-1):
        self.axis = axis
        e = self.xp.exp(x - x.max(axis=axis, keepdims=True))
        self.out = e / e.sum(axis=axis, keepdims=True)
        return self.out

    def backward(self, g):
        gy = g * self.out
        return gy - self.out * gy.sum(axis=self.axis, keepdims=True)

    def backward_graph(self, g, inputs, output):
        gy = g * output
        return gy - output * gy.sum(axis=self.axis, keepdims=True)


class LogSoftmax(Function):
    """x - logsumexp(x), computed with the max subtracted so it never overflows."""
    keeps_inputs = False

    def forward(self, x, axis=-1):
        xp = self.xp
        self.axis = axis
        shifted = x - x.max(axis=axis, keepdims=True)
        self.out = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        return self.out

    def backward(self, g):
        return g - self.xp.exp(self.out) * g.sum(axis=self.axis, keepdims=True)

    def backward_graph(self, g, inputs, output):
        return g - output.exp() * g.sum(axis=self.axis, keepdims=True)


def keep_axes(g, shape, axis):
    """Reshape a reduced gradient so it broadcasts against the unreduced `shape`."""
    if axis is None:
        return g.reshape((1,) * len(shape))
    axes = (axis,) if isinstance(axis, int) else axis
    axes = [a % len(shape) for a in axes]
    kept = [1 if i in axes else s for i, s in enumerate(shape)]
    return g.reshape(kept)


# ---------------------------------------------------------------- movement

class Reshape(Function):
    """A new shape for the same elements; the gradient is reshaped back."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, x, shape):
        self.shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return g.reshape(self.shape)

    def backward_graph(self, g, inputs, output):
        return Reshape.apply(g, shape=self.shape)


class Permute(Function):
    """Reorder the axes; the gradient is permuted back by the inverse permutation."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, x, axes):
        self.axes = axes
        return x.transpose(axes)

    def backward(self, g):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return g.transpose(inverse)

    def backward_graph(self, g, inputs, output):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return Permute.apply(g, axes=tuple(inverse))


class Expand(Function):
    """Broadcast to a larger shape without copying; the engine sums the gradient back."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, x, shape):
        return self.xp.broadcast_to(x, shape)

    def backward(self, g):
        return g

    def backward_graph(self, g, inputs, output):
        return g


class Pad(Function):
    """Constant padding; the gradient is the un-padded window of the output gradient."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, x, pad_width, value=0.0):
        self.window = tuple(slice(before, before + n) for (before, _), n in zip(pad_width, x.shape))
        return self.xp.pad(x, pad_width, mode="constant", constant_values=value)

    def backward(self, g):
        return g[self.window]

    def backward_graph(self, g, inputs, output):
        return GetItem.apply(g, index=self.window)


class GetItem(Function):
    """Indexing; with integer-array indices the gradient scatters and sums repeated picks."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, x, index, advanced=False):
        self.shape, self.index, self.advanced, self.dtype = x.shape, index, advanced, x.dtype
        return x[index]

    def backward(self, g):
        xp = self.xp
        grad = xp.zeros(self.shape, dtype=g.dtype)
        if self.advanced:
            xp.add.at(grad, self.index, g)  # NOTE: add.at accumulates repeated indices; += would not
        else:
            grad[self.index] = g
        return grad

    def backward_graph(self, g, inputs, output):
        return Scatter.apply(g, shape=self.shape, index=self.index, advanced=self.advanced)


class Scatter(Function):
    """GetItem's gradient as an op (zeros of `shape` with g added at `index`), so that the gradient
    of indexing can be differentiated again: its own gradient is indexing."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, g, shape, index, advanced=False):
        self.index, self.advanced = index, advanced
        return self._scatter(g, shape)

    def _scatter(self, g, shape):
        grad = self.xp.zeros(shape, dtype=g.dtype)
        if self.advanced:
            self.xp.add.at(grad, self.index, g)  # as GetItem.backward
        else:
            grad[self.index] = g
        return grad

    def backward(self, g):
        return g[self.index]

    def backward_graph(self, g, inputs, output):
        return GetItem.apply(g, index=self.index, advanced=self.advanced)


class Concatenate(Function):
    """Join arrays along `axis`; the gradient is split at the same places."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, *arrays, axis=0):
        self.axis = axis
        self.sizes = [a.shape[axis] for a in arrays]
        return self.xp.concatenate(arrays, axis=axis)

    def backward(self, g):
        cuts = list(itertools.accumulate(self.sizes[:-1]))
        return tuple(self.xp.split(g, cuts, axis=self.axis))

    def backward_graph(self, g, inputs, output):
        ends = list(itertools.accumulate(self.sizes))
        lead = (slice(None),) * (self.axis % g.ndim)
        return tuple(GetItem.apply(g, index=lead + (slice(end - size, end),))
                     for end, size in zip(ends, self.sizes))


# ---------------------------------------------------------------- matmul

class MatMul(Function):
    """NumPy matmul semantics: 1-D operands are promoted and the added axis removed again."""
    keeps_output = False

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        a, b = self.a, self.b
        need_a, need_b = self.needs_input_grad
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if b.ndim == 1:  # NOTE: b first, so that 1-D @ 1-D (a 0-d g) becomes (1,) and then (1, 1)
            g = g[..., None]
        if a.ndim == 1:
            g = g[..., None, :]
        grad_a = grad_b = None
        if need_a:
            grad_a = g @ b2.swapaxes(-1, -2)
            if a.ndim == 1:
                grad_a = grad_a[..., 0, :]
        if need_b:
            grad_b = a2.swapaxes(-1, -2) @ g
            if b.ndim == 1:
                grad_b = grad_b[..., 0]
        return grad_a, grad_b

    def backward_graph(self, g, inputs, output):
        (a, b), (need_a, need_b) = inputs, self.needs_input_grad
        a2 = a.reshape(1, a.shape[0]) if a.ndim == 1 else a
        b2 = b.reshape(b.shape[0], 1) if b.ndim == 1 else b
        if b.ndim == 1:  # as in backward
            g = g.expand_dims(-1)
        if a.ndim == 1:
            g = g.expand_dims(-2)
        grad_a = grad_b = None
        if need_a:
            grad_a = g @ b2.swapaxes(-1, -2)
            if a.ndim == 1:
                grad_a = grad_a[..., 0, :]
        if need_b:
            grad_b = a2.swapaxes(-1, -2) @ g
            if b.ndim == 1:
                grad_b = grad_b[..., 0]
        return grad_a, grad_b


class Linear(Function):
    """x @ weight.T + bias, for x (..., in), weight (out, in), bias (out,): a dense layer as one op,
    so that the weight's gradient is made in the weight's own layout and the bias's by one sum."""
    def forward(self, x, weight, *bias):
        self.x2 = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])  # NOTE: not -1, ambiguous with 0 features
        self.weight, self.x_shape = weight, x.shape
        out = self.x2 @ weight.T  # (rows, out)
        if bias:
            out = out + bias[0]
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, g):
        g2 = g.reshape(self.x2.shape[0], self.weight.shape[0])  # (rows, out)
        need = self.needs_input_grad
        grad_x = (g2 @ self.weight).reshape(self.x_shape) if need[0] else None
        grad_w = g2.T @ self.x2 if need[1] else None
        if len(need) == 3:
            return grad_x, grad_w, g2.sum(axis=0) if need[2] else None
        return grad_x, grad_w

    def backward_graph(self, g, inputs, output):
        x, weight, need = inputs[0], inputs[1], self.needs_input_grad
        rows = math.prod(x.shape[:-1])
        g2 = g.reshape(rows, weight.shape[0])
        grad_x = (g2 @ weight).reshape(x.shape) if need[0] else None
        grad_w = g2.T @ x.reshape(rows, x.shape[-1]) if need[1] else None
        if len(need) == 3:
            return grad_x, grad_w, g2.sum(axis=0) if need[2] else None
        return grad_x, grad_w

    @staticmethod
    def graph_forward(x, weight, *bias, relu=False):
        """The reference of what a kernel of this op computes (kernels fuse the ReLU after it, relu=True):
        a kernel's second derivative recomputes it (higher_order.differentiable_backward)."""
        return linear_relu(x, weight, *bias) if relu else Linear.apply(x, weight, *bias)


def linear_relu(x, weight, *bias):
    """max(x @ weight.T + bias, 0): what Dense(activation="relu") computes (kernels/ fuse it)."""
    return Linear.apply(x, weight, *bias).relu()
