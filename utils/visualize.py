# Port of get_palette (eval.py / generate_submit.py) and the trainId -> labelId map of
# OCNet.pytorch (679a45b). MIT licence, after openseg-group/OCNet.pytorch.
"""Palettes and paletted PNG output for predictions.

* ``get_palette()``: the Cityscapes colours of the 19 trainIds, then index 19 = (105, 105, 105), the
  rest black (eval.py's ``--store-output`` maps, trainId values).
* ``get_voc_palette(n)``: the PASCAL-VOC bit-interleaving colormap that generate_submit.py attaches
  to its labelId PNGs. # faithful: purely cosmetic; the server reads the pixel values.
* ``trainid_to_labelid`` / ``labelid_to_trainid``: re-exported from ``dataset.labels`` (one table).
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

from dataset.labels import CLASS_COLORS, IGNORE_LABEL, NUM_CLASSES
from dataset.labels import id_to_train_id as labelid_to_trainid
from dataset.labels import train_id_to_label_id as trainid_to_labelid

__all__ = [
    "IGNORE_LABEL",
    "NUM_CLASSES",
    "get_palette",
    "get_voc_palette",
    "labelid_to_trainid",
    "save_palette_png",
    "trainid_to_labelid",
]


def get_palette(num_entries=256):
    """Flat [r, g, b, ...] list of ``num_entries`` colours: Cityscapes 19 + (105, 105, 105) + black."""
    colours = [tuple(c) for c in CLASS_COLORS] + [(105, 105, 105)]
    colours += [(0, 0, 0)] * max(num_entries - len(colours), 0)
    return [v for c in colours[:num_entries] for v in c]


def get_voc_palette(num_entries=256):
    """The PASCAL-VOC colormap: bit k of the index goes to bit 7 - k // 3 of channel k % 3."""
    palette = []
    for j in range(num_entries):
        rgb, lab, i = [0, 0, 0], j, 0
        while lab:
            for c in range(3):
                rgb[c] |= ((lab >> c) & 1) << (7 - i)
            i, lab = i + 1, lab >> 3
        palette += rgb
    return palette


def save_palette_png(array, path, palette=None):
    """Save an (H, W) uint8 index map as a paletted 'P' PNG (the values are kept as they are)."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{path}: expected an (H, W) index map, got shape {array.shape}")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"{path}: index values must lie in 0..255")
    img = Image.fromarray(array.astype(np.uint8), mode="P")
    img.putpalette(get_palette() if palette is None else palette)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    img.save(path)
    return path
