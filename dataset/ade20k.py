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
0..149. Stored values above 150 raise a DatasetError naming the file.
"""
from __future__ import annotations

import os

import numpy as np

from utils.errors import DatasetError, MissingFileError

from .lists import ListEntry, check_files, read_list
from .seg_base import RecipeSegmentation

# The 150 class names in train-id order (first name of each row of the official objectInfo150).
ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing",
    "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink",
    "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case",
    "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind",
    "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth",
    "television receiver", "airplane", "dirt track", "apparel", "pole", "land", "bannister",
    "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship", "fountain",
    "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool", "barrel", "basket",
    "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen",
    "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan",
    "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass",
    "clock", "flag",
)
_FOLDERS = {"train": "training", "val": "validation"}


def reduce_zero_label(label, ignore_label=255):
    """0 -> ignore_label, k -> k - 1 (k = 1..150), 255 stays ignore (mmseg's 254 -> 255), uint8."""
    label = np.asarray(label).astype(np.int64)
    return np.where((label == 0) | (label == 255), ignore_label, label - 1).astype(np.uint8)


class ADE20KSegmentation(RecipeSegmentation):
    """ADE20K train (``train=True``, 512x512 crops) or val (whole image in (2048, 512))."""

    NUM_CLASSES = 150
    CLASS_NAMES = ADE20K_CLASSES
    BASE_SCALE = (2048, 512)
    CROP_SIZE = (512, 512)
    SPLIT_SIZES = {"train": 20210, "training": 20210, "val": 2000, "validation": 2000}

    def _items(self, root, list_path):
        folder = _FOLDERS[self.split]
        image_dir, label_dir = f"images/{folder}", f"annotations/{folder}"
        if list_path:
            return read_list(root, list_path, ids=(image_dir, ".jpg", label_dir, ".png"))
        if not os.path.isdir(root):
            raise MissingFileError(f"data dir {root!r} does not exist (check --data-dir: the "
                                    "ADEChallengeData2016 folder)")
        full = os.path.join(root, image_dir)
        if not os.path.isdir(full):
            raise MissingFileError(f"{full!r} does not exist: --data-dir must be the "
                                    "ADEChallengeData2016 folder (images/, annotations/)")
        ids = sorted(f[:-4] for f in os.listdir(full) if f.endswith(".jpg"))
        if not ids:
            raise DatasetError(f"no .jpg images in {full!r}")
        items = [ListEntry(os.path.join(full, i + ".jpg"), os.path.join(root, label_dir, i + ".png"), 0)
                 for i in ids]
        check_files(items, f"split {folder}", root)
        return items

    def map_label(self, label, path):
        # 255 is accepted as already-void (some re-exports use it); 151..254 are errors
        self.check_range(label, list(range(0, 151)) + [255], path)
        return reduce_zero_label(label, self.ignore_label)


class ADE20KTrain(ADE20KSegmentation):
    """Registry entry ``ade20k_train``: the training split with the training pipeline."""

    def __init__(self, root, list_path=None, max_iters=None, crop_size=None, scale=True, mirror=True,
                 ignore_label=255, photometric=True, base_scale=None):
        super().__init__(root, list_path, max_iters, crop_size, scale, mirror, ignore_label,
                         train=True, photometric=photometric, base_scale=base_scale)


class ADE20KVal(ADE20KSegmentation):
    """Registry entry ``ade20k_val``: whole validation images resized into the base scale."""

    def __init__(self, root, list_path=None, crop_size=None, ignore_label=255, base_scale=None):
        super().__init__(root, list_path, None, crop_size, False, False, ignore_label, train=False,
                         base_scale=base_scale)
