#!/usr/bin/env bash
# The GPU check, one prepared run for a lent device machine (one H100 or one H200: Python 3.12, cupy-cuda13x,
# torch with CUDA, pytest, hypothesis; no internet, nothing installed here: the code runs from this checkout):
#   0. preflight, 10 s: cupy.show_config(), one kernel, one matmul; stops the check early if they fail,
#   1. CPU against GPU: 10 Adam and 10 AdamW steps of the tutorial model, losses and weights compared
#      (benchmarks/gpu_compare.py, tolerances there); it also compiles a training step's kernels first,
#   2. the gpu-marked tests on the real GPU in 8 pytest processes (benchmarks/gpu_tests.py), so that the
#      ~590 kernels they compile on a fresh machine (NVRTC, 0.1-0.4 s each) compile side by side, into one
#      kernel cache (CUPY_CACHE_DIR); few hypothesis examples (profile gpu: kernels differ by dtype and rank,
#      not by shape); TINYGRAD_CNN_TEST_CUDA=1: no GPU at all is a failure (tests needing 2 GPUs skip on 1),
#   3. one training epoch, ours against PyTorch CUDA on the same GPU (same model, batch 128, Adam, interleaved),
#   4. the default example (examples/mnist.py, 6 epochs) and its test accuracy.
# The step limits add up to under 480 s (8 minutes, inside the device's 10-minute command limit); at most 8
# files go to $OUT (else the folder in $1): summary.md, compare.log, compare.json, pytest.log, epoch.log,
# epoch_cuda.json, mnist.log, mnist_metrics.json.
#
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh              on the GPU machine
#   OUT=/tmp/emu bash benchmarks/gpu_check.sh --emulate    here: the strict CuPy emulation, tiny data
#
# --emulate (or GPU_CHECK_EMULATE=1) runs every step on tests/cupy_emulation instead of a GPU, with small
# data and short limits: it proves the script itself (CI runs it, tests/test_gpu_check.py), not a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
emulate="${GPU_CHECK_EMULATE:-0}"
if [ "${1:-}" = "--emulate" ]; then emulate=1; shift; fi
out="${OUT:-${1:-benchmarks/results/gpu}}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TINYGRAD_CNN_TEST_CUDA=1          # a missing GPU fails a gpu-marked test, never skips it
export PYTHONDONTWRITEBYTECODE=1

if [ "$emulate" = 1 ]; then
  export TINYGRAD_CNN_EMULATE_CUPY=1
  run=(python3 benchmarks/emulate.py)
  limits=(30 240 240 240 240)            # preflight, compare, tests, epoch, example: generous for a loaded CI CPU
  tests=(--shards 2 tests/test_gpu_fixes.py tests/test_devices.py)
  epoch_args=(--images 128 --test-images 100 --frameworks ours)   # no PyTorch CUDA here: do not import torch
  mnist_args=(--epochs 1 --limit-train 128 --limit-test 100 --batch-size 64)
  label="CuPy emulation on NumPy (no GPU): proves the script, not a GPU"
else
  export TINYGRAD_CNN_EMULATE_CUPY=0     # the emulation can never stand in for the GPU
  run=(python3)
  limits=(10 60 200 90 100)              # preflight, compare, tests, epoch, example: sum 460 s < 480 s
  tests=(--shards 8 tests)
  export CUPY_CACHE_DIR="${CUPY_CACHE_DIR:-/tmp/tinygrad_cnn_kernel_cache}"   # shared by all steps, not in $out
  export HYPOTHESIS_PROFILE=gpu
  epoch_args=(--frameworks ours,torch)
  mnist_args=()
  label="real GPU"
fi
total=0; for l in "${limits[@]}"; do total=$((total + l)); done

summary="$out/summary.md"
status=0
step() {  # step NAME LIMIT COMMAND...: run with a timeout, log to $out/NAME.log, one summary row
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout -k 5 "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  [ $rc -ne 0 ] && status=1
  local verdict=pass; [ $rc -eq 124 ] && verdict="TIMEOUT (${limit} s)"; [ $rc -ne 0 ] && [ $rc -ne 124 ] && verdict="FAIL rc=$rc"
  echo "| $name | $verdict | $((SECONDS - start)) s of $limit s |" >> "$summary"
  tail -n 15 "$out/$name.log"
}

{ echo "# GPU check $(date -u +%FT%TZ) ($label)"; echo
  echo "step limits: ${limits[*]} s, total $total s"; echo; echo '```'
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -n 4
  else echo "nvidia-smi: not found"; fi
  python3 -c "import sys, numpy; print('python', sys.version.split()[0], 'numpy', numpy.__version__)" 2>&1
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tail -n 1
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"; echo '```'; } > "$summary"

# 0. preflight: its output goes into the summary (no file of its own)
start=$SECONDS
{ echo; echo "## preflight"; echo '```'; } >> "$summary"
timeout -k 2 "${limits[0]}" "${run[@]}" benchmarks/gpu_preflight.py >> "$summary" 2>&1
rc=$?
echo '```' >> "$summary"
if [ $rc -ne 0 ]; then
  why="rc=$rc"; [ $rc -eq 124 ] && why="no answer within ${limits[0]} s"
  echo "**preflight failed ($why) after $((SECONDS - start)) s: no GPU to check; later steps not run**" >> "$summary"
  cat "$summary"
  echo "gpu_check: preflight failed ($why): CuPy or the GPU is not usable here; see $summary" >&2
  exit 2
fi
{ echo; echo "| step | result | time |"; echo "|---|---|---|"; } >> "$summary"

# 1. CPU against GPU training steps (and the kernels of a step compiled)
step compare "${limits[1]}" "${run[@]}" benchmarks/gpu_compare.py --json "$out/compare.json"
# 2. the gpu-marked tests
step pytest "${limits[2]}" python3 benchmarks/gpu_tests.py "${tests[@]}"
# 3. one epoch against PyTorch CUDA
step epoch "${limits[3]}" "${run[@]}" benchmarks/bench_epoch.py --device cuda --no-memory \
  --json "$out/epoch_cuda.json" "${epoch_args[@]}"
# 4. the default example
step mnist "${limits[4]}" "${run[@]}" examples/mnist.py --device cuda --no-progress --save "" \
  --metrics "$out/mnist_metrics.json" "${mnist_args[@]}"

{ echo; echo '```'
  grep -E "^\| Adam" "$out/compare.log"
  grep -E "passed|failed|error" "$out/pytest.log" | tail -n 2
  sed -n '/^one epoch/,$p' "$out/epoch.log"
  grep -E "^epoch|final test" "$out/mnist.log"
  echo '```'
  python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
try:
    r = json.load(open(os.path.join(out, "epoch_cuda.json")))["results"]
    if "torch" in r:
        ratio = r["ours"]["epoch_seconds"] / r["torch"]["epoch_seconds"]
        print(f"- epoch: ours {r['ours']['epoch_seconds']:.2f} s, PyTorch {r['torch']['epoch_seconds']:.2f} s "
              f"({ratio:.2f}x; target <= 1.00x: {'met' if ratio <= 1 else 'NOT met'})")
    else:
        print(f"- epoch: ours {r['ours']['epoch_seconds']:.2f} s, no PyTorch CUDA peer")
except (OSError, KeyError, ValueError) as e:
    print(f"- epoch: no result ({e})")
try:
    c = json.load(open(os.path.join(out, "compare.json")))
    t = c["tolerances"]
    for name, r in c["results"].items():
        print(f"- CPU against GPU, {name} x{c['steps']}: loss {r['loss_max_rel_diff']:.1e} relative (<= {t['loss_rtol']:g}), "
              f"weights {r['weight_max_rel_l2_diff']:.1e} of their change (<= {t['weight_rel_l2']:g}), "
              f"{r['weight_max_abs_diff']:.1e} at most (<= {t['weight_atol']:g}): {'met' if r['ok'] else 'NOT met'}")
except (OSError, KeyError, ValueError) as e:
    print(f"- CPU against GPU: no result ({e})")
try:
    acc = json.load(open(os.path.join(out, "mnist_metrics.json")))["epochs"][-1]["test_acc"]
    print(f"- default example: test accuracy {acc:.4f} (target >= 0.99: {'met' if acc >= 0.99 else 'NOT met'})")
except (OSError, KeyError, ValueError, IndexError) as e:
    print(f"- default example: no result ({e})")
PY
} >> "$summary" 2>&1
cat "$summary"
exit $status
