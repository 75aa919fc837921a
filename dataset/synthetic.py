# New (no original counterpart): a synthetic street-scene dataset in the real Cityscapes layout,
# for the CPU demo and the tests. MIT licence.
"""Synthetic Cityscapes: street-like scenes with Cityscapes *label ids*, written in the real layout.

``make_synthetic_cityscapes(root, ...)`` writes::

    root/leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png   (RGB)
    root/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png        (labelIds, 'L')
    root/train.lst, root/val.lst  (image<TAB>label, relative to root), root/test.lst (image only)

Each scene is drawn in perspective around a vanishing point: sky on top, facades converging to the
horizon, road and sidewalk widening towards the bottom, trees, poles with traffic signs or lights,
cars on the road and people on the sidewalk (far objects small, drawn first), sometimes a grass
strip and the ego-vehicle hood (labelId 1 -> ignored). Classes differ in colour and texture (window
grids, leaf speckle, paving lines, lane marks) so a network can learn them from local appearance.
Every image has its own RNG (seeded by ``(seed, split, index)``), so a scene does not depend on
how many images are generated.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

from .labels import CLASS_COLORS, id_to_train_id

ROAD, SIDEWALK, BUILDING, POLE, LIGHT, SIGN, VEG, TERRAIN, SKY, PERSON, CAR, EGO = (
    7, 8, 11, 17, 19, 20, 21, 22, 23, 24, 26, 1)
DEFAULT_CITIES = {"train": ("aachen", "bochum", "bremen"), "val": ("frankfurt", "lindau", "munster"),
                  "test": ("berlin", "bielefeld", "bonn")}
_SPLIT_INDEX = {"train": 0, "val": 1, "test": 2}
# Optional scene elements (labelIds): tree 21, pole 17 (+ sign 20 / light 19), car 26, person 24,
# terrain 22, ego 1 (the ignored hood). Road, sidewalk, building and sky are always drawn.
OBJECTS = ("tree", "pole", "car", "person", "terrain", "ego")
# Base RGB colours of the rendered classes; objects pick one entry per instance.
_FACADES = ((196, 172, 138), (158, 86, 62), (205, 150, 95), (176, 128, 100), (214, 196, 160))
_CARS = ((34, 56, 150), (222, 222, 228), (24, 30, 78), (20, 110, 120), (70, 95, 175))
_SHIRTS = ((205, 40, 70), (190, 30, 110), (230, 60, 160))
_LAMPS = ((255, 40, 30), (60, 255, 90), (255, 190, 20))


def _smooth_noise(rng, h, w, cell):
    """Bilinearly interpolated coarse Gaussian noise (h, w): texture with ~`cell`-pixel grain."""
    gh, gw = h // cell + 2, w // cell + 2
    coarse = rng.standard_normal((gh, gw), dtype=np.float32)
    ys, xs = np.arange(h) / cell, np.arange(w) / cell
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None].astype(np.float32), (xs - x0)[None, :].astype(np.float32)
    a, b = coarse[y0][:, x0], coarse[y0][:, x0 + 1]
    c, d = coarse[y0 + 1][:, x0], coarse[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


class _Canvas:
    """Base colour, labelId and texture amplitudes (low, mid, high frequency) per pixel."""

    def __init__(self, h, w):
        self.h, self.w = h, w
        self.base = np.zeros((h, w, 3), np.float32)
        self.label = np.zeros((h, w), np.uint8)
        self.amp = np.zeros((h, w, 3), np.float32)
        self.yy, self.xx = np.mgrid[0:h, 0:w].astype(np.float32)

    def paint(self, mask, colour, label, amp, box=None):
        """Paint `mask` (full size, or box-local when box=(y0, y1, x0, x1) is given)."""
        if box is not None:
            y0, y1, x0, x1 = (int(v) for v in box)
            y0, x0, y1, x1 = max(y0, 0), max(x0, 0), min(y1, self.h), min(x1, self.w)
            if y0 >= y1 or x0 >= x1:
                return
            sl = (slice(y0, y1), slice(x0, x1))
            mask = mask(self.yy[sl], self.xx[sl])
            if isinstance(mask, tuple):                     # (mask, per-pixel colour)
                mask, colour = mask
        else:
            sl = (slice(None), slice(None))
        m3 = mask[..., None]
        np.copyto(self.base[sl], np.asarray(colour, np.float32), where=m3)
        np.copyto(self.label[sl], np.uint8(label), where=mask)
        np.copyto(self.amp[sl], np.asarray(amp, np.float32), where=m3)

    def box(self, cy, cx, ry, rx, colour, label, amp, ellipse=False):
        def m(y, x):
            if ellipse:
                return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0
            return (np.abs(y - cy) <= ry) & (np.abs(x - cx) <= rx)
        self.paint(m, colour, label, amp, (cy - ry - 1, cy + ry + 2, cx - rx - 1, cx + rx + 2))


def _scene(rng, h, w, objects=OBJECTS):
    cv = _Canvas(h, w)
    yy, xx = cv.yy, cv.xx
    yh = h * rng.uniform(0.34, 0.46)                       # horizon row
    vx = w * (0.5 + rng.uniform(-0.15, 0.15))             # vanishing point column
    kr = rng.uniform(1.2, 1.9)                            # road half-width / depth
    ks = kr * rng.uniform(1.35, 1.7)                      # sidewalk outer edge
    kt = ks * rng.uniform(1.25, 1.5) if rng.random() < 0.5 else ks  # optional grass strip
    kt = kt if "terrain" in objects else ks
    u, d = xx - vx, yy - yh
    # Sky: vertical gradient, lighter at the horizon.
    t = np.clip(yy / max(yh, 1.0), 0, 1)[..., None]
    sky = np.array([95, 145, 215], np.float32) * (1 - t) + np.array([175, 205, 238], np.float32) * t
    cv.paint(np.ones((h, w), bool), sky, SKY, (0.05, 0.0, 2.0))
    # Facades: blocks along both sides, top edges converging to the horizon.
    for side in (-1, 1):
        edge = 0.0
        while edge < w:
            width = rng.uniform(0.08, 0.3) * w
            if rng.random() > 0.15:                       # else: a gap showing the sky
                slope, lift = rng.uniform(0.25, 1.0), rng.uniform(0.02, 0.12) * h
                col = np.array(_FACADES[rng.integers(len(_FACADES))]) * rng.uniform(0.85, 1.1)
                period = rng.uniform(9, 16, size=2)

                def facade(y, x, edge=edge, width=width, slope=slope, lift=lift, col=col, period=period,
                           side=side):
                    a = side * (x - vx)
                    m = (a >= edge) & (a < edge + width) & (y >= yh - a * slope - lift) & (y - yh <= a / kt)
                    win = (np.mod(y, period[0]) < period[0] * 0.5) & (np.mod(x, period[1]) < period[1] * 0.45)
                    win &= y < yh + a / kt - 8                      # no windows at street level
                    return m, np.where(win[..., None], col * 0.45, col)
                xa, xb = sorted((vx + side * edge, vx + side * (edge + width)))
                cv.paint(facade, None, BUILDING, (0.08, 0.0, 4.0), (0, h, xa - 1, xb + 2))
            edge += width
    ground = d > 0
    r = np.abs(u) / np.maximum(d, 1e-3)
    if kt > ks:
        cv.paint(ground & (r >= ks) & (r < kt), (172, 188, 78), TERRAIN, (0.1, 0.05, 6.0))
    tiles = (np.mod(yy, 7) < 1) | (np.mod(xx, 11) < 1)
    walk = np.where(tiles[..., None], np.float32([135, 120, 122]), np.float32([178, 160, 162]))
    cv.paint(ground & (r >= kr) & (r < ks), walk, SIDEWALK, (0.04, 0.0, 4.0))
    lane = (np.abs(u) < 0.015 * d + 0.6) & (np.mod(np.log(np.maximum(d, 1.0)) * 9, 2) < 1)
    road = np.where(lane[..., None], np.float32([225, 225, 215]), np.float32([78, 76, 84]))
    cv.paint(ground & (r < kr), road, ROAD, (0.05, 0.0, 6.0))
    depth = h - yh
    # Objects, far (small d) first: (depth, kind).
    objs = [(rng.uniform(0.12, 1.0) * depth, "tree") for _ in range(rng.integers(1, 5))]
    objs += [(rng.uniform(0.45, 1.0) * depth, "pole") for _ in range(rng.integers(1, 4))]
    objs += [(rng.uniform(0.12, 0.95) * depth, "car") for _ in range(rng.integers(1, 6))]
    objs += [(rng.uniform(0.45, 1.0) * depth, "person") for _ in range(rng.integers(0, 4))]
    for dd, kind in sorted(objs, key=lambda o: o[0]):
        side, yb = rng.choice((-1, 1)), yh + dd
        if kind not in objects:                           # still drawn from the RNG above
            continue
        if kind == "tree":
            x = vx + side * kt * dd * rng.uniform(1.0, 1.15)
            rx, ry = dd * rng.uniform(0.35, 0.6), dd * rng.uniform(0.45, 0.75)
            tw, th = max(2.0, dd * 0.05), dd * rng.uniform(0.8, 1.2)
            cv.box(yb - th / 2, x, th / 2, tw, (95, 72, 50), VEG, (0.1, 0.0, 6.0))
            green = np.array((55, 115, 38)) * rng.uniform(0.8, 1.2)
            cv.box(yb - th - ry * 0.6, x, ry, rx, green, VEG, (0.12, 0.2, 10.0), ellipse=True)
        elif kind == "pole":
            x = vx + side * dd * rng.uniform(kr * 1.1, ks * 0.95)
            ph, pw = dd * rng.uniform(1.5, 2.0), max(1.5, dd * 0.06)
            cv.box(yb - ph / 2, x, ph / 2, pw, (150, 152, 160), POLE, (0.05, 0.0, 3.0))
            s = max(3.0, dd * 0.22)
            if rng.random() < 0.6:
                col = (228, 205, 35) if rng.random() < 0.7 else (245, 235, 225)
                cv.box(yb - ph + s, x, s, s, col, SIGN, (0.05, 0.0, 4.0), ellipse=rng.random() < 0.5)
            else:
                cv.box(yb - ph + 1.6 * s, x, 1.6 * s, 0.8 * s, (38, 38, 36), LIGHT, (0.0, 0.0, 3.0))
                lamp = _LAMPS[rng.integers(3)]
                cv.box(yb - ph + 1.6 * s * rng.choice((0.5, 1.0, 1.5)), x, 0.4 * s, 0.4 * s, lamp,
                       LIGHT, (0.0, 0.0, 3.0), ellipse=True)
        elif kind == "car":
            x = vx + dd * kr * rng.uniform(-0.7, 0.7)
            cw = dd * rng.uniform(0.8, 1.05)
            bh, col = cw * 0.32, np.array(_CARS[rng.integers(len(_CARS))]) * rng.uniform(0.9, 1.1)
            cv.box(yb + 1, x, max(1.0, cw * 0.04), cw * 0.55, (50, 50, 56), ROAD, (0, 0, 3.0))
            cv.box(yb - bh * 0.5 - cw * 0.06, x, bh * 0.5, cw * 0.5, col, CAR, (0.04, 0.0, 3.0))
            cv.box(yb - bh - cw * 0.2, x, cw * 0.16, cw * 0.33, col, CAR, (0.04, 0.0, 3.0))
            cv.box(yb - bh - cw * 0.2, x, cw * 0.11, cw * 0.27, (50, 62, 80), CAR, (0.0, 0.0, 3.0))
            for wx in (-0.32, 0.32):
                cv.box(yb - cw * 0.1, x + wx * cw, cw * 0.11, cw * 0.11, (22, 22, 24), CAR,
                       (0.0, 0.0, 2.0), ellipse=True)
        else:
            x = vx + side * dd * rng.uniform(kr * 1.1, ks * 0.95)
            ph = dd * rng.uniform(0.95, 1.15)
            pw = ph * 0.2
            shirt = np.array(_SHIRTS[rng.integers(len(_SHIRTS))]) * rng.uniform(0.85, 1.1)
            cv.box(yb - ph * 0.22, x, ph * 0.22, pw * 0.8, (45, 45, 75), PERSON, (0.0, 0.0, 4.0))
            cv.box(yb - ph * 0.6, x, ph * 0.2, pw, shirt, PERSON, (0.0, 0.0, 4.0), ellipse=True)
            cv.box(yb - ph * 0.88, x, ph * 0.09, ph * 0.07, (222, 178, 145), PERSON, (0.0, 0.0, 3.0),
                   ellipse=True)
    if rng.random() < 0.5 and "ego" in objects:          # ego-vehicle hood (labelId 1, ignored)
        he = h * rng.uniform(0.06, 0.1)
        hood = yy > h - he * (1 - 0.6 * ((xx - w / 2) / (w / 2)) ** 2)
        cv.paint(hood, (28, 30, 36), EGO, (0.03, 0.0, 2.0))
    # Texture: base * (1 + a_lf * LF + a_mf * MF) + a_hf * HF, then a global colour cast.
    lf, mf = _smooth_noise(rng, h, w, 24), _smooth_noise(rng, h, w, 3)
    hf = rng.standard_normal((h, w, 3), dtype=np.float32)
    a = cv.amp
    img = cv.base * (1 + a[..., :1] * lf[..., None] + a[..., 1:2] * mf[..., None])
    img += a[..., 2:3] * hf
    img *= rng.uniform(0.88, 1.12) * rng.uniform(0.95, 1.05, size=3).astype(np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), cv.label


def make_synthetic_cityscapes(root, n_train=8, n_val=4, n_test=2, size=(256, 512), seed=0,
                              cities=None, objects=OBJECTS):
    """Write a synthetic Cityscapes dataset under `root` (see module docstring); returns root.

    Args:
        root: output folder (created).
        n_train, n_val, n_test: images per split.
        size: (H, W) of every image.
        seed: base seed; image i of split s uses ``np.random.default_rng([seed, s, i])``.
        cities: optional {split: sequence of city names}; images cycle over the cities.
        objects: which optional elements of ``OBJECTS`` to draw (all by default); fewer, larger
            classes make a short CPU demo easier to learn.
    """
    h, w = (int(v) for v in size)
    if h < 16 or w < 16:
        raise ValueError(f"size={size}: synthetic images need at least 16x16 pixels")
    unknown = set(objects) - set(OBJECTS)
    if unknown:
        raise ValueError(f"objects={sorted(unknown)} unknown; choose from {OBJECTS}")
    cities = {**DEFAULT_CITIES, **(cities or {})}
    root = os.fspath(root)
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        lines = []
        for i in range(int(n)):
            city = cities[split][i % len(cities[split])]
            stem = f"{city}_{i:06d}_000019"
            img_rel = f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png"
            lab_rel = f"gtFine/{split}/{city}/{stem}_gtFine_labelIds.png"
            img, lab = _scene(np.random.default_rng([seed, _SPLIT_INDEX[split], i]), h, w, objects)
            os.makedirs(os.path.dirname(os.path.join(root, img_rel)), exist_ok=True)
            Image.fromarray(img, "RGB").save(os.path.join(root, img_rel), compress_level=1)
            if split == "test":
                lines.append(img_rel)
                continue
            os.makedirs(os.path.dirname(os.path.join(root, lab_rel)), exist_ok=True)
            Image.fromarray(lab, "L").save(os.path.join(root, lab_rel), compress_level=1)
            lines.append(f"{img_rel}\t{lab_rel}")
        with open(os.path.join(root, f"{split}.lst"), "w") as f:
            f.write("".join(line + "\n" for line in lines))
    return root


def save_preview(root, out_path, split="train", n=4):
    """Save a PNG with up to `n` images of `split` (left) beside their coloured trainId maps."""
    with open(os.path.join(root, f"{split}.lst")) as f:
        pairs = [line.rstrip("\n").split("\t") for line in f if line.strip()][:n]
    colours = np.zeros((256, 3), np.uint8)
    colours[:len(CLASS_COLORS)] = CLASS_COLORS
    rows = []
    for img_rel, lab_rel in pairs:
        img = np.asarray(Image.open(os.path.join(root, img_rel)).convert("RGB"))
        lab = id_to_train_id(np.asarray(Image.open(os.path.join(root, lab_rel))))
        rows.append(np.concatenate([img, colours[lab]], axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(out_path)
    return out_path
