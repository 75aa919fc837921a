# New (no OCNet counterpart): named dataset items. MIT licence.
"""What every dataset returns: named tuples with named per-sample sizes.

The original returned ``(image, label, np.array(size), name)`` and every consumer had to know what
``size`` held (``(H, W, 3)`` for Cityscapes, ``(h_in, w_in, H, W)`` for the OCR validation sets).
Here each item carries a ``meta`` dict of int64 ``(h, w)`` arrays:

* ``orig_size``: the image file's size;
* ``input_size``: the image content inside the network input (top-left corner; the rest is padding);
* ``label_size``: the valid label region (top-left) that evaluation scores: ``input_size`` when the
  label went through the same geometry as the image (Cityscapes), ``orig_size`` when the label stays
  at the file's resolution while the image is resized (OCR validation protocol).

Prediction crops the logits to ``input_size`` and, when it differs, upsamples them to ``label_size``
(evaluation) or ``orig_size`` (submission). The tuples stay positional (``image, label, meta, name``)
and ``torch.utils.data.default_collate`` keeps their type and turns each ``meta`` entry into an
``(N, 2)`` tensor.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import default_collate

from utils.errors import ConfigError


class Sample(NamedTuple):
    """A labelled item: image float32 (3, h, w), label float32 (h', w'), meta, name."""

    image: np.ndarray
    label: np.ndarray
    meta: dict
    name: str


class UnlabelledSample(NamedTuple):
    """An unlabelled item (test server): image float32 (3, h, w), meta, name."""

    image: np.ndarray
    meta: dict
    name: str


def make_meta(orig_size, input_size, label_size=None):
    """The ``meta`` dict: each value an int64 array ``[h, w]``; label_size defaults to input_size."""
    def hw(size):
        return np.array([int(size[0]), int(size[1])], dtype=np.int64)
    return {"orig_size": hw(orig_size), "input_size": hw(input_size),
            "label_size": hw(input_size if label_size is None else label_size)}


def collate(batch):
    """``default_collate`` that explains, instead of a stack error, why images of one batch differ.

    Datasets that resize each image with its own aspect ratio (the OCR validation sets) give
    images of different sizes; they are evaluated whole, one per batch.
    """
    shapes = {tuple(np.shape(item[0])) for item in batch}
    labels = {tuple(np.shape(item[1])) for item in batch} if isinstance(batch[0], Sample) else set()
    if len(shapes) > 1 or len(labels) > 1:
        names = ", ".join(str(item[-1]) for item in batch[:4])
        raise ConfigError(
            f"--batch-size {len(batch)}: the items of one batch differ in size (images "
            f"{sorted(shapes)[:3]}; {names}). This dataset keeps each image at its own size; "
            "evaluate it with --batch-size 1.")
    return default_collate(batch)


def meta_sizes(meta, key):
    """``meta[key]`` of a collated batch as a list of ``(h, w)`` int tuples."""
    values = torch.as_tensor(meta[key]).reshape(-1, 2)
    return [(int(h), int(w)) for h, w in values.tolist()]
