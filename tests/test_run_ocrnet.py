"""scripts/run_ocrnet.sh: argument checks, and the synthetic CPU demo end to end (slow)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "run_ocrnet.sh"


def _run(args, tmp_path, **env):
    full = dict(os.environ, PYTHON=sys.executable, DEMO_DIR=str(tmp_path / "data"),
                DEMO_SNAPSHOT_DIR=str(tmp_path / "snap"), **env)
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=full, capture_output=True,
                          text=True, timeout=600)


def test_bad_arguments(tmp_path):
    assert _run([], tmp_path).returncode == 2
    out = _run(["voc", "resnet18"], tmp_path)
    assert out.returncode == 2 and "unknown BACKBONE" in out.stderr
    out = _run(["coco", "resnet50"], tmp_path)
    assert out.returncode == 2 and "unknown DATASET" in out.stderr


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    out = _run(["voc", "hrnetv2_w18s"], tmp_path, DATA_DIR=str(tmp_path / "absent"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (tmp_path / "snap" / "CS_scenes_4.pth").is_file()
    result = json.loads((tmp_path / "snap" / "eval" / "results.json").read_text())
    assert result["images"] == 4 and 0.0 <= result["mIoU"] <= 1.0
