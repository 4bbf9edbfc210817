"""Host memory: let the C allocator keep freed blocks for reuse instead of returning them to the kernel."""
import ctypes
import platform
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc refuses larger mmap thresholds on 64-bit machines

_kept = False


def keep_freed_memory():
    """Ask glibc's malloc to keep freed blocks (up to 32 MiB each) in the process for reuse.

    Why: a training step allocates and frees the same large arrays every step (activations,
    gradients, im2col buffers). By default glibc hands blocks of a few hundred KiB and more back
    to the kernel when they are freed, and the next step faults the pages back in, zeroed by the
    kernel. On the 2-core VMs we measure on that was about a third of a training step of the
    tutorial's CNN. CuPy's memory pool and PyTorch's caching allocators do the same on GPUs.

    The cost: the process keeps its peak heap instead of shrinking between steps, and the
    setting holds for the whole process (every library's malloc), so it is opt-in; the MNIST
    example and the benchmarks call it. Returns True when applied (or already applied), False
    where malloc is not glibc's (macOS, Windows, musl), where it does nothing."""
    global _kept
    if _kept:
        return True
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # Both are needed: a fixed mmap threshold puts big blocks on the heap, and the trim threshold
    # stops free() from returning the top of the heap to the kernel.
    _kept = bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) \
        and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    return _kept
