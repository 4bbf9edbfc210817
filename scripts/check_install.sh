#!/usr/bin/env bash
# A user's install, checked: build a wheel of this tree (non-editable), install it into a fresh venv,
# and from outside the tree load the bundled MNIST with downloading disabled (offline).
#   bash scripts/check_install.sh [python]      # default: python3
# The venv sees the system site-packages so NumPy needs no download; the wheel itself is installed with
# --no-deps. It fails if load_data() reads anything but the copy inside site-packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-python3}"
WORK="$(mktemp -d /tmp/tinygrad_cnn-install.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
"$PY" -m venv --system-site-packages "$WORK/venv"
"$WORK/venv/bin/python" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$WORK/dist" .
"$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall \
    "$WORK"/dist/tinygrad_cnn-*.whl
cd "$WORK"   # not the tree: `import tinygrad_cnn` must find the installed copy
env -u TINYGRAD_CNN_DATA -u PYTHONPATH HOME="$WORK/home" "$WORK/venv/bin/python" - <<'PY'
import tinygrad_cnn, sysconfig
from tinygrad_cnn.datasets import mnist

def offline(url):
    raise AssertionError(f"load_data tried to download {url}: the wheel lacks the bundled MNIST")

mnist._fetch = offline
(x_train, y_train), (x_test, y_test) = mnist.load_data()
site = sysconfig.get_paths()["purelib"]
assert tinygrad_cnn.__file__.startswith(site), f"imported {tinygrad_cnn.__file__}, not the installed wheel"
assert str(mnist.REPO_DATA_DIR).startswith(site), f"read MNIST from {mnist.REPO_DATA_DIR}, not the wheel"
assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
print(f"installed wheel OK: tinygrad_cnn {tinygrad_cnn.__version__}, MNIST {x_train.shape[0]}+{x_test.shape[0]} "
      f"images read offline from {mnist.REPO_DATA_DIR}")
PY
