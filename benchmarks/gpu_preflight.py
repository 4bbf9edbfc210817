"""The GPU check's preflight (benchmarks/gpu_check.sh): CuPy's configuration, one kernel and one
matmul on the GPU, each result checked against NumPy. Exits non-zero with a message saying what
is missing, so that the check stops within seconds instead of failing every later step."""
import sys
import time

import numpy


def main():
    start = time.perf_counter()
    try:
        import cupy
    except ImportError as e:
        raise SystemExit(f"preflight: CuPy does not import ({e}): no GPU check is possible here")
    cupy.show_config()
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 (the driver's own error, whatever it is)
        raise SystemExit(f"preflight: CuPy imports but no CUDA device answers ({e})")
    if count < 1:
        raise SystemExit("preflight: CuPy sees no CUDA device")
    x = cupy.arange(1024, dtype=cupy.float32)
    y = (x * 2 + 1).get()  # one elementwise kernel (compiled on first use), read back
    if not numpy.array_equal(y, numpy.arange(1024, dtype=numpy.float32) * 2 + 1):
        raise SystemExit("preflight: an elementwise kernel gave wrong values")
    a = numpy.random.default_rng(0).random((256, 256), dtype=numpy.float32)
    product = (cupy.asarray(a) @ cupy.asarray(a)).get()  # one GEMM (cuBLAS)
    if not numpy.allclose(product, a @ a, rtol=1e-3, atol=1e-3):
        raise SystemExit("preflight: a 256 x 256 matmul gave wrong values")
    cupy.cuda.Device().synchronize()
    emulated = getattr(cupy, "EMULATED", False)
    print(f"preflight ok: {count} device(s), kernel and matmul checked in {time.perf_counter() - start:.1f} s"
          + (" (CuPy emulation, no GPU)" if emulated else ""))


if __name__ == "__main__":
    sys.exit(main())
