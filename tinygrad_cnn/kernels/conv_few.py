"""The first layer's convolution: few input channels (one, for MNIST), max-pooled, on the CPU.

With C = 1 a 3x3 convolution's im2col rows hold 9 values and its output 32 per pixel: the
work is in the full-size output and its gradient (3.2 M values a step in the tutorial's model),
not in the products. So FewChannelConvolution is FusedConvolution's forward in chunks small
enough that a chunk's four pool blocks stay in a core's L2 cache, and a backward in which that
gradient, routed to each window's first maximum, is formed once per chunk and read by one GEMM
for the weight gradient and (only when the input needs a gradient: never for a model's input)
one for the input's. kernels/conv.py's conv_pool_relu picks it (see `applies`)."""
from ..device import device_kind
from . import buffers
from .conv import FusedConvolution, cache_chunks, offset_codes, route_by_codes, unpad_nchw
from .parallel import over_batch, over_chunks

# NOTE: the most bytes of full-size output a chunk may hold: 8 images of the tutorial's first layer
# (4 blocks of 8 x 196 x 32 float32 values, 0.8 MB, with their im2col rows: in a 2 MB L2), where
# FusedConvolution's 4 MiB gives 16 (1.6 MB): the products, pooling and routing of a chunk ran
# 1.3x faster per image (single thread, benchmarks/bench_conv1.py measures the whole op).
CHUNK_BYTES = 1 << 20

# NOTE: at most this many input channels take this kernel (measured for C = 1 only: the first
# layer of MNIST models); more channels give wider im2col rows, where FusedConvolution's chunks pay.
# Measured against FusedConvolution on a loaded 2-core machine (load 5-10) it took 0.88-0.91x in the
# model's case (no input gradient); quiet (load 0.3-1.5, benchmarks/bench_conv1.py, 3 runs of 15) 1.10x
# (1.08-1.16) at 15:43 and 1.01x (0.96-1.03) at 16:00 in that case (results/conv1_cpu_quiet.json), 0.93x
# and 0.89x when x needs a gradient. No gain where a model uses it, so by default no input takes it
# (0); MAX_CHANNELS = 1 chooses it for one-channel inputs.
MAX_CHANNELS = 0


def applies(x, weight, pool, stride, dilation):
    """Whether FewChannelConvolution runs conv_pool_relu for these inputs: a max-pool follows, the
    input has at most MAX_CHANNELS channels, and it lives on the CPU."""
    return pool is not None and weight.shape[1] <= MAX_CHANNELS and device_kind(x.device) == "cpu"


class FewChannelConvolution(FusedConvolution):
    """FusedConvolution (conv + bias + max-pool + ReLU, channels-last) for inputs with few channels.

    Forward is FusedConvolution's, in smaller chunks (see CHUNK_BYTES). Backward forms each
    chunk's routed output gradient, (PH*PW blocks, images, H', W', O) in the im2col rows' order,
    and takes from it the weight and bias gradient (one GEMM with the rebuilt im2col rows, as
    FusedConvolution does) and, when x needs one, the gradient of every window's KH*KW*C input
    values (one GEMM, (KH*KW*C, O) x (O, rows)), which are added into the input's gradient once
    for the whole batch afterwards.

    NOTE: FusedConvolution's input gradient for few channels (C < O / 2) copies the routed gradient
    a second time in pixel order and then runs KH*KW GEMMs over it, one per kernel offset (each
    reading all 32 channels of every pixel to make one value): 9 passes where this takes one."""

    def chunk_bytes(self):
        from . import conv  # (its CHUNK_BYTES may be lowered, as tests do to force many chunks)
        return min(CHUNK_BYTES, conv.CHUNK_BYTES)

    def backward(self, g):
        if self.pool is None:  # (applies() never picks it then)
            return super().backward(g)
        xp, blocks = self.xp, self.blocks
        (n, c, h, w), out_h, out_w, stride, padding, dilation = self.geometry
        o, _, kh, kw = self.weight.shape
        k = kh * kw * c
        g = g.transpose(0, 2, 3, 1)  # (N, H', W', O), H' x W' the grid of pool windows
        need_x, need_w = self.needs_input_grad[:2]
        need_params = need_w or (self.has_bias and self.needs_input_grad[2])
        codes = offset_codes(self, blocks.count)[1:].reshape(blocks.window + (1, 1, 1, 1))
        chunks = cache_chunks(n, self.image_values * self.x_pad.itemsize, xp, self.chunk_bytes())
        most = (chunks[0].stop - chunks[0].start) * blocks.rows_per_image if chunks else 0
        parts = [None] * len(chunks)  # each chunk's share of the (K [+ 1], O) weight gradient, the bias its last row
        if need_x:
            # taps[b, t, image, y', x']: the gradient of the input value that tap t = (i, j, channel) of
            # block b's output pixel (y', x') read; (K, O) rows in the im2col rows' (i, j, channel) order
            taps = buffers.empty(xp, (blocks.count, k, n, blocks.height, blocks.width), g.dtype)
            w_rows = xp.ascontiguousarray(self.weight.transpose(2, 3, 1, 0).reshape(k, o)).astype(g.dtype, copy=False)

        def work(source):
            cols_buffer = self._new_cols(most) if need_params else None
            routed = buffers.empty(xp, (most, o), g.dtype)
            for index, chunk in source:
                size = (chunk.stop - chunk.start) * blocks.rows_per_image
                g_chunk = g[chunk]
                if not g_chunk.flags.c_contiguous:  # NOTE: read once here, not once per block by the routing
                    g_chunk = xp.ascontiguousarray(g_chunk)  # (an NCHW gradient; the next layer's is channels-last)
                g_rows = routed[:size]  # g at each window's first maximum (none where ReLU zeroed it)
                route_by_codes(g_rows.reshape(blocks.window + g_chunk.shape), g_chunk, self.offset[chunk], codes)
                if need_params:
                    # NOTE: dot, not matmul: see FusedConvolution.backward
                    parts[index] = xp.dot(self._fill_cols(chunk, cols_buffer).T, g_rows)
                if need_x:
                    per_block = g_rows.reshape(blocks.count, -1, o)
                    xp.matmul(w_rows, per_block.transpose(0, 2, 1),
                              out=taps[:, :, chunk].reshape(blocks.count, k, -1))

        self._targets = {}
        over_chunks(xp, chunks, n * self.image_values, work)
        self._targets = {}
        grad_x = self._add_taps(taps) if need_x else None
        return self._parameter_gradients(parts, grad_x, g.dtype)

    def _add_taps(self, taps):
        """The input's gradient (NCHW view) from `taps` (see backward): each tap's values added into
        the padded channels-last gradient at the window places it read, images split over threads.

        NOTE: elementwise, in one fixed order per element (block, then tap), so the bits do not depend
        on how the images are split; pixels that no whole pool window reads get 0."""
        xp, blocks = self.xp, self.blocks
        (n, c, h, w), out_h, out_w, stride, padding, dilation = self.geometry
        _, _, kh, kw = self.weight.shape
        (sh, sw), (dh, dw), (ph, pw) = stride, dilation, blocks.window
        step_h, step_w = sh * ph, sw * pw  # from one pool window to the next, in input pixels
        span_h, span_w = step_h * (blocks.height - 1) + 1, step_w * (blocks.width - 1) + 1
        grad = buffers.zeros(xp, self.x_pad.shape, taps.dtype)  # (N, Hp, Wp, C)
        # tap t = (i, j, channel)'s place in the padded input, relative to its window's
        places = [(dh * i, dw * j, channel) for i in range(kh) for j in range(kw) for channel in range(c)]

        def add(images):
            for b in range(blocks.count):
                qi, qj = divmod(b, pw)  # the block's offset in its pool window
                for t, (top, left, channel) in enumerate(places):
                    y0, x0 = sh * qi + top, sw * qj + left
                    grad[images, y0:y0 + span_h:step_h, x0:x0 + span_w:step_w, channel] += taps[b, t, images]

        over_batch(xp, n, grad.size * blocks.count, add)
        return unpad_nchw(grad, padding)
