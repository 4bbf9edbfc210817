"""Data-parallel training over MPI (mpi4py) and, between GPUs, NCCL (through CuPy).

Every rank (process) holds the whole model and trains on its own shard of each batch; before each
update the ranks average their gradients, so they all apply the same update and stay identical.
The communication is done by MPI and NCCL, not here: this module only decides what is reduced,
when, and in what buffers.

    world = distributed.init()                  # under mpirun/mpiexec: the MPI world; else a world of one
    distributed.broadcast_parameters(model)     # every rank starts from rank 0's weights
    optimizer = distributed.DistributedOptimizer(optim.Adam(model.parameters()))  # averages, then steps
    loader = DataLoader(x, y, batch_size=64, shuffle=True, seed=0,
                        rank=world.rank, world_size=world.size)                   # this rank's shard

Without mpirun (or without mpi4py) the same script runs as a world of one and nothing here
communicates: mpi4py is not even imported. See docs/distributed.md.
"""
import functools
import numbers
import os
import sys
import traceback

import numpy

from .device import canonical_device, to_device, to_numpy

__all__ = ["World", "init", "is_initialized", "world", "rank", "world_size", "local_rank", "barrier",
           "allreduce", "broadcast_object", "on_root", "broadcast_parameters", "broadcast_optimizer_state",
           "average_gradients", "DistributedOptimizer", "local_batch_size", "device_for_rank",
           "DistributedError"]

# Environment variables that MPI launchers set in every process they start (MPICH/Hydra and Intel MPI:
# PMI_*; Open MPI: OMPI_*; PMIx launchers such as Slurm's srun: PMIX_*).
_LAUNCHER_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")
_LAUNCHER_RANK_VARS = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")
GPU_BACKEND_ENV = "TINYGRAD_CNN_GPU_BACKEND"   # "nccl" (default) or "mpi" (host-staged)
BUCKET_BYTES = 4 << 20                          # NOTE: the tutorial's 1.7 MB of gradients is one bucket


class DistributedError(RuntimeError):
    """A distributed setup that cannot work: MPI missing under a launcher, inconsistent ranks, ..."""


class World:
    """The processes training together: `rank` (0..size-1), `size`, and `local_rank`/`local_size`
    (the ranks on this machine, which pick its GPUs). `comm` is the mpi4py communicator, or None
    in a world of one."""

    def __init__(self, comm=None, rank=0, size=1, local_rank=0, local_size=1, gpu_backend="nccl"):
        self.comm, self.rank, self.size = comm, rank, size
        self.local_rank, self.local_size = local_rank, local_size
        self.gpu_backend = gpu_backend
        self._nccl = None

    @property
    def is_root(self):
        """True on rank 0, the rank that prints and writes files."""
        return self.rank == 0

    def __repr__(self):
        return (f"World(rank={self.rank}, size={self.size}, local_rank={self.local_rank}, "
                f"local_size={self.local_size}, mpi={self.comm is not None})")


_world = None


def _launched_size():
    """The world size a launcher announced in the environment (1 when none did)."""
    for name in _LAUNCHER_SIZE_VARS:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def init(gpu_backend=None, threads_per_rank="auto"):
    """Join the MPI world when launched by mpirun/mpiexec (or srun), else form a world of one.

    Returns the World (also kept for rank(), world_size(), ...); a second call returns the same.
    gpu_backend: how CuPy arrays are reduced, "nccl" (GPU to GPU, MPI only for the rendezvous) or
    "mpi" (copied to the host and reduced by MPI); default $TINYGRAD_CNN_GPU_BACKEND or "nccl".
    threads_per_rank: "auto" splits this machine's cores evenly between its ranks (2 ranks on 2
    cores: one thread each, BLAS included), an int sets it, None leaves the thread settings alone.

    With more than one rank, an exception that escapes on any rank aborts every rank (MPI_Abort)
    after printing it, so the others never wait forever in a collective for a rank that died."""
    global _world
    if gpu_backend is not None and not isinstance(gpu_backend, str):
        raise TypeError(f"init: gpu_backend must be None, 'nccl' or 'mpi', got {gpu_backend!r}")
    if not (threads_per_rank is None or threads_per_rank == "auto" or
            (isinstance(threads_per_rank, numbers.Integral) and not isinstance(threads_per_rank, bool)
             and threads_per_rank >= 1)):
        raise ValueError(f"init: threads_per_rank must be 'auto', None or an int >= 1, got {threads_per_rank!r}")
    if _world is not None:
        # NOTE: a second call returns the same world; one that asks for another backend would silently
        # get the first, so it is refused instead
        if gpu_backend is not None and gpu_backend.lower() != _world.gpu_backend:
            raise ValueError(f"init: the world is already initialized with gpu_backend={_world.gpu_backend!r}; "
                             f"a second init() cannot change it to {gpu_backend!r} (call init() without "
                             f"gpu_backend, or with the same one)")
        return _world
    backend = (gpu_backend or os.environ.get(GPU_BACKEND_ENV) or "nccl").lower()
    if backend not in ("nccl", "mpi"):
        raise ValueError(f"gpu_backend must be 'nccl' or 'mpi', got {backend!r}")
    size = _launched_size()
    if size == 1:
        _world = World(gpu_backend=backend)
        return _world
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise DistributedError(
            f"launched as one of {size} MPI processes, but mpi4py is not installed, so every process "
            f"would train alone: pip install 'tinygrad_cnn[distributed]' (mpi4py and MPICH)") from e
    comm = MPI.COMM_WORLD
    local = comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks that share this machine's memory
    _world = World(comm, comm.Get_rank(), comm.Get_size(), local.Get_rank(), local.Get_size(), backend)
    local.Free()
    if _world.size > 1:
        _abort_all_on_uncaught_exception(_world)
        if threads_per_rank is not None:
            _share_cores(_world, threads_per_rank)
    return _world


def _abort_all_on_uncaught_exception(world):
    """Make an uncaught exception on one rank end all of them instead of leaving the others hanging."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        sys.stderr.write(f"[rank {world.rank} of {world.size}] uncaught exception, aborting all ranks:\n")
        sys.stderr.write("".join(traceback.format_exception(kind, value, tb)))
        sys.stderr.flush()
        try:
            world.comm.Abort(1)
        finally:
            previous(kind, value, tb)

    sys.excepthook = hook


def _share_cores(world, threads_per_rank):
    """One rank's share of this machine's cores, for our op threads and for BLAS.

    NOTE: two ranks each splitting ops over both of 2 cores (and BLAS spinning on both) would run
    four busy threads on two cores; one thread each runs the same work without contention."""
    from .kernels import parallel
    n = (max(1, parallel.cpu_count() // world.local_size) if threads_per_rank == "auto"
         else int(threads_per_rank))
    parallel.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=n, user_api="blas")  # kept for the life of the process
    except ImportError:
        pass


def is_initialized():
    """True once init() has run."""
    return _world is not None


def world():
    """The World from init(); a world of one (without MPI) when init() was not called."""
    return _world if _world is not None else World()


def rank():
    """This process's rank, 0..world_size()-1 (0 without MPI)."""
    return world().rank


def world_size():
    """How many ranks train together (1 without MPI)."""
    return world().size


def local_rank():
    """This process's rank among those on its machine: the GPU it uses is cuda:<local_rank>."""
    return world().local_rank


def barrier():
    """Wait until every rank gets here."""
    w = world()
    if w.size > 1:
        w.comm.Barrier()


def device_for_rank(device=None):
    """The device this rank computes on: `device` for the CPU, and for "cuda" one GPU per rank on
    its machine, cuda:<local_rank> (an explicit cuda:N is kept only in a world of one)."""
    device = canonical_device(device)
    w = world()
    if device == "cpu" or w.size == 1:
        return device
    return f"cuda:{w.local_rank}"


def local_batch_size(global_batch_size):
    """Each rank's batch when `global_batch_size` is split over the world; it must divide evenly
    (so that the averaged gradient is that of the global batch)."""
    if isinstance(global_batch_size, bool) or not isinstance(global_batch_size, numbers.Integral):
        raise TypeError(f"local_batch_size: global_batch_size must be an int >= 1, got {global_batch_size!r}")
    if global_batch_size < 1:
        raise ValueError(f"local_batch_size: global_batch_size must be an int >= 1, got {global_batch_size!r}")
    size = world_size()
    if global_batch_size % size:
        raise ValueError(f"the global batch size {global_batch_size} is not divisible by the world size {size}: "
                         f"use a multiple of {size}, e.g. {size * max(1, round(global_batch_size / size))}")
    return global_batch_size // size


# ---------------------------------------------------------------- collectives on values

def allreduce(value, op="sum"):
    """Combine a number or array over all ranks: op "sum", "mean", "max" or "min". Returns a new
    value of the same kind (a Python float/int for a number, a NumPy array for an array); for
    metrics such as a count of correct answers, not for gradients (see average_gradients)."""
    if op not in ("sum", "mean", "max", "min"):
        raise ValueError(f"allreduce: op must be 'sum', 'mean', 'max' or 'min', got {op!r}")
    w = world()
    is_number = numpy.isscalar(value) or isinstance(value, (int, float))
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"allreduce: value must be a number, a numeric array or a Tensor, got {value!r}")
    array = numpy.array(to_numpy(getattr(value, "data", value)), copy=True)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"allreduce: value must be a number, a numeric array or a Tensor, got "
                        f"{type(value).__name__} of dtype {array.dtype}")
    if w.size > 1:
        from mpi4py import MPI
        w.comm.Allreduce(MPI.IN_PLACE, array, op={"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX,
                                                  "min": MPI.MIN}[op])
    if op == "mean":
        array = array / w.size
    return array.item() if is_number else array


def _root(root, who):
    """`root` checked: an int rank of this world."""
    size = world_size()
    if isinstance(root, bool) or not isinstance(root, numbers.Integral):
        raise TypeError(f"{who}: root must be an int rank in [0, {size}), got {root!r}")
    if not 0 <= root < size:
        raise ValueError(f"{who}: root must be a rank in [0, {size}) (the world has {size}), got {root!r}")
    return int(root)


def _bucket_bytes(value, who):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{who}: bucket_bytes must be an int >= 1, got {value!r}")
    return int(value)


def broadcast_object(obj, root=0):
    """Rank `root`'s picklable `obj` on every rank (the others' `obj` is ignored)."""
    root = _root(root, "broadcast_object")
    w = world()
    return w.comm.bcast(obj, root=root) if w.size > 1 else obj


def on_root(fn, root=0):
    """fn() run on rank `root` only; its result, or the exception it raised, arrives on every rank
    (so a failure there, such as a missing file, stops all ranks with the same error instead of
    leaving them waiting). For reading a checkpoint once, on the rank that has it."""
    if not callable(fn):
        raise TypeError(f"on_root: fn must be a callable taking no arguments, got {fn!r}")
    root = _root(root, "on_root")
    result = error = None
    if world().rank == root:
        try:
            result = fn()
        except (Exception, SystemExit) as e:  # noqa: BLE001 - re-raised on every rank below
            error = e
    result, error = broadcast_object((result, error), root)
    if error is not None:
        raise error
    return result


def broadcast_parameters(params, root=0):
    """Overwrite every rank's parameters (and a Module's buffers) with rank `root`'s, in place.

    `params`: a Module or a list of Tensors. Call it once after building (or loading) the model,
    so that all ranks start identical even if their random initialisation differed."""
    tensors = _tensors(params)
    root = _root(root, "broadcast_parameters")
    w = world()
    if w.size == 1:
        return
    everyone = w.comm.allgather([(t.shape, str(t.dtype)) for t in tensors])  # checked on every rank alike
    for r, shapes in enumerate(everyone):
        if shapes != everyone[root]:
            raise DistributedError(f"rank {r}'s parameters {shapes} differ from rank {root}'s {everyone[root]}: "
                                   f"every rank must build the same model")
    for t in tensors:
        _collective(w).bcast(t.data, root)


def _tensors(params, who="broadcast_parameters"):
    from .nn.module import Module
    from .tensor import Tensor
    if isinstance(params, Module):
        return params.parameters() + [b for _, b in params.named_buffers()]
    if isinstance(params, Tensor):
        return [params]
    try:
        tensors = list(params)
    except TypeError:
        raise TypeError(f"{who}: params must be a Module or a list of Tensors, got {params!r}") from None
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"{who}: params must be a Module or a list of Tensors, and hold a "
                            f"{type(t).__name__}")
    return tensors


def broadcast_optimizer_state(optimizer, root=0):
    """Give every rank rank `root`'s optimizer state (moments, step counts, hyper-parameters), e.g.
    after rank 0 has loaded a checkpoint."""
    from .optim import Optimizer
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"broadcast_optimizer_state needs an Optimizer, got {type(optimizer).__name__}")
    root = _root(root, "broadcast_optimizer_state")
    if world().size == 1:
        return
    state = broadcast_object(optimizer.state_dict() if world().rank == root else None, root)
    optimizer.load_state_dict(state)


# ---------------------------------------------------------------- gradients

def average_gradients(params, bucket_bytes=BUCKET_BYTES):
    """Replace each parameter's .grad by its mean over all ranks, in place of a per-parameter call.

    The gradients are laid end to end in a few flat buffers ("buckets" of at most `bucket_bytes`,
    one per dtype and device; the tutorial's model fits in one) and each bucket is summed by one
    all-reduce, then scaled by 1/world_size. A parameter that has no gradient on some rank counts
    as zero there; one that has none on any rank keeps .grad None (each bucket carries one extra
    flag per parameter to know). Returns the number of gradient bytes reduced (flags excluded)."""
    params = _tensors(params, "average_gradients")
    bucket_bytes = _bucket_bytes(bucket_bytes, "average_gradients")
    w = world()
    if w.size == 1:
        return 0
    reduced = 0
    for bucket in _buckets(params, bucket_bytes):
        reduced += _reduce_bucket(w, bucket)
    return reduced


def _buckets(params, bucket_bytes):
    """Parameters grouped, in order, by (dtype, device) into runs of at most bucket_bytes."""
    open_, out = {}, []
    for p in params:
        key = (str(p.dtype), p.device)
        bucket = open_.get(key)
        nbytes = p.data.nbytes
        if bucket is None or (bucket[1] + nbytes > bucket_bytes and bucket[0]):
            bucket = open_[key] = [[], 0]
            out.append(bucket)
        bucket[0].append(p)
        bucket[1] += nbytes
    return [b[0] for b in out]


def _reduce_bucket(w, params):
    """Sum one bucket's gradients over the ranks in one all-reduce; set .grad to the mean.

    NOTE: the mean is the sum times 1/size, so two ranks' means over 64 images each give the same
    float64 gradient as one mean over 128 up to rounding; a fresh buffer each step lets every
    .grad be a view of it with no copy out."""
    xp, dtype = params[0].xp, params[0].dtype
    sizes = [p.data.size for p in params]
    total = sum(sizes)
    with _on_device(params[0].device):
        flat = xp.empty(total + len(params), dtype=dtype)
        start = 0
        for p, n in zip(params, sizes):
            if p.grad is None:
                flat[start:start + n] = 0
            else:
                flat[start:start + n] = p.grad.data.reshape(-1)
            start += n
        flat[total:] = xp.asarray([p.grad is not None for p in params], dtype=dtype)
        _collective(w).allreduce_sum(flat)
        counts = to_numpy(flat[total:])
        flat[:total] *= 1.0 / w.size
    from .tensor import Tensor
    start = 0
    for p, n, count in zip(params, sizes, counts):
        p.grad = Tensor.wrap(flat[start:start + n].reshape(p.shape), p.device) if count > 0 else None
        start += n
    return total * flat.itemsize


def _on_device(device):
    from .device import use_device
    return use_device(device)


class _AveragesGradients:
    """Mixed into an optimizer's class by DistributedOptimizer: step() averages first."""

    def step(self):
        """Average the gradients over all ranks (in flat buckets), then update as the wrapped optimizer."""
        self.bytes_reduced = average_gradients(self.params, self.bucket_bytes)
        super().step()


@functools.lru_cache(maxsize=None)
def _distributed_class(cls):
    return type(f"Distributed{cls.__name__}", (_AveragesGradients, cls), {"__doc__": cls.__doc__})


def DistributedOptimizer(optimizer, bucket_bytes=BUCKET_BYTES):  # noqa: N802 (named as Horovod's)
    """Make `optimizer` average the gradients over all ranks before each step; returns it.

    The same object keeps its state, hyper-parameters and checkpoint format (and still passes
    isinstance checks, so learning-rate schedules work); only step() first calls
    average_gradients(). In a world of one the optimizer is returned unchanged."""
    from .optim import Optimizer
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"DistributedOptimizer needs an Optimizer, got {type(optimizer).__name__}")
    bucket_bytes = _bucket_bytes(bucket_bytes, "DistributedOptimizer")
    if world().size == 1 or isinstance(optimizer, _AveragesGradients):
        return optimizer
    optimizer.__class__ = _distributed_class(type(optimizer))
    optimizer.bucket_bytes = int(bucket_bytes)
    optimizer.bytes_reduced = 0
    return optimizer


# ---------------------------------------------------------------- who moves the bytes

def _collective(w):
    """The helper that sums/broadcasts arrays in place: MPI for host arrays; for CuPy arrays, NCCL
    (w.gpu_backend == "nccl") or MPI through a host copy ("mpi")."""
    if w.gpu_backend == "nccl":
        return _NCCLOrMPI(w)
    return _MPI(w.comm)


class _MPI:
    """In-place collectives on arrays through MPI; CuPy arrays are staged through host memory."""

    def __init__(self, comm):
        self.comm = comm

    def allreduce_sum(self, array):
        from mpi4py import MPI
        if isinstance(array, numpy.ndarray):
            self.comm.Allreduce(MPI.IN_PLACE, array, op=MPI.SUM)
        else:
            host = to_numpy(array)
            self.comm.Allreduce(MPI.IN_PLACE, host, op=MPI.SUM)
            array[...] = to_device(host, f"cuda:{array.device.id}")

    def bcast(self, array, root):
        if isinstance(array, numpy.ndarray):
            if array.flags.c_contiguous:
                self.comm.Bcast(array, root=root)
            else:
                array[...] = self.comm.bcast(array, root=root)
        else:
            host = to_numpy(array)
            self.comm.Bcast(host, root=root)
            array[...] = to_device(host, f"cuda:{array.device.id}")


class _NCCLOrMPI(_MPI):
    """CuPy arrays reduced GPU to GPU by NCCL (cupy.cuda.nccl), host arrays by MPI.

    The NCCL communicator is made at the first GPU collective, which every rank reaches together:
    rank 0 draws NCCL's unique id and MPI broadcasts it (the rendezvous), then each rank joins on
    its own GPU. NOTE: UNTESTED ON GPU HARDWARE: no GPU was available where this was written; the
    calls follow CuPy's documented NCCL API. TINYGRAD_CNN_GPU_BACKEND=mpi selects the tested
    host-staged path instead."""

    _communicators = {}  # (id of the World, GPU index) -> NcclCommunicator

    def __init__(self, world):
        super().__init__(world.comm)
        self.world = world

    def _nccl(self, array):
        import cupy
        from cupy.cuda import nccl
        key = (id(self.world), array.device.id)
        if key not in self._communicators:
            uid = self.comm.bcast(nccl.get_unique_id() if self.world.rank == 0 else None, root=0)
            with cupy.cuda.Device(array.device.id):
                self._communicators[key] = nccl.NcclCommunicator(self.world.size, uid, self.world.rank)
        kinds = {"float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}
        if str(array.dtype) not in kinds or not array.flags.c_contiguous:
            raise DistributedError(f"NCCL path: needs a contiguous float16/32/64 array, got {array.dtype}")
        return self._communicators[key], kinds[str(array.dtype)], cupy.cuda.get_current_stream().ptr, nccl

    def allreduce_sum(self, array):
        if isinstance(array, numpy.ndarray):
            return super().allreduce_sum(array)
        comm, kind, stream, nccl = self._nccl(array)
        comm.allReduce(array.data.ptr, array.data.ptr, array.size, kind, nccl.NCCL_SUM, stream)

    def bcast(self, array, root):
        if isinstance(array, numpy.ndarray):
            return super().bcast(array, root)
        comm, kind, stream, _ = self._nccl(array)
        comm.bcast(array.data.ptr, array.size, kind, root, stream)
