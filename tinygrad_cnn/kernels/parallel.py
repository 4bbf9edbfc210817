"""Intra-op parallelism on the CPU: an op splits its batch into one slice per core, run in threads.

NumPy runs elementwise work on one core, and its BLAS runs matrix products on all of them but
then keeps its idle threads spinning for a while, which starves any other thread. So the
expensive ops (convolution, pooling, dense products) hand their batch to `over_batch`: one slice
per thread, each doing all of its own work (copies, products, adds), with BLAS held to one
thread (see `_hold_blas`). NumPy releases the GIL inside its loops, so the slices run at once.
Convolutions, which work in cache-sized chunks of images, use `over_chunks` instead: each
thread takes the next chunk when it is free, so the threads finish together.

Several Python threads may run ops at once (two models trained side by side): they share one
pool of worker threads and one BLAS setting, both guarded by `_lock`.

Limiting BLAS uses `threadpoolctl` (the optional extra `fast`) or, without it, OpenBLAS's own
`openblas_set_num_threads` found in the loaded library (`_OpenBLAS`); where neither works (another
BLAS and no threadpoolctl), and on a GPU, an op runs as one call over the whole batch, which is the
same code with one slice."""
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from types import SimpleNamespace

# below ~1 MB of float32 per op, handing work to threads costs more than it saves
MIN_ELEMENTS = 1 << 18

# NOTE: work whose floating-point result depends on how it is cut (a product's rows, whose
# rounding a BLAS may vary with their place in its tiles; partial sums of a gradient) is cut into
# pieces fixed by the problem, at least PIECES of them when the work is big enough, never by the
# thread count: the threads only decide who runs which piece, and partial results are combined
# in piece order. So training gives the same bits with any thread count, and without
# threadpoolctl too, as long as BLAS can be held at one thread (issue 27; tests/test_same_bits.py:
# on its own threads OpenBLAS cuts some products differently). Machines with more cores than PIECES use
# the extra ones only where the work has more pieces (large batches).
PIECES = 8

_lock = threading.Lock()  # guards _threads, _pool, _blas, _blas_saved and every _Pool's counts
_threads = None       # the number set by set_num_threads, or None for one per core
_pool = None          # the _Pool new ops submit to (made by the first op that splits), or None
_blas = None          # controller of the loaded BLAS libraries (threadpoolctl's or _OpenBLAS), False if none
_blas_saved = None    # the BLAS libraries' thread counts before _hold_blas, or None: not held
_splitting = 0        # ops now running on the threaded path, in all threads (pools old and new)
_inside = threading.local()  # .active: this thread is already running a slice of some op


def cpu_count():
    """Cores this process may run on (its affinity mask, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def get_num_threads():
    """Threads an op may split its batch over (1 when BLAS cannot be held at one thread: no
    threadpoolctl and no OpenBLAS)."""
    if _blas_controller() is False:
        return 1
    return _threads if _threads is not None else cpu_count()


def set_num_threads(n):
    """Use n threads per op from now on (like torch.set_num_threads); 1 turns splitting off and
    None restores the default, one per core. Process-wide: it applies to ops in every thread.

    Safe while other threads are inside ops: an op that has started keeps the pool (and the
    number of slices) it started with and finishes normally; ops that start after this call
    use a new pool of the new size. The old pool's workers exit once the last op using it is
    done. With n = 1 the BLAS libraries get their own thread counts back (see _hold_blas) as
    soon as no op is running split."""
    global _threads, _pool
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"set_num_threads: n must be a positive int or None, got {n!r}")
    with _lock:
        _threads = n
        old, _pool = _pool, None
        if old is not None:
            old.retired = True
            old.close_if_unused()
        if n == 1 and _splitting == 0:
            _release_blas()


def _blas_controller():
    global _blas
    if _blas is None:
        with _lock:
            if _blas is None:
                try:
                    from threadpoolctl import ThreadpoolController
                    _blas = ThreadpoolController().select(user_api="blas")
                except ImportError:
                    _blas = _OpenBLAS.find() or False
    return _blas


class _OpenBLAS:
    """The OpenBLAS libraries loaded in this process, held through their own C functions (ctypes):
    what threadpoolctl does for them, for when it is not installed.

    NOTE: without it, OpenBLAS ran its own threads inside our ops and cut some products by their
    count, so training differed in the last bits (3.3e-6 after 30 steps) from a process with it
    (issue 27). NumPy's wheels bundle OpenBLAS on Linux, Windows and x86 macOS; another BLAS (MKL,
    Accelerate) without threadpoolctl is left alone, and ops then run as one call each."""

    # NOTE: scipy-openblas (NumPy >= 2 wheels) prefixes the names, and its 64-bit-integer build
    # adds the suffix "64_"; a system OpenBLAS has the plain names
    NAMES = [(f"{prefix}openblas_get_num_threads{suffix}", f"{prefix}openblas_set_num_threads{suffix}")
             for prefix in ("scipy_", "") for suffix in ("64_", "")]

    def __init__(self, getter, setter):
        self.get_num_threads, self.set_num_threads = getter, setter

    @classmethod
    def find(cls):
        """An object with `lib_controllers` (as threadpoolctl's), or None when no OpenBLAS is loaded."""
        import ctypes
        import glob

        import numpy  # noqa: F401  (loads its BLAS)
        try:  # NOTE: only libraries already loaded (RTLD_NOLOAD): opening another OpenBLAS would start its threads
            with open("/proc/self/maps") as f:
                paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line})
        except OSError:  # macOS, Windows: NumPy's bundled copy
            here = os.path.dirname(numpy.__file__)
            paths = sorted(glob.glob(os.path.join(here, ".dylibs", "*openblas*")) +
                           glob.glob(os.path.join(here, "..", "numpy.libs", "*openblas*")))
        found = []
        for path in paths:
            try:
                lib = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.DEFAULT_MODE)
            except OSError:
                continue
            for getter, setter in cls.NAMES:
                if hasattr(lib, getter) and hasattr(lib, setter):
                    found.append(cls(getattr(lib, getter), getattr(lib, setter)))
                    break
        return SimpleNamespace(lib_controllers=found) if found else None


def _set_blas_threads(lib, n):
    """Set one BLAS library's thread count, whichever Python thread calls.

    NOTE: threadpoolctl 3.8 lets only one "controlling" thread change OpenBLAS's (process-wide)
    count, the first one to try (in practice the main thread, once it has run one op or called
    threadpool_limits); calls from other threads silently do nothing. A training thread's limit
    was then ignored, BLAS kept two threads spinning inside every op and two models trained in
    two threads ran 28-55x slower than one after the other. Our limit is taken once under our
    own lock (see _hold_blas), so it goes to the library directly."""
    getattr(lib, "_real_set_num_threads", lib.set_num_threads)(n)


def _hold_blas():
    """Hold the loaded BLAS libraries at one thread, for every thread of the process, from the
    first op that splits until set_num_threads(1) turns splitting off. Called under _lock.

    NOTE: held, not set and restored around each op: the count is one process-wide number, so
    threads that each saved and restored it around their own ops restored each other's values
    in the middle of the other's op (the limit flip-flopped, and BLAS threads spun beside
    ours). Holding it costs nothing per op; before, the save and restore took ~3 us of each op.
    The price: NumPy products of your own, in any thread, run on one BLAS thread meanwhile. A
    count you set yourself (threadpoolctl) while it is held stays (it is not checked per op)
    until set_num_threads(1) puts back the counts found here."""
    global _blas_saved
    if _blas_saved is None:
        libs = _blas.lib_controllers
        _blas_saved = [lib.get_num_threads() for lib in libs]
        for lib in libs:
            _set_blas_threads(lib, 1)


def _release_blas():
    """Give the BLAS libraries back the counts _hold_blas found. Called under _lock."""
    global _blas_saved
    if _blas_saved is not None:
        for lib, n in zip(_blas.lib_controllers, _blas_saved):
            _set_blas_threads(lib, n)
        _blas_saved = None


class _Pool:
    """A ThreadPoolExecutor and the number of ops now submitting to it.

    set_num_threads retires a pool rather than shutting it down under an op that is about to
    submit to it: a retired pool gets no new ops, and it is shut down (its workers finish the
    work already queued, then exit) when the last op using it is done."""

    def __init__(self, workers):
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tinygrad_cnn")
        self.users, self.retired = 0, False

    def close_if_unused(self):
        """Shut the executor down if retired and no op uses it any more. Called under _lock."""
        if self.retired and self.users == 0 and self.executor is not None:
            self.executor.shutdown(wait=False)
            self.executor = None


_ALONE = object()  # from _join: the op runs in the calling thread, with BLAS held


def _join():
    """The pool an op about to split should submit to, counted as used by it (hand it back
    with _leave), or None when ops run as one call now (no threadpoolctl); with one thread, a
    _Pool-less marker (_ALONE): the op runs in the caller, BLAS held too.

    NOTE: BLAS is held at one thread inside every op also with set_num_threads(1), and given
    back when the last op running ends: OpenBLAS cuts some products differently on two threads
    (a conv's (10, 3920) x (3920, 32) weight-gradient product differed by 3e-5), so 1 and 2
    threads gave different bits (issue 27). Held and given back per op only at one thread:
    ~10 us an op."""
    global _pool, _splitting
    if _blas_controller() is False:
        return None
    with _lock:
        threads = _threads if _threads is not None else cpu_count()
        _hold_blas()
        _splitting += 1
        if threads < 2:
            return _ALONE
        if _pool is None:
            _pool = _Pool(threads - 1)  # the caller runs a slice too
        _pool.users += 1
        return _pool


def _leave(pool):
    """An op is done with `pool` (from _join)."""
    global _splitting
    with _lock:
        if pool is not _ALONE:
            pool.users -= 1
            pool.close_if_unused()
        _splitting -= 1
        if _splitting == 0 and _threads == 1:
            _release_blas()


def over_batch(xp, batch, elements, work):
    """Call work(rows) for contiguous, disjoint slices `rows` that together cover range(batch).

    The slices run in parallel on NumPy when `elements` (the size of the arrays work touches)
    is large enough; work may write its own rows of a shared output. Returns the list of what
    each call returned, in slice order.

    NOTE: the slices follow the thread count, so work must give the same values however its
    rows are cut (elementwise work); anything else goes through over_chunks with fixed pieces."""
    parts = max(1, min(get_num_threads(), batch))
    bounds = [batch * k // parts for k in range(parts + 1)]
    slices = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
    return _run(xp, elements, work, slices, alone=slice(0, batch))


def pieces(count, least=1, most=None):
    """Consecutive slices of one size (the last may be shorter) that cover range(count): PIECES
    of them, or fewer so that each has at least `least` items, or more so that none has over
    `most` (then a multiple of PIECES, while there are items enough). A function of the problem
    only (see PIECES), to hand to over_chunks: 1, 2, 4 or 8 threads get equal shares. An empty
    count (a batch of zero images) has no pieces."""
    if count <= 0:
        return []
    size = max(1, least, -(-count // PIECES))
    if most is not None:
        size = max(1, min(size, most))
    number = -(-count // size)
    if number > PIECES:
        number = min(count, -(-number // PIECES) * PIECES)
    size = -(-count // max(1, number))  # equal shares
    return [slice(lo, min(lo + size, count)) for lo in range(0, count, size)]


def over_chunks(xp, chunks, elements, work):
    """Call work(source) once per thread, all at once, where `source` yields (index, chunk)
    pairs of the list `chunks`, each to whichever thread asks for the next one first.

    Returns what each call returned (a thread that finds nothing left gets an empty source);
    `elements` as for over_batch. Work that must not depend on which thread ran what (a sum
    of floats) keeps its results by chunk index.

    NOTE: threads that take chunks as they become free, instead of a fixed half of the batch
    each, finish together: a thread wakes ~0.1 ms after the caller starts, and on these VMs
    either core may run a few percent slower for a while, so fixed halves of the tutorial's
    second convolution finished 0.4-0.8 ms apart on average, with one core idle meanwhile."""
    source = _Shared(enumerate(chunks))
    return _run(xp, elements, work, [source] * min(get_num_threads(), len(chunks)), alone=source)


class _Shared:
    """An iterator that several threads may draw from: each item goes to exactly one of them."""

    def __init__(self, items):
        self._items, self._lock = iter(items), threading.Lock()

    def __iter__(self):
        return self

    def __next__(self):
        with self._lock:
            return next(self._items)


def _run(xp, elements, work, args, alone):
    """[work(arg) for arg in args], run in one thread each (the caller takes the first), or
    [work(alone)] in the calling thread when threads would not pay (see over_batch)."""
    if xp.__name__ != "numpy" or getattr(_inside, "active", False):
        # NOTE: work that itself calls over_batch runs its inner call in one piece: the pool's
        # workers may all be busy with the outer call, and waiting for them would never end
        return [work(alone)]
    pool = _join()
    if pool is None:
        return [work(alone)]
    try:
        if pool is _ALONE or len(args) < 2 or elements < MIN_ELEMENTS:
            # NOTE: still with BLAS held to one thread: a product small enough to run alone here
            # would otherwise wake BLAS's threads, which then spin and starve the next op's threads
            return [work(alone)]
        futures = [pool.executor.submit(_as_slice, work, arg) for arg in args[1:]]
        try:
            first = _as_slice(work, args[0])  # the calling thread takes the first share
        except BaseException:
            _abandon(futures)
            raise
        return [first] + _finish(futures, work, args[1:])
    finally:
        _leave(pool)


def _finish(futures, work, args):
    """The results of the shares handed to the pool, in order (their errors re-raised); a share
    that no worker has started yet runs here instead.

    NOTE: when another thread's op keeps the workers busy, waiting for one would leave this
    core idle while that share sits in the queue; a share runs exactly once either way (a
    future can be cancelled only before a worker takes it), and its result is the same."""
    try:
        return [_as_slice(work, arg) if f.cancel() else f.result() for f, arg in zip(futures, args)]
    except BaseException:
        _abandon(futures)
        raise


def _abandon(futures):
    """After a share failed: drop the shares not started, wait for those running (they may
    write into the op's output) before the error goes up."""
    for f in futures:
        f.cancel()
    wait(futures)


def concurrently(xp, elements, *tasks):
    """Run independent tasks (callables without arguments) at once, one per thread, and return
    their results in order; `elements` as for over_batch.

    NOTE: for an op's independent products of ~0.1 GFLOP (a dense layer's input and weight
    gradients), each whole product on its own core runs at a single thread's full speed; split
    in halves, each thread would pack its share of both operands, and the pair ran 1.7x slower."""
    parts = over_batch(xp, len(tasks), elements, lambda rows: [task() for task in tasks[rows]])
    return [result for part in parts for result in part]


def _as_slice(work, rows):
    """work(rows), marked as running inside over_batch in this thread."""
    _inside.active = True
    try:
        return work(rows)
    finally:
        _inside.active = False
