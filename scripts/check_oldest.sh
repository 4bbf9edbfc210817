#!/usr/bin/env bash
# The declared floors, checked: the whole test suite on the oldest Python and NumPy that
# pyproject.toml allows (Python 3.10, numpy 1.24.4), in a fresh venv under /tmp.
#   bash scripts/check_oldest.sh [python3.10] [numpy version]
# Takes about two minutes (the installs, then the suite). Set KEEP=1 to keep the venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-python3.10}"
NUMPY="${2:-1.24.4}"
VENV="$(mktemp -d /tmp/tinygrad_cnn-oldest.XXXXXX)"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$VENV"' EXIT
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "numpy==$NUMPY" ".[test]"
"$VENV/bin/python" -c "import sys, numpy; print('Python', sys.version.split()[0], 'numpy', numpy.__version__)"
HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}" "$VENV/bin/python" -m pytest -q -p no:cacheprovider
