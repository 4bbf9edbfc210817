"""Kernels for elementwise ReLU, matrix products and dense layers: CPU threads, fused GPU kernels."""
import math

from .. import ops
from ..autograd import constant
from .homes import GradientHomes
from .fusion import fuse
from . import buffers, parallel
from .parallel import concurrently, over_batch, over_chunks, pieces


class ThreadedReLU(ops.ReLU):
    """ops.ReLU with its rows split over CPU cores, and its gradient one fused kernel on a GPU.

    NOTE: activations are large and the work is one pass, so it is split over CPU cores."""

    def forward(self, x):
        xp = self.xp
        self.out = out = xp.empty_like(x)
        _over_rows(xp, out, lambda r: xp.maximum(x[r], 0, out=out[r]))
        return out

    def backward(self, g):
        xp, out = self.xp, self.out
        grad = xp.empty(out.shape, dtype=g.dtype)
        _over_rows(xp, grad, lambda r: relu_gradient(grad[r], g[r], out[r]))
        return grad


@fuse
def add_then_relu(xp, out, bias):
    """out = max(out + bias, 0), in place: a dense layer's bias and ReLU in one kernel on a GPU."""
    out += bias
    xp.maximum(out, 0, out=out)


@fuse
def relu_gradient(xp, grad, g, out):
    """grad = g * (out > 0): ReLU's gradient from its output (0 where out is 0: the gradient at 0 is 0),
    one kernel on a GPU instead of a comparison and a product."""
    xp.multiply(g, out > 0, out=grad)


def _over_rows(xp, out, work):
    """work(rows) over slices of axis 0 in parallel (parallel.py); a 0-d array in one call."""
    if out.ndim == 0:
        work(Ellipsis)
    else:
        over_batch(xp, out.shape[0], out.size, work)


# NOTE: a piece of a split product has at least this many rows (or columns, or values of the
# shared axis), so that each GEMM call still runs at full speed
PIECE = 64
# NOTE: ... and at least this many rows when cut by rows: each piece packs the whole of the other
# operand again (the weight, read transposed), which costs about what ~30 rows of the product do.
# Dense 3136 -> 128 at inference batch 1000 (one thread, one process, loaded machine): 8 pieces of
# 125 rows 8.9 ms, 4 of 250 7.9, 2 of 500 7.3, one call 7.0; 4 pieces keep 4 cores busy
ROWS_PIECE = 256


def split_product(xp, a, b, out):
    """out[...] = a @ b for 2-D a and b, cut into pieces that CPU cores take in turn (parallel.py):
    the output by its longer side (rows of a or columns of b), or, when the output is small and the
    shared axis long, by the shared axis, whose partial products are then summed in order.

    NOTE: the pieces are fixed by the shapes (parallel.pieces), not the thread count, so that the
    bits do not depend on it (issue 27); a product too small to split (parallel.MIN_ELEMENTS) is
    one call. For the dense layer's (128, 3136) @ (3136, 128), by columns took 0.68 ms, by rows
    0.71 and by the shared axis 0.77 (one thread: 1.02), measured in one process."""
    m, k = a.shape
    n = b.shape[1]
    elements = a.size + b.size
    whole = xp.__name__ != "numpy" or elements < parallel.MIN_ELEMENTS  # one piece (on a GPU: one launch)
    if k > max(m, n) and max(m, n) < PIECE:
        cuts = [slice(0, k)] if whole else pieces(k, PIECE)
        parts = [None] * len(cuts)

        def work(source):
            for index, s in source:
                parts[index] = xp.dot(a[:, s], b[s])  # dot: see kernels/conv.py

        over_chunks(xp, cuts, elements, work)
        out[...] = parts[0]
        for part in parts[1:]:
            out += part
        return out
    by_rows = m > n
    cut = m if by_rows else n
    cuts = [slice(0, cut)] if whole else pieces(cut, ROWS_PIECE if by_rows else PIECE)

    def work(source):
        for _, s in source:
            if by_rows:
                xp.matmul(a[s], b, out=out[s])
            else:
                xp.matmul(a, b[:, s], out=out[:, s])

    over_chunks(xp, cuts, elements, work)
    return out


class SplitMatMul(ops.MatMul):
    """ops.MatMul whose 2-D products are split over CPU cores (split_product)."""

    def forward(self, a, b):
        if a.ndim != 2 or b.ndim != 2:
            return super().forward(a, b)
        self.a, self.b = a, b
        xp = self.xp
        return split_product(xp, a, b, xp.empty((a.shape[0], b.shape[1]), dtype=xp.result_type(a, b)))

    def backward(self, g):
        a, b, xp = self.a, self.b, self.xp
        if a.ndim != 2 or b.ndim != 2:
            return super().backward(g)
        need_a, need_b = self.needs_input_grad
        grad_a = split_product(xp, g, b.T, xp.empty(a.shape, dtype=xp.result_type(g, b))) if need_a else None
        grad_b = split_product(xp, a.T, g, xp.empty(b.shape, dtype=xp.result_type(a, g))) if need_b else None
        return grad_a, grad_b


class FusedLinear(GradientHomes, ops.Linear):
    """ops.Linear, with relu=True also the ReLU after it (ops.linear_relu), its products split
    over CPU cores.

    NOTE: the ReLU is applied in place with the bias (one kernel on a GPU instead of two, and no
    separate op) and masks the gradient first in backward, from the kept output; the input's and
    the weight's gradients run at once, one product per core (parallel.concurrently)."""

    def forward(self, x, weight, *bias, relu=False):
        xp = self.xp
        x2 = x.reshape(math.prod(x.shape[:-1]), x.shape[-1])  # NOTE: not -1, which is ambiguous with 0 features
        out = split_product(xp, x2, weight.T, xp.empty((x2.shape[0], weight.shape[0]),
                                                        dtype=xp.result_type(x, weight, *bias)))
        if bias and relu:
            add_then_relu(out, bias[0])
        elif bias:
            out += bias[0]
        elif relu:
            xp.maximum(out, 0, out=out)
        self.x2, self.weight, self.x_shape = x2, weight, x.shape
        self.out = out if relu else None
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, g):
        xp, x2, weight = self.xp, self.x2, self.weight
        g2 = g.reshape(x2.shape[0], weight.shape[0])
        if self.out is not None:  # ReLU's gradient first
            masked = xp.empty(g2.shape, dtype=g2.dtype)
            relu_gradient(masked, g2, self.out)
            g2 = masked
        need_x, need_w = self.needs_input_grad[:2]
        grad_x = grad_w = None
        # NOTE: the parameters' gradients go straight into the optimizer's buffer when it has one
        # for them (kernels/homes.py): nothing to gather at its step
        w_home = self.grad_home(1, weight.shape, xp.result_type(g2, x2)) if need_w else None
        if need_x and need_w:  # one product per core (parallel.concurrently); dot: see kernels/conv.py
            grad_x, grad_w = concurrently(xp, x2.size + weight.size, lambda: xp.dot(g2, weight),
                                          lambda: self._weight_gradient(g2, x2, w_home, xp.dot))
        elif need_x:
            grad_x = split_product(xp, g2, weight, xp.empty((g2.shape[0], weight.shape[1]),
                                                            dtype=xp.result_type(g, weight)))
        elif need_w:
            grad_w = self._weight_gradient(g2, x2, w_home, lambda a, b, out=None: split_product(
                xp, a, b, out if out is not None else xp.empty((a.shape[0], b.shape[1]), dtype=xp.result_type(a, b))))
        if grad_x is not None:
            grad_x = self._input_gradient(grad_x)
        if len(self.needs_input_grad) == 3:
            if not self.needs_input_grad[2]:
                return grad_x, grad_w, None
            return grad_x, grad_w, g2.sum(axis=0, out=self.grad_home(2, (g2.shape[1],), g2.dtype))
        return grad_x, grad_w

    def _weight_gradient(self, g2, x2, home, product):
        """g2.T @ x2 by `product` (xp.dot or a split product, with out=), into `home` when it is one."""
        return product(g2.T, x2, out=home)

    def _input_gradient(self, grad_rows):
        """The input's gradient from its rows' (g2 @ weight), in the input's shape."""
        return grad_rows.reshape(self.x_shape)


class FlattenLinear(FusedLinear):
    """Flatten then Dense (kernels/plan.py) on an (N, C, H, W) input held channels-last in memory
    (what the convolution kernels return): x.flatten(1) @ weight.T + bias (and ReLU), the weight
    in the user's (C, H, W) feature order, as state_dict, files and get_weights keep it.

    NOTE: a flatten of such an input copies it into (C, H, W) order (1.6 MB a training batch of
    the tutorial, 12.5 MB at inference batch 1000); here the input's rows are used as they lie,
    in (H, W, C) order, and the weight's columns are permuted to match instead, a copy of the
    weight's size (1.6 MB) per call, whatever the batch. The input's gradient comes out
    channels-last, as the convolution's backward reads it best, and the weight's gradient is
    permuted back into the user's order (into the optimizer's buffer when it has one). The sum
    over features runs in (H, W, C) order, so the last bits differ from a flatten's; the same
    bits recorded or not (tests/test_inference.py)."""

    def forward(self, x, weight, *bias, relu=False):
        xp = self.xp
        n, c, h, w = x.shape
        units = weight.shape[0]
        self.image = (c, h, w)
        rows = x.transpose(0, 2, 3, 1).reshape(n, h * w * c)  # a view: the memory is channels-last
        permuted = buffers.empty(xp, (units, h * w, c), weight.dtype)  # (kept from step to step: buffers.py)
        copy_over_rows(xp, permuted, weight.reshape(units, c, h * w).transpose(0, 2, 1))
        return super().forward(rows, permuted.reshape(units, -1), *bias, relu=relu)

    def _weight_gradient(self, g2, x2, home, product):
        xp, (c, h, w) = self.xp, self.image
        units = g2.shape[1]
        permuted = product(g2.T, x2, out=buffers.empty(xp, (units, x2.shape[1]), xp.result_type(g2, x2)))
        grad = home if home is not None else xp.empty((units, c * h * w), dtype=permuted.dtype)
        copy_over_rows(xp, grad.reshape(units, c, h * w), permuted.reshape(units, h * w, c).transpose(0, 2, 1))
        return grad

    def _input_gradient(self, grad_rows):
        c, h, w = self.image
        return grad_rows.reshape(-1, h, w, c).transpose(0, 3, 1, 2)  # channels-last, as the input was

    def backward_graph(self, g, inputs, output):
        """The gradients with Tensor ops (for create_graph=True): those of linear(x.flatten(1), ...)."""
        x, weight, need = inputs[0], inputs[1], self.needs_input_grad
        if self.out is not None:  # ReLU's gradient first
            g = g * constant((output.data > 0).astype(g.dtype), self.device)
        grad_x = (g @ weight).reshape(x.shape) if need[0] else None
        grad_w = g.T @ x.flatten(1) if need[1] else None
        if len(need) == 3:
            return grad_x, grad_w, g.sum(axis=0) if need[2] else None
        return grad_x, grad_w


def copy_over_rows(xp, target, source):
    """target[...] = source, its rows (axis 0) split over CPU cores (a copy: the same bits however cut)."""
    _over_rows(xp, target, lambda r: xp.copyto(target[r], source[r]))


def channels_last(array):
    """Whether a 4-D (N, C, H, W) array's memory is (N, H, W, C) in C order, and not also
    (N, C, H, W) (where flattening is free anyway)."""
    return (array.ndim == 4 and array.transpose(0, 2, 3, 1).flags.c_contiguous
            and not array.flags.c_contiguous)


def flatten_linear(x, weight, *bias, relu=False):
    """Flatten then linear (and ReLU) as one op (FlattenLinear), for x (N, C, H, W) held channels-last."""
    return FlattenLinear.apply(x, weight, *bias, relu=relu)


def linear_relu(x, weight, *bias):
    """ops.linear_relu as one op: FusedLinear with relu=True."""
    return FusedLinear.apply(x, weight, *bias, relu=True)
