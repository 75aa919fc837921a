# Port of the inline pipeline of OCNet.pytorch dataset/cityscapes.py (679a45b), with cv2 replaced by
# pillow (decoding) and NumPy (resizing). MIT licence, after openseg-group/OCNet.pytorch.
"""Pure NumPy transforms of the original Cityscapes training pipeline, plus the one image reader.

Randomness: ``random_scale_factor`` and ``random_crop`` draw from Python's ``random`` module and
``random_mirror`` from ``np.random`` (the global RandomState), exactly like the original. Each takes
an optional ``rng`` instead (a ``random.Random`` for the first two, anything with ``.choice(2)`` for
the mirror). A DataLoader worker is therefore reproducible when its ``worker_init_fn`` seeds both
``random`` and ``np.random`` (torch seeds only ``random`` and torch itself).

Resizing reproduces OpenCV's ``cv2.resize`` without depending on it:

* ``INTER_LINEAR``: source coordinate ``f = (d + 0.5) * scale - 0.5`` (half-pixel centres),
  ``s = floor(f)``, weights ``(1 - (f - s), f - s)``, no antialiasing, horizontal pass first.
  Columns: ``s < 0`` gives weight 1 on pixel 0 and ``s >= n - 1`` weight 1 on pixel n - 1. Rows keep
  their fractional weights and only the row indices are clipped to [0, n - 1] (same value in exact
  arithmetic, different rounding; this is what OpenCV does).
  uint8 (OpenCV's fixed point): ``f`` in float32, weights ``rint(w * 2048)`` (int16, rounded
  independently), horizontal sums ``v = a0 * S[s0] + a1 * S[s1]`` in int32 (exact), vertical pass
  ``(((v0 >> 4) * b0 >> 16) + ((v1 >> 4) * b1 >> 16) + 2) >> 2`` (OpenCV's SIMD formula, which it
  applies to whole rows). float: ``f`` in float64, float weights.
  Checked against opencv-python 5.0.0 (x86-64) over 21M uint8 values of random images at all 17
  training scales: 102 differ by 1, from exact 2x downscales of odd sizes (OpenCV switches those to
  INTER_AREA) and images of 2x3 pixels; float results agree to a few ulp.
* ``INTER_NEAREST``: ``s = min(floor(d * scale), n - 1)`` (no half-pixel shift).
* With a scale factor ``fx`` (the original's ``cv2.resize(img, None, fx=f, fy=f)``) the output size is
  ``round(n * fx)`` (half to even) and the mapping uses ``scale = 1 / fx``, not ``n / round(n * fx)``.
"""
from __future__ import annotations

import random

import numpy as np
from PIL import Image

from utils.errors import DatasetError, MissingFileError

from .labels import id_to_train_id  # noqa: F401  (re-exported: part of the transform set)

CAFFE_MEAN = (102.9801, 115.9465, 122.7717)
SCALE_CHOICES = tuple(0.5 + i / 10.0 for i in range(17))  # 0.5, 0.6, ..., 2.1


class ImageReadError(DatasetError, OSError):
    """An image file exists but cannot be decoded (corrupt, truncated, not an image)."""


def _open(path: str, what: str) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()  # decode now: truncated files raise here, not later
    except FileNotFoundError:
        raise MissingFileError(f"{what} file not found: {path}") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"cannot read {what} {path}: {err} (corrupt or truncated file?)") from err
    return img


def read_image(path: str) -> np.ndarray:
    """Decode an image file with pillow to RGB uint8 (H, W, 3). The only place decoding is chosen."""
    return np.asarray(_open(path, "image").convert("RGB"))


def read_label(path: str) -> np.ndarray:
    """Read a label PNG as stored (H, W) integer values, like ``cv2.IMREAD_GRAYSCALE`` on an 8-bit map.

    Single-channel modes are read as raw values ('P' gives palette indices, never colours). RGB
    label files raise ValueError: converting colours to grey would silently corrupt the classes.
    """
    img = _open(path, "label")
    if img.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
        raise ValueError(f"label {path}: expected a single-channel label image, got mode {img.mode!r}")
    return np.asarray(img)


def _out_size(n: int, size: int | None, fx: float | None) -> tuple[int, float]:
    """(output length, cv2 inv_scale) for a target length or a scale factor."""
    if size is not None:
        return int(size), int(size) / n
    if fx is None or fx <= 0:
        raise ValueError(f"resize needs a size or a positive scale, got scale={fx}")
    return int(round(n * fx)), float(fx)


def _sizes(shape, size, scale):
    h, w = shape[:2]
    (oh, iy), (ow, ix) = (_out_size(h, None if size is None else size[0], scale),
                          _out_size(w, None if size is None else size[1], scale))
    if oh <= 0 or ow <= 0:
        raise ValueError(f"resize of {h}x{w} by {size or scale} gives an empty image")
    return oh, ow, 1.0 / iy, 1.0 / ix


def _linear_taps(n: int, out: int, scale: float, clamp_weights: bool, coord_dtype):
    """(s0, s1, frac) of each output index; see the module doc for the two border rules."""
    f = ((np.arange(out, dtype=np.float64) + 0.5) * scale - 0.5).astype(coord_dtype)
    s = np.floor(f).astype(np.int64)
    frac = (f - s).astype(np.float32)
    if clamp_weights:
        frac[(s < 0) | (s >= n - 1)] = 0.0
        s = np.clip(s, 0, n - 1)
        return s, np.minimum(s + 1, n - 1), frac
    return np.clip(s, 0, n - 1), np.clip(s + 1, 0, n - 1), frac


def resize_linear(image: np.ndarray, size=None, scale: float | None = None) -> np.ndarray:
    """cv2.resize INTER_LINEAR of an (H, W) or (H, W, C) array to ``size=(H', W')`` or by ``scale``.

    uint8 in -> uint8 out (OpenCV fixed point); float in -> same float dtype (float arithmetic).
    """
    oh, ow, sy, sx = _sizes(image.shape, size, scale)
    coord = np.float32 if image.dtype == np.uint8 else np.float64
    ys0, ys1, fy = _linear_taps(image.shape[0], oh, sy, False, coord)
    xs0, xs1, fx = _linear_taps(image.shape[1], ow, sx, True, coord)
    extra = (None,) * (image.ndim - 2)
    if image.dtype == np.uint8:
        def coef(w):  # cv2: saturate_cast<short>(w * INTER_RESIZE_COEF_SCALE), round half to even
            return np.rint(w * np.float32(2048)).astype(np.int32)
        ax0, ax1 = coef(np.float32(1) - fx), coef(fx)
        ay0, ay1 = coef(np.float32(1) - fy), coef(fy)
        src = image.astype(np.int32)
        rows = (src[:, xs0] * ax0[(None, slice(None)) + extra]
                + src[:, xs1] * ax1[(None, slice(None)) + extra]) >> 4     # (H, W', C) int32
        b0, b1 = ay0[(slice(None), None) + extra], ay1[(slice(None), None) + extra]
        out = ((rows[ys0] * b0 >> 16) + (rows[ys1] * b1 >> 16) + 2) >> 2
        return np.clip(out, 0, 255).astype(np.uint8)
    if image.dtype.kind != "f":
        raise TypeError(f"resize_linear supports uint8 and float arrays, got {image.dtype}")
    dt = image.dtype
    fx, fy = fx.astype(dt), fy.astype(dt)
    gx, gy = fx[(None, slice(None)) + extra], fy[(slice(None), None) + extra]
    rows = image[:, xs0] * (1 - gx) + image[:, xs1] * gx
    return (rows[ys0] * (1 - gy) + rows[ys1] * gy).astype(dt)


def resize_nearest(label: np.ndarray, size=None, scale: float | None = None) -> np.ndarray:
    """cv2.resize INTER_NEAREST: ``src = min(floor(dst * scale), n - 1)``; dtype preserved."""
    oh, ow, sy, sx = _sizes(label.shape, size, scale)
    ys = np.minimum(np.floor(np.arange(oh) * sy).astype(np.int64), label.shape[0] - 1)
    xs = np.minimum(np.floor(np.arange(ow) * sx).astype(np.int64), label.shape[1] - 1)
    return label[ys][:, xs]


def caffe_normalize(image_rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> float32 ``image - (102.9801, 115.9465, 122.7717)``, no std, no /255.

    # faithful: the original read BGR with cv2, reversed it to RGB (``image[:, :, ::-1]``), then
    # subtracted the Caffe *BGR* means in that order, so R-102.98, G-115.95, B-122.77 (docs/faithful.md).
    # pillow decodes to RGB, which is the array the original had after its reversal. The
    # subtraction runs in float64 and is cast to float32, like the original's ``image -= mean``.
    """
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"caffe_normalize expects (H, W, 3), got {image_rgb.shape}")
    return (image_rgb.astype(np.float64) - np.asarray(CAFFE_MEAN)).astype(np.float32)


def random_scale_factor(rng=None) -> float:
    """# faithful: ``0.5 + randint(0, 16) / 10`` -> {0.5, 0.6, ..., 2.1} (17 values)."""
    return 0.5 + (rng or random).randint(0, 16) / 10.0


def random_scale(image, label, rng=None):
    """Scale image (linear) and label (nearest) by one random factor from SCALE_CHOICES."""
    f = random_scale_factor(rng)
    return resize_linear(image, scale=f), resize_nearest(label, scale=f)


def pad_to_crop(image, label, crop_size, ignore_label=255):
    """Pad bottom/right to at least ``crop_size`` (h, w): image with 0.0, label with ignore_label.

    # faithful: 0 after mean subtraction is the mean colour; the label pad is ignored by the loss.
    ``label`` may be None (test set); then (image, None) is returned.
    """
    ph, pw = max(crop_size[0] - image.shape[0], 0), max(crop_size[1] - image.shape[1], 0)
    if ph == 0 and pw == 0:
        return image, label
    image = np.pad(image, ((0, ph), (0, pw)) + ((0, 0),) * (image.ndim - 2), constant_values=0)
    if label is not None:
        label = np.pad(label, ((0, ph), (0, pw)), constant_values=ignore_label)
    return image, label


def random_crop(image, label, crop_size, rng=None):
    """Crop ``crop_size`` at offsets ``randint(0, H - h)``, ``randint(0, W - w)`` (inclusive)."""
    rng = rng or random
    h, w = label.shape
    if h < crop_size[0] or w < crop_size[1]:
        raise ValueError(f"random_crop: array {h}x{w} smaller than crop {crop_size}; pad first")
    y = rng.randint(0, h - crop_size[0])
    x = rng.randint(0, w - crop_size[1])
    return (image[y:y + crop_size[0], x:x + crop_size[1]],
            label[y:y + crop_size[0], x:x + crop_size[1]])


def random_mirror(image_chw, label, rng=None):
    """Flip image (C, H, W) and label (H, W) horizontally together with p = 0.5.

    # faithful: the step is ``np.random.choice(2) * 2 - 1`` (-1 flips, +1 keeps), as the original.
    """
    step = int((rng or np.random).choice(2)) * 2 - 1
    return image_chw[:, :, ::step], label[:, ::step]
