# New (no OCNet counterpart): Cityscapes with the OCRNet recipe (sssegmentation cityscapes_512x1024).
# MIT licence.
"""Cityscapes for OCRNet: the OCNet list files and labelId -> trainId map (``dataset/cityscapes.py``,
``dataset/labels.py``) with the seed recipe's pipeline: base scale (2048, 1024), ratio 0.5-2.0,
512x1024 crop (cat_max_ratio 0.75), flip, photometric distortion and ImageNet mean/std (RGB).

The OCNet loader (``cityscapes_train``) normalises with the Caffe BGR means and no std, which does
not match the ImageNet V1c / HRNet weights the OCR backbones start from; hence these entries.
"""
from __future__ import annotations

from .labels import id_to_train_id
from .seg_base import RecipeSegmentation, read_split_list


class CityscapesOCR(RecipeSegmentation):
    """Cityscapes train (``train=True``) or val (whole 1024x2048 image, single scale)."""

    NUM_CLASSES = 19
    BASE_SCALE = (2048, 1024)
    CROP_SIZE = (512, 1024)
    SPLIT_SIZES = {"train": 2975, "val": 500}

    def _items(self, root, list_path):
        if not list_path:
            raise ValueError("Cityscapes needs --data-list (image<TAB>label lines, e.g. "
                             "dataset/list/cityscapes/train.lst)")
        return read_split_list(root, list_path, "", "", "", "")

    def map_label(self, label, path):
        return id_to_train_id(label, path)            # raises on values that are not labelIds


def CityscapesOCRTrain(root, list_path=None, max_iters=None, crop_size=None, scale=True,
                       mirror=True, ignore_label=255, **kw):
    """Registry entry ``cityscapes_ocr_train``."""
    return CityscapesOCR(root, list_path, max_iters, crop_size, scale, mirror, ignore_label,
                         train=True, **kw)


def CityscapesOCRVal(root, list_path=None, max_iters=None, crop_size=None, scale=False,
                     mirror=False, ignore_label=255, **kw):
    """Registry entry ``cityscapes_ocr_val``."""
    return CityscapesOCR(root, list_path, None, crop_size, False, False, ignore_label,
                         train=False, **kw)
