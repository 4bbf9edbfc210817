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

Everything works on whole chunks of images: each chunk's padded input is split by row and column
parity with the images innermost (see _split), so that the transforms are adds and subtracts of
slices with long runs of memory, a handful of NumPy calls per chunk on views of few axes; nothing
loops over tiles, pixels or channels."""
from ..autograd import Function
from .conv import (MAX_AND_FIRST_OFFSET, MAX_OF_BLOCKS, offset_codes, route_by_codes,
                   conv_pool_relu as _direct)
from . import buffers
from .homes import GradientHomes
from .parallel import over_chunks, pieces

# NOTE: a chunk's V and M (16 x tiles x (C + O) values) stay under this size, 6 images of the
# tutorial's conv2, so that a thread's buffers stay near its core's 2 MiB L2: on a loaded machine
# 1 and 2 MB gave the same fwd+bwd time (0.74-0.77x the direct kernel), 4 MB 0.80x
# (benchmarks/bench_winograd.py --chunk). With the split layout, chunk sizes interleaved in one
# process (one thread, loaded): 2, 3, 4, 6, 8 MB took 1, 1.02, 1.05, 1.23, 1.26x; another run 1 MB
# 1.07x, 1.5 MB 1.02x, 3 MB 0.98x, 4 MB 1.01x. On two threads, chunks of 4, 8 and 16 MiB cut its sleeps a
# step from 554 to 398, 218 and 222 (direct 198) yet still took 1.045, 1.034 and 1.049x the direct kernel's
# step, against 1.097x at 2 MiB (benchmarks/results/wakes_winograd_chunks.json, 8 quiet rounds): bigger
# chunks fall out of L2 what they save in calls.
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
# the GEMMs, so it wins only with enough input channels. First version (strided (N, Hp, Wp, C)
# slices), on conv2's shape (14x14, 64 outputs, batch 128; Winograd / direct per A B B A round,
# medians, benchmarks/bench_winograd.py), loaded 2-core machine (load 7-11): C = 32 fwd+bwd
# 0.71-0.75; C = 16 0.91-1.04; C = 8 1.05; C = 4 1.53; C = 1 (conv1's 28x28) 3.2-4.1. Quiet (load
# 0.3, two threads; results/winograd_cpu_quiet.json): conv2 fwd+bwd 1.09, the training step 1.06,
# so it was chosen for no shape. Since then (2026-12-07, 19:45-20:05 UTC) the split layout (_split),
# views of few axes, U^T contiguous, dU as dM^T V and the sign in the routing: conv2 block fwd+bwd
# against direct, first version 0.919 (one thread) and 0.869 (two) at 19:45, now 0.852 (0.63-0.97)
# and 0.718 (0.64-0.77); a training step 0.798 (0.75-0.86) and 0.837 (0.79-0.86)
# (results/winograd_cpu_split_1thread.json, _2threads.json); against main's Winograd, fwd+bwd 0.862
# and 0.866 (results/winograd_split_vs_main_*.json); a training step against main with direct
# kernels (benchmarks/bench_ab.py, separate processes, results/ab_winograd_split_*.json): 0.857
# (0.70-0.95) one thread, 0.827 (0.68-0.93) two (an earlier pair: 0.82 and 0.84), peak memory 74 MB
# against 80 MB (two threads), 70 and 70 (one). All on the machine shared with two other
# jobs (load average 2-4 on 2 cores). Quiet again (20:26-20:28 UTC, load 0.6-0.7, main 39ec654, the
# direct kernel with its new input gradient; results/winograd_quiet_session4.json and two reruns, no
# file): two threads (the default here) conv2 fwd+bwd 1.130, 1.106; the training step 1.056, 1.054
# (and 53.2 against 52.5 ms in an in-process alternation); one thread fwd+bwd 0.783, the step 0.853
# (and 64.1 against 73.8 ms). So it wins on one core and loses on two: its many memory passes and
# per-call overhead scale worse (two threads cost 1.28x its one-thread CPU time a step, the direct
# kernel's 1.22x). The choice may not depend on the thread count (the same bits for any thread
# count), and two threads are this machine's default, so it stays off (None); 32 chooses it.
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
        # (flat: each chunk in _split's layout; asked for by its padded shape, as the direct kernel's)
        self.x_pad = (buffers.empty(xp, (n, height, width, c), x.dtype).reshape(-1) if self.recorded and not keep_v
                      else None)
        result = buffers.empty(xp, (n, th, tw, o), dtype)
        self.offset = buffers.empty(xp, result.shape, xp.uint8) if self.recorded else None
        one = offset_codes(self, 4)[1:2] if self.recorded else None
        b = bias[0].astype(dtype, copy=False) if bias else None
        chunks = self.cache_chunks(dtype)
        most = chunks[0].stop - chunks[0].start if chunks else 0
        per_image = th * tw

        def work(source):
            d = buffers.empty(xp, (most * height * width * c,), x.dtype) if self.x_pad is None else None
            t = buffers.empty(xp, (most * 8 * th * (tw + 1) * c,), dtype)  # 4 x TH x 2 x (TW + 1) x images x C
            v = self._buffers(most, dtype, c) if self.v is None else None
            m = self._buffers(most, dtype, o)
            pool_values = buffers.empty(xp, (most * per_image * o,), dtype)
            pool_codes = buffers.empty(xp, (most * per_image * o,), xp.uint8) if self.offset is not None else None
            for _, chunk in source:
                images = chunk.stop - chunk.start
                tiles = images * per_image
                padded = self._split(d if self.x_pad is None else self.x_pad, chunk.start if d is None else 0, images)
                self._pad_split(x[chunk], padded)
                vc = v[:, :tiles] if self.v is None else self.v[:, chunk.start * per_image:chunk.stop * per_image]
                self._input_transform(padded, t, vc)
                mc = m[:, :tiles]
                xp.matmul(vc, self.u, out=mc)
                mc = mc.reshape(4, 4, tiles * o)  # (NOTE: views of few axes: NumPy sets up each call faster)
                if b is not None:  # NOTE: every output of the tile sums M[1, 1] once, so the bias goes there
                    xp.add(mc[1, 1].reshape(tiles, o), b, out=mc[1, 1].reshape(tiles, o))
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
                blocks = [mc[3 * i, 3 * j] for i in range(2) for j in range(2)]
                # NOTE: pooled in the tiles' order (TH, TW, images, O), then copied into the (N, TH, TW, O)
                # result: the pooling's ten passes over its output ran 2x slower on the strided view
                pooled = pool_values[:tiles * o]
                if self.offset is None:
                    MAX_OF_BLOCKS[relu](pooled, *blocks)
                else:
                    codes = pool_codes[:tiles * o]
                    MAX_AND_FIRST_OFFSET[relu](pooled, codes, one, *blocks)
                    self.offset[chunk] = codes.reshape(th, tw, images, o).transpose(2, 0, 1, 3)
                result[chunk] = pooled.reshape(th, tw, images, o).transpose(2, 0, 1, 3)

        over_chunks(xp, chunks, n * per_image * 16 * max(c, o), work)
        return result.transpose(0, 3, 1, 2)

    def _split(self, flat, start, images):
        """The padded chunk of `images` images from image `start` on, in the flat buffer `flat`, as
        (2, Hp / 2, 2, Wp / 2, images, C): padded pixel (2I + r, 2J + s) of image k at [r, I, s, J, k].

        NOTE: tile (i, j) reads rows 2i..2i+3 and columns 2j..2j+3, so each of its 16 points, across
        all tiles, is a slice [r, i0:i0 + TH, s, j0:j0 + TW] of this layout, long runs of memory (TW
        x images x C values) rather than the C-value runs of stride-2 slices of an (N, Hp, Wp, C)
        image: the transforms' passes took ~0.7x the time (the images innermost: the tiles are
        ordered (tile row, tile column, image) throughout)."""
        _, c, _, _, _, th, tw, _ = self.shapes
        size = (2 * th + 2) * (2 * tw + 2) * c
        return flat[start * size:(start + images) * size].reshape(2, th + 1, 2, tw + 1, images, c)

    def _pad_split(self, x, d):
        """Copy the NCHW chunk x (images, C, H, W) into its padded, split layout d (see _split)."""
        (top, bottom), (left, right) = self.shapes[7]
        _, _, h, w = x.shape
        height, width = h + top + bottom, w + left + right
        for r in [*range(top), *range(top + h, height)]:  # the padding: zero rows, then columns
            d[r % 2, r // 2] = 0
        for s in [*range(left), *range(left + w, width)]:
            d[:, :, s % 2, s // 2] = 0
        image = x.transpose(2, 3, 0, 1)  # (H, W, images, C)
        for y0 in range(min(2, h)):
            r = y0 + top
            rows = slice(r // 2, r // 2 + len(range(y0, h, 2)))
            for x0 in range(min(2, w)):
                s = x0 + left
                d[r % 2, rows, s % 2, s // 2:s // 2 + len(range(x0, w, 2))] = image[y0::2, x0::2]

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
        """V = B^T d B for every 4x4 tile (at stride 2) of the padded chunk d (2, TH + 1, 2, TW + 1,
        images, C) (see _split), written into v (16, tiles, C), tiles in (TH, TW, images) order; the
        flat buffer `t` holds the row pass.

        NOTE: B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]] as adds of strided
        slices: 4 calls over rows (each for all tiles; contiguous), then 4 over columns that each
        write 4 of the 16 outputs at once (runs of TW x images x C values); 8 passes over chunk-sized
        data, on views of at most 3 axes."""
        xp = self.xp
        _, hh, _, wh, images, c = d.shape
        th, tw, run = hh - 1, wh - 1, images * c
        row = 2 * wh * run  # one row I of d (both column parities)
        d = d.reshape(2, hh * row)
        t = t[:4 * th * row].reshape(4, th * row)
        rows = [d[a % 2, a // 2 * row:(a // 2 + th) * row] for a in range(4)]  # (TH x 2 x (TW + 1) x run) each
        xp.subtract(rows[0], rows[2], out=t[0])
        xp.add(rows[1], rows[2], out=t[1])
        xp.subtract(rows[2], rows[1], out=t[2])
        xp.subtract(rows[1], rows[3], out=t[3])
        out = v.reshape(4, 4, th, tw * run)
        if not _is_view_of(out, v):
            raise AssertionError("winograd: the transformed input is not a view of its buffer")
        t = t.reshape(4, th, 2, wh * run)
        cols = [t[:, :, b % 2, b // 2 * run:(b // 2 + tw) * run] for b in range(4)]  # (4, TH, TW x run) each
        xp.subtract(cols[0], cols[2], out=out[:, 0])
        xp.add(cols[1], cols[2], out=out[:, 1])
        xp.subtract(cols[2], cols[1], out=out[:, 2])
        xp.subtract(cols[1], cols[3], out=out[:, 3])

    def backward(self, g):
        xp = self.xp
        n, c, h, w, o, th, tw, padding = self.shapes
        need_x, need_w = self.needs_input_grad[:2]
        need_b = self.has_bias and self.needs_input_grad[2]
        g = g.transpose(0, 2, 3, 1)  # (N, TH, TW, O), the pooled gradient
        dtype = xp.result_type(g, self.u)
        codes = offset_codes(self, 4)[1:]  # 1 + each block's index
        codes = codes[0::3].reshape(2, 1), codes[1:3].reshape(2, 1)  # blocks (0, 0), (1, 1); (0, 1), (1, 0)
        # NOTE: U^T contiguous (16, O, C): OpenBLAS took 1.7x as long for dM U^T with U^T a transposed view
        u_t = xp.ascontiguousarray(self.u.transpose(0, 2, 1))
        chunks = self.cache_chunks(dtype)
        most = chunks[0].stop - chunks[0].start if chunks else 0
        per_image = th * tw
        height, width = 2 * th + 2, 2 * tw + 2
        grad_x = buffers.empty(xp, (n, h, w, c), dtype) if need_x else None
        parts_u, parts_b = [None] * len(chunks), [None] * len(chunks)

        def work(source):
            m = self._buffers(most, dtype, o)
            v = self._buffers(most, dtype, c)
            t = buffers.empty(xp, (most * 8 * th * (tw + 1) * c,), dtype)  # 4 x TH x 2 x (TW + 1) x images x C
            dd = buffers.empty(xp, (most * height * width * c,), dtype) if need_x else None
            for index, chunk in source:
                images = chunk.stop - chunk.start
                tiles = images * per_image
                dm = self._output_adjoint(g[chunk].transpose(1, 2, 0, 3), self.offset[chunk].transpose(1, 2, 0, 3),
                                          codes, m[:, :tiles])  # (16, tiles, O)
                if need_b:  # every output of a tile sums M[1, 1] once (see forward)
                    parts_b[index] = dm[5].sum(axis=0)
                if need_w:
                    if self.v is not None:
                        vc = self.v[:, chunk.start * per_image:chunk.stop * per_image]
                    else:  # V again, from the padded input, in cache
                        vc = v[:, :tiles]
                        self._input_transform(self._split(self.x_pad, chunk.start, images), t, vc)
                    # NOTE: as dU^T = dM^T V, (16, O, C): OpenBLAS ran it ~8% faster than V^T dM
                    parts_u[index] = xp.matmul(dm.transpose(0, 2, 1), vc)
                if need_x:
                    dv = v[:, :tiles]
                    xp.matmul(dm, u_t, out=dv)
                    grad = self._split(dd, 0, images)
                    self._input_adjoint(dv, t, grad)
                    self._unpad_split(grad, grad_x[chunk])

        over_chunks(xp, chunks, n * per_image * 16 * max(c, o), work)
        grad_x = grad_x.transpose(0, 3, 1, 2) if need_x else None
        grad_w = grad_b = None
        if need_w:  # summed in chunk order, whichever thread computed each part
            du = parts_u[0] if chunks else xp.zeros((16, o, c), dtype=dtype)  # (an empty batch: no chunk)
            for part in parts_u[1:]:
                du += part
            grad_w = self._kernel_adjoint(du.reshape(4, 4, o, c), dtype)
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
        the pooled gradient g (TH, TW, images, O) at the window's first maximum and zero elsewhere
        (everywhere where ReLU zeroed the pooled value). A = [[1, 0], [1, 1], [1, -1], [0, -1]].

        NOTE: in place, as forward's output transform: routing (broadcast compare-and-multiply, as
        the direct kernel's) writes A[3i, i] A[3j, j] dY[i, j] (the sign: -1 for i + j odd) into
        dM[3i, 3j], then rows 0 and 3 give rows 1 and 2, then columns 0 and 3 give columns 1 and 2;
        6 calls (the sign in the routing saves the two passes that negated row and column 3). A
        look-up of the +-1/0 factor by offset code (xp.take) and a multiply by g took 2.5x as long."""
        xp = self.xp
        out = dm.reshape(4, 4, -1)  # (NOTE: views of few axes: NumPy sets up each call faster)
        points = dm.reshape(16, -1)
        g = xp.ascontiguousarray(g).reshape(-1)
        offset = xp.ascontiguousarray(offset).reshape(-1)  # (read four times below)
        plus, minus = codes
        route_by_codes(points[0::15], g, offset, plus)  # dM[0, 0] and dM[3, 3]
        route_by_codes(points[3::9], xp.multiply(g, -1), offset, minus)  # dM[0, 3] and dM[3, 0]
        for rows in (out[:, ::3], out.transpose(1, 0, 2)):  # rows (of columns 0 and 3), then columns
            xp.subtract(rows[0], rows[3], out=rows[1])
            xp.add(rows[0], rows[3], out=rows[2])
        return dm

    def _kernel_adjoint(self, du, dtype):
        """dW = G^T dU G from dU^T (4, 4, O, C), as (O, C, 3, 3), into the optimizer's buffer when it has one (kernels/homes.py)."""
        xp = self.xp
        g = xp.asarray(_G, dtype=dtype)
        dw = xp.tensordot(g, xp.tensordot(g, du, axes=(0, 1)), axes=(0, 1))  # (3 i, 3 j, O, C)
        dw = dw.transpose(2, 3, 0, 1)
        home = self.grad_home(1, dw.shape, dw.dtype)
        if home is None:
            return xp.ascontiguousarray(dw)
        xp.copyto(home, dw)
        return home

    def _input_adjoint(self, dv, t, dd):
        """The gradient of the padded chunk d from the gradient of its transformed tiles, dv
        (16, tiles, C): B dV B^T summed over the overlapping tiles, written into dd (2, TH + 1, 2,
        TW + 1, images, C) (_split's layout); the flat buffer `t` holds the column pass.

        NOTE: the adjoint of _input_transform's slices, columns then rows: tile column m starts at
        padded column 2m, so even columns 2m get dV0 of tile m and (dV1 + dV2 - dV0) of tile m - 1, odd
        columns 2m + 1 get (dV1 - dV2 + dV3) of tile m and -dV3 of tile m - 1; rows likewise."""
        xp = self.xp
        _, hh, _, wh, images, c = dd.shape
        th, tw, run = hh - 1, wh - 1, images * c
        row = 2 * wh * run
        dv = dv.reshape(4, 4, th, tw * run)
        t = t[:4 * th * row].reshape(4, th, 2, wh * run)
        _pairs_adjoint(xp, [dv[:, b] for b in range(4)], t[:, :, 0], t[:, :, 1], run)  # columns
        t = t.reshape(4, th * row)
        dd = dd.reshape(2, hh * row)
        _pairs_adjoint(xp, t, dd[0], dd[1], row)  # rows

    def _unpad_split(self, dd, grad):
        """Copy the gradient of the padded chunk, dd in _split's layout, less the padding, into the
        chunk's (images, H, W, C) input gradient `grad`."""
        (top, _), (left, _) = self.shapes[7]
        _, h, w, _ = grad.shape
        image = grad.transpose(1, 2, 0, 3)  # (H, W, images, C)
        for y0 in range(min(2, h)):
            r = y0 + top
            rows = slice(r // 2, r // 2 + len(range(y0, h, 2)))
            for x0 in range(min(2, w)):
                s = x0 + left
                image[y0::2, x0::2] = dd[r % 2, rows, s % 2, s // 2:s // 2 + len(range(x0, w, 2))]


def _pairs_adjoint(xp, src, even, odd, unit):
    """even and odd = the adjoint of B^T along their last axis, in steps of `unit` values (size + 1
    of them), where the transform read even[m], odd[m], even[m + 1] and odd[m + 1] for its output
    m, from src[k] (size steps along its last axis), the gradient of its k-th output.

    NOTE: even[m] = src0[m] + (src1 + src2 - src0)[m - 1] and odd[m] = (src1 - src2 + src3)[m] -
    src3[m - 1]: 6 passes over src-sized data (3 additions per sum of 4 terms, the least with
    two-operand calls) and 2 small ones; accumulating into zeroed ends took 7. No call writes a
    value twice."""
    s0, s1, s2, s3 = src[0], src[1], src[2], src[3]
    end = s0.shape[-1]  # = size x unit
    head = even[..., unit:]
    xp.add(s1, s2, out=head)
    head -= s0
    even[..., unit:end] += s0[..., unit:]
    xp.copyto(even[..., :unit], s0[..., :unit])
    body = odd[..., :end]
    xp.subtract(s1, s2, out=body)
    body += s3
    # NOTE: not xp.negative: NumPy 2.4.6's negative reads float64 views with a unit axis last
    # (strides (64, 8) for shape (4, 1)) as if contiguous, and wrote wrong gradients here
    xp.multiply(s3[..., end - unit:], -1, out=odd[..., end:])
    odd[..., unit:end] -= s3[..., :end - unit]


def _is_view_of(view, base):
    """Whether `view` shares `base`'s memory (a reshape that copied would leave `base` unwritten)."""
    return view.base is base or view.base is base.base
