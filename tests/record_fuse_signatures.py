"""Write tests/fuse_signatures.json: every fused kernel call of a test-suite run on the CuPy
emulation, as (module, kernel name, the kind of each argument: array dtype and ndim, NumPy scalar
dtype or Python type). tests/test_cupy_real.py traces each of these through real cupy.fuse and
compiles it for sm_90; rerun this after adding or changing a device.fuse kernel or its callers:

    python tests/record_fuse_signatures.py            # the whole suite (~2-3 minutes)
    python tests/record_fuse_signatures.py tests/test_optim.py ...   # merge in a few files
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "fuse_signatures.json")


def main(args):
    env = dict(os.environ, TINYGRAD_CNN_RECORD_FUSE=PATH, TINYGRAD_CNN_EMULATE_CUPY="1")
    if not args and os.path.exists(PATH):
        os.remove(PATH)  # the whole suite: start over, so that kernels no longer called drop out
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          *(args or [HERE])], cwd=os.path.dirname(HERE), env=env)
    if run.returncode:
        sys.exit(f"the test run failed (exit {run.returncode}); {PATH} may be incomplete")
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main(sys.argv[1:])
