"""Intra-op parallelism on the CPU: an op splits its batch into one slice per core, run in threads.

NumPy runs elementwise work on one core, and its BLAS runs matrix products on all of them but
then keeps its idle threads spinning for a while, which starves any other thread. So the
expensive ops (convolution, pooling, dense products) hand their batch to `over_batch`: one slice
per thread, each doing all of its own work (copies, products, adds) with BLAS limited to one
thread for the duration. NumPy releases the GIL inside its loops, so the slices run at once.
Convolutions, which work in cache-sized chunks of images, use `over_chunks` instead: each
thread takes the next chunk when it is free, so the threads finish together.

Limiting BLAS needs `threadpoolctl` (the optional extra `fast`); without it, and on a GPU, an
op runs as one call over the whole batch, which is the same code with one slice."""
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

# below ~1 MB of float32 per op, handing work to threads costs more than it saves
MIN_ELEMENTS = 1 << 18

_threads = None       # the number set by set_num_threads, or None for one per core
_pool = None          # ThreadPoolExecutor with _threads - 1 workers (the caller runs a slice too)
_blas = None          # threadpoolctl controller of the loaded BLAS libraries, False if unavailable
_inside = threading.local()  # .active: this thread is already running a slice of some op


def cpu_count():
    """Cores this process may run on (its affinity mask, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def get_num_threads():
    """Threads an op may split its batch over (1 when threadpoolctl is missing)."""
    if _blas_controller() is False:
        return 1
    return _threads if _threads is not None else cpu_count()


def set_num_threads(n):
    """Use n threads per op from now on (like torch.set_num_threads); 1 turns splitting off and
    None restores the default, one per core."""
    global _threads, _pool
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"set_num_threads: n must be a positive int or None, got {n!r}")
    _threads = n
    if _pool is not None:
        _pool.shutdown(wait=True)
        _pool = None


def _blas_controller():
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
            _blas = ThreadpoolController().select(user_api="blas")
        except ImportError:
            _blas = False
    return _blas


@contextlib.contextmanager
def _blas_on_one_thread():
    """Hold the loaded BLAS libraries to one thread, restoring their counts afterwards.

    NOTE: through threadpoolctl's per-library controllers (two C calls each), not its limit()
    context, which queries every library's full info each time: 17 us against 3 per op."""
    libs = _blas_controller().lib_controllers
    before = [lib.get_num_threads() for lib in libs]
    for lib in libs:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in zip(libs, before):
            lib.set_num_threads(n)


def _workers(n):
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=n - 1, thread_name_prefix="tinygrad_cnn")
    return _pool


def over_batch(xp, batch, elements, work):
    """Call work(rows) for contiguous, disjoint slices `rows` that together cover range(batch).

    The slices run in parallel on NumPy when `elements` (the size of the arrays work touches)
    is large enough; work may write its own rows of a shared output. Returns the list of what
    each call returned, in slice order, for the caller to combine (e.g. sum partial products)."""
    parts = max(1, min(get_num_threads(), batch))
    bounds = [batch * k // parts for k in range(parts + 1)]
    slices = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
    return _run(xp, elements, work, slices, alone=slice(0, batch))


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
    threads = get_num_threads()
    if xp.__name__ != "numpy" or threads < 2 or getattr(_inside, "active", False):
        # NOTE: work that itself calls over_batch runs its inner call in one piece: the pool's
        # workers may all be busy with the outer call, and waiting for them would never end
        return [work(alone)]
    if len(args) < 2 or elements < MIN_ELEMENTS:
        # NOTE: still with BLAS held to one thread: a product small enough to run alone here
        # would otherwise wake BLAS's threads, which then spin and starve the next op's threads
        with _blas_on_one_thread():
            return [work(alone)]
    with _blas_on_one_thread():
        futures = [_workers(threads).submit(_as_slice, work, arg) for arg in args[1:]]
        try:
            first = _as_slice(work, args[0])  # the calling thread takes the first share
        finally:
            results = [f.result() for f in futures]  # wait for all (and re-raise their errors)
        return [first] + results


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
