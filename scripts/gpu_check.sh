#!/bin/sh
# The one prepared GPU check: the CUDA-only tests, then the full benchmark on the GPU, writing
# scripts/results/benchmark_cuda.{json,md} (or $OUT/ when set, e.g. on a lent device machine).
# Budget: ~10 minutes of device time in all (JIT build of the CUDA InPlace-ABN ~2-3 min inside the
# tests, the tests ~1-2 min, the benchmark ~4-5 min on an H100/H200); each part has its own limit.
#
#   sh scripts/gpu_check.sh                      # PYTHON=/path/to/python to pick the interpreter
#   TESTS_LIMIT=300 BENCH_LIMIT=420 sh scripts/gpu_check.sh
#   COMPILE_LIMIT=240 sh scripts/gpu_check.sh   # also 3/3: our step under torch.compile's CUDA
#                                                # graphs (--compile-mode reduce-overhead), a few models
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
PYTHON=${PYTHON:-python3}
RESULTS=${OUT:-$ROOT/scripts/results}
TESTS_LIMIT=${TESTS_LIMIT:-270}
BENCH_LIMIT=${BENCH_LIMIT:-420}
COMPILE_LIMIT=${COMPILE_LIMIT:-0}
COMPILE_MODELS=${COMPILE_MODELS:-"resnet101_base_oc_dsn hrnetv2_w18_ocr:mmseg hrnetv2_w48_ocr:mmseg"}
if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
    TORCH_CUDA_ARCH_LIST=$("$PYTHON" -c "import torch; m, n = torch.cuda.get_device_capability(); print(f'{m}.{n}')" 2>/dev/null || echo 9.0)
fi
export TORCH_CUDA_ARCH_LIST
mkdir -p "$RESULTS"

"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "[gpu_check] no CUDA device visible to torch: nothing to check" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$RESULTS/gpu_check_nvidia_smi.txt" 2>&1

echo "[gpu_check] 1/2 pytest -m cuda (limit ${TESTS_LIMIT}s)"
timeout "$TESTS_LIMIT" "$PYTHON" -m pytest -q -m cuda -p no:cacheprovider tests > "$RESULTS/gpu_check_pytest.log" 2>&1
tests_rc=$?
tail -n 15 "$RESULTS/gpu_check_pytest.log"

echo "[gpu_check] 2/2 benchmark on cuda (limit ${BENCH_LIMIT}s; partial results are kept in the json)"
timeout "$BENCH_LIMIT" "$PYTHON" -m scripts.benchmark --device cuda --out-dir "$RESULTS" > "$RESULTS/gpu_check_benchmark.log" 2>&1
bench_rc=$?
cat "$RESULTS/gpu_check_benchmark.log"
compile_rc=0
if [ "$COMPILE_LIMIT" -gt 0 ]; then
    echo "[gpu_check] 3/3 benchmark, our step compiled with CUDA graphs (limit ${COMPILE_LIMIT}s)"
    # shellcheck disable=SC2086  # the model list is meant to split
    timeout "$COMPILE_LIMIT" "$PYTHON" -m scripts.benchmark --device cuda --no-infer \
        --compile-mode reduce-overhead --models $COMPILE_MODELS --out-dir "$RESULTS" \
        > "$RESULTS/gpu_check_benchmark_compile.log" 2>&1
    compile_rc=$?
    cat "$RESULTS/gpu_check_benchmark_compile.log"
fi
echo "[gpu_check] pytest rc=$tests_rc, benchmark rc=$bench_rc, compiled benchmark rc=$compile_rc; results in $RESULTS"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ] && [ "$compile_rc" -eq 0 ]
