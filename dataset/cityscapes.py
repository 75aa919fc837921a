# Port of OCNet.pytorch dataset/cityscapes.py (679a45b). MIT licence, after
# openseg-group/OCNet.pytorch.
"""Cityscapes datasets: list parsing and file I/O; the pipeline itself is in ``transforms``.

List files are the original's: ``image_path<TAB>label_path`` per line (test lists: image only),
relative to the data root. All listed files are checked at construction, so a wrong ``--data-dir``
or a stale list fails at once with the missing count and examples instead of mid-training.
"""
from __future__ import annotations

import math
import os

import numpy as np
from torch.utils import data

from . import transforms as T

_NORMALISED_NETWORKS = ("resnet101",)


def _check_network(network):
    # The original had /255 + mean/std branches for 'mobilenetv2' / 'wide_resnet38', which it never
    # registered; only the ResNet-101 (Caffe mean) normalisation exists here.
    if network not in _NORMALISED_NETWORKS:
        raise ValueError(f"network={network!r}: Cityscapes normalisation is defined only for "
                         f"{', '.join(_NORMALISED_NETWORKS)}")


def read_list(root, list_path, with_label=True):
    """Parse a list file into [(image_file, label_file or None)] with paths joined to ``root``.

    Raises FileNotFoundError naming the data dir, the list file, or the missing entries (count and
    the first few), and ValueError for a train line without a label path.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"data dir {root!r} does not exist (check --data-dir)")
    if not os.path.isfile(list_path):
        raise FileNotFoundError(f"list file {list_path!r} does not exist (check --data-list)")
    items = []
    with open(list_path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            fields = line.split("\t") if "\t" in line else line.split()
            if with_label and len(fields) < 2:
                raise ValueError(f"{list_path}:{lineno}: expected 'image<TAB>label', got {line!r}")
            label = os.path.join(root, fields[1].strip()) if with_label else None
            items.append((os.path.join(root, fields[0].strip()), label))
    if not items:
        raise ValueError(f"list file {list_path!r} has no entries")
    missing = sorted({p for item in items for p in item if p is not None and not os.path.isfile(p)})
    if missing:
        shown = "\n  ".join(missing[:5])
        raise FileNotFoundError(
            f"{len(missing)} file(s) listed in {list_path} do not exist under data dir {root!r}, "
            f"e.g.:\n  {shown}")
    return items


def _repeat(items, max_iters):
    """# faithful: training is one long epoch, the list repeated ceil(max_iters / len) times."""
    if max_iters is None:
        return list(items)
    return list(items) * int(math.ceil(float(max_iters) / len(items)))


class CitySegmentationTrain(data.Dataset):
    """Cityscapes with labels (training, and evaluation with scale=False, mirror=False).

    Returns ``(image float32 (3, h, w), label float32 (h, w), np.array(orig (H, W, 3)), name)`` with
    ``name`` the label file's basename without extension. Random draws: ``random`` (scale, crop)
    and ``np.random`` (mirror); see ``dataset.transforms``.

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
        self.files = _repeat(read_list(root, list_path, with_label=True), max_iters)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        img_file, label_file = self.files[index]
        image = T.read_image(img_file)                        # (H, W, 3) RGB uint8
        label = T.read_label(label_file)                      # (H, W) labelIds
        if label.shape != image.shape[:2]:
            raise ValueError(f"label {label_file} is {label.shape[0]}x{label.shape[1]} but image "
                             f"{img_file} is {image.shape[0]}x{image.shape[1]}")
        label = T.id_to_train_id(label, label_file)           # (H, W) uint8 trainIds / 255
        size = image.shape
        name = os.path.splitext(os.path.basename(label_file))[0]
        if self.scale:
            image, label = T.random_scale(image, label)
        image = T.caffe_normalize(image)                      # (H', W', 3) float32
        crop = (self.crop_h, self.crop_w)
        image, label = T.pad_to_crop(image, label, crop, self.ignore_label)
        image, label = T.random_crop(image, label, crop)
        image = image.transpose((2, 0, 1))                    # (3, h, w)
        if self.is_mirror:
            image, label = T.random_mirror(image, label)
        return (np.ascontiguousarray(image, dtype=np.float32),
                np.ascontiguousarray(label, dtype=np.float32), np.array(size), name)


class CitySegmentationTest(data.Dataset):
    """Cityscapes images without labels (test server). Returns ``(image, np.array(size), name)``.

    Same normalisation as training; padded bottom/right to ``crop_size`` (a no-op at 1024x2048).
    ``name`` is the image basename without extension (``<city>_<seq>_<frame>_leftImg8bit``).
    """

    def __init__(self, root, list_path, max_iters=None, crop_size=(1024, 2048), network="resnet101"):
        _check_network(network)
        self.root, self.list_path = root, list_path
        self.crop_h, self.crop_w = (int(v) for v in crop_size)
        self.files = _repeat(read_list(root, list_path, with_label=False), max_iters)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        img_file, _ = self.files[index]
        image = T.read_image(img_file)
        size = image.shape
        name = os.path.splitext(os.path.basename(img_file))[0]
        image, _ = T.pad_to_crop(T.caffe_normalize(image), None, (self.crop_h, self.crop_w))
        return np.ascontiguousarray(image.transpose((2, 0, 1))), np.array(size), name
