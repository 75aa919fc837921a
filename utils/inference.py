# Port of predict_whole_img / predict_sliding / predict_multi_scale, copied in OCNet.pytorch eval.py
# and generate_submit.py (679a45b, after the 2018-11-11 multi-scale fix). MIT licence, after
# openseg-group/OCNet.pytorch.
"""Inference shared by eval.py and generate_submit.py: whole image, sliding window, multi-scale + flip.

All functions take a normalised batch ``image`` (N, 3, H, W) on the model's device and return raw
logits (N, C, H, W) in torch; nothing goes through NumPy. The main head is always taken with
``network.main_output``.

* Rescaling the *input* by ``s``: bilinear, align_corners=True, size ``round(H * s)``.
  # faithful: the original used ``scipy.ndimage.zoom(order=1, prefilter=False)``, which is exactly
  # this (corner-aligned linear interpolation, output ``round(n * s)``).
* Upsampling *logits* uses the model's ``align_corners`` (True for OCNet, as the original).
* Multi-scale averages raw logits, not probabilities. # faithful: the softmax line was commented
  out in the original.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from network import main_output
from utils.errors import ConfigError

DEFAULT_SCALES = (0.75, 1.0, 1.25)
DEFAULT_TILE = (1024, 2048)


def _resize(x, size, align_corners):
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners)


def scale_image(image, scale):
    """Rescale (N, C, H, W) by ``scale`` like ``ndimage.zoom(order=1)`` (see module doc)."""
    if scale == 1:
        return image
    h, w = image.shape[-2:]
    return _resize(image, (int(round(h * scale)), int(round(w * scale))), True)


def _logits(model, x):
    return main_output(model(x))


def predict_whole(model, image, scale=1.0, align_corners=True):
    """Run the (rescaled) whole image; logits are upsampled straight to the input's (H, W)."""
    return _resize(_logits(model, scale_image(image, scale)), image.shape[-2:], align_corners)


def tile_boxes(height, width, tile_size, overlap=0.0):
    """Tile boxes (y1, y2, x1, x2) covering (height, width), in row-major order.

    # faithful: stride = ceil(tile * (1 - overlap)) with overlap 0, ``ceil((H - th) / stride) + 1``
    # tiles per axis, and the last tile shifted back to end at the border (so it may overlap its
    # neighbour); tiles of an image smaller than the tile start at 0 and are zero-padded.
    """
    th, tw = tile_size
    sh, sw = math.ceil(th * (1 - overlap)), math.ceil(tw * (1 - overlap))
    rows = max(int(math.ceil((height - th) / sh) + 1), 1)
    cols = max(int(math.ceil((width - tw) / sw) + 1), 1)
    boxes = []
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * sh + th, height), min(c * sw + tw, width)
            boxes.append((max(y2 - th, 0), y2, max(x2 - tw, 0), x2))
    return boxes


def predict_sliding(model, image, tile_size=DEFAULT_TILE, scale=1.0, align_corners=True, overlap=0.0):
    """Sliding-window logits: each zero-padded tile's logits are upsampled to the tile size, summed
    into a canvas and divided by the per-pixel tile count; then resized back to (H, W)."""
    scaled = scale_image(image, scale)                                   # (N, 3, Hs, Ws)
    n, _, hs, ws = scaled.shape
    th, tw = tile_size
    canvas, count = None, torch.zeros(hs, ws, device=image.device)
    for y1, y2, x1, x2 in tile_boxes(hs, ws, tile_size, overlap):
        tile = scaled[:, :, y1:y2, x1:x2]
        tile = F.pad(tile, (0, tw - tile.shape[-1], 0, th - tile.shape[-2]))   # (N, 3, th, tw)
        out = _resize(_logits(model, tile), (th, tw), align_corners)         # (N, C, th, tw)
        if canvas is None:
            canvas = out.new_zeros(n, out.shape[1], hs, ws)
        canvas[:, :, y1:y2, x1:x2] += out[:, :, :y2 - y1, :x2 - x1]
        count[y1:y2, x1:x2] += 1
    logits = canvas / count
    # faithful: back to the input size with ndimage.zoom(order=1) == align_corners=True.
    return _resize(logits, image.shape[-2:], True) if scale != 1 else logits


def _flip_avg(fn, image, flip):
    out = fn(image)
    if flip:
        out = 0.5 * (out + fn(image.flip(-1)).flip(-1))
    return out


def predict_multi_scale(model, image, scales=DEFAULT_SCALES, flip=False, tile_size=DEFAULT_TILE,
                        align_corners=True):
    """Average of per-scale logits: scales <= 1 run the whole image, scales > 1 run sliding tiles of
    ``tile_size`` (the original hard-coded 1024x2048); with ``flip`` each scale averages 0.5/0.5
    with the horizontally flipped pass, flipped back."""
    total = 0
    for s in scales:
        s = float(s)
        if s <= 1.0:
            def fn(x, s=s):
                return predict_whole(model, x, s, align_corners)
        else:
            def fn(x, s=s):
                return predict_sliding(model, x, tile_size, s, align_corners)
        total = total + _flip_avg(fn, image, flip)
    return total / len(scales)


@torch.no_grad()
def predict(model, image, *, num_classes=None, scales=(1.0,), flip=False, tile_size=DEFAULT_TILE,
            align_corners=True, mode="whole"):
    """Logits (N, C, H, W) for a batch, the one entry point of eval.py and generate_submit.py.

    Args:
        mode: "whole" (the original default): one scale without flip runs ``predict_whole`` at that
            scale (the original ``--whole-scale``); otherwise ``predict_multi_scale`` (``--use-ms``,
            ``--use-flip``). "sliding": every scale runs ``predict_sliding`` (``--predict-choice``).
        num_classes: if given, the model's channel count is checked against it.
    """
    scales = [float(s) for s in scales]
    if not scales:
        raise ValueError("predict needs at least one scale")
    if mode == "whole":
        if len(scales) == 1 and not flip:
            out = predict_whole(model, image, scales[0], align_corners)
        else:
            out = predict_multi_scale(model, image, scales, flip, tile_size, align_corners)
    elif mode == "sliding":
        out = sum(_flip_avg(lambda x, s=s: predict_sliding(model, x, tile_size, s, align_corners),
                            image, flip) for s in scales) / len(scales)
    else:
        raise ConfigError(f"unknown predict mode {mode!r} (--predict-choice): use 'whole' or 'sliding'")
    if num_classes is not None and out.shape[1] != num_classes:
        raise ConfigError(f"model outputs {out.shape[1]} classes but --num-classes is {num_classes}")
    return out
