# New (no OCNet counterpart): the dataset base of the OCRNet recipe (ADE20K, VOC, Cityscapes-OCR),
# sssegmentation-style items on top of dataset/transforms.py I/O. MIT licence.
"""Base class of the OCRNet-recipe datasets (ADE20K, VOC, Cityscapes with the OCR pipeline).

The recipe is sssegmentation's OCRNet configuration. Training items (``train=True``) go through
:func:`dataset.seg_transforms.train_pipeline` and are :class:`~dataset.sample.Sample` tuples like the
Cityscapes loader. Validation items follow the whole-image protocol: the image is resized keep-ratio
into the base scale (e.g. (2048, 512)) and normalised, the label stays at the original resolution;
``meta['input_size']`` is the resized ``h_in x w_in`` and ``meta['label_size']`` the original
``H x W``, so the evaluator upsamples the logits (bilinear, the model's align_corners) to the label
before the argmax. ADE20K and VOC validation images differ in size (``SAME_SIZE_ITEMS = False``):
they are evaluated one per batch (eval.py refuses another ``--batch-size``).
"""
from __future__ import annotations

import math
import os

import numpy as np
from torch.utils import data

from utils.errors import DatasetError

from . import seg_transforms as S
from . import transforms as T
from .lists import warn_count
from .sample import Sample, make_meta


def recipe_scales(dataset, crop_size=None, base_scale=None):
    """(crop, base scale) of a recipe dataset: the recipe scales with the crop, so the seed crop
    gives the seed base scale (e.g. (2048, 512)) and half the crop half of it; ``base_scale`` wins."""
    crop = tuple(int(v) for v in (crop_size or dataset.CROP_SIZE))
    f = crop[0] / dataset.CROP_SIZE[0]
    base = tuple(base_scale or (round(dataset.BASE_SCALE[0] * f), round(dataset.BASE_SCALE[1] * f)))
    return crop, base


class RecipeSegmentation(data.Dataset):
    """OCRNet-recipe dataset. Subclasses set the class attributes and implement ``_items`` and
    ``map_label``.

    Args:
        root: dataset root (see the subclass for the layout).
        list_path: split list (subclass default when None or '').
        max_iters: repeat the list to at least this many samples (num_steps * batch_size).
        crop_size: (h, w) training crop (subclass default when None). The base scale of the
            resize follows it: ``base = BASE_SCALE * crop_h / CROP_SIZE[0]`` (the seed's values
            for the seed crop); validation sets use it the same way (pass the training crop
            as ``--input-size`` to eval.py).
        base_scale: explicit (long, short) base scale, overriding the rule above.
        scale, mirror: random resize ratio 0.5-2.0 and horizontal flip (training only).
        ignore_label: label of void pixels and padding (255).
        train: training pipeline (True) or the whole-image validation protocol (False).
        photometric: photometric distortion in training.
    """

    NUM_CLASSES = None
    IGNORE_LABEL = 255
    CLASS_NAMES = ()
    NORMALISATION = "imagenet"  # ImageNet mean/std of the OCRNet recipe
    PALETTE = "voc"             # colours of the label images (utils.visualize)
    BASE_SCALE = (2048, 512)
    CROP_SIZE = (512, 512)
    SPLIT_SIZES = {}            # official image counts per split name, for warn_count
    SAME_SIZE_ITEMS = False     # validation images keep their own aspect ratio
    # --data-list default: None = the dataset finds its split itself (subclasses may set paths)
    DEFAULT_LISTS = {"train": None, "eval": None, "submit": None}

    @classmethod
    def default_input_sizes(cls):
        """--input-size default: the training crop, also for eval (the base scale follows it)."""
        return {"train": cls.CROP_SIZE, "eval": cls.CROP_SIZE, "submit": cls.CROP_SIZE}

    def __init__(self, root, list_path=None, max_iters=None, crop_size=None, scale=True,
                 mirror=True, ignore_label=255, train=True, photometric=True, split=None,
                 base_scale=None):
        self.root, self.train, self.ignore_label = root, train, ignore_label
        self.crop_size, self.base_scale = recipe_scales(self, crop_size, base_scale)
        self.scale, self.mirror, self.photometric = scale, mirror, photometric
        self.split = split or ("train" if train else "val")
        items = [(entry[0], entry[1]) for entry in self._items(root, list_path or None)]
        key = os.path.splitext(os.path.basename(list_path))[0] if list_path else self.split
        warn_count(len(items), self.SPLIT_SIZES.get(key), f"{type(self).__name__} list {key!r}")
        if max_iters is not None and train:
            items = items * int(math.ceil(float(max_iters) / len(items)))
        self.files = items

    def _items(self, root, list_path):
        raise NotImplementedError

    def map_label(self, label, path):
        """Raw label (H, W) -> uint8 train ids in [0, NUM_CLASSES) or ignore_label."""
        raise NotImplementedError

    def check_range(self, label, valid, path):
        """ValueError naming the file and the bad values unless every value is in ``valid``."""
        bad = np.setdiff1d(np.unique(label), np.asarray(valid))
        if bad.size:
            raise DatasetError(f"label {path}: values {bad[:10].tolist()} are outside the "
                             f"{type(self).__name__} label set (0..{self.NUM_CLASSES} / "
                             f"{self.ignore_label}); is this the right dataset / annotation folder?")

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        img_file, label_file = self.files[index]
        image = T.read_image(img_file)                       # (H, W, 3) RGB uint8
        raw = T.read_label(label_file)                       # (H, W) stored values
        if raw.shape != image.shape[:2]:
            raise DatasetError(f"label {label_file} is {raw.shape[0]}x{raw.shape[1]} but image "
                             f"{img_file} is {image.shape[0]}x{image.shape[1]}")
        label = self.map_label(raw, label_file)              # (H, W) uint8 train ids / ignore
        name = os.path.splitext(os.path.basename(img_file))[0]
        if self.train:
            img, lab = S.train_pipeline(image, label, self.crop_size, self.base_scale,
                                        ignore_label=self.ignore_label, scale=self.scale,
                                        mirror=self.mirror, photometric=self.photometric)
            return Sample(np.ascontiguousarray(img, dtype=np.float32),
                          np.ascontiguousarray(lab, dtype=np.float32),
                          make_meta(image.shape[:2], img.shape[1:]), name)
        img, _ = S.resize_keep_ratio(image, None, self.base_scale)   # (h_in, w_in, 3)
        img = S.normalize(img).transpose(2, 0, 1)                    # (3, h_in, w_in)
        return Sample(np.ascontiguousarray(img), label.astype(np.float32),
                      make_meta(label.shape, img.shape[1:], label_size=label.shape), name)
