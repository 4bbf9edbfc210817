#!/usr/bin/env bash
# One prepared GPU check, for a machine with an NVIDIA GPU and CuPy already installed:
#   1. the test suite with the CUDA device enabled (TINYGRAD_CNN_TEST_CUDA=1: a missing GPU fails, never skips),
#   2. the per-op benchmark on the GPU (PyTorch on the same GPU when it is installed),
#   3. the one-epoch benchmark on the GPU, and a short examples/mnist.py run on the GPU.
# Results (logs, JSON, a summary table) go to $OUT when it is set, else to the folder given as $1.
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh        or        bash benchmarks/gpu_check.sh results/gpu
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-${1:-benchmarks/results/gpu}}"
mkdir -p "$out"
summary="$out/summary.md"
status=0
step() {  # step NAME TIMEOUT COMMAND...: run, log to $out/NAME.log, record pass/fail
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  [ $rc -ne 0 ] && status=1
  echo "| $name | rc=$rc | $((SECONDS - start)) s |" >> "$summary"
  tail -n 25 "$out/$name.log"
}

{ echo "# GPU check $(date -u +%FT%TZ)"; echo; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  python -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)" 2>&1
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tail -1
  echo; echo "| step | result | time |"; echo "|---|---|---|"; } > "$summary"

python -c "import pytest, hypothesis" 2>/dev/null || python -m pip install --quiet pytest hypothesis >/dev/null 2>&1
export TINYGRAD_CNN_TEST_CUDA=1
step pytest_gpu 420 python -m pytest -q -p no:cacheprovider -m gpu tests
step bench_ops 120 python benchmarks/bench_ops.py --device cuda --repeats 20 --json "$out/ops_cuda.json"
step bench_epoch 300 python benchmarks/bench_epoch.py --device cuda --no-memory --json "$out/epoch_cuda.json"
step mnist_cuda 300 python examples/mnist.py --device cuda --epochs 1 --no-progress --save "$out/mnist_cuda.npz" \
  --metrics "$out/mnist_cuda.json"
rm -f "$out/mnist_cuda.npz"

{ echo; echo '```'; grep -E "passed|failed|error" "$out/pytest_gpu.log" | tail -n 3
  sed -n '/^forward+backward/,$p' "$out/bench_ops.log"; sed -n '/^one epoch/,$p' "$out/bench_epoch.log"
  grep -E "^epoch|final test" "$out/mnist_cuda.log"; echo '```'; } >> "$summary"
cat "$summary"
exit $status
