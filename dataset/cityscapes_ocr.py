# New (no OCNet counterpart): Cityscapes with the OCRNet recipe (sssegmentation cityscapes_512x1024).
# MIT licence.
"""Cityscapes for OCRNet: the OCNet list files and labelId -> trainId map (``dataset/cityscapes.py``,
``dataset/labels.py``) with the seed recipe's pipeline: base scale (2048, 1024), ratio 0.5-2.0,
512x1024 crop (cat_max_ratio 0.75), flip, photometric distortion and ImageNet mean/std (RGB).

The OCNet loader (``cityscapes_train``) normalises with the Caffe BGR means and no std, which does
not match the ImageNet V1c / HRNet weights the OCR backbones start from; hence these entries.
"""
from __future__ import annotations

from .cityscapes_lists import DEFAULT_LIST_DIR, layout_hint
from .labels import CLASS_NAMES, id_to_train_id
from .lists import read_list
from .seg_base import RecipeSegmentation


class CityscapesOCR(RecipeSegmentation):
    """Cityscapes train (``train=True``) or val (whole 1024x2048 image, single scale)."""

    NUM_CLASSES = 19
    CLASS_NAMES = CLASS_NAMES
    BASE_SCALE = (2048, 1024)
    CROP_SIZE = (512, 1024)
    SPLIT_SIZES = {"train": 2975, "val": 500}
    SAME_SIZE_ITEMS = True      # every Cityscapes image is 1024x2048
    DEFAULT_LISTS = {"train": f"{DEFAULT_LIST_DIR}/train.lst", "eval": f"{DEFAULT_LIST_DIR}/val.lst",
                     "submit": None}

    def _items(self, root, list_path):
        if not list_path:
            list_path = self.DEFAULT_LISTS["train" if self.train else "eval"]
        return read_list(root, list_path, with_label=True, layout_hint=layout_hint)

    def map_label(self, label, path):
        return id_to_train_id(label, path)            # raises on values that are not labelIds


class CityscapesOCRTrain(CityscapesOCR):
    """Registry entry ``cityscapes_ocr_train``: the training pipeline (random scale, crop, flip)."""

    def __init__(self, root, list_path=None, max_iters=None, crop_size=None, scale=True, mirror=True,
                 ignore_label=255, photometric=True, base_scale=None):
        super().__init__(root, list_path, max_iters, crop_size, scale, mirror, ignore_label,
                         train=True, photometric=photometric, base_scale=base_scale)


class CityscapesOCRVal(CityscapesOCR):
    """Registry entry ``cityscapes_ocr_val``: whole images, single scale (no augmentation)."""

    def __init__(self, root, list_path=None, crop_size=None, ignore_label=255, base_scale=None):
        super().__init__(root, list_path, None, crop_size, False, False, ignore_label, train=False,
                         base_scale=base_scale)
