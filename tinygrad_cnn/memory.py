"""Host memory: let the C allocator keep freed blocks for reuse instead of returning them to the kernel
(opt-in and process-wide; the kernels reuse their own large arrays without it: kernels/buffers.py)."""
import ctypes
import platform
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc refuses larger mmap thresholds on 64-bit machines

_kept = False


def keep_freed_memory():
    """Ask glibc's malloc to keep freed blocks (up to 32 MiB each) in the process for reuse.

    Not needed for training: the kernels keep a step's large arrays themselves (kernels/buffers.py),
    so a step of the tutorial's CNN takes under 5 page faults with glibc's default malloc, as with
    this call (2,700 a step, 10.5 MB faulted back in and zeroed by the kernel, before they did).
    Measured with benchmarks/bench_ab.py (alternating rounds in two long-lived processes, batch 128,
    a loaded 2-core VM): before, this call made a step 6% faster (B/A 0.937 over 40 rounds; an A/A
    control 0.993); since, both take under 5 faults a step, and the call measured 0.91 and 1.11 in two
    runs: no effect the noise resolves (benchmarks/README.md). It can still help code of your own
    that allocates large NumPy arrays every step.

    The cost: the process keeps its peak heap instead of shrinking between steps, and the
    setting holds for the whole process (every library's malloc), so it is opt-in. Returns True
    when applied (or already applied), False where malloc is not glibc's (macOS, Windows, musl),
    where it does nothing."""
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
