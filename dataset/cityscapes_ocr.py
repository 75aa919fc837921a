# New (no OCNet counterpart): Cityscapes with the OCRNet recipe (sssegmentation cityscapes_512x1024).
# MIT licence.
"""Cityscapes for OCRNet: the OCNet list files and labelId -> trainId map (``dataset/cityscapes.py``,
``dataset/labels.py``) with the seed recipe's pipeline: base scale (2048, 1024), ratio 0.5-2.0,
512x1024 crop (cat_max_ratio 0.75), flip, photometric distortion and ImageNet mean/std (RGB).

The OCNet loader (``cityscapes_train``) normalises with the Caffe BGR means and no std, which does
not match the ImageNet V1c / HRNet weights the OCR backbones start from; hence these entries.
"""
from __future__ import annotations

import os

import numpy as np
from torch.utils import data

from . import seg_transforms as S
from . import transforms as T
from .cityscapes_lists import DEFAULT_LIST_DIR, layout_hint
from .labels import CLASS_NAMES, id_to_train_id
from .lists import read_list
from .sample import UnlabelledSample, make_meta
from .seg_base import RecipeSegmentation, recipe_scales


class CityscapesOCR(RecipeSegmentation):
    """Cityscapes train (``train=True``) or val (whole 1024x2048 image, single scale)."""

    NUM_CLASSES = 19
    CLASS_NAMES = CLASS_NAMES
    PALETTE = "cityscapes"
    BASE_SCALE = (2048, 1024)
    CROP_SIZE = (512, 1024)
    SPLIT_SIZES = {"train": 2975, "val": 500}
    SAME_SIZE_ITEMS = True      # every Cityscapes image is 1024x2048
    DEFAULT_LISTS = {"train": f"{DEFAULT_LIST_DIR}/train.lst", "eval": f"{DEFAULT_LIST_DIR}/val.lst",
                     "submit": f"{DEFAULT_LIST_DIR}/test.lst"}

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


class CityscapesOCRTest(data.Dataset):
    """Registry entry ``cityscapes_ocr_test``: test images for the server, with the validation
    protocol of the recipe (keep-ratio resize into the base scale, ImageNet mean/std);
    :class:`~dataset.sample.UnlabelledSample` items whose ``meta['orig_size']`` is the size the
    prediction is upsampled to."""

    NUM_CLASSES, IGNORE_LABEL, CLASS_NAMES = CityscapesOCR.NUM_CLASSES, 255, CLASS_NAMES
    BASE_SCALE, CROP_SIZE = CityscapesOCR.BASE_SCALE, CityscapesOCR.CROP_SIZE
    DEFAULT_LISTS = CityscapesOCR.DEFAULT_LISTS
    SAME_SIZE_ITEMS = True
    NORMALISATION, PALETTE = CityscapesOCR.NORMALISATION, CityscapesOCR.PALETTE
    default_input_sizes = CityscapesOCR.default_input_sizes

    def __init__(self, root, list_path=None, crop_size=None, base_scale=None):
        self.crop_size, self.base_scale = recipe_scales(self, crop_size, base_scale)
        entries = read_list(root, list_path or self.DEFAULT_LISTS["submit"], with_label=False,
                            layout_hint=layout_hint)
        self.files = [entry.image for entry in entries]

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        image = T.read_image(self.files[index])                       # (H, W, 3) RGB uint8
        img, _ = S.resize_keep_ratio(image, None, self.base_scale)    # (h_in, w_in, 3)
        img = S.normalize(img).transpose(2, 0, 1)                     # (3, h_in, w_in)
        name = os.path.splitext(os.path.basename(self.files[index]))[0]
        return UnlabelledSample(np.ascontiguousarray(img), make_meta(image.shape[:2], img.shape[1:]),
                                name)
