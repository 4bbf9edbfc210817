"""Run a script with the strict CuPy emulation (tests/cupy_emulation) in place of `cupy`.

    python3 benchmarks/emulate.py examples/mnist.py --device cuda --epochs 1 --limit-train 256

For proving a GPU script (benchmarks/gpu_check.sh --emulate) on a machine without a GPU: the
script runs unchanged, with CuPy's rules and without CuPy's speed. Never used on a real GPU."""
import os
import runpy
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import cupy_emulation  # noqa: E402

if len(sys.argv) < 2:
    raise SystemExit("usage: python3 benchmarks/emulate.py SCRIPT [ARGS...]")
cupy_emulation.install()
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
runpy.run_path(script, run_name="__main__")
