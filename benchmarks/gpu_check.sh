#!/usr/bin/env bash
# The one prepared GPU check, for a machine with an NVIDIA GPU (about 8 minutes at most):
#   1. the GPU and TensorRT tests (pytest -m "gpu or tensorrt"; the TensorRT ones need TensorRT and
#      cuda-python, or torch with CUDA, and are reported as skipped otherwise),
#   2. benchmarks/gpu_latency.py: PyTorch CUDA FP32/FP16 baselines always, ONNX Runtime CUDA where
#      onnxruntime-gpu is installed, TensorRT FP16/INT8 engines where TensorRT is installed.
# Results go to benchmarks/results/gpu_check/ (machine.txt, pytest.txt, gpu_latency-<gpu>.{md,json},
# gpu_latency.log, summary.txt). On a machine without an NVIDIA GPU it says what it would run and exits 0.
#
#   benchmarks/gpu_check.sh            # PYTHON=... to choose the interpreter (default .venv/bin/python)
set -u
cd "$(dirname "$0")/.." || exit 2
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
OUT=benchmarks/results/gpu_check
TESTS_LIMIT_S=${TESTS_LIMIT_S:-180}
LATENCY_LIMIT_S=${LATENCY_LIMIT_S:-270}

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "no NVIDIA GPU here: on one, this runs pytest -m 'gpu or tensorrt' and benchmarks/gpu_latency.py (PyTorch CUDA FP32/FP16, TensorRT FP16/INT8 where installed) into $OUT/"
  exit 0
fi

mkdir -p "$OUT"
{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv
  lscpu | grep 'Model name'
  "$PYTHON" - <<'PY'
import importlib.util
from edgeresnet.environment import gpu_info, tool_versions
print("gpus:", [gpu.to_dict() for gpu in gpu_info()])
print("versions:", tool_versions())
for name in ("tensorrt", "cuda", "torch", "onnxruntime"):
    print(f"{name} importable: {importlib.util.find_spec(name) is not None}")
import torch
print("torch CUDA:", torch.version.cuda, "available:", torch.cuda.is_available())
PY
} > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

timeout "$TESTS_LIMIT_S" "$PYTHON" -m pytest -m "gpu or tensorrt" -q -rs -p no:cacheprovider tests \
  > "$OUT/pytest.txt" 2>&1
tests_rc=$?
tail -n 15 "$OUT/pytest.txt"

timeout "$LATENCY_LIMIT_S" "$PYTHON" benchmarks/gpu_latency.py --rounds 2 --seconds 1.0 --output "$OUT" \
  > "$OUT/gpu_latency.log" 2>&1
latency_rc=$?
tail -n 40 "$OUT/gpu_latency.log"

{
  echo "pytest -m 'gpu or tensorrt': exit $tests_rc (124 = stopped at ${TESTS_LIMIT_S} s)"
  echo "benchmarks/gpu_latency.py --rounds 2 --seconds 1.0: exit $latency_rc (124 = stopped at ${LATENCY_LIMIT_S} s)"
} | tee "$OUT/summary.txt"
[ "$tests_rc" = 0 ] || [ "$tests_rc" = 5 ] || exit 1  # 5: every selected test was skipped
[ "$latency_rc" = 0 ] || exit 1
