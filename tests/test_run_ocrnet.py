"""scripts/run_ocrnet.sh: argument checks, and the synthetic CPU demo end to end (slow)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset.voc import VOC_CLASSES

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "run_ocrnet.sh"


def _run(args, tmp_path, **env):
    full = dict(os.environ, PYTHON=sys.executable, DEMO_DIR=str(tmp_path / "data"),
                DEMO_SNAPSHOT_DIR=str(tmp_path / "snap"), **env)
    return subprocess.run(["sh", str(SCRIPT), *args], cwd=ROOT, env=full, capture_output=True,
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
    assert result["images"] == 4 and list(result["IoU"]) == list(VOC_CLASSES)   # named, not numbered
    # oracle: the runner's eval again, writing its predictions, and a NumPy confusion matrix of
    # those PNGs against the original-resolution val masks
    import eval as eval_script
    again = eval_script.main([
        "--network", "hrnetv2_w18s", "--method", "ocr", "--dataset", "voc_val",
        "--data-dir", str(tmp_path / "data"), "--data-list", "", "--num-classes", "21",
        "--input-size", "64,64", "--batch-size", "1", "--num-workers", "0",
        "--restore-from", str(tmp_path / "snap" / "CS_scenes_4.pth"),
        "--output-path", str(tmp_path / "again"), "--store-output", "True"])
    assert again["mIoU"] == result["mIoU"]
    cm = np.zeros((21, 21), np.int64)
    voc = tmp_path / "data"
    for name in (voc / "ImageSets" / "Segmentation" / "val.txt").read_text().split():
        gt = np.asarray(Image.open(voc / "SegmentationClass" / f"{name}.png")).astype(int)
        pred = np.asarray(Image.open(tmp_path / "again" / f"{name}.png")).astype(int)
        valid = gt != 255
        cm += np.bincount(21 * gt[valid] + pred[valid], minlength=21 * 21).reshape(21, 21)
    tp = np.diag(cm).astype(np.float64)
    iou = tp / np.maximum(cm.sum(0) + cm.sum(1) - tp, 1)
    assert np.array_equal(np.asarray(result["confusion_matrix"]), cm)
    assert result["mIoU"] == pytest.approx(iou.mean(), abs=1e-12)
    # whole-image protocol: every labelled pixel of the ORIGINAL-resolution val masks is scored
    labelled = 0
    voc = tmp_path / "data"
    for name in (voc / "ImageSets" / "Segmentation" / "val.txt").read_text().split():
        mask = np.asarray(Image.open(voc / "SegmentationClass" / f"{name}.png"))
        labelled += int((mask != 255).sum())
    assert int(np.asarray(result["confusion_matrix"]).sum()) == labelled
    cm = np.asarray(result["confusion_matrix"], dtype=np.float64)
    tp = np.diag(cm)
    iou = tp / np.maximum(1.0, cm.sum(0) + cm.sum(1) - tp)
    assert result["mIoU"] == pytest.approx(iou.mean(), abs=1e-12)
    assert [result["IoU"][c] for c in VOC_CLASSES] == pytest.approx(iou.tolist(), abs=1e-12)
