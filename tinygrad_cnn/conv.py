"""Convolution and pooling over NCHW tensors: windows gathered by a loop over the KH x KW kernel offsets
(strided slices of the whole batch), then one tensordot (convolution) or one reduction (pooling)."""
import numbers

from .autograd import Function, constant


def _is_int(value):
    return isinstance(value, numbers.Integral) and type(value).__name__ not in ("bool", "bool_")


def pair(value, name):
    """Accept an int or a pair of ints (NumPy integers too, as np.int64(3) is an integer), as PyTorch and Keras do."""
    if _is_int(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")


def output_size(size, kernel, stride=1, padding=0, dilation=1):
    """Output length along one axis: floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def same_padding(kernel, dilation=1):
    """(before, after) padding that keeps the size at stride 1; odd totals put the extra after, like Keras."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def window(i, j, out_h, out_w, stride, dilation):
    """The index of kernel offset (i, j)'s values in a padded (N, C, H, W) array, for every output pixel."""
    (sh, sw), (dh, dw) = stride, dilation
    return (slice(None), slice(None), slice(i * dh, i * dh + sh * (out_h - 1) + 1, sh),
            slice(j * dw, j * dw + sw * (out_w - 1) + 1, sw))


class Windows:
    """Every (KH, KW) window of a padded (N, C, H, W) array, gathered as (N, C, KH, KW, OH, OW)
    (im2col), and the inverse scatter of such an array's gradient back onto the input (col2im)."""

    def __init__(self, xp, shape, padding, kernel, stride, dilation):
        n, c, h, w = shape
        (top, bottom), (left, right) = padding
        self.xp, self.shape, self.padding, self.kernel, self.stride, self.dilation = \
            xp, shape, padding, kernel, stride, dilation
        self.padded = (n, c, h + top + bottom, w + left + right)
        self.out_h = output_size(self.padded[2], kernel[0], stride[0], 0, dilation[0])
        self.out_w = output_size(self.padded[3], kernel[1], stride[1], 0, dilation[1])

    def offsets(self):
        """(i, j, index of that offset's values in the padded input) for each kernel offset."""
        for i in range(self.kernel[0]):
            for j in range(self.kernel[1]):
                yield i, j, window(i, j, self.out_h, self.out_w, self.stride, self.dilation)

    def gather(self, x, fill=0):
        """(N, C, KH, KW, OH, OW): the values each kernel offset sees, for every output pixel."""
        xp = self.xp
        x_pad = xp.pad(x, ((0, 0), (0, 0)) + tuple(self.padding), mode="constant", constant_values=fill)
        cols = xp.empty(self.shape[:2] + tuple(self.kernel) + (self.out_h, self.out_w), dtype=x.dtype)
        for i, j, index in self.offsets():
            cols[:, :, i, j] = x_pad[index]
        return cols

    def scatter(self, cols):
        """The input's gradient from the windows' (N, C, KH, KW, OH, OW): overlapping windows add up."""
        grad = self.xp.zeros(self.padded, dtype=cols.dtype)
        for i, j, index in self.offsets():
            grad[index] += cols[:, :, i, j]
        (top, _), (left, _) = self.padding
        return grad[:, :, top:top + self.shape[2], left:left + self.shape[3]]


class Convolution(Function):
    """Cross-correlation of x (N, C, H, W) with weight (O, C, KH, KW), plus an optional bias (O,):
    im2col (Windows.gather) and one tensordot over (C, KH, KW)."""
    keeps_output = False

    def forward(self, x, weight, *bias, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1)):
        self.windows = Windows(self.xp, x.shape, padding, weight.shape[2:], stride, dilation)
        self.cols, self.weight = self.windows.gather(x), weight  # (N, C, KH, KW, OH, OW)
        out = self.xp.tensordot(self.cols, weight, axes=((1, 2, 3), (1, 2, 3)))  # (N, OH, OW, O)
        if bias:
            out = out + bias[0]
        return out.transpose(0, 3, 1, 2)

    def backward(self, g):
        xp, need = self.xp, self.needs_input_grad
        g = g.transpose(0, 2, 3, 1)  # (N, OH, OW, O)
        grad_x = grad_w = None
        if need[0]:
            grad_cols = xp.tensordot(g, self.weight, axes=(3, 0))  # (N, OH, OW, C, KH, KW)
            grad_x = self.windows.scatter(grad_cols.transpose(0, 3, 4, 5, 1, 2))
        if need[1]:
            grad_w = xp.tensordot(g, self.cols, axes=((0, 1, 2), (0, 4, 5)))  # (O, C, KH, KW)
        if len(need) == 3:
            return grad_x, grad_w, g.sum(axis=(0, 1, 2)) if need[2] else None
        return grad_x, grad_w

    def backward_graph(self, g, inputs, output):
        """backward as Tensor ops: the windows' products as matrix products, gathering and scattering
        the windows as the ops Im2Col and Col2Im (each the other's gradient)."""
        (x, weight), need, windows = inputs[:2], self.needs_input_grad, self.windows
        (n, c), (o, kh, kw), (oh, ow) = x.shape[:2], (weight.shape[0],) + weight.shape[2:], g.shape[2:]
        g2 = g.transpose(0, 2, 3, 1).reshape(n * oh * ow, o)
        grad_x = grad_w = None
        if need[0]:
            cols = (g2 @ weight.reshape(o, c * kh * kw)).reshape(n, oh, ow, c, kh, kw)
            grad_x = Col2Im.apply(cols.transpose(0, 3, 4, 5, 1, 2), windows=windows)
        if need[1]:
            cols = Im2Col.apply(x, windows=windows).transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, c * kh * kw)
            grad_w = (g2.T @ cols).reshape(weight.shape)
        if len(need) == 3:
            return grad_x, grad_w, g.sum(axis=(0, 2, 3)) if need[2] else None
        return grad_x, grad_w

    @staticmethod
    def graph_forward(x, weight, *bias, pool=None, relu=False, **kwargs):
        """The reference of what a kernel of this op computes (kernels fuse max-pooling and ReLU into
        it): a kernel's second derivative recomputes it (higher_order.differentiable_backward)."""
        return conv_pool_relu(x, weight, *bias, pool=pool, relu=relu, **kwargs)


def _lowest(xp, dtype):
    """The padding a max never picks: -inf, or the dtype's least value."""
    return -xp.inf if dtype.kind == "f" else False if dtype.kind == "b" else xp.iinfo(dtype).min


class MaxPool(Function):
    """Max over each window; backward sends a window's gradient to its first maximum in row-major
    order (one input, never split or duplicated, also when several tie)."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, x, kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
        pads = ((padding[0], padding[0]), (padding[1], padding[1]))
        self.windows = Windows(self.xp, x.shape, pads, kernel, stride, (1, 1))
        cols = self.windows.gather(x, fill=_lowest(self.xp, x.dtype))
        # NOTE: the window's size spelled out, not -1, which is ambiguous in a batch of zero images
        cols = cols.reshape(cols.shape[:2] + (cols.shape[2] * cols.shape[3],) + cols.shape[4:])  # (N, C, KH*KW, OH, OW)
        self.first = cols.argmax(axis=2)  # NOTE: argmax picks the first of tied maxima
        return cols.max(axis=2)

    def backward(self, g):
        xp, (kh, kw) = self.xp, self.windows.kernel
        offsets = xp.arange(kh * kw).reshape(1, 1, -1, 1, 1)
        grad_cols = (offsets == self.first[:, :, None]) * g[:, :, None]  # (N, C, KH*KW, OH, OW)
        return self.windows.scatter(grad_cols.reshape(g.shape[:2] + (kh, kw) + g.shape[2:]))

    def backward_graph(self, g, inputs, output):
        xp, (kh, kw), (n, c, oh, ow) = self.xp, self.windows.kernel, g.shape
        offsets = xp.arange(kh * kw).reshape(1, 1, -1, 1, 1)
        first = (offsets == self.first[:, :, None]).astype(g.dtype).reshape(n, c, kh, kw, oh, ow)
        return Col2Im.apply(g.reshape(n, c, 1, 1, oh, ow) * constant(first, self.device), windows=self.windows)


class AvgPool(Function):
    """Mean over each window; zero padding counts toward the mean (PyTorch's default)."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, x, kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
        pads = ((padding[0], padding[0]), (padding[1], padding[1]))
        self.windows = Windows(self.xp, x.shape, pads, kernel, stride, (1, 1))
        return self.windows.gather(x).mean(axis=(2, 3)).astype(x.dtype, copy=False)

    def backward(self, g):
        kh, kw = self.windows.kernel
        share = g[:, :, None, None] * (1.0 / (kh * kw))
        return self.windows.scatter(self.xp.broadcast_to(share, g.shape[:2] + (kh, kw) + g.shape[2:]))

    def backward_graph(self, g, inputs, output):
        (kh, kw), (n, c, oh, ow) = self.windows.kernel, g.shape
        share = g.reshape(n, c, 1, 1, oh, ow) * (1.0 / (kh * kw))
        return Col2Im.apply(share.broadcast_to(n, c, kh, kw, oh, ow), windows=self.windows)


class Im2Col(Function):
    """Windows.gather as an op, (N, C, H, W) -> (N, C, KH, KW, OH, OW): for the second derivative of a
    convolution (backward_graph), whose gradients are products with the gathered windows."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, x, windows):
        self.windows = windows
        return windows.gather(x)

    def backward(self, g):
        return self.windows.scatter(g)

    def backward_graph(self, g, inputs, output):
        return Col2Im.apply(g, windows=self.windows)


class Col2Im(Function):
    """Windows.scatter as an op, the adjoint of Im2Col: overlapping windows add up."""
    keeps_inputs = False
    keeps_output = False

    def forward(self, cols, windows):
        self.windows = windows
        return windows.scatter(cols)

    def backward(self, g):
        return self.windows.gather(g)

    def backward_graph(self, g, inputs, output):
        return Im2Col.apply(g, windows=self.windows)


def conv_pool_relu(x, weight, *bias, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), pool=None,
                   relu=False):
    """A convolution, then max-pooling over tiling `pool` windows (when given), then ReLU (when
    asked): the ops one after another (kernels/ fuse them into one op)."""
    y = Convolution.apply(x, weight, *bias, stride=stride, padding=padding, dilation=dilation)
    if pool is not None:
        y = MaxPool.apply(y, kernel=pool, stride=pool)
    return y.relu() if relu else y
