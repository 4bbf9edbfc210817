"""Winograd F(2x2, 3x3): a 3x3, stride-1 convolution with bias, a 2x2/2 max-pool and ReLU as one op
(the reference: tinygrad_cnn/conv.py conv_pool_relu).

Each 4x4 tile of the padded input, taken at stride 2, gives one 2x2 block of the output, and with
a 2x2/2 pool that block is one pool window: the output transform, bias, max-pool and ReLU run on
the block in cache, and the full-size output is never written. The product itself is 16 GEMMs of
(tiles x C) @ (C x O), one per point of the transformed tile, 2.25x fewer FLOPs than the direct
convolution's (tiles x 9C) @ (9C x O). Backward routes each window's gradient to its first maximum,
one pixel of the tile's 2x2 block, transforms that block (dM = A dY A^T), and forms dU = V^T dM and
dV = dM U^T as 16 GEMMs each; dW = G^T dU G once per step, and dx = B dV B^T summed over the
overlapping tiles.

Everything is channels-last and works on whole chunks of images with strided views: the
transforms are adds and subtracts of strided slices, a handful of NumPy calls per chunk, nothing
loops over tiles, pixels or channels."""
from ..autograd import Function
from .conv import (MAX_AND_FIRST_OFFSET, MAX_OF_BLOCKS, offset_codes, pad_nhwc, route_by_codes, unpad_nchw,
                   conv_pool_relu as _direct)
from . import buffers
from .homes import GradientHomes
from .parallel import over_chunks, pieces

# NOTE: a chunk's V and M (16 x tiles x (C + O) values) stay under this size, 6 images of the
# tutorial's conv2, so that a thread's buffers (about twice that) stay in its core's 4 MiB L2: on a
# loaded machine 1 and 2 MB gave the same fwd+bwd time (0.74-0.77x the direct kernel), 4 MB 0.80x
# (benchmarks/bench_winograd.py --chunk).
CHUNK_BYTES = 2 << 20

# NOTE: keeping the transformed input V of the whole batch from forward, instead of the padded input
# and recomputing V in backward, saved ~3% of the tutorial conv2 block's fwd+bwd (keep / recompute per
# A B B A round: median 0.97, 0.82-1.06 on a loaded machine) but raised a training step's peak memory
# by 5 MB (12.8 MB kept instead of 4.2 MB; 84.7 MB against 79.8 MB with the direct kernel, 77.4 MB
# recomputing): off, so that the peak stays below the direct kernel's (74.5 MB against 79.5 MB since
# the output transform works in place: benchmarks/bench_winograd.py --memory).
KEEP_V = False

# F(2x2, 3x3)'s kernel transform G (4x3): U = G g G^T. NOTE: its entries are 0, +-1 and 1/2, so
# U is exact up to one rounding per sum; B^T and A^T (adds and subtracts only) are written out as
# slices in the code below rather than as matrices.
_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def applies(x, weight, stride, padding, dilation, pool, relu):
    """Whether the Winograd op computes this conv_pool_relu call: a 3x3 kernel at stride 1 and
    dilation 1, a 2x2/2 pool over an even-sized output (each window one 2x2 output block), ReLU
    or none, float arrays, on the CPU (see WINS_FROM_CHANNELS for the channel rule)."""
    if pool != (2, 2) or tuple(weight.shape[2:]) != (3, 3) or stride != (1, 1) or dilation != (1, 1):
        return False
    if x.xp.__name__ != "numpy" or x.dtype.kind != "f" or weight.dtype.kind != "f":
        return False
    (top, bottom), (left, right) = padding
    out_h, out_w = x.shape[2] + top + bottom - 2, x.shape[3] + left + right - 2
    return (min(top, bottom, left, right) >= 0 and out_h > 0 and out_w > 0 and out_h % 2 == 0
            and out_w % 2 == 0 and WINS_FROM_CHANNELS is not None and x.shape[1] >= WINS_FROM_CHANNELS)


# NOTE: Winograd pays per input channel for its transforms what it saves per output channel in
# the GEMMs, so it wins only with enough input channels. Measured on conv2's shape (14x14, 64
# outputs, batch 128; Winograd / direct per A B B A round, medians on a loaded 2-core machine,
# benchmarks/bench_winograd.py): C = 32 forward 0.75-0.85, fwd+bwd 0.71-0.75 (seven runs); C = 16
# forward 1.07-1.17, fwd+bwd 0.91-1.04; C = 8 1.35 and 1.05; C = 4 1.63 and 1.53; C = 1 (conv1's
# 28x28) 5.9-7.4 and 3.2-4.1. But those runs had other jobs on both cores (load 7-11). Quiet (load
# 0.3, 2026-12-07, two threads, 10 rounds; results/winograd_cpu_quiet.json): conv2 forward 1.31, fwd+bwd
# 1.09 (1.07-1.13), the training step 1.06 (1.04-1.09) (an earlier quiet run: 1.15 and 1.09): the
# transforms' extra memory passes cost more than the 2.25x fewer GEMM FLOPs save (the direct block
# runs at ~30% of both cores' GEMM rate, not the ~70% once written here, which was one core's rate:
# benchmarks/bench_layers.py's NOTE). So it is chosen for no shape by default (None);
# WINS_FROM_CHANNELS = 32 chooses it from 32 input channels, where it won on the loaded machine.
WINS_FROM_CHANNELS = None


def conv_pool_relu(x, weight, *bias, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), pool=None,
                   relu=False):
    """conv.conv_pool_relu on the CPU: WinogradConvPool where it applies (see `applies`), else the
    direct kernel (kernels.conv.conv_pool_relu)."""
    if applies(x, weight, stride, padding, dilation, pool, relu):
        return WinogradConvPool.apply(x, weight, *bias, stride=stride, padding=padding, dilation=dilation,
                                      pool=pool, relu=relu)
    return _direct(x, weight, *bias, stride=stride, padding=padding, dilation=dilation, pool=pool, relu=relu)


class WinogradConvPool(GradientHomes, Function):
    """Cross-correlation of x (N, C, H, W) with a 3x3 weight (O, C, 3, 3), plus an optional bias
    (O,), max-pooled over 2x2 windows and passed through ReLU (`relu=True`): the values and
    gradients of conv_pool_relu, through Winograd F(2x2, 3x3) transforms.

    NOTE: the result is an NCHW view of channels-last memory, as FusedConvolution's; per pooled
    value one byte keeps its window's first maximum, and backward routes by it (PyTorch's rule).
    The four pixels of a window are four different sums of the transformed tile, so in float32
    two identical windows may round an ulp apart and a tie go to the later one, where the direct
    kernel's identical rows tie exactly: 1 of 20,214 exactly tied windows of the tutorial's second
    layer on 32 MNIST images (tests/test_conv_pool.py bounds it)."""

    def forward(self, x, weight, *bias, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), pool=(2, 2),
                relu=False):
        xp = self.xp
        n, c, h, w = x.shape
        o = weight.shape[0]
        (top, bottom), (left, right) = padding
        height, width = h + top + bottom, w + left + right
        th, tw = (height - 2) // 2, (width - 2) // 2  # tiles, one per pool window
        dtype = xp.result_type(x, weight)
        self.shapes = (n, c, h, w, o, th, tw, padding)
        self.has_bias = bool(bias)
        self.u = self._kernel_transform(weight.astype(dtype, copy=False))  # (16, C, O)
        # NOTE: for backward's dU = V^T dM, the padded input is kept (4.2 MB for the tutorial's conv2
        # at batch 128, as the direct kernel keeps), and V recomputed chunk by chunk in cache; see KEEP_V
        # (an op that is not recorded keeps neither, nor the offsets: it pools values only, see
        # conv.MAX_OF_BLOCKS, and pads each chunk into a buffer of its thread's)
        keep_v = KEEP_V and self.recorded
        self.v = buffers.empty(xp, (16, n * th * tw, c), dtype) if keep_v else None
        self.x_pad = buffers.empty(xp, (n, height, width, c), x.dtype) if self.recorded and not keep_v else None
        result = buffers.empty(xp, (n, th, tw, o), dtype)
        self.offset = buffers.empty(xp, result.shape, xp.uint8) if self.recorded else None
        one = offset_codes(self, 4)[1:2] if self.recorded else None
        b = bias[0].astype(dtype, copy=False) if bias else None
        chunks = self.cache_chunks(dtype)
        most = chunks[0].stop - chunks[0].start if chunks else 0
        per_image = th * tw

        def work(source):
            d = buffers.empty(xp, (most, height, width, c), x.dtype) if self.x_pad is None else None
            t = buffers.empty(xp, (4, most, height, tw, c), dtype)
            v = self._buffers(most, dtype, c) if self.v is None else None
            m = self._buffers(most, dtype, o)
            for _, chunk in source:
                images = chunk.stop - chunk.start
                tiles = images * per_image
                padded = d[:images] if self.x_pad is None else self.x_pad[chunk]
                pad_nhwc(xp, x[chunk], padding, out=padded)
                vc = v[:, :tiles] if self.v is None else self.v[:, chunk.start * per_image:chunk.stop * per_image]
                self._input_transform(padded, t[:, :images], vc)
                mc = m[:, :tiles]
                xp.matmul(vc, self.u, out=mc)
                mc = mc.reshape(4, 4, tiles, o)
                if b is not None:  # NOTE: every output of the tile sums M[1, 1] once, so the bias goes there
                    mc[1, 1] += b
                # NOTE: the output transform Y = A^T M A, A^T = [[1, 1, 1, 0], [0, 1, -1, -1]], in place:
                # rows 0 and 3 of M get the row pass, then their columns 0 and 3 the column pass, and
                # Y[i, j] is M[3i, 3j]; 8 calls, no other buffer in cache
                mc[0] += mc[1]
                mc[0] += mc[2]
                xp.subtract(mc[1], mc[3], out=mc[3])
                mc[3] -= mc[2]
                ends = mc[::3]  # rows 0 and 3
                ends[:, 0] += ends[:, 1]
                ends[:, 0] += ends[:, 2]
                xp.subtract(ends[:, 1], ends[:, 3], out=ends[:, 3])
                ends[:, 3] -= ends[:, 2]
                blocks = [mc[3 * i, 3 * j].reshape(images, th, tw, o) for i in range(2) for j in range(2)]
                if self.offset is None:
                    MAX_OF_BLOCKS[relu](result[chunk], *blocks)
                else:
                    MAX_AND_FIRST_OFFSET[relu](result[chunk], self.offset[chunk], one, *blocks)

        over_chunks(xp, chunks, n * per_image * 16 * max(c, o), work)
        return result.transpose(0, 3, 1, 2)

    def cache_chunks(self, dtype):
        """Chunks of images fixed by the problem (parallel.pieces): never by the thread count,
        so that the weight gradient's per-chunk parts, summed in chunk order, give the same bits."""
        n, c, _, _, o, th, tw, _ = self.shapes
        image_bytes = 16 * th * tw * (c + o) * self.xp.dtype(dtype).itemsize
        return pieces(n, most=max(1, CHUNK_BYTES // image_bytes))  # none for n = 0

    def _buffers(self, images, dtype, channels):
        """A (16, tiles, channels) buffer for chunks of up to `images` images: one (tiles, channels)
        matrix per point of the 4x4 transformed tile, tiles in (image, tile y, tile x) order."""
        _, _, _, _, _, th, tw, _ = self.shapes
        return buffers.empty(self.xp, (16, images * th * tw, channels), dtype)

    def _kernel_transform(self, weight):
        """U = G g G^T for every (output, input) channel pair, as (16, C, O): one GEMM operand per
        point of the transformed tile."""
        xp = self.xp
        g = xp.asarray(_G, dtype=weight.dtype)
        u = xp.tensordot(g, xp.tensordot(g, weight, axes=(1, 2)), axes=(1, 3))  # (4 b, 4 a, O, C)
        o, c = weight.shape[:2]
        return xp.ascontiguousarray(u.transpose(1, 0, 3, 2)).reshape(16, c, o)

    def _input_transform(self, d, t, v):
        """V = B^T d B for every 4x4 tile (at stride 2) of the padded chunk d (images, Hp, Wp, C),
        written into v (16, tiles, C); `t` (4, images, Hp, TW, C) holds the column pass.

        NOTE: B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]] as adds of strided
        slices: 4 calls over columns (each for all tiles), then 4 over rows that each write 4 of the
        16 outputs at once; 8 passes over chunk-sized data in all. Columns first: their slices
        are contiguous only along the channels, and the row pass then reads whole (TW, C) runs
        (15% faster than rows first)."""
        xp = self.xp
        images, th, tw = d.shape[0], (d.shape[1] - 2) // 2, t.shape[3]
        cols = [d[:, :, k:k + 2 * tw - 1:2] for k in range(4)]  # (images, Hp, TW, C) each
        xp.subtract(cols[0], cols[2], out=t[0])
        xp.add(cols[1], cols[2], out=t[1])
        xp.subtract(cols[2], cols[1], out=t[2])
        xp.subtract(cols[1], cols[3], out=t[3])
        out = v.reshape(4, 4, images, th, tw, -1)
        if not _is_view_of(out, v):
            raise AssertionError("winograd: the transformed input is not a view of its buffer")
        rows = [t[:, :, k:k + 2 * th - 1:2] for k in range(4)]  # (4, images, TH, TW, C) each
        xp.subtract(rows[0], rows[2], out=out[0])
        xp.add(rows[1], rows[2], out=out[1])
        xp.subtract(rows[2], rows[1], out=out[2])
        xp.subtract(rows[1], rows[3], out=out[3])

    def backward(self, g):
        xp = self.xp
        n, c, h, w, o, th, tw, padding = self.shapes
        need_x, need_w = self.needs_input_grad[:2]
        need_b = self.has_bias and self.needs_input_grad[2]
        g = g.transpose(0, 2, 3, 1)  # (N, TH, TW, O), the pooled gradient
        dtype = xp.result_type(g, self.u)
        codes = offset_codes(self, 4)[1:].reshape(2, 2, 1, 1, 1, 1)  # 1 + each block's index
        u_t = self.u.transpose(0, 2, 1)  # (16, O, C)
        chunks = self.cache_chunks(dtype)
        most = chunks[0].stop - chunks[0].start if chunks else 0
        per_image = th * tw
        (top, bottom), (left, right) = padding
        height, width = h + top + bottom, w + left + right
        grad_pad = buffers.empty(xp, (n, height, width, c), dtype) if need_x else None
        parts_u, parts_b = [None] * len(chunks), [None] * len(chunks)

        def work(source):
            m = self._buffers(most, dtype, o)
            v = self._buffers(most, dtype, c)
            t = buffers.empty(xp, (4, most, height, tw, c), dtype)
            for index, chunk in source:
                images = chunk.stop - chunk.start
                tiles = images * per_image
                dm = self._output_adjoint(g[chunk], self.offset[chunk], codes, m[:, :tiles])
                if need_b:  # every output of a tile sums M[1, 1] once (see forward)
                    parts_b[index] = dm[5].sum(axis=0)
                if need_w:
                    if self.v is not None:
                        vc = self.v[:, chunk.start * per_image:chunk.stop * per_image]
                    else:  # V again, from the padded input, in cache
                        vc = v[:, :tiles]
                        self._input_transform(self.x_pad[chunk], t[:, :images], vc)
                    parts_u[index] = xp.matmul(vc.transpose(0, 2, 1), dm)  # (16, C, O)
                if need_x:
                    dv = v[:, :tiles]
                    xp.matmul(dm, u_t, out=dv)
                    self._input_adjoint(dv.reshape(4, 4, images, th, tw, c), t[:, :images], grad_pad[chunk])

        over_chunks(xp, chunks, n * per_image * 16 * max(c, o), work)
        grad_x = unpad_nchw(grad_pad, padding) if need_x else None
        grad_w = grad_b = None
        if need_w:  # summed in chunk order, whichever thread computed each part
            du = parts_u[0] if chunks else xp.zeros((16, c, o), dtype=dtype)  # (an empty batch: no chunk)
            for part in parts_u[1:]:
                du += part
            grad_w = self._kernel_adjoint(du.reshape(4, 4, c, o), dtype)
        if need_b:
            grad_b = parts_b[0] if chunks else xp.zeros(o, dtype=dtype)
            for part in parts_b[1:]:
                grad_b += part
            home = self.grad_home(2, grad_b.shape, grad_b.dtype)
            if home is not None:
                xp.copyto(home, grad_b)
                grad_b = home
        if self.has_bias:
            return grad_x, grad_w, grad_b
        return grad_x, grad_w

    def _output_adjoint(self, g, offset, codes, dm):
        """dM = A dY A^T into `dm` (16, tiles, O), where the 2x2 output gradient dY of each tile is
        the pooled gradient g (images, TH, TW, O) at the window's first maximum and zero elsewhere
        (everywhere where ReLU zeroed the pooled value). A = [[1, 0], [1, 1], [1, -1], [0, -1]].

        NOTE: in place, as forward's output transform: routing (one broadcast compare-and-multiply,
        as the direct kernel's) writes dY[i, j] into dM[3i, 3j], then rows 0 and 3 give rows 1 and
        2 (and row 3 its sign), then columns 0 and 3 give columns 1 and 2; 7 calls. A look-up of
        the +-1/0 factor by offset code (xp.take) and a multiply by g took 2.5x as long."""
        xp = self.xp
        images, th, tw, o = g.shape
        out = dm.reshape(4, 4, images, th, tw, o)
        route_by_codes(out[::3, ::3], g, offset, codes)
        out = dm.reshape(4, 4, -1, o)
        for rows in (out[:, ::3], out.transpose(1, 0, 2, 3)):  # rows (of columns 0 and 3), then columns
            xp.add(rows[0], rows[3], out=rows[1])
            xp.subtract(rows[0], rows[3], out=rows[2])
            xp.negative(rows[3], out=rows[3])
        return dm

    def _kernel_adjoint(self, du, dtype):
        """dW = G^T dU G, as (O, C, 3, 3), into the optimizer's buffer when it has one (kernels/homes.py)."""
        xp = self.xp
        g = xp.asarray(_G, dtype=dtype)
        dw = xp.tensordot(g, xp.tensordot(g, du, axes=(0, 1)), axes=(0, 1))  # (3 i, 3 j, C, O)
        dw = dw.transpose(3, 2, 0, 1)
        home = self.grad_home(1, dw.shape, dw.dtype)
        if home is None:
            return xp.ascontiguousarray(dw)
        xp.copyto(home, dw)
        return home

    def _input_adjoint(self, dv, t, dd):
        """The gradient of the padded chunk d from the gradient of its transformed tiles, dv
        (4, 4, images, TH, TW, C): B dV B^T summed over the overlapping tiles, written into dd
        (images, Hp, Wp, C); `t` (4, images, Hp, TW, C) holds the row pass.

        NOTE: the adjoint of _input_transform's slices, rows then columns: tile row m starts at
        padded row 2m, so even rows 2m get dV0 of tile m and (dV1 + dV2 - dV0) of tile m - 1, odd
        rows 2m + 1 get (dV1 - dV2 + dV3) of tile m and -dV3 of tile m - 1; columns likewise. The
        overlap is added by separate calls, so no call writes a value twice."""
        _slices_adjoint(self.xp, dv, t)  # rows: dv[a] is (4 b, images, TH, TW, C), t's axis 2 the rows
        _slices_adjoint(self.xp, t, dd)  # columns: t[b] is (images, Hp, TW, C), dd's axis 2 the columns


def _slices_adjoint(xp, src, dst):
    """dst = the adjoint of B^T along dst's axis 2 (of length 2 * size + 2), from src[k], the
    gradient of the k-th output of the transform along that axis (size along its axis 2)."""
    size = src.shape[3]
    even, odd = dst[:, :, 0::2], dst[:, :, 1::2]
    even[:, :, size] = 0
    xp.copyto(even[:, :, :size], src[0])
    even[:, :, 1:] += src[1]
    even[:, :, 1:] += src[2]
    even[:, :, 1:] -= src[0]
    odd[:, :, size] = 0
    xp.subtract(src[1], src[2], out=odd[:, :, :size])
    odd[:, :, :size] += src[3]
    odd[:, :, 1:] -= src[3]


def _is_view_of(view, base):
    """Whether `view` shares `base`'s memory (a reshape that copied would leave `base` unwritten)."""
    return view.base is base or view.base is base.base
