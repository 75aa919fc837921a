#!/bin/sh
# The one test command: sh scripts/test.sh [--quick] [extra pytest args]
# Uses $PYTHON if set, else ./.venv (created and filled from requirements*.txt like the run scripts),
# installs requirements-dev.txt, then runs the whole suite: unit, slow end-to-end and JIT tests, plus
# the shell-script lint and the Dockerfile lint (tests/test_runners.py). CUDA tests skip without a GPU.
#   --quick  skip the tests marked `slow` (end-to-end runs, full ResNet-101/HRNet passes): a few
#            minutes less, for a local check while editing. CI runs everything (no --quick).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/common.sh
. "$ROOT/scripts/common.sh"
QUICK=0
if [ "${1:-}" = "--quick" ]; then
    QUICK=1
    shift
fi
ocnet_python
if ! "$PYTHON" -c "import os, sys, sysconfig, pytest, onnx, onnxruntime; d = sysconfig.get_path('scripts'); sys.exit(not all(os.path.exists(os.path.join(d, t)) for t in ('shellcheck', 'hadolint')))" >/dev/null 2>&1; then
    ocnet_log "installing requirements-dev.txt"
    "$PYTHON" -m pip install --disable-pip-version-check -q -r requirements-dev.txt || ocnet_die "pip install -r requirements-dev.txt failed"
fi
if [ "$QUICK" = 1 ]; then
    ocnet_log "--quick: skipping the tests marked slow"
    OCNET_REQUIRE_LINT=1 exec "$PYTHON" -m pytest -q -m "not slow" tests "$@"
fi
OCNET_REQUIRE_LINT=1 exec "$PYTHON" -m pytest -q tests "$@"
