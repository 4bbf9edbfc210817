"""A pooling convolution's input as one patch per pool window (the first layer's, on the CPU).

FusedConvolution's im2col gives each of a pool window's PH x PW output pixels a row of its KH*KW*C
input values: 4 x 9 values per window for a 3x3 kernel and a 2x2 pool, with one input channel. The
four windows overlap: together they read a 4 x 4 patch, 16 values. PoolPatches writes one row per
pool window holding its patch (and the ones column for the bias), and gives every window offset q
its own (patch, O) weight matrix: the kernel at q's place in the patch, zeros elsewhere. Offset q's
products are then (patch rows) @ weights[q], the same per-offset GEMMs with the same row order as
FusedConvolution's, from a matrix 2.25x smaller that is built with 2.25x fewer copies, and small
enough to be kept from forward for the weight gradient instead of rebuilt.

NOTE: the extra products are by exact zeros, so for finite inputs a product's value is the im2col
GEMM's: each output is one BLAS dot over the row in k order, and adding x * 0 = +-0 changes no
nonzero sum (checked bit for bit against the im2col GEMM in tests/test_conv_patches.py and in
benchmarks/bench_conv1_parts.py). Identical windows therefore still give identical values (the tie
rule of FusedConvolution.forward). A non-finite input value would turn x * 0 into NaN in windows
that do not read it, so an op whose input is not all finite uses the im2col rows (`usable`)."""
import functools

from . import buffers

# NOTE: on by default where it applies (see `applies`); tests and benchmarks turn it off to compare
ENABLED = True

# NOTE: the most bytes of full-size output (or im2col rows) a chunk of images may hold with patches:
# 8 images of the tutorial's first layer (its four pool blocks 0.8 MB, in a core's 2 MB L2 with the
# chunk's patch rows and routed gradient), where FusedConvolution's 4 MiB gives 16. Measured in
# benchmarks/README.md (conv1 section); the patch rows no longer being rebuilt in backward is what
# makes the smaller chunks pay here.
CHUNK_BYTES = 1 << 20


def applies(weight, stride, dilation, blocks, channels_first):
    """Whether a pooling convolution on the CPU takes patches: im2col rows written column-major (few
    channels: FusedConvolution.channels_first) and a patch smaller than its windows' rows together."""
    if not ENABLED or blocks.pool is None or not channels_first:
        return False
    _, c, kh, kw = weight.shape
    (ph, pw), (sh, sw), (dh, dw) = blocks.window, stride, dilation
    patch = ((ph - 1) * sh + (kh - 1) * dh + 1) * ((pw - 1) * sw + (kw - 1) * dw + 1) * c
    return patch < blocks.count * kh * kw * c


def usable(xp, x):
    """Whether x's values allow patches: all finite (see the module's NOTE). One pass over the input,
    which for the first layer is 1/32 of its output."""
    return bool(xp.isfinite(x).all())


@functools.lru_cache(maxsize=64)
def _layout(c, kh, kw, stride, dilation, window, has_bias):
    """A patch's box (rows, columns, C); places[q], offset q's taps in the patch in im2col's (i, j,
    channel) order; and those places as rows of the (offsets * (patch [+ 1]), O) stacked weights."""
    (ph, pw), (sh, sw), (dh, dw) = window, stride, dilation
    box = ((ph - 1) * sh + (kh - 1) * dh + 1, (pw - 1) * sw + (kw - 1) * dw + 1, c)
    width = box[0] * box[1] * c + has_bias
    places = [[((qi * sh + i * dh) * box[1] + qj * sw + j * dw) * c + channel
                 for i in range(kh) for j in range(kw) for channel in range(c)]
              for qi in range(ph) for qj in range(pw)]
    rows = [q * width + place for q, taps in enumerate(places) for place in taps]
    return box, [list(taps) for taps in places], rows


class PoolPatches:
    """The patch rows and per-offset weights of one FusedConvolution call (see the module docstring).

    A patch's values are ordered (row, column, channel) of the input box it covers; `places[q]` lists,
    in the im2col rows' (i, j, channel) order, where offset q's taps sit in it."""

    def __init__(self, xp, weight, bias, stride, dilation, blocks):
        o, c, kh, kw = weight.shape
        self.xp, self.blocks, self.has_bias = xp, blocks, bias is not None
        self.box, self.places, rows = _layout(c, kh, kw, tuple(stride), tuple(dilation), blocks.window, self.has_bias)
        self.rows = xp.asarray(rows)  # every offset's taps as rows of the stacked (offsets * (patch [+ 1]), O)
        self.size = self.box[0] * self.box[1] * c
        self.step = (blocks.window[0] * stride[0], blocks.window[1] * stride[1])  # from one patch to the next
        # NOTE: every offset's taps set by one indexed write (Python work holds the lock the other thread needs)
        w_mat = weight.transpose(2, 3, 1, 0).reshape(1, kh * kw * c, o)  # im2col's (KH*KW*C, O)
        self.weights = xp.zeros((blocks.count, self.size + self.has_bias, o), dtype=weight.dtype)
        self.weights.reshape(-1, o)[self.rows] = xp.broadcast_to(w_mat, (blocks.count,) + w_mat.shape[1:]).reshape(-1, o)
        if self.has_bias:
            self.weights[:, self.size] = bias  # (cast to the weight's dtype, as FusedConvolution's w_mat)

    def new_rows(self, windows, dtype):
        """A buffer for the patch rows of up to `windows` pool windows (see operand)."""
        return buffers.empty(self.xp, ((self.size + self.has_bias) * windows,), dtype)

    def operand(self, rows, start, windows):
        """The (windows, patch [+ 1]) GEMM operand of `windows` pool windows from window `start` on,
        in the flat buffer `rows` (from new_rows): column-major, its last column the ones when there is
        a bias (set by fill).

        NOTE: each chunk's rows one compact block of the buffer (not columns of one (patch, windows)
        matrix for the whole batch), so that a chunk's GEMMs read one contiguous stretch of memory."""
        width = self.size + self.has_bias
        return rows[start * width:(start + windows) * width].reshape(width, windows).T

    def view(self, x_pad):
        """Every pool window's patch of a padded (N, Hp, Wp, C) array, as one strided view of shape
        (box rows, box columns, C, N, H', W'), H' x W' the grid of pool windows."""
        s_n, s_h, s_w, s_c = x_pad.strides
        shape = self.box[:2] + (self.box[2], x_pad.shape[0], self.blocks.height, self.blocks.width)
        strides = (s_h, s_w, s_c, s_n, s_h * self.step[0], s_w * self.step[1])
        return self.xp.lib.stride_tricks.as_strided(x_pad, shape=shape, strides=strides)

    def fill(self, view, images, rows, start):
        """Write the patches of a consecutive slice of `images` (of `view`, from view()) as the operand
        of their windows, the first from window `start` on in `rows`; returns that operand."""
        count = images.stop - images.start
        operand = self.operand(rows, start, count * self.blocks.height * self.blocks.width)
        if self.has_bias:
            operand[:, self.size] = 1
        target = operand[:, :self.size].T.reshape(view.shape[:3] + (count,) + view.shape[4:])
        self.xp.copyto(target, view[:, :, :, images])
        return operand

    def weight_gradient(self, operand, g_rows):
        """A chunk's share of the (KH*KW*C [+ 1], O) weight gradient (the bias's its last row), from its
        patch rows (`operand`, from operand() or fill) and its routed output gradient in the blocks'
        order: offset q's (patch [+ 1], O) product, its rows at q's taps summed into the taps' gradient.

        NOTE: dot, not matmul (see FusedConvolution.backward); the four products summed in offset order
        (so the bits do not depend on threads), by one gather and one sum for all of them."""
        xp = self.xp
        windows, o = operand.shape[0], g_rows.shape[1]
        products = xp.empty((self.blocks.count, self.size + self.has_bias, o), dtype=xp.result_type(operand, g_rows))
        for q in range(self.blocks.count):
            xp.dot(operand.T, g_rows[q * windows:(q + 1) * windows], out=products[q])
        k = len(self.places[0])
        part = xp.empty((k + self.has_bias, o), dtype=products.dtype)
        xp.sum(products.reshape(-1, o)[self.rows].reshape(self.blocks.count, k, o), axis=0, out=part[:k])
        if self.has_bias:
            xp.sum(products[:, self.size], axis=0, out=part[k])
        return part
