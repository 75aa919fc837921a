"""End to end on tiny generated data: train.py (2 iterations) -> eval.py -> generate_submit.py.

The independent oracle for eval/submit is the official Cityscapes pixel-level evaluation
(``cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling``) run on generate_submit.py's labelId
PNGs: its per-class IoU must equal eval.py's for the same model and images. cityscapesscripts gives
NaN to a class with tp + fp + fn = 0 and averages the rest, so the like-for-like mIoU from eval.py's
confusion matrix is the mean over classes with a non-empty union.
"""
import copy
import json
import math
import os
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import eval as eval_script
import generate_submit
import train
from dataset.labels import CLASS_NAMES, TRAINID_TO_ID
from dataset.synthetic import make_synthetic_cityscapes
from test_labels import ORIGINAL_ID_TO_TRAINID

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Train 2 iterations of the real resnet101_asp_oc_dsn, then evaluate and submit on val."""
    tmp = tmp_path_factory.mktemp("e2e")
    root = make_synthetic_cityscapes(str(tmp / "data"), n_train=4, n_val=3, n_test=2, size=(64, 128))
    common = ["--network", "resnet101", "--method", "asp_oc_dsn", "--data-dir", root, "--num-workers", "0"]
    snap = tmp / "snap"
    train.main(common + ["--data-list", os.path.join(root, "train.lst"), "--input-size", "48,48",
                         "--batch-size", "2", "--num-steps", "2", "--save-pred-every", "100",
                         "--random-mirror", "--random-scale", "--allow-random-init",
                         "--restore-from", str(tmp / "absent.pth"), "--snapshot-dir", str(snap)])
    ckpt = str(snap / "CS_scenes_2.pth")
    infer = common + ["--restore-from", ckpt, "--input-size", "64,128", "--batch-size", "2"]
    result = eval_script.main(infer + ["--data-list", os.path.join(root, "val.lst"),
                                       "--output-path", str(tmp / "val"), "--store-output", "True",
                                       "--log-file", str(tmp / "log" / "eval_val")])
    zip_path = generate_submit.main(infer + ["--dataset", "cityscapes_test", "--output-path",
                                             str(tmp / "submit"), "--data-list",
                                             os.path.join(root, "val.lst")])
    return dict(tmp=tmp, root=root, snap=snap, result=result, zip=zip_path)


def test_train_wrote_original_snapshots(run):
    names = sorted(os.listdir(run["snap"]))
    assert "CS_scenes_0.pth" in names and "CS_scenes_2.pth" in names and "resume.pth" in names
    sd = torch.load(run["snap"] / "CS_scenes_2.pth", weights_only=True)
    assert len(sd) == 599 and not any(k.startswith("module.") for k in sd)  # the original's 599 keys


def np_miou_from_pngs(pred_dir, gt_paths):
    """Oracle: NumPy confusion matrix of the written trainId PNGs against the labelId ground truth
    (mapped with the original's id -> trainId table); IoU = tp / union (0 for an empty union)."""
    cm = np.zeros((19, 19), np.int64)
    for gt_path in gt_paths:
        gt = np.vectorize(ORIGINAL_ID_TO_TRAINID.get)(np.asarray(Image.open(gt_path)).astype(int))
        pred = np.asarray(Image.open(os.path.join(pred_dir, os.path.basename(gt_path)))).astype(int)
        valid = gt != 255
        cm += np.bincount(19 * gt[valid] + pred[valid], minlength=19 * 19).reshape(19, 19)
    tp = np.diag(cm).astype(np.float64)
    iou = tp / np.maximum(cm.sum(0) + cm.sum(1) - tp, 1)
    return cm, iou, float(iou.mean())


def test_eval_outputs(run):
    result = run["result"]
    assert set(result["IoU"]) == set(CLASS_NAMES)
    on_disk = json.load(open(run["tmp"] / "val" / "results.json"))
    assert on_disk["mIoU"] == result["mIoU"]
    assert os.path.isfile(run["tmp"] / "log" / "eval_val_results.json")
    pngs = sorted(p for p in os.listdir(run["tmp"] / "val") if p.endswith(".png"))
    assert len(pngs) == 3 and all(p.endswith("_gtFine_labelIds.png") for p in pngs)
    assert Image.open(run["tmp"] / "val" / pngs[0]).mode == "P"
    gts = [os.path.join(run["root"], line.split("\t")[1].strip())
           for line in open(os.path.join(run["root"], "val.lst")) if line.strip()]
    cm, iou, miou = np_miou_from_pngs(run["tmp"] / "val", gts)
    assert cm.sum() > 0 and np.array_equal(np.array(result["confusion_matrix"]), cm)
    assert [result["IoU"][name] for name in CLASS_NAMES] == pytest.approx(iou.tolist(), abs=1e-12)
    assert result["mIoU"] == pytest.approx(miou, abs=1e-12)


def test_submission_files_and_zip(run):
    folder = run["tmp"] / "submit"
    names = sorted(os.listdir(folder))
    assert len(names) == 3 and all(n.endswith("_leftImg8bit.png") for n in names)
    valid = set(TRAINID_TO_ID.values())
    for name in names:
        values = np.asarray(Image.open(folder / name))
        assert values.shape == (64, 128) and set(np.unique(values).tolist()) <= valid
    with zipfile.ZipFile(run["zip"]) as archive:
        assert sorted(archive.namelist()) == names


def test_cityscapesscripts_agrees_with_eval(run):
    pytest.importorskip("pyquaternion")
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval
    args = copy.copy(cs_eval.args)
    args.cityscapesPath = run["root"]
    args.predictionPath = str(run["tmp"] / "submit")
    args.predictionWalk = None
    args.evalInstLevelScore = False  # needs np.in1d (gone in NumPy 2.4) and instance PNGs
    args.quiet = True
    args.JSONOutput = False
    args.exportFile = str(run["tmp"] / "cs_results.json")
    gts = sorted(os.path.join(run["root"], line.split("\t")[1].strip())
                 for line in open(os.path.join(run["root"], "val.lst")) if line.strip())
    preds = [cs_eval.getPrediction(args, gt) for gt in gts]
    cs = cs_eval.evaluateImgLists(preds, gts, args)
    cm = np.array(run["result"]["confusion_matrix"], dtype=np.float64)
    tp, union = np.diag(cm), cm.sum(0) + cm.sum(1) - np.diag(cm)
    for c, name in enumerate(CLASS_NAMES):
        theirs = cs["classScores"][name]
        if union[c] == 0:
            assert math.isnan(theirs), name
        else:
            assert theirs == pytest.approx(tp[c] / union[c], abs=1e-12), name
    ours = float(np.mean(tp[union > 0] / union[union > 0]))
    assert cs["averageScoreClasses"] == pytest.approx(ours, abs=1e-12)


def test_submit_verification_catches_bad_files(run, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    Image.fromarray(np.full((4, 5), 3, np.uint8)).save(folder / "a_leftImg8bit.png")  # 3 is not evaluated
    with pytest.raises(ValueError) as err:
        generate_submit.verify_submission(str(folder), {"a_leftImg8bit.png": (4, 6), "b_leftImg8bit.png": (1, 1)})
    msg = str(err.value)
    assert "1 missing: b_leftImg8bit.png" in msg and "size (4, 5)" in msg and "values [3]" in msg


def test_eval_of_another_models_checkpoint_is_one_clear_error(run):
    from utils.checkpoint import CheckpointMismatchError
    with pytest.raises(CheckpointMismatchError, match=r"missing keys.*\(\+\d+ more\)"):
        eval_script.main(["--network", "resnet101", "--method", "base_oc_dsn", "--data-dir", run["root"],
                          "--data-list", os.path.join(run["root"], "val.lst"), "--num-workers", "0",
                          "--restore-from", str(run["snap"] / "CS_scenes_2.pth"),
                          "--output-path", str(run["tmp"] / "x")])


def test_torchrun_two_processes_on_cpu(run):
    """DDP under torchrun (gloo on CPU): the global batch 4 is split 2 + 2; rank 0 alone writes the
    snapshots; the resume file holds the RNG states of both ranks."""
    import subprocess
    import sys
    snap = run["tmp"] / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           "train.py", "--data-dir", run["root"], "--data-list", os.path.join(run["root"], "train.lst"),
           "--input-size", "48,48", "--batch-size", "4", "--num-steps", "2", "--num-workers", "0",
           "--allow-random-init", "--restore-from", "absent.pth", "--snapshot-dir", str(snap)]
    res = subprocess.run(cmd, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "DDP, 2 processes, global batch 4" in res.stdout
    assert sorted(p for p in os.listdir(snap) if p.endswith(".pth")) == ["CS_scenes_0.pth", "CS_scenes_2.pth",
                                                                      "resume.pth"]
    assert len(torch.load(snap / "resume.pth", weights_only=True)["rng"]) == 2
    bad = subprocess.run(cmd[:-2] + ["--batch-size", "3", "--snapshot-dir", str(snap)], capture_output=True,
                         text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), timeout=600)
    assert bad.returncode != 0 and "--batch-size 3 (the global batch) does not divide over 2" in bad.stderr
