# New (no OCNet counterpart): tiny synthetic ADE20K / PASCAL VOC trees in the official layouts, for
# the CPU demo of scripts/run_ocrnet.sh and the tests. MIT licence.
"""Synthetic ADE20K and VOC datasets (shapes on textured backgrounds) in the official layouts.

* ``make_synthetic_ade20k(root)``: ``root/images/{training,validation}/ADE_{train,val}_%08d.jpg``
  and ``root/annotations/...png`` ('L', 0 = void, 1..150 with only the first ``n_classes`` used).
* ``make_synthetic_voc(root)``: ``root/JPEGImages/<id>.jpg``, ``root/SegmentationClass/<id>.png``
  (palette 'P' PNGs with the VOC colour map, 255 object outlines) and
  ``root/ImageSets/Segmentation/{trainaug,val}.txt``.

Each class has its own colour and texture, so a small network can learn them. Every image has its
own RNG seeded by ``(seed, split, index)``.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image


def voc_palette(n=256):
    """The PASCAL VOC colour map (bit-interleaved), as a flat list of 3 * n ints."""
    pal = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def _scene(rng, h, w, classes, outline=None):
    """(RGB uint8 (h, w, 3), label (h, w)): a background class and 2-4 rectangles / ellipses."""
    label = np.full((h, w), classes[0], np.int64)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(rng.integers(2, 5)):
        c = classes[rng.integers(1, len(classes))]
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        ry, rx = rng.integers(h // 8, h // 3 + 1), rng.integers(w // 8, w // 3 + 1)
        if rng.random() < 0.5:
            mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        else:
            mask = (abs(yy - cy) <= ry) & (abs(xx - cx) <= rx)
        label[mask] = c
    colours = np.random.default_rng(1234).integers(30, 226, size=(256, 3))
    image = colours[label].astype(np.float64)
    stripes = np.sin((xx * (label % 5 + 1) + yy * (label % 3)) * 0.6)[..., None] * 18
    image = np.clip(image + stripes + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
    if outline is not None:   # VOC-style void boundaries between regions
        edge = np.zeros_like(label, bool)
        edge[:-1] |= label[:-1] != label[1:]
        edge[:, :-1] |= label[:, :-1] != label[:, 1:]
        label[edge] = outline
    return image, label


def make_synthetic_ade20k(root, n_train=8, n_val=4, size=(96, 128), n_classes=6, seed=0):
    """Write a tiny ADE20K tree under ``root`` (the ADEChallengeData2016 folder); returns root.

    Labels use the stored ADE values: 0 (void/other, always present) and 1..n_classes.
    """
    for s, (split, prefix, n) in enumerate((("training", "ADE_train", n_train),
                                            ("validation", "ADE_val", n_val))):
        os.makedirs(os.path.join(root, "images", split), exist_ok=True)
        os.makedirs(os.path.join(root, "annotations", split), exist_ok=True)
        for i in range(n):
            rng = np.random.default_rng([seed, s, i])
            h, w = size[0] + int(rng.integers(0, 9)), size[1] + int(rng.integers(0, 9))
            image, label = _scene(rng, h, w, list(range(1, n_classes + 1)))
            label[: max(1, h // 16)] = 0                       # a void band: reduce-zero-label
            name = f"{prefix}_{i + 1:08d}"
            Image.fromarray(image).save(os.path.join(root, "images", split, name + ".jpg"),
                                        quality=95)
            Image.fromarray(label.astype(np.uint8), mode="L").save(
                os.path.join(root, "annotations", split, name + ".png"))
    return root


def make_synthetic_voc(root, n_train=8, n_val=4, size=(96, 128), n_classes=6, seed=0):
    """Write a tiny VOC2012 tree under ``root`` (the VOCdevkit/VOC2012 folder); returns root.

    Classes 0 (background) and 1..n_classes-1; palette PNGs with 255 outlines.
    """
    for sub in ("JPEGImages", "SegmentationClass", os.path.join("ImageSets", "Segmentation")):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    palette = voc_palette()
    for s, (list_name, n) in enumerate((("trainaug", n_train), ("val", n_val))):
        ids = []
        for i in range(n):
            rng = np.random.default_rng([seed, s, i])
            h, w = size[0] + int(rng.integers(0, 9)), size[1] + int(rng.integers(0, 9))
            image, label = _scene(rng, h, w, list(range(n_classes)), outline=255)
            name = f"20{10 + s:02d}_{i:06d}"
            ids.append(name)
            Image.fromarray(image).save(os.path.join(root, "JPEGImages", name + ".jpg"), quality=95)
            png = Image.fromarray(label.astype(np.uint8), mode="P")
            png.putpalette(palette)
            png.save(os.path.join(root, "SegmentationClass", name + ".png"))
        with open(os.path.join(root, "ImageSets", "Segmentation", list_name + ".txt"), "w") as f:
            f.write("\n".join(ids) + "\n")
    return root
