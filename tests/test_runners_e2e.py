"""The runners end to end, for real, on a tiny tree in the official Cityscapes layout (slow).

The tree (tests/fixtures_data.make_official_cityscapes) has no list files, two cities per split, the
other gtFine files, void labelIds and all-zero test labels. Random weights in the ImageNet layouts
(CSAIL ResNet-101, HRNet classification) sit at the pretrained path. Each runner runs its paper mode
(or, once, its demo) with the schedule shrunk through the environment overrides.

Oracles: the ground-truth rows of each confusion matrix must equal the per-class pixel counts of the
label PNGs mapped with the original's hand-written id -> trainId table; each IoU and the mIoU are
recomputed from the matrix; the submission is checked file by file against the test images.
"""
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from dataset.labels import CLASS_NAMES, TRAINID_TO_ID
from fixtures_data import make_official_cityscapes, write_imagenet_weights
from test_labels import ORIGINAL_ID_TO_TRAINID

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runners")
    data = make_official_cityscapes(str(tmp / "cityscapes"))
    resnet = str(tmp / "pretrained" / "resnet101-imagenet.pth")
    hrnet = str(tmp / "pretrained" / "hrnetv2_w18s_imagenet.pth")
    counts = {"resnet": write_imagenet_weights("resnet101_asp_oc_dsn", resnet),
              "hrnet": write_imagenet_weights("hrnetv2_w18s_ocr", hrnet, classifier="classifier")}
    return dict(data=data, resnet=resnet, hrnet=hrnet, counts=counts)


def run(args, tmp_path, world, **overrides):
    env = dict(os.environ, PYTHON=sys.executable, DATA_DIR=world["data"], LIST_DIR=str(tmp_path / "lists"),
               SNAPSHOT_DIR=str(tmp_path / "snap"), LOG_DIR=str(tmp_path / "log"),
               OUTPUT_DIR=str(tmp_path / "vis"), GPU_IDS="0", NUM_WORKERS="0")
    env.update(overrides)
    res = subprocess.run(["sh", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    return res


def gt_counts(data_dir, list_path):
    """Per-trainId pixel counts of the listed labels, with the original's table (oracle)."""
    counts = np.zeros(19, np.int64)
    lut = np.full(256, 255, np.int64)
    for label_id, train_id in ORIGINAL_ID_TO_TRAINID.items():
        if label_id >= 0:
            lut[label_id] = train_id
    for line in open(list_path).read().splitlines():
        train_ids = lut[np.asarray(Image.open(os.path.join(data_dir, line.split("\t")[1])))]
        counts += np.bincount(train_ids[train_ids != 255], minlength=19)
    return counts


def check_results(path, data_dir, list_path, images):
    result = json.load(open(path))
    assert list(result["IoU"]) == list(CLASS_NAMES) and result["images"] == images
    cm = np.array(result["confusion_matrix"], dtype=np.int64)
    np.testing.assert_array_equal(cm.sum(1), gt_counts(data_dir, list_path))
    tp = np.diag(cm).astype(np.float64)
    iou = tp / np.maximum(1, cm.sum(0) + cm.sum(1) - tp)
    np.testing.assert_allclose([result["IoU"][n] for n in CLASS_NAMES], iou, atol=1e-12)
    assert result["mIoU"] == pytest.approx(iou.mean(), abs=1e-12)
    present = cm.sum(1) > 0
    assert result["present"] == [n for n, p in zip(CLASS_NAMES, present) if p]
    assert result["mIoU_present"] == pytest.approx(iou[present].mean(), abs=1e-12)
    return result


def check_submission(zip_path, data_dir, test_list):
    images = [line.strip() for line in open(test_list) if line.strip()]
    with zipfile.ZipFile(zip_path) as archive:
        assert sorted(archive.namelist()) == sorted(os.path.basename(p) for p in images)
        for rel in images:
            with archive.open(os.path.basename(rel)) as handle:
                values = np.asarray(Image.open(handle))
            width, height = Image.open(os.path.join(data_dir, rel)).size
            assert values.shape == (height, width)
            assert set(np.unique(values).tolist()) <= set(TRAINID_TO_ID.values())


def test_asp_oc_paper_path_on_the_official_layout(tmp_path, world):
    res = run(["run_asp_oc.sh"], tmp_path, world, PRETRAINED=world["resnet"], NUM_STEPS="2",
              INPUT_SIZE="65,65", EVAL_SIZE="64,128", BATCH_SIZE="2", EVAL_BATCH_SIZE="2", SAVE_EVERY="1")
    assert "mode: paper" in res.stdout and "NUM_STEPS=2 INPUT_SIZE=65,65" in res.stdout
    assert f"loaded {world['counts']['resnet']} ImageNet backbone tensors" in res.stdout + res.stderr
    lists = tmp_path / "lists"
    assert [len(open(lists / f"{s}.lst").readlines()) for s in ("train", "val", "test")] == [2, 2, 2]
    snaps = sorted(p for p in os.listdir(tmp_path / "snap") if p.endswith(".pth"))
    assert snaps == ["CS_scenes_0.pth", "CS_scenes_2.pth", "resume.pth"]
    tag = "resnet101_asp_oc_dsn_1e-2_5e-4_2_2"
    for split in ("val", "train"):
        check_results(tmp_path / "vis" / f"{tag}_{split}" / "results.json", world["data"],
                      lists / f"{split}.lst", images=2)
    check_submission(tmp_path / "vis" / f"{tag}_test.zip", world["data"], lists / "test.lst")


def test_ocrnet_paper_path_on_the_official_layout(tmp_path, world):
    res = run(["scripts/run_ocrnet.sh", "cityscapes", "hrnetv2_w18s"], tmp_path, world,
              PRETRAINED=world["hrnet"], NUM_STEPS="2", INPUT_SIZE="64,128", BATCH_SIZE="2")
    assert "mode: paper" in res.stdout
    assert f"loaded {world['counts']['hrnet']} ImageNet backbone tensors" in res.stdout + res.stderr
    assert os.path.isfile(tmp_path / "snap" / "CS_scenes_2.pth")
    check_results(tmp_path / "snap" / "eval" / "results.json", world["data"],
                  tmp_path / "lists" / "val.lst", images=2)
    check_submission(tmp_path / "vis" / "ocrnet_hrnetv2_w18s_cityscapes_test.zip", world["data"],
                     tmp_path / "lists" / "test.lst")


@pytest.mark.parametrize("runner", ["scripts/run_pyramid_oc.sh", "scripts/run_baseline.sh"])
def test_other_runners_paper_mode_one_step(tmp_path, world, runner):
    run([runner], tmp_path, world, PRETRAINED=world["resnet"], NUM_STEPS="1", INPUT_SIZE="65,65",
        EVAL_SIZE="64,128", BATCH_SIZE="2", EVAL_BATCH_SIZE="2")
    method = {"scripts/run_pyramid_oc.sh": "pyramid_oc_dsn", "scripts/run_baseline.sh": "baseline"}[runner]
    tag = f"resnet101_{method}_1e-2_5e-4_2_1"
    check_results(tmp_path / "vis" / f"{tag}_val" / "results.json", world["data"],
                  tmp_path / "lists" / "val.lst", images=2)
    check_submission(tmp_path / "vis" / f"{tag}_test.zip", world["data"], tmp_path / "lists" / "test.lst")


def test_demo_mode_once(tmp_path, world):
    demo = tmp_path / "demo"
    res = run(["run_base_oc.sh"], tmp_path, world, DATA_DIR=str(tmp_path / "absent"), DEMO_DATA_DIR=str(demo),
              DEMO_NUM_STEPS="1", DEMO_N_TRAIN="2", DEMO_N_VAL="1", DEMO_N_TEST="1",
              DEMO_IMAGE_SIZE="48,96", DEMO_INPUT_SIZE="33,33", DEMO_BATCH_SIZE="2")
    assert "Running the CPU DEMO" in res.stdout and "mode: demo" in res.stdout
    tag = "demo_resnet101_base_oc_dsn"
    check_results(tmp_path / "vis" / f"{tag}_val" / "results.json", str(demo), demo / "val.lst", images=1)
    check_submission(tmp_path / "vis" / f"{tag}_test.zip", str(demo), demo / "test.lst")
    assert not os.path.exists(tmp_path / "lists")            # the demo never makes Cityscapes lists
    overlays = sorted(p.name for p in (tmp_path / "vis" / f"{tag}_infer").glob("*_overlay.png"))
    assert len(overlays) == 1 and f"overlay: {tmp_path / 'vis' / f'{tag}_infer' / overlays[0]}" in res.stdout
