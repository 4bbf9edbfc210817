"""Kernels for convolution and max-pooling: channels-last, in cache-sized chunks over CPU threads, with
bias, ReLU and a tiling max-pool fused into the convolution (the references: tinygrad_cnn/conv.py).

Windows are strided views of the whole batch: im2col is one view copied once, and col2im and
pooling loop over the KH x KW kernel offsets only, so nothing loops over pixels, channels or
images, and the same code runs on CuPy."""
from ..autograd import Function
from ..conv import output_size
from . import buffers
from .dense import relu_gradient
from .fusion import arange_constant, fuse
from .homes import GradientHomes
from .parallel import over_batch, over_chunks, pieces
from . import conv_patches


def _gpu_weight(xp, weight, bias, count):
    """The weight (O, C, KH, KW) as `count` copies of the (KH*KW*C, O) GEMM operand, with the bias as
    a last row (see FusedConvolution._new_cols): (count, KH*KW*C [+ 1], O), C-contiguous.

    NOTE: for CuPy's launch counts: written in place (one kernel, and one for the bias) rather than
    a reshape copy and a concatenate (one copy per part); and one copy per window offset, so that the
    per-offset GEMM is strided-batched: a 2-D operand broadcast over the batch makes CuPy build three
    pointer arrays (a kernel each) for gemmBatched."""
    o, c, kh, kw = weight.shape
    k = kh * kw * c
    out = xp.empty((count, k + bool(bias), o), dtype=weight.dtype)  # the bias cast to it, as on the CPU
    target = out[:, :k].reshape(count, kh, kw, c, o)  # a view: splitting an axis needs no copy
    if target.base is not out:  # (never, but a reshape that copied would leave `out` unwritten)
        raise AssertionError("conv: the weight's GEMM operand is not a view")
    target[...] = weight.transpose(2, 3, 1, 0)
    if bias:
        out[:, k] = bias[0]
    return out


def _window(array, i, j, out_h, out_w, stride, dilation):
    """The slice of a padded (N, H, W, C) array that kernel offset (i, j) sees, for every output pixel."""
    (sh, sw), (dh, dw) = stride, dilation
    return array[:, i * dh:i * dh + sh * (out_h - 1) + 1:sh, j * dw:j * dw + sw * (out_w - 1) + 1:sw, :]


def _windows(xp, x_pad, kh, kw, out_h, out_w, stride, dilation, pool=(1, 1)):
    """Every window of a padded (N, H, W, C) array, as one strided view of shape
    (PH, PW, N, OH, OW, KH, KW, C): offset (i, j) of the PH x PW `pool` windows over an (OH, OW)
    grid of them, the image, the window's place in that grid, then its (KH, KW, C) values. With
    the default pool (1, 1), (OH, OW) is the output grid. Slicing axis 2 gives a chunk's windows.

    NOTE: built once per op (or per thread buffer), not per chunk: as_strided is Python code
    (3 us), run while holding the lock (the GIL) the other thread needs between its NumPy calls."""
    n, c = x_pad.shape[0], x_pad.shape[3]
    s_n, s_h, s_w, s_c = x_pad.strides
    (sh, sw), (ph, pw) = stride, pool
    return xp.lib.stride_tricks.as_strided(
        x_pad, shape=(ph, pw, n, out_h, out_w, kh, kw, c),
        strides=(s_h * sh, s_w * sw, s_n, s_h * sh * ph, s_w * sw * pw, s_h * dilation[0], s_w * dilation[1], s_c))


def _im2col(xp, windows, out):
    """Write `windows` (from _windows, sliced to a chunk of images) as the rows of the 2-D `out`
    (of any strides; the first KH*KW*C columns are written), in (i, j, image, y, x) order.

    NOTE: one strided view of the input copied once into a matching view of `out`: one call
    per chunk (Python overhead holds the GIL that the other threads need), and NumPy copies
    along whichever axis is contiguous in both. With `out` row-major that is a window's (KW, C)
    run (contiguous in the channels-last input at dilation 1), 3x faster than KH*KW slice
    copies; with `out` column-major (few channels) it is a row of the output grid."""
    xp.copyto(im2col_target(xp, windows.shape, out), windows)
    return out


def im2col_target(xp, shape, out):
    """The view of `out` that _im2col copies windows of `shape` into."""
    ph, pw, n, out_h, out_w, kh, kw, c = shape
    row, col = out.strides
    per_offset = n * out_h * out_w * row
    return xp.lib.stride_tricks.as_strided(
        out, shape=shape,
        strides=(pw * per_offset, per_offset, out_h * out_w * row, out_w * row, row, kw * c * col, c * col, col))


def _col2im(xp, pieces, grad_pad, out_h, out_w, stride, dilation):
    """The inverse gather of im2col: add each kernel offset's (N, OH, OW, C) gradient piece into
    the strided window of the padded (N, Hp, Wp, C) gradient `grad_pad` it was read from
    (windows overlap, so pixels sum), and zero what no window covers. `pieces` yields
    ((i, j), piece), offset (0, 0) first."""
    if stride == (1, 1):
        # NOTE: offset (0, 0)'s window is then the top-left (OH, OW) block: it is copied, not
        # added, and only the rows and columns outside it are zeroed (one pass fewer)
        grad_pad[:, out_h:] = 0
        grad_pad[:, :out_h, out_w:] = 0
        pieces = iter(pieces)
        (i, j), piece = next(pieces)
        grad_pad[:, :out_h, :out_w] = piece
    else:
        grad_pad[...] = 0
    for (i, j), piece in pieces:
        _window(grad_pad, i, j, out_h, out_w, stride, dilation)[...] += piece
    return grad_pad


def unpad_nchw(grad_pad, padding):
    """Cut the padding off a (N, Hp, Wp, C) array and return it as an NCHW view."""
    (top, bottom), (left, right) = padding
    h, w = grad_pad.shape[1] - top - bottom, grad_pad.shape[2] - left - right
    return grad_pad[:, top:top + h, left:left + w, :].transpose(0, 3, 1, 2)


def pad_nhwc(xp, x, padding, value=0.0, out=None):
    """Copy an NCHW array into a padded channels-last (N, Hp, Wp, C) buffer (`out` when given)."""
    (top, bottom), (left, right) = padding
    n, c, h, w = x.shape
    if out is None:
        out = buffers.empty(xp, (n, h + top + bottom, w + left + right, c), x.dtype)
    if top or bottom or left or right:
        out[...] = value
    out[:, top:top + h, left:left + w, :] = x.transpose(0, 2, 3, 1)
    return out


# NOTE: the size, in bytes, of the largest matrix a chunk of images may need in a convolution
# (its im2col rows, or its full-size output): a chunk's rows go through the GEMM, and its output
# is pooled, and in backward its gradient formed and used, while still in the core's cache
# (16 images of a batch of 128 in the tutorial's second layer forward, 8 backward): ~10% off a step.
CHUNK_BYTES = 4 << 20


def cache_chunks(count, image_bytes, xp=None, limit=None):
    """Consecutive slices of one size (the last may be shorter) that cover range(count): at least
    parallel.PIECES of them (fewer for a smaller batch), more where one would exceed `limit` bytes
    (CHUNK_BYTES when None).

    NOTE: fixed by the problem, not the thread count: a chunk's im2col rows go through one GEMM,
    whose rounding of a row may depend on its place in the product, and the chunks' shares of the
    weight gradient are summed in order; chunks that followed the thread count made 30 Adam steps
    with 1 and 2 threads differ by up to 2.8e-3 (issue 27). Threads take the chunks in turn
    (over_chunks), so with PIECES a multiple of the thread count they get equal shares.
    On a GPU (xp not NumPy) the whole batch is one chunk: chunks there only multiply
    kernel launches, and no CPU threads run GPU work."""
    if xp is not None and xp.__name__ != "numpy":
        return [slice(0, count)] if count else []
    return pieces(count, most=max(1, (CHUNK_BYTES if limit is None else limit) // image_bytes))


class _PoolBlocks:
    """The order of a convolution's im2col rows (and so of its output rows).

    Without pooling: one row per output pixel, in (image, y, x) order. When a tiling max-pool
    follows, only the pixels inside whole pool windows get rows, and a chunk's rows are ordered
    (window offset, image, window y, window x): offset (i, j) of every window is one contiguous
    block, laid out like the pooled output.

    NOTE: pooling is then an elementwise max of PH*PW contiguous blocks, and its backward writes
    contiguous blocks, instead of strided views whose contiguous runs are only the channels
    (32 values in the tutorial's first layer): 2x faster there."""

    def __init__(self, pool, out_h, out_w):
        self.pool = pool
        self.window = pool or (1, 1)
        self.height, self.width = out_h // self.window[0], out_w // self.window[1]  # the grid of windows
        self.count = self.window[0] * self.window[1]  # window offsets, one block each
        self.rows_per_image = self.count * self.height * self.width

    def rows(self, images):
        """The rows of a consecutive slice of images."""
        return slice(images.start * self.rows_per_image, images.stop * self.rows_per_image)

    def split(self, matrix, channels):
        """The blocks of a chunk's rows of `matrix`, one per window offset in row-major order,
        each as (images, height, width, channels)."""
        return list(matrix.reshape(self.count, -1, self.height, self.width, channels))


class FusedConvolution(GradientHomes, Function):
    """Cross-correlation of x (N, C, H, W) with weight (O, C, KH, KW), plus an optional bias (O,),
    optionally max-pooled over non-overlapping `pool` (PH, PW) windows and passed through ReLU
    (`relu=True`) in the same op.

    NOTE: the work happens channels-last. im2col gathers each window as one row of
    (N*OH*OW, KH*KW*C), so the product with the weight is a single GEMM. The result is returned
    as an NCHW view of that NHWC memory: no transpose copy, and the next layer reads it
    channels-last for free. Forward and backward split the batch into chunks of images that the
    CPU cores take in turn (parallel.over_chunks): each chunk gets its own padding, im2col,
    products, pooling and input gradient, in one thread. Pooling and ReLU here give the values and gradients of MaxPool and ReLU on the
    output, without separate passes over the output in each direction."""

    def forward(self, x, weight, *bias, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), pool=None,
                relu=False):
        xp = self.xp
        n, c, h, w = x.shape
        o, _, kh, kw = weight.shape
        (top, bottom), (left, right) = padding
        out_h = output_size(h + top + bottom, kh, stride[0], 0, dilation[0])
        out_w = output_size(w + left + right, kw, stride[1], 0, dilation[1])
        k = kh * kw * c
        blocks = _PoolBlocks(pool, out_h, out_w)
        on_gpu = xp.__name__ != "numpy"
        if on_gpu:  # (KH*KW*C [+ 1], O), one per window offset when pooling: see _gpu_weight
            w_mat = _gpu_weight(xp, weight, bias, blocks.count if pool is not None else 1)
            w_mat = w_mat if pool is not None else w_mat[0]
        else:
            w_mat = weight.transpose(2, 3, 1, 0).reshape(k, o)  # (KH*KW*C, O)
            if bias:  # see _fill_cols
                w_mat = xp.concatenate([w_mat, bias[0].reshape(1, o).astype(w_mat.dtype, copy=False)])
        self.weight, self.has_bias, self.blocks, self.pool, self.relu = weight, bool(bias), blocks, pool, relu
        # NOTE: with few channels (the first layer's), a window's channels-last run is shorter
        # than an output row, so im2col writes a column-major matrix along output rows instead
        # (on the CPU: on a GPU a batched GEMM would first copy such a matrix C-contiguous).
        self.channels_first = c * kw < blocks.width and not on_gpu
        # NOTE: and a pooling one takes one row per pool window (its patch) instead (conv_patches):
        # conv1 of the tutorial, see benchmarks/README.md for its figures
        self.patches = None
        if pool is not None and conv_patches.applies(weight, stride, dilation, blocks, self.channels_first) \
                and conv_patches.usable(xp, x):
            self.patches = conv_patches.PoolPatches(xp, weight, bias[0] if bias else None, stride, dilation, blocks)
        patches = self.patches
        self.geometry = (x.shape, out_h, out_w, stride, padding, dilation)
        self.x_dtype = x.dtype
        # values only (not recorded, pooling, on the CPU: see _pool_values): nothing is kept for backward,
        # so each thread pads its chunks into a buffer of its own instead of the whole batch's
        values_only = pool is not None and not self.recorded and not on_gpu
        padded_shape = (h + top + bottom, w + left + right, c)
        self.x_pad = x_pad = None if values_only else buffers.empty(xp, (n,) + padded_shape, x.dtype)
        window_args = (kh, kw, blocks.height, blocks.width, stride, dilation, blocks.window)
        self.windows = None if values_only else _windows(xp, x_pad, *window_args)
        if patches is not None and not values_only:  # kept for backward's weight gradient (1/4 of the output's size)
            self.patch_rows = patches.new_rows(n * blocks.height * blocks.width, x.dtype)
            patch_view = patches.view(x_pad)
        dtype = xp.result_type(x, w_mat)
        # NOTE: the work goes chunk by chunk, each chunk's im2col rows in one buffer per thread
        # that stays in cache, and backward rebuilds them for the weight gradient: writing the
        # whole matrix to memory and reading it back cost more than a second im2col (conv2 of
        # the tutorial: 1.5 ms a step).
        self.offset = None
        if pool is None:
            self.result = buffers.empty(xp, (n, out_h, out_w, o), dtype)
        else:
            # NOTE: a pooling convolution keeps, per pooled value, only the offset of its window's
            # first maximum (one byte), not its full-size output, which lives in one chunk-sized
            # buffer per thread; backward routes the gradient by offset. An op that is not recorded
            # (no_grad, or nothing needs a gradient) never runs backward: it pools values only
            # (MAX_OF_BLOCKS, and on the CPU _pool_values). Predicting MNIST at batch 1000 with the
            # tutorial's model: 12,664 -> 14,926 images/s against main (bench_ab.py --infer, B/A per
            # round median 0.859, 0.51-1.63, on the 2 cores loaded by other jobs: results/ab_infer_loaded.json).
            self.result = buffers.empty(xp, (n, blocks.height, blocks.width, o), dtype)
            if self.recorded:
                self.offset = buffers.empty(xp, self.result.shape, xp.uint8 if blocks.count < 256 else xp.int32)
                one = offset_codes(self, blocks.count)[1:2]
        result, offset = self.result, self.offset

        self.image_values = blocks.rows_per_image * max(k + 1, o)  # an image's im2col rows, or its output
        image_bytes = self.image_values * x.itemsize

        self.chunks = chunks = cache_chunks(n, image_bytes, xp, self.chunk_bytes())
        most = (chunks[0].stop - chunks[0].start) * blocks.rows_per_image if chunks else 0
        self.cols = None

        def work(source):
            chunk_cols = self._new_cols(most) if patches is None else None
            chunk_out = result.reshape(-1, o) if pool is None else buffers.empty(xp, (most, o), dtype)
            if values_only:  # this thread's padded chunk, its windows, and _pool_values' views
                padded = buffers.empty(xp, (most // blocks.rows_per_image,) + padded_shape, x.dtype)
                windows, views = _windows(xp, padded, *window_args), {}
                if patches is not None:  # its patches instead of its windows
                    windows, chunk_cols = patches.view(padded), patches.new_rows(most // blocks.count, x.dtype)
            for _, chunk in source:
                if values_only:
                    count = chunk.stop - chunk.start
                    pad_nhwc(xp, x[chunk], padding, out=padded[:count])
                    if patches is not None:
                        rows = patches.fill(windows, slice(0, count), chunk_cols, 0)
                        self._pool_values(count, None, rows, chunk_out, patches.weights, result[chunk], None)
                        continue
                    self._pool_values(count, windows, chunk_cols, chunk_out, w_mat, result[chunk], views)
                    continue
                pad_nhwc(xp, x[chunk], padding, out=x_pad[chunk])
                if patches is not None:  # (windows, patch [+ 1]): the same rows for every offset's GEMM
                    rows = patches.fill(patch_view, chunk, self.patch_rows, chunk.start * blocks.height * blocks.width)
                    size = rows.shape[0] * blocks.count
                    per_offset = xp.reshape(chunk_out[:size], (blocks.count, -1, o))
                    xp.matmul(rows, patches.weights, out=per_offset)  # (one BLAS call per offset, as below)
                    if offset is None:
                        MAX_OF_BLOCKS[relu](result[chunk], *blocks.split(chunk_out[:size], o))
                    else:
                        MAX_AND_FIRST_OFFSET[relu](result[chunk], offset[chunk], one,
                                                    *blocks.split(chunk_out[:size], o))
                    continue
                cols = self._fill_cols(chunk, chunk_cols)
                if len(chunks) == 1:  # see backward
                    self.cols = cols
                if pool is None:  # straight into the output
                    xp.matmul(cols, w_mat, out=chunk_out[blocks.rows(chunk)])
                    if relu:
                        xp.maximum(result[chunk], 0, out=result[chunk])
                else:
                    # NOTE: one GEMM per window offset (a stacked matmul, one batched call on a GPU),
                    # not one over all rows: a BLAS rounds a row's sum by the row's place in its
                    # tiles, so two identical windows (inside a thick stroke, say) could differ in the
                    # last bit, and the max then took the later one: 3,785 of the 48,740 tied windows
                    # of the tutorial's second layer on 64 MNIST images. The same row of same-shaped
                    # products rounds alike, so a tie is exact and goes to the first maximum.
                    size = cols.shape[0]
                    per_offset = xp.reshape(chunk_out[:size], (blocks.count, -1, o))  # contiguous: a view
                    xp.matmul(cols.reshape(blocks.count, -1, cols.shape[1]), w_mat, out=per_offset)
                    if offset is None:
                        MAX_OF_BLOCKS[relu](result[chunk], *blocks.split(chunk_out[:size], o))
                    else:
                        MAX_AND_FIRST_OFFSET[relu](result[chunk], offset[chunk], one,
                                                    *blocks.split(chunk_out[:size], o))

        self._targets = {}  # see _fill_cols
        over_chunks(xp, chunks, n * self.image_values, work)
        self._targets = {}  # (its views would keep this pass's buffers from the next: kernels/buffers.py)
        return result.transpose(0, 3, 1, 2)

    def chunk_bytes(self):
        """The most bytes of im2col rows or full-size output a chunk of images may hold (see CHUNK_BYTES;
        less with patches: conv_patches.CHUNK_BYTES)."""
        return CHUNK_BYTES if self.patches is None else min(CHUNK_BYTES, conv_patches.CHUNK_BYTES)

    def _pool_values(self, count, windows, cols, scratch, w_mat, out, views):
        """The pooled output `out` (count, H', W', O) of a chunk of `count` images whose padded input
        `windows` (from _windows) sees, values only (an op that is not recorded, on the CPU): for each
        window offset in turn, its block of im2col rows (in `cols`), their GEMM (into `out` for the
        first, then into `scratch`) and the running max, ReLU first. `views` keeps each chunk size's
        block views of `cols` and their im2col targets.

        NOTE: the recorded path's stacked matmul is one BLAS call per offset (NumPy's loop), here the
        same call on the same rows, and the maxima are MAX_OF_BLOCKS's calls in its order: the same
        bits. But a block's rows and products are used while in cache, where a chunk's whole im2col
        matrix (up to CHUNK_BYTES, 4 MiB) or full-size output exceeds this machine's 2 MB L2: one
        thread, a chunk of the tutorial's first layer at batch 1000 (40 images) 0.99 -> 0.83 ms
        (-15%), of its second (18 images) 1.5-1.8 -> 1.5-1.7 ms (-3 to -7%), medians of 40 calls in
        three runs on the loaded machine (the recorded path pooled with MAX_OF_BLOCKS there too).
        Padding each chunk into a buffer of its thread's (forward) instead of the whole batch's keeps
        36 MB less at batch 1000 and took conv2 from 90-91 to 87-88 ms a batch (one thread)."""
        xp, blocks = self.xp, self.blocks
        if windows is None:  # patches (conv_patches): `cols` holds the chunk's patch rows, `w_mat` each offset's weights
            flat = out.reshape(-1, out.shape[-1])
            product = scratch[:flat.shape[0]]
            for q in range(blocks.count):
                if q == 0:
                    xp.matmul(cols, w_mat[0], out=flat)
                    if self.relu:
                        xp.maximum(out, 0, out=out)
                else:
                    xp.matmul(cols, w_mat[q], out=product)
                    xp.maximum(out, product.reshape(out.shape), out=out)
            return
        if count not in views:  # NOTE: made once per chunk size: as_strided is Python code (see conv_few)
            rows = cols[:count * blocks.rows_per_image].reshape(blocks.count, -1, cols.shape[1])
            shape = (1, 1) + windows[:, :, :count].shape[2:]
            views[count] = [(block, im2col_target(xp, shape, block)) for block in rows]
        flat = out.reshape(-1, out.shape[-1])  # (contiguous: a view)
        product = scratch[:flat.shape[0]]
        for q, (block, target) in enumerate(views[count]):
            i, j = divmod(q, blocks.window[1])
            xp.copyto(target, windows[i:i + 1, j:j + 1, :count])
            if q == 0:
                xp.matmul(block, w_mat, out=flat)
                if self.relu:
                    xp.maximum(out, 0, out=out)
            else:
                xp.matmul(block, w_mat, out=product)
                xp.maximum(out, product.reshape(out.shape), out=out)

    def _new_cols(self, rows):
        """An im2col matrix for chunks of up to `rows` rows: KH*KW*C values per row, left
        uninitialised, and with a bias a last column of ones (which _fill_cols leaves alone).

        NOTE: with a bias, each row ends in a 1 and the weight matrix in the bias, so the GEMM
        adds the bias and the weight-gradient GEMM sums its gradient: two passes over the output
        saved."""
        width = self.weight[0].size + self.has_bias
        if self.channels_first:
            cols = buffers.empty(self.xp, (width, rows), self.x_dtype).T
        else:
            cols = buffers.empty(self.xp, (rows, width), self.x_dtype)
        if self.has_bias:
            cols[:, -1] = 1
        return cols

    def _fill_cols(self, images, cols):
        """Write the im2col rows of a consecutive slice of images into the first rows of `cols`
        (from _new_cols); returns those rows. The strided view of the rows that the windows are copied
        into is made once per buffer and chunk size (kept in self._targets while the op runs).

        NOTE: as_strided is Python code (5-50 us a call on these VMs, loaded or not), run while
        holding the GIL that the other thread needs between its NumPy calls: 32 calls a step in the
        tutorial's second layer, 4 (one per thread and direction) with the views kept."""
        count = images.stop - images.start
        key = (id(cols), count)  # (the entry holds cols alive: its id stays its own)
        entry = self._targets.get(key)
        if entry is None:
            rows = cols[:count * self.blocks.rows_per_image]
            entry = self._targets[key] = rows, im2col_target(self.xp, self.windows[:, :, :count].shape, rows)
        self.xp.copyto(entry[1], self.windows[:, :, images])
        return entry[0]

    def backward(self, g):
        xp, blocks = self.xp, self.blocks
        (n, c, h, w), out_h, out_w, stride, padding, dilation = self.geometry
        o, _, kh, kw = self.weight.shape
        k = kh * kw * c
        g = g.transpose(0, 2, 3, 1)  # (N, OH, OW, O), or (N, OH // PH, OW // PW, O) after pooling
        need_x, need_w = self.needs_input_grad[:2]
        need_params = need_w or (self.has_bias and self.needs_input_grad[2])
        grad_x = _InputGradient(self, g.dtype) if need_x else None
        # NOTE: a chunk's im2col rows (rebuilt for the weight gradient) and the input gradient's buffers
        # are in use together (see _InputGradient.__init__)
        image_bytes = self.x_pad.itemsize * (self.image_values + (grad_x.image_values if need_x else 0))
        pooling = blocks.pool is not None
        if pooling:  # 1 + each block's index, as (PH, PW, 1, 1, 1, 1) to compare with every offset at once
            codes = offset_codes(self, blocks.count)[1:].reshape(blocks.window + (1, 1, 1, 1))

        # (with patches, forward's chunks: each chunk's patch rows are one block of the kept buffer)
        chunks = self.chunks if self.patches is not None else cache_chunks(n, image_bytes, xp, self.chunk_bytes())
        most = chunks[0].stop - chunks[0].start if chunks else 0
        parts = [None] * len(chunks)  # each chunk's share of the weight gradient (KH*KW*C, O), the bias its last row
        # NOTE: with one chunk each way (always on a GPU) forward's im2col rows are the ones needed here:
        # kept, not rebuilt (on a GPU an im2col copy and a fill of the ones column a layer); with more
        # chunks they are rebuilt chunk by chunk in cache (see forward)
        kept = self.cols if len(chunks) == 1 else None
        patches = self.patches

        def work(source):
            chunk_cols = (self._new_cols(most * blocks.rows_per_image)
                          if need_params and kept is None and patches is None else None)
            if pooling:
                routed = buffers.empty(xp, (most * blocks.rows_per_image, o), g.dtype)  # in the rows' order
            scratch = grad_x.scratch(most) if need_x else None
            for index, chunk in source:
                size = (chunk.stop - chunk.start) * blocks.rows_per_image
                if pooling:  # g at each window's first maximum (none where ReLU zeroed it)
                    g_rows = routed[:size]
                    stacked = g_rows.reshape(blocks.window + g[chunk].shape)
                    # NOTE: written in pixel order too, for the input gradient, by the same kernel
                    tiles = grad_x.tiles(scratch, chunk) if need_x else None
                    route_by_codes(stacked, g[chunk], self.offset[chunk], codes, *([] if tiles is None else [tiles]))
                elif self.relu:  # in the rows' (pixels') order, so that the reshape is free
                    g_rows = xp.empty(g[chunk].shape, dtype=g.dtype)
                    relu_gradient(g_rows, g[chunk], self.result[chunk])
                    g_rows = g_rows.reshape(-1, o)
                else:
                    g_rows = g[chunk].reshape(-1, o)
                if need_params and patches is not None:  # forward's patch rows, kept (see conv_patches)
                    operand = patches.operand(self.patch_rows, chunk.start * blocks.height * blocks.width,
                                              size // blocks.count)
                    parts[index] = patches.weight_gradient(operand, g_rows)
                elif need_params:
                    cols = kept if kept is not None else self._fill_cols(chunk, chunk_cols)
                    # NOTE: dot, not matmul: matmul keeps the GIL when its output has at most 500
                    # values (conv1's is 10 x 32), and the other thread's ops then stall on it
                    parts[index] = xp.dot(cols.T, g_rows)
                if need_x:
                    grad_x.add(scratch, chunk, None if pooling else g_rows)

        self._targets = {}
        over_chunks(xp, chunks, n * self.image_values, work)
        self._targets = {}
        return self._parameter_gradients(parts, grad_x.result() if need_x else None, g.dtype)

    def _parameter_gradients(self, parts, grad_x, dtype):
        """backward's results from each chunk's share of the (KH*KW*C [+ 1], O) weight gradient, the
        bias's its last row (None where no parameter needs a gradient), and the input's gradient."""
        xp = self.xp
        o, c, kh, kw = self.weight.shape
        k = kh * kw * c
        need_w = self.needs_input_grad[1]
        grad_params = None
        if need_w or (self.has_bias and self.needs_input_grad[2]):
            # summed in chunk order, whichever thread computed each part
            grad_params = parts[0] if parts else xp.zeros((k + self.has_bias, o), dtype=dtype)
            for part in parts[1:]:
                grad_params += part
        grad_w = None
        if need_w:  # NOTE: in the weight's own contiguous layout (a small copy), so that the optimizers
            # update it with the other parameters in their one split over cores; into the optimizer's
            # buffer when it has one for it (kernels/homes.py): nothing to gather at its step
            grad_w = grad_params[:k].T.reshape(o, kh, kw, c).transpose(0, 3, 1, 2)
            home = self.grad_home(1, grad_w.shape, grad_w.dtype)
            if home is None:
                grad_w = xp.ascontiguousarray(grad_w)
            else:
                xp.copyto(home, grad_w)
                grad_w = home
        if self.has_bias:
            if not self.needs_input_grad[2]:
                return grad_x, grad_w, None
            grad_b, home = grad_params[k], self.grad_home(2, (o,), grad_params.dtype)
            if home is not None:  # (a row of grad_params: else backward() copies it)
                xp.copyto(home, grad_b)
                grad_b = home
            return grad_x, grad_w, grad_b
        return grad_x, grad_w


class _InputGradient:
    """The gradient of a FusedConvolution's input, built chunk by chunk from the output gradient's rows.

    NOTE: at stride 1 (and padding within the kernel's reach), it is a correlation of the
    zero-padded output gradient with the flipped kernel ("full"), written straight into the result,
    instead of KH*KW narrow GEMMs whose pieces are then added into overlapping windows (col2im):
    ~1 ms a step in the tutorial's model, whose first layer then also reads a contiguous gradient.
    On the CPU it copies KW*O values per pixel and adds KH*C (see _rows; on a GPU an im2col of
    KH*KW*O: _im2col_rows), against col2im's KH*KW*C additions, so it is used when C >= O / 2."""

    def __init__(self, op, dtype):
        self.op, self.xp = op, op.xp
        (n, c, h, w), out_h, out_w, stride, padding, dilation = op.geometry
        o, _, kh, kw = op.weight.shape
        (top, bottom), (left, right) = padding
        reach_h, reach_w = (kh - 1) * dilation[0], (kw - 1) * dilation[1]
        self.full = (stride == (1, 1) and 2 * c >= o
                     and 0 <= min(top, bottom) and max(top, bottom) <= reach_h
                     and 0 <= min(left, right) and max(left, right) <= reach_w)
        self.dtype = dtype
        if self.full:
            # NOTE: on a GPU one im2col of all KH*KW taps and one GEMM: 2 launches, where the rows of
            # taps' sums take 3 more (tests/test_gpu_budget.py), for a copy the GPU does in microseconds
            self.by_taps = self.xp.__name__ == "numpy"
            self.padded_size = (out_h + 2 * reach_h - top - bottom, out_w + 2 * reach_w - left - right)
            self.at = (reach_h - top, reach_w - left)  # where the output gradient starts in it
            flipped = op.weight[:, :, ::-1, ::-1]
            if self.by_taps:  # the flipped kernel as (KW*O, KH*C): a pixel's KW taps against all KH at once
                self.weight = self.xp.ascontiguousarray(flipped.transpose(3, 0, 2, 1)).reshape(kw * o, kh * c)
            else:  # as (KH*KW*O, C)
                self.weight = self.xp.ascontiguousarray(flipped.transpose(2, 3, 0, 1)).reshape(kh * kw * o, c)
            self.grad = buffers.empty(self.xp, (n, h, w, c), self.xp.result_type(dtype, op.weight))
            # NOTE: what a chunk uses, counted with forward's im2col rows for backward's chunk size (see
            # CHUNK_BYTES): the padded gradient, its rows of taps and their product (KH partial sums).
            # 8 images in the tutorial's second layer (6 of a last batch of 96), as the im2col's 9*O-wide
            # rows gave before; 16 (forward's chunk) took its block from 0.92x to 0.99x of the im2col's
            # time (see _rows). (On a GPU a batch is one chunk.)
            self.image_values = self.padded_size[0] * self.padded_size[1] * o + out_h * w * (kw * o + kh * c)
        else:
            self.weight = self.xp.ascontiguousarray(op.weight.transpose(2, 3, 0, 1))  # (KH, KW, O, C)
            self.grad = buffers.empty(self.xp, op.x_pad.shape, dtype)  # padded, channels-last
            self.image_values = 0

    def scratch(self, images):
        """One thread's buffers for chunks of up to `images` images: the output gradient in pixel
        order (inside a zero border, when full), and when full, the view of what _rows (or
        _im2col_rows) copies from that border, and buffers for the copy (and the product)."""
        xp, op = self.xp, self.op
        out_h, out_w = op.geometry[1:3]
        o, c, kh, kw = op.weight.shape
        if self.full:
            padded = buffers.zeros(xp, (images,) + self.padded_size + (o,), self.dtype)
            top, left = self.at
            pixels = padded[:, top:top + out_h, left:left + out_w, :]
            h, w = self.grad.shape[1:3]
            if not self.by_taps:
                windows = _windows(xp, padded, kh, kw, h, w, (1, 1), op.geometry[5])[0, 0]  # images first
                return windows, pixels, buffers.empty(xp, (images * h * w, kh * kw * o), self.dtype)
            s_n, s_h, s_w, s_o = padded.strides  # each output pixel's KW horizontal taps: (images, OH, W, KW, O)
            taps = xp.lib.stride_tricks.as_strided(padded[:, top:top + out_h], shape=(images, out_h, w, kw, o),
                                                   strides=(s_n, s_h, s_w, s_w * op.geometry[5][1], s_o))
            rows = images * out_h * w
            return taps, pixels, (buffers.empty(xp, (rows, kw * o), self.dtype),
                                  buffers.empty(xp, (rows, kh * c), self.grad.dtype))
        if op.blocks.pool is not None:
            return None, _unpooled_buffer(xp, (images, out_h, out_w, o), op.blocks.pool, self.dtype), None
        return None, None, None

    def tiles(self, scratch, chunk):
        """When pooling: the view of a chunk's pixel-order output gradient (in `scratch`) as
        (PH, PW, images, H // PH, W // PW, O), the rows' block order, that routing writes (see add)."""
        return _tiles(scratch[1][:chunk.stop - chunk.start], self.op.blocks.pool)

    def add(self, scratch, chunk, g_rows):
        """Write the input gradient of a chunk of images from its output gradient rows (pixel
        order); when pooling, g_rows is None: routing wrote them into `tiles` already."""
        xp, op = self.xp, self.op
        taps, pixels, mats = scratch
        _, out_h, out_w, stride, _, dilation = op.geometry
        o = op.weight.shape[0]
        images = chunk.stop - chunk.start
        if pixels is not None:  # the gradient in pixel order
            pixels = pixels[:images]
            if g_rows is not None:
                pixels[...] = g_rows.reshape(pixels.shape)
            g_rows = pixels.reshape(-1, o) if not self.full else None
        if self.full:
            (self._rows if self.by_taps else self._im2col_rows)(taps[:images], mats, self.grad[chunk])
        else:
            _col2im(xp, self._pieces(g_rows, images), self.grad[chunk], out_h, out_w, stride, dilation)

    def _rows(self, taps, mats, out):
        """The full correlation of a chunk: out[y, x] = the sum over (i, j) of g[y + i*DH - top,
        x + j*DW - left] @ flipped[i, j], where g is the output gradient, zero outside its rows and
        columns, and (top, left) = self.at. One GEMM takes each output pixel's KW horizontal taps
        (KW*O values, `taps`, copied into mats[0]) against the flipped kernel as (KW*O, KH*C): its
        product holds, per output pixel, the KH vertical taps' partial sums, and out adds up, for each
        tap i, its sums from the rows i*DH - top further down (row-shifted views; rows that no output
        row reaches get none).

        NOTE: the im2col this replaced copied all KH*KW taps of the zero-padded gradient (KH*KW*O
        values a pixel, 576 in the tutorial's second layer: the step's largest copy) into a GEMM with
        K = KH*KW*O. Here the copy is KW*O values, contiguous at dilation 1, and the GEMM has K = KW*O,
        N = KH*C and the same FLOPs. The tutorial's second block (batch 128, forward and backward, x
        needing a gradient, one thread, CPU time): 43.5 -> 40.0 ms (0.923x, 0.901-0.952 over 5 runs of
        15 interleaved calls, the 2 cores shared with two other jobs: benchmarks/bench_conv_dx.py,
        results/conv_dx_cpu.json). The GEMM over the padded gradient's zero rows as well (16 rows
        for 14: 14% more FLOPs, but every tap's sums added whole) gave 0.952x."""
        xp, top = self.xp, self.at[0]
        images, out_h, w, kw, o = taps.shape
        h, c, dh = out.shape[1], out.shape[3], self.op.geometry[5][0]
        kh = self.weight.shape[1] // c
        cols, product = mats[0][:images * out_h * w], mats[1][:images * out_h * w]
        xp.copyto(cols.reshape(taps.shape), taps)
        xp.matmul(cols, self.weight, out=product)
        sums = product.reshape(images, out_h, w, kh, c)
        spans = []  # (input rows lo:hi that tap i reaches, i), the widest first: it is written, not added
        for i in range(kh):
            lo = max(0, top - i * dh)
            spans.append((lo, max(lo, min(h, top - i * dh + out_h)), i))
        spans.sort(key=lambda span: span[0] - span[1])  # (stable: the lower tap first among equals)
        for q, (lo, hi, i) in enumerate(spans):
            piece, rows = sums[:, lo + i * dh - top:hi + i * dh - top, :, i], out[:, lo:hi]
            if q == 0:
                if lo:
                    out[:, :lo] = 0
                if hi < h:
                    out[:, hi:] = 0
                xp.copyto(rows, piece)
            else:
                xp.add(rows, piece, out=rows)

    def _im2col_rows(self, windows, cols, out):
        """The full correlation of a chunk as one im2col of the KH*KW taps of each input pixel's window
        in the padded gradient (`windows`, into `cols`) and one GEMM with the flipped kernel."""
        rows = cols[:out.shape[0] * out.shape[1] * out.shape[2]]
        _im2col(self.xp, windows[None, None], rows)
        self.xp.matmul(rows, self.weight, out=out.reshape(-1, out.shape[3]))

    def result(self):
        """The gradient as an NCHW view."""
        if self.full:
            return self.grad.transpose(0, 3, 1, 2)
        return unpad_nchw(self.grad, self.op.geometry[4])

    def _pieces(self, g_rows, images):
        """For each kernel offset (i, j), the gradient of the input values that offset read.

        NOTE: one (rows, O) x (O, C) product per offset, into one reused contiguous buffer,
        beats one big GEMM whose (N, OH, OW, KH, KW, C) result must then be read back with
        strides (1.6x here)."""
        xp = self.xp
        kh, kw, _, c = self.weight.shape
        out_h, out_w = self.op.geometry[1:3]
        part = xp.empty((g_rows.shape[0], c), dtype=g_rows.dtype)
        for i in range(kh):
            for j in range(kw):
                xp.matmul(g_rows, self.weight[i, j], out=part)
                yield (i, j), part.reshape(images, out_h, out_w, c)


class _Pool2d(Function):
    """Shared window bookkeeping of max and average pooling (channels-last, like FusedConvolution)."""

    def _windows(self, x, kernel, stride, padding, fill):
        n, c, h, w = x.shape
        (kh, kw), (ph, pw) = kernel, padding
        out_h = output_size(h, kh, stride[0], ph)
        out_w = output_size(w, kw, stride[1], pw)
        x_pad = pad_nhwc(self.xp, x, ((ph, ph), (pw, pw)), fill)
        self.geometry = (x.shape, x_pad.shape, out_h, out_w, kernel, stride, padding)
        offsets = [(i, j) for i in range(kh) for j in range(kw)]
        return x_pad, offsets, out_h, out_w

    def _scatter(self, pieces, dtype):
        """Sum per-offset gradient pieces (each (N, OH, OW, C)) back into an NCHW input gradient."""
        _, pad_shape, out_h, out_w, _, stride, (ph, pw) = self.geometry
        grad_pad = _col2im(self.xp, pieces, self.xp.empty(pad_shape, dtype=dtype), out_h, out_w, stride, (1, 1))
        return unpad_nchw(grad_pad, ((ph, ph), (pw, pw)))


def _tiles(y, kernel):
    """Every non-overlapping KH x KW window of a (N, H, W, C) array, as one view of shape
    (KH, KW, N, H // KH, W // KW, C): [i, j] is offset (i, j) of every window; rows and columns
    past the last whole window are left out."""
    n, h, w, c = y.shape
    kh, kw = kernel
    y6 = y[:, :h // kh * kh, :w // kw * kw, :].reshape(n, h // kh, kh, w // kw, kw, c)
    return y6.transpose(2, 4, 0, 1, 3, 5)


def _tile_list(y, kernel):
    """_tiles as a list of (N, H // KH, W // KW, C) views, one per offset in row-major order."""
    tiles = _tiles(y, kernel)
    return [tiles[i, j] for i in range(kernel[0]) for j in range(kernel[1])]


def _unpooled_buffer(xp, shape, kernel, dtype):
    """An (N, H, W, C) buffer for the gradient of a max-pool's input: uninitialised when the
    windows cover every row and column (routing writes all of it), else zero, so that the rows
    and columns past the last whole window get no gradient."""
    _, h, w, _ = shape
    covered = h % kernel[0] == 0 and w % kernel[1] == 0
    return buffers.empty(xp, shape, dtype) if covered else buffers.zeros(xp, shape, dtype)


def offset_codes(op, count):
    """0, 1, ..., count in the dtype of `op.offset`, on the op's device (made once: see arange_constant)."""
    return arange_constant(op.device, 0, count + 1, op.offset.dtype)


def _max_and_first_offset(relu):
    """A kernel(out, offset, one, *blocks) that writes out = the elementwise max of `blocks` (then
    passed through ReLU if `relu`), and offset = 1 + the index of the first block that holds it (the
    first maximum in the window's row-major order when several tie), or 0 where ReLU zeroed it: no
    gradient flows there. `one` is a 1 in the offset's dtype (shape (1,)).

    NOTE: one fused kernel on a GPU (2 + 4 per further block launches unfused: 30 a step in the
    tutorial's model). On the CPU the plain body's temporaries are slower than the tuned version
    below (in-place into reused buffers, in the offset's integer type), which NumPy runs instead;
    tests/test_conv_pool.py checks that both give identical values and offsets."""

    def kernel(xp, out, offset, one, *blocks):
        if relu:  # ReLU first: the running max starts at 0, and a block must exceed it (ReLU's gradient at 0 is 0)
            out[...] = xp.maximum(blocks[0], 0)
            offset[...] = blocks[0] > 0
        else:
            out[...] = blocks[0]
            offset[...] = one
        for q, block in enumerate(blocks[1:], start=2):
            flag = block > out  # strictly: a tie keeps the earlier offset
            xp.maximum(out, block, out=out)
            offset += flag * (q - offset)  # q where flag, else unchanged, in the offset's dtype

    def tuned(xp, out, offset, one, *blocks):
        flag = xp.empty(out.shape, dtype=bool)
        index = xp.empty(out.shape, dtype=offset.dtype)
        flag_as_int = flag.view(offset.dtype) if offset.itemsize == 1 else flag
        if relu:
            xp.maximum(blocks[0], 0, out=out)
            if offset.itemsize == 1:  # NOTE: straight into the offsets' bytes (0 or 1): one pass fewer, 2-8%
                xp.greater(blocks[0], 0, out=offset.view(bool))
            else:
                xp.greater(blocks[0], 0, out=flag)
                xp.copyto(offset, flag_as_int, casting="unsafe")
        else:
            xp.copyto(out, blocks[0])
            offset.fill(1)
        for q, block in enumerate(blocks[1:], start=2):
            xp.greater(block, out, out=flag)
            xp.maximum(out, block, out=out)
            # NOTE: offset = max(offset, q * flag), since q exceeds every offset so far; in the
            # offset's integer type, 10x faster than a masked assignment
            xp.multiply(flag_as_int, q, out=index, casting="unsafe")
            xp.maximum(offset, index, out=offset)

    kernel.__name__ = "max_and_first_offset_relu" if relu else "max_and_first_offset"
    return fuse(kernel, cpu=tuned)


MAX_AND_FIRST_OFFSET = {relu: _max_and_first_offset(relu) for relu in (False, True)}


def _max_of_blocks(relu):
    """A kernel(out, *blocks) that writes out = the elementwise max of `blocks` (then passed through
    ReLU if `relu`): _max_and_first_offset's values without the offsets, for an op that is not
    recorded (inference), which never routes a gradient.

    NOTE: the same calls on the values, in the same order, as _max_and_first_offset (ReLU first, then
    one maximum per further block), so that the values are bit-identical to a recorded forward's,
    NaNs and signed zeros included (tests/test_conv_pool.py). One pass per block where the offsets
    took four (a comparison, a maximum, a product and a maximum in uint8): a chunk of the tutorial's
    first layer at batch 1000 (40 images, 4 blocks of 40 x 14 x 14 x 32) pooled in 0.27 ms instead of
    0.64 ms, its second layer's (18 images) in 0.04 ms instead of 0.09 ms, against a chunk's 1.3 and
    1.5 ms in all (one thread, medians of 30 calls, on the loaded 2-core machine)."""

    def kernel(xp, out, *blocks):
        out[...] = xp.maximum(blocks[0], 0) if relu else blocks[0]
        for block in blocks[1:]:
            xp.maximum(out, block, out=out)

    def tuned(xp, out, *blocks):
        if relu:
            xp.maximum(blocks[0], 0, out=out)
        else:
            xp.copyto(out, blocks[0])
        for block in blocks[1:]:
            xp.maximum(out, block, out=out)

    kernel.__name__ = "max_of_blocks_relu" if relu else "max_of_blocks"
    return fuse(kernel, cpu=tuned)


MAX_OF_BLOCKS = {relu: _max_of_blocks(relu) for relu in (False, True)}


def _route_by_offset_cpu(xp, g, offset, *grads):
    """_route_by_offset on NumPy: the same products, g read contiguously (see _route_by_codes_cpu)
    and one reused mask."""
    if not g.flags.c_contiguous:
        g = xp.ascontiguousarray(g)
    match = xp.empty(g.shape, dtype=bool)
    for q, grad in enumerate(grads, start=1):
        xp.equal(offset, q, out=match)
        xp.multiply(g, match, out=grad)


@fuse(cpu=_route_by_offset_cpu)
def _route_by_offset(xp, g, offset, *grads):
    """grads[q - 1] = g where offset == q, else 0 (offsets from _max_and_first_offset): each
    window's gradient reaches exactly one input, and none where ReLU zeroed the output."""
    for q, grad in enumerate(grads, start=1):
        xp.multiply(g, offset == q, out=grad)


def _route_by_codes_cpu(xp, routed, g, offset, codes, *copies):
    """route_by_codes on NumPy: the same products g * (offset == code), in the same dtypes.

    NOTE: g is first made contiguous when it is a strided view (the tutorial's second layer gets the
    NCHW gradient of the flatten after it, channels 196 floats apart): the broadcast product then reads
    it contiguously four times instead of gathering it four times. A chunk of that layer (8 images,
    with its input-gradient copy) took 0.73x main's time alone, 0.87x inside training steps (one
    thread, loaded machine; benchmarks/bench_route.py, results/route_ab_loaded.json).
    Measured and dropped: a block (window offset) at a time with one reused mask, for the first
    layer's 1.6 MB chunks (no faster with the buffers varied); zero-fill plus copyto(where=), a product
    with where= over g * 0, np.where (5-16x slower: masked and select loops); a float mask (its cast costs what it saves)."""
    if not g.flags.c_contiguous:
        g = xp.ascontiguousarray(g)
    xp.multiply(g, offset == codes, out=routed)
    for copy in copies:
        copy[...] = routed


@fuse(cpu=_route_by_codes_cpu)
def route_by_codes(xp, routed, g, offset, codes, *copies):
    """routed[i, j] = g where offset == codes[i, j] (= 1 + i * PW + j), else 0: _route_by_offset
    for blocks stacked along the first axes, with `codes` shaped to broadcast along them; each of
    `copies` (views of routed's shape) gets the same values.

    NOTE: one kernel on a GPU; on the CPU _route_by_codes_cpu, the same products."""
    xp.multiply(g, offset == codes, out=routed)
    for copy in copies:
        copy[...] = routed


class RoutedMaxPool(_Pool2d):
    """Max over each window; backward routes a window's gradient to exactly one maximum (the
    first in row-major order when several tie), so gradients are never split or duplicated.

    NOTE: forward keeps, per output value, the offset of its window's first maximum (one byte),
    as the fused conv+pool op does, and backward routes by it; the input is not kept."""

    def forward(self, x, kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
        xp = self.xp
        # NOTE: windows that tile the input (kernel == stride, no padding) are reshaped views of
        # the channels-last input: nothing is padded, and backward writes each input element
        # once instead of zero-filling and adding.
        self.tiled = kernel == stride and padding == (0, 0)
        if self.tiled:
            views = _tile_list(x.transpose(0, 2, 3, 1), kernel)
            self.geometry = (x.shape, kernel)
        else:
            fill = -xp.inf if x.dtype.kind == "f" else False if x.dtype.kind == "b" else xp.iinfo(x.dtype).min
            x_pad, offsets, out_h, out_w = self._windows(x, kernel, stride, padding, fill)
            views = [_window(x_pad, i, j, out_h, out_w, stride, (1, 1)) for i, j in offsets]
            self.offsets = offsets
        out = xp.empty(views[0].shape, dtype=x.dtype)  # (N, OH, OW, C)
        if not self.recorded:  # values only: see FusedConvolution.forward
            over_batch(xp, out.shape[0], x.size, lambda r: MAX_OF_BLOCKS[False](out[r], *[v[r] for v in views]))
            return out.transpose(0, 3, 1, 2)
        self.offset = xp.empty(out.shape, dtype=xp.uint8 if len(views) < 256 else xp.int32)
        one = offset_codes(self, len(views))[1:2]
        over_batch(xp, out.shape[0], x.size, lambda r: MAX_AND_FIRST_OFFSET[False](
            out[r], self.offset[r], one, *[v[r] for v in views]))
        return out.transpose(0, 3, 1, 2)

    def backward(self, g):
        xp = self.xp
        g = g.transpose(0, 2, 3, 1)  # (N, OH, OW, C)
        if not self.tiled:
            pieces = [xp.empty(g.shape, dtype=g.dtype) for _ in self.offsets]
            _route_by_offset(g, self.offset, *pieces)
            return self._scatter(list(zip(self.offsets, pieces)), g.dtype)
        (n, c, h, w), kernel = self.geometry
        grad = _unpooled_buffer(xp, (n, h, w, c), kernel, g.dtype)
        grads = _tile_list(grad, kernel)
        over_batch(xp, n, grad.size, lambda r: _route_by_offset(g[r], self.offset[r], *[d[r] for d in grads]))
        return grad.transpose(0, 3, 1, 2)


def conv_pool_relu(x, weight, *bias, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), pool=None,
                   relu=False):
    """conv.conv_pool_relu as one op: the convolution's output pooled and passed through
    ReLU chunk by chunk while in cache, its gradient formed the same way (with one input channel,
    the first layer's, by conv_few.FewChannelConvolution)."""
    op = FewChannelConvolution if few_channels(x, weight, pool, stride, dilation) else FusedConvolution
    return op.apply(x, weight, *bias, stride=stride, padding=padding, dilation=dilation, pool=pool, relu=relu)


# NOTE: imported last, as it builds on this module; a global here (not conv_few.FewChannelConvolution)
# so that a second derivative finds conv_pool_relu's reference for it (higher_order._reference_of)
from .conv_few import FewChannelConvolution, applies as few_channels  # noqa: E402
