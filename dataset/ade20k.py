# New (no OCNet counterpart): ADE20K (SceneParsing ADEChallengeData2016) for the OCRNet recipe.
# MIT licence.
"""ADE20K, 150 classes, official ``ADEChallengeData2016`` layout::

    root/images/training/ADE_train_00000001.jpg ...      (20,210 images)
    root/annotations/training/ADE_train_00000001.png    ('L' PNGs, 0 = other/void, 1..150)
    root/images/validation/ADE_val_00000001.jpg ...      (2,000 images)
    root/annotations/validation/ADE_val_00000001.png

Without a list file every ``*.jpg`` of the split folder is used (sorted); a list may hold ids
(``ADE_train_00000001``, sssegmentation's train.txt) or ``image<TAB>label`` relative paths.

reduce-zero-label (mmseg / sssegmentation): 0 -> ignore (255), k -> k - 1, so train ids are
0..149. Stored values above 150 raise a ValueError naming the file.
"""
from __future__ import annotations

import os

import numpy as np

from .seg_base import RecipeSegmentation, check_files, read_split_list

_FOLDERS = {"train": "training", "val": "validation"}


def reduce_zero_label(label, ignore_label=255):
    """0 -> ignore_label, k -> k - 1 (k = 1..150), 255 stays ignore (mmseg's 254 -> 255), uint8."""
    label = np.asarray(label).astype(np.int64)
    return np.where((label == 0) | (label == 255), ignore_label, label - 1).astype(np.uint8)


class ADE20KSegmentation(RecipeSegmentation):
    """ADE20K train (``train=True``, 512x512 crops) or val (whole image in (2048, 512))."""

    NUM_CLASSES = 150
    BASE_SCALE = (2048, 512)
    CROP_SIZE = (512, 512)
    SPLIT_SIZES = {"train": 20210, "training": 20210, "val": 2000, "validation": 2000}

    def _items(self, root, list_path):
        folder = _FOLDERS[self.split]
        image_dir, label_dir = f"images/{folder}", f"annotations/{folder}"
        if list_path:
            return read_split_list(root, list_path, image_dir, label_dir, ".jpg", ".png")
        if not os.path.isdir(root):
            raise FileNotFoundError(f"data dir {root!r} does not exist (check --data-dir: the "
                                    "ADEChallengeData2016 folder)")
        full = os.path.join(root, image_dir)
        if not os.path.isdir(full):
            raise FileNotFoundError(f"{full!r} does not exist: --data-dir must be the "
                                    "ADEChallengeData2016 folder (images/, annotations/)")
        ids = sorted(f[:-4] for f in os.listdir(full) if f.endswith(".jpg"))
        if not ids:
            raise ValueError(f"no .jpg images in {full!r}")
        items = [(os.path.join(full, i + ".jpg"), os.path.join(root, label_dir, i + ".png"))
                 for i in ids]
        check_files(items, f"split {folder}", root)
        return items

    def map_label(self, label, path):
        # 255 is accepted as already-void (some re-exports use it); 151..254 are errors
        self.check_range(label, list(range(0, 151)) + [255], path)
        return reduce_zero_label(label, self.ignore_label)


def ADE20KTrain(root, list_path=None, max_iters=None, crop_size=None, scale=True, mirror=True,
                ignore_label=255, **kw):
    """Registry entry ``ade20k_train``."""
    return ADE20KSegmentation(root, list_path, max_iters, crop_size, scale, mirror, ignore_label,
                              train=True, **kw)


def ADE20KVal(root, list_path=None, max_iters=None, crop_size=None, scale=False, mirror=False,
              ignore_label=255, **kw):
    """Registry entry ``ade20k_val`` (scale / mirror / crop_size / max_iters are ignored)."""
    return ADE20KSegmentation(root, list_path, None, crop_size, False, False, ignore_label,
                              train=False, **kw)
