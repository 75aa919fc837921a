# New (no OCNet counterpart): PASCAL VOC 2012 + SBD "trainaug" for the OCRNet recipe. MIT licence.
"""PASCAL VOC 2012 (+ SBD augmented masks), 21 classes (background + 20), 255 = ignore.

Layout (``root`` = ``VOCdevkit/VOC2012``)::

    root/JPEGImages/<id>.jpg
    root/SegmentationClass/<id>.png        VOC palette PNGs (mode 'P'): read as INDICES, not colours
    root/SegmentationClassAug/<id>.png     optional: VOC + SBD masks (used when the folder exists)
    root/ImageSets/Segmentation/trainaug.txt   10,582 ids (train)
    root/ImageSets/Segmentation/val.txt        1,449 ids (val)

``trainaug.txt`` and the SBD masks are not part of the VOC download. Make them once with::

    python -m dataset.voc make-trainaug --voc-root VOCdevkit/VOC2012 \
        --sbd-root benchmark_RELEASE/dataset

(SBD = http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/
benchmark.tgz). It writes ``SegmentationClassAug/`` (the VOC mask where VOC has one, else the SBD
``cls/<id>.mat`` mask) and trainaug = (SBD train + SBD val + VOC train) - VOC val = 10,582 ids.
sssegmentation's packaged download already contains both (masks merged into SegmentationClass).
Lists of another size load with a warning.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from utils.errors import MissingFileError

from . import transforms as T
from .lists import read_list
from .seg_base import RecipeSegmentation

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
               "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")
_DEFAULT_LISTS = {"train": "ImageSets/Segmentation/trainaug.txt",
                  "val": "ImageSets/Segmentation/val.txt"}


class VOCSegmentation(RecipeSegmentation):
    """VOC trainaug (``train=True``, 512x512 crops) or val (whole image in (2048, 512))."""

    NUM_CLASSES = 21
    CLASS_NAMES = VOC_CLASSES
    BASE_SCALE = (2048, 512)
    CROP_SIZE = (512, 512)
    SPLIT_SIZES = {"trainaug": 10582, "train_aug": 10582, "val": 1449}

    def __init__(self, *args, label_dir=None, **kw):
        self.label_dir = label_dir
        super().__init__(*args, **kw)

    def _items(self, root, list_path):
        if not os.path.isdir(root):
            raise MissingFileError(f"data dir {root!r} does not exist (check --data-dir: the "
                                    "VOCdevkit/VOC2012 folder)")
        label_dir = self.label_dir or ("SegmentationClassAug" if os.path.isdir(
            os.path.join(root, "SegmentationClassAug")) else "SegmentationClass")
        if not list_path:
            list_path = os.path.join(root, _DEFAULT_LISTS[self.split])
            if not os.path.isfile(list_path) and self.split == "train":
                raise MissingFileError(
                    f"{list_path} does not exist: make the trainaug list and SBD masks with "
                    "'python -m dataset.voc make-trainaug --voc-root ... --sbd-root ...' "
                    "(see dataset/voc.py)")
        return read_list(root, list_path, ids=("JPEGImages", ".jpg", label_dir, ".png"))

    def map_label(self, label, path):
        self.check_range(label, list(range(21)) + [255], path)
        return label.astype(np.uint8)


class VOCTrain(VOCSegmentation):
    """Registry entry ``voc_train``: trainaug with the training pipeline (512x512 crops)."""

    def __init__(self, root, list_path=None, max_iters=None, crop_size=None, scale=True, mirror=True,
                 ignore_label=255, photometric=True, base_scale=None, label_dir=None):
        super().__init__(root, list_path, max_iters, crop_size, scale, mirror, ignore_label,
                         train=True, photometric=photometric, base_scale=base_scale,
                         label_dir=label_dir)


class VOCVal(VOCSegmentation):
    """Registry entry ``voc_val``: whole images resized into the base scale, one per batch."""

    def __init__(self, root, list_path=None, crop_size=None, ignore_label=255, base_scale=None,
                 label_dir=None):
        super().__init__(root, list_path, None, crop_size, False, False, ignore_label, train=False,
                         base_scale=base_scale, label_dir=label_dir)


def _read_ids(path):
    if not os.path.isfile(path):
        raise MissingFileError(f"{path} does not exist")
    with open(path) as handle:
        return [line.strip() for line in handle if line.strip()]


def make_trainaug(voc_root, sbd_root, out_label_dir="SegmentationClassAug"):
    """Write ``SegmentationClassAug/*.png`` and ``ImageSets/Segmentation/trainaug.txt``.

    Returns the trainaug ids. VOC masks win where both exist (they carry the 255 boundaries).
    """
    from PIL import Image
    from scipy.io import loadmat
    seg = os.path.join(voc_root, "ImageSets", "Segmentation")
    voc_train, voc_val = _read_ids(os.path.join(seg, "train.txt")), _read_ids(os.path.join(seg, "val.txt"))
    sbd = _read_ids(os.path.join(sbd_root, "train.txt")) + _read_ids(os.path.join(sbd_root, "val.txt"))
    val = set(voc_val)
    ids = sorted(set(sbd + voc_train) - val)
    out_dir = os.path.join(voc_root, out_label_dir)
    os.makedirs(out_dir, exist_ok=True)
    for i in ids + voc_val:
        voc_png = os.path.join(voc_root, "SegmentationClass", i + ".png")
        if os.path.isfile(voc_png):
            mask = T.read_label(voc_png)                    # palette indices
        else:
            mat = loadmat(os.path.join(sbd_root, "cls", i + ".mat"))
            mask = mat["GTcls"][0]["Segmentation"][0]
        Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="L").save(
            os.path.join(out_dir, i + ".png"))
    with open(os.path.join(seg, "trainaug.txt"), "w") as handle:
        handle.write("\n".join(ids) + "\n")
    return ids


def main(argv=None):
    p = argparse.ArgumentParser(description="VOC tools")
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-trainaug", help="SBD masks + trainaug.txt (10,582 ids)")
    m.add_argument("--voc-root", required=True, help="VOCdevkit/VOC2012")
    m.add_argument("--sbd-root", required=True, help="benchmark_RELEASE/dataset")
    args = p.parse_args(argv)
    ids = make_trainaug(args.voc_root, args.sbd_root)
    print(f"trainaug: {len(ids)} ids (official 10582)")
    return 0 if len(ids) == 10582 else 1


if __name__ == "__main__":
    sys.exit(main())
