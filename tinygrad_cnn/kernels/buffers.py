"""Host buffers that kernels reuse from one training step to the next for their large arrays.

A step allocates the same large arrays every time (a convolution's padded input, im2col rows,
routed gradients, outputs and input gradients). glibc's malloc hands blocks of that size back to
the kernel when they are freed (beyond its mmap and trim thresholds), and the next step takes a
page fault for every 4 KiB of them, zeroed by the kernel: 2,700 a step in the tutorial's model
(10.5 MB, all in the second convolution), which memory.keep_freed_memory() (a process-wide
malloc setting) used to remove. Here the kernels keep such blocks themselves.

The rule that makes reuse safe: a block is handed out only while nothing but this cache refers to
it. Every array handed out is a view of its block, and NumPy views keep their block alive (and
counted) however many views deep, so a block behind a live tensor, a saved array, an output that
escaped to the caller or a user's `.numpy()` view is never handed out again until all of them
are gone. On a GPU, CuPy's memory pool does this already: `empty` is then xp.empty."""
import sys
import threading

# NOTE: smaller blocks come back from malloc's own free lists without page faults, also without
# keep_freed_memory: the tutorial's model took none in its first layer (0.8 MB blocks), and caching
# those as well raised its peak memory by 2-4 MB (blocks of one size that no other request fits)
MIN_BYTES = 1 << 20
# NOTE: a free block serves requests of its size down to 1 / FIT of it, the smallest such block
# first: a convolution's blocks forward and backward differ by a few rows, and the epoch's last
# batch of the tutorial (96 images after 128s) fits in the 128-image blocks (1.33x) instead of
# adding 19 MB of blocks of its own sizes, as FIT = 1.01 did. Training peak over 12,896 images
# (benchmarks/epoch_child.py --kind ours, two runs each; e996f8e with glibc keeping freed memory:
# 132.1-132.4 MB): 1.01 151 MB, 1.4 132.4-132.6, 1.5 132.6-133.3, 1.75 132.1-132.5, 2 136 (a
# backward request then takes a block twice its size that a later, larger one needed).
FIT = 1.75
# NOTE: a block not handed out in the last MAX_AGE requests is forgotten (malloc gets it back when
# its last view goes): a step of the tutorial's model makes ~20 requests, so an evaluation with
# another batch size does not keep the training blocks, nor training the evaluation's
MAX_AGE = 200
# NOTE: and at most this many bytes are kept (a request that does not fit is left to malloc)
MAX_BYTES = 1 << 30

_lock = threading.Lock()
_blocks = []  # [[raw uint8 block, the request count when last handed out], ...]
_requests = [0]


def _references_of_a_free_block():
    held = [[bytearray(1), 0]]
    return _count(held, 0)


def _count(entries, i):
    block = entries[i][0]  # (a local, as in _take)
    return sys.getrefcount(block)


_FREE = _references_of_a_free_block()


def empty(xp, shape, dtype):
    """An uninitialised array of `shape` and `dtype`; on NumPy, in a kept block that nothing else
    refers to any more when one fits (see FIT), else in a new block that is kept."""
    dtype = xp.dtype(dtype)
    size = 1
    for n in shape:
        size *= n
    nbytes = size * dtype.itemsize
    if xp.__name__ != "numpy" or nbytes < MIN_BYTES:
        return xp.empty(shape, dtype=dtype)
    with _lock:
        block = _take(xp, nbytes)
    return block[:nbytes].view(dtype).reshape(shape)


def zeros(xp, shape, dtype):
    """empty(), filled with zeros (xp.zeros off NumPy: CuPy's is a memset, not a fill kernel)."""
    if xp.__name__ != "numpy":
        return xp.zeros(shape, dtype=dtype)
    out = empty(xp, shape, dtype)
    out.fill(0)
    return out


def _take(xp, nbytes):
    """The smallest free kept block of nbytes to FIT * nbytes; else a new one, kept when MAX_BYTES
    allows, and the free blocks smaller than nbytes are forgotten (see below). Forgets free blocks
    older than MAX_AGE requests. Called under _lock."""
    _requests[0] += 1
    now, best, i = _requests[0], None, 0
    while i < len(_blocks):
        size, free = _blocks[i][0].nbytes, _count(_blocks, i) == _FREE
        if free and now - _blocks[i][1] > MAX_AGE:
            del _blocks[i]
            continue
        if free and nbytes <= size <= FIT * nbytes and (best is None or size < _blocks[best][0].nbytes):
            best = i
        i += 1
    if best is not None:
        _blocks[best][1] = now
        return _blocks[best][0]
    # NOTE: free blocks too small for a request that none serves are forgotten (malloc gets them
    # back, for this new block or anything else): kept beside it, the cache would hold more than
    # the work needs at once. In the tutorial's first step the first layer's 1.5 MB blocks go when
    # the second asks for 4 MB, and its later requests reuse the second layer's blocks (kept at
    # batch 128: 22.4-22.6 MiB in 8 blocks, 23.9 in 9 without this; 22.0 in use at most); inference
    # after training lets the training blocks go the same way. The epoch's peak (as above) 133.9 ->
    # 132.1-132.5 MB, after inference on the 10,000 test images 248 -> 238 MB (e996f8e: 219; the
    # rest is inference's own blocks, which serve only requests of about their size where glibc's
    # heap lends freed memory to anything: benchmarks/README.md, "Kept blocks and peak memory").
    # Larger free blocks stay: forgetting them could make a step that alternates a small and a
    # large request miss both, every step.
    _blocks[:] = [entry for j, entry in enumerate(_blocks)
                  if entry[0].nbytes >= nbytes or _count(_blocks, j) != _FREE]
    block = xp.empty(nbytes, dtype=xp.uint8)
    if sum(entry[0].nbytes for entry in _blocks) + nbytes <= MAX_BYTES:
        _blocks.append([block, now])
    return block


def held():
    """(blocks, bytes) kept now, free or in use."""
    with _lock:
        return len(_blocks), sum(entry[0].nbytes for entry in _blocks)


def release():
    """Forget every kept block (those in use stay alive while their arrays do)."""
    with _lock:
        _blocks.clear()
