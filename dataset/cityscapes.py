# Port of OCNet.pytorch dataset/cityscapes.py (679a45b). MIT licence, after
# openseg-group/OCNet.pytorch.
"""Cityscapes datasets (file I/O; the pipeline itself is in ``transforms``) and their defaults.

List files are the original's: ``image_path<TAB>label_path`` per line (test lists: image only),
relative to the data root (``dataset.lists``). When the default lists are absent they are made from
the official layout: ``python -m dataset.cityscapes make-lists --data-dir ...``
(``dataset.cityscapes_lists``). All listed files are checked at construction, so a wrong
``--data-dir`` or a stale list fails at once, naming the list line and file, before any training.
"""
from __future__ import annotations

import math
import os
import sys

import numpy as np
from torch.utils import data

from utils.errors import ConfigError, DatasetError

from . import transforms as T
from .cityscapes_lists import DEFAULT_LIST_DIR, layout_hint
from .labels import CLASS_NAMES, IGNORE_LABEL, NUM_CLASSES
from .lists import read_list
from .sample import Sample, UnlabelledSample, make_meta

_NORMALISED_NETWORKS = ("resnet101",)


def _check_network(network):
    # The original had /255 + mean/std branches for 'mobilenetv2' / 'wide_resnet38', which it never
    # registered; only the ResNet-101 (Caffe mean) normalisation exists here.
    if network not in _NORMALISED_NETWORKS:
        raise ConfigError(f"network={network!r}: Cityscapes normalisation is defined only for "
                          f"{', '.join(_NORMALISED_NETWORKS)}")


def _repeat(items, max_iters):
    """# faithful: training is one long epoch, the list repeated ceil(max_iters / len) times."""
    if max_iters is None:
        return list(items)
    return list(items) * int(math.ceil(float(max_iters) / len(items)))


class _CityscapesDefaults:
    """What the command line takes from the dataset when a flag is not given (per script mode)."""

    NUM_CLASSES = NUM_CLASSES
    IGNORE_LABEL = IGNORE_LABEL
    CLASS_NAMES = CLASS_NAMES
    # changed: the original's eval.py also defaulted to train.lst; evaluation defaults to val.lst.
    DEFAULT_LISTS = {"train": f"{DEFAULT_LIST_DIR}/train.lst", "eval": f"{DEFAULT_LIST_DIR}/val.lst",
                     "submit": f"{DEFAULT_LIST_DIR}/test.lst"}
    SAME_SIZE_ITEMS = True      # every item is padded to the --input-size canvas
    # faithful: the original's input normalisation (RGB minus the Caffe BGR means, no std)
    NORMALISATION = "caffe"
    PALETTE = "cityscapes"

    @classmethod
    def default_input_sizes(cls):
        """faithful: train crops 769x769; eval/submit used a hard-coded 1024x2048 canvas."""
        return {"train": (769, 769), "eval": (1024, 2048), "submit": (1024, 2048)}


class CitySegmentationTrain(_CityscapesDefaults, data.Dataset):
    """Cityscapes with labels (training, and evaluation with scale=False, mirror=False).

    Returns a :class:`~dataset.sample.Sample` ``(image float32 (3, h, w), label float32 (h, w), meta,
    name)`` with ``name`` the label file's basename without extension and ``meta`` the original
    size and the (top-left) region of the crop that holds the image (also the scored label region).
    Random draws: ``random`` (scale, crop) and ``np.random`` (mirror); see ``dataset.transforms``.

    Args:
        root: data dir the list paths are relative to.
        list_path: list file (``image<TAB>label`` lines).
        max_iters: repeat the list to at least this many samples (num_steps * batch_size).
        crop_size: (h, w) of the random crop (after padding).
        scale: random scale 0.5..2.1; mirror: random horizontal flip.
        ignore_label: label of padding and of unmapped labelIds.
    """

    def __init__(self, root, list_path, max_iters=None, crop_size=(769, 769), scale=True,
                 mirror=True, ignore_label=255, network="resnet101"):
        _check_network(network)
        self.root, self.list_path = root, list_path
        self.crop_h, self.crop_w = (int(v) for v in crop_size)
        self.scale, self.is_mirror, self.ignore_label = scale, mirror, ignore_label
        entries = read_list(root, list_path, with_label=True, layout_hint=layout_hint)
        self.files = _repeat([(e.image, e.label) for e in entries], max_iters)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        img_file, label_file = self.files[index]
        image = T.read_image(img_file)                        # (H, W, 3) RGB uint8
        label = T.read_label(label_file)                      # (H, W) labelIds
        if label.shape != image.shape[:2]:
            raise DatasetError(f"label {label_file} is {label.shape[0]}x{label.shape[1]} but image "
                             f"{img_file} is {image.shape[0]}x{image.shape[1]}")
        label = T.id_to_train_id(label, label_file)           # (H, W) uint8 trainIds / 255
        orig = image.shape[:2]
        name = os.path.splitext(os.path.basename(label_file))[0]
        if self.scale:
            image, label = T.random_scale(image, label)
        content = (min(image.shape[0], self.crop_h), min(image.shape[1], self.crop_w))
        image = T.caffe_normalize(image)                      # (H', W', 3) float32
        crop = (self.crop_h, self.crop_w)
        image, label = T.pad_to_crop(image, label, crop, self.ignore_label)
        image, label = T.random_crop(image, label, crop)
        image = image.transpose((2, 0, 1))                    # (3, h, w)
        if self.is_mirror:
            image, label = T.random_mirror(image, label)
        return Sample(np.ascontiguousarray(image, dtype=np.float32),
                      np.ascontiguousarray(label, dtype=np.float32), make_meta(orig, content), name)


class CitySegmentationTest(_CityscapesDefaults, data.Dataset):
    """Cityscapes images without labels (test server): :class:`~dataset.sample.UnlabelledSample`
    ``(image, meta, name)``.

    Same normalisation as training; padded bottom/right to ``crop_size`` (a no-op at 1024x2048).
    ``name`` is the image basename without extension (``<city>_<seq>_<frame>_leftImg8bit``).
    """

    def __init__(self, root, list_path, max_iters=None, crop_size=(1024, 2048), network="resnet101"):
        _check_network(network)
        self.root, self.list_path = root, list_path
        self.crop_h, self.crop_w = (int(v) for v in crop_size)
        entries = read_list(root, list_path, with_label=False, layout_hint=layout_hint)
        self.files = _repeat([(e.image, e.label) for e in entries], max_iters)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        img_file, _ = self.files[index]
        image = T.read_image(img_file)
        orig = image.shape[:2]
        name = os.path.splitext(os.path.basename(img_file))[0]
        image, _ = T.pad_to_crop(T.caffe_normalize(image), None, (self.crop_h, self.crop_w))
        return UnlabelledSample(np.ascontiguousarray(image.transpose((2, 0, 1))), make_meta(orig, orig), name)


if __name__ == "__main__":
    from .cityscapes_lists import main
    sys.exit(main())
