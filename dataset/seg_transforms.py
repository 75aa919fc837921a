# New (no OCNet counterpart): the sssegmentation / mmseg training pipeline of sssegmentation's OCRNet
# configurations, on NumPy arrays, reusing dataset/transforms.py for I/O and cv2-exact resizing.
# MIT licence.
"""OCRNet recipe transforms: Resize(random ratio, keep ratio) -> RandomCrop(cat_max_ratio) ->
RandomFlip -> PhotoMetricDistortion -> Normalize(mean/std, RGB) -> HWC->CHW -> centred Padding.

Randomness comes from ``rng`` (default the global ``np.random``, which train.py seeds per sample);
every function takes a ``numpy.random.RandomState``-like object.

Documented deviations / choices:

* Colour conversion for the saturation and hue steps is an exact float port of OpenCV's 8-bit
  RGB<->HSV formulas (H in [0, 180), S, V in [0, 255], rounded); OpenCV's fixed-point tables may
  differ by one level on some pixels. sssegmentation converts its *BGR* array with
  ``COLOR_RGB2HSV`` (the spec's quirk); we read RGB and convert it as RGB. The saturation step is
  order-invariant and the hue shift is symmetric, so the sample distribution is the same.
* RandomCrop follows mmseg's ``cat_max_ratio`` loop: up to 10 candidate crops are checked; the
  first whose most frequent non-ignore class covers < 75 % of the labelled pixels (and that has at
  least two classes) is used; if none passes, one more random crop is used unchecked.
* Padding is centred (sssegmentation), not bottom-right (mmseg): image 0 after normalisation,
  label ``ignore_label``; the extra odd pixel goes to the bottom / right.
"""
from __future__ import annotations

import numpy as np

from . import transforms as T

IMAGENET_MEAN = (123.675, 116.28, 103.53)   # RGB
IMAGENET_STD = (58.395, 57.12, 57.375)


def rescale_size(h, w, scale):
    """Keep-ratio output (h', w') fitting ``scale`` = (long, short) edges (mmcv ``rescale_size``).

    f = min(long / max(h, w), short / min(h, w)); h' = int(h * f + 0.5), w' = int(w * f + 0.5).
    """
    long_edge, short_edge = max(scale), min(scale)
    f = min(long_edge / max(h, w), short_edge / min(h, w))
    return int(h * f + 0.5), int(w * f + 0.5)


def resize_keep_ratio(image, label, scale):
    """Resize image (cv2 INTER_LINEAR) and label (INTER_NEAREST) keep-ratio into ``scale``."""
    size = rescale_size(image.shape[0], image.shape[1], scale)
    image = T.resize_linear(image, size=size)
    return image, (None if label is None else T.resize_nearest(label, size=size))


def random_resize(image, label, base_scale=(2048, 512), ratio_range=(0.5, 2.0), rng=None):
    """Resize keep-ratio into ``base_scale * r``, r ~ U(ratio_range) (edge lengths truncated)."""
    rng = rng or np.random
    r = rng.random_sample() * (ratio_range[1] - ratio_range[0]) + ratio_range[0]
    scale = (int(base_scale[0] * r), int(base_scale[1] * r))
    return resize_keep_ratio(image, label, scale)


def _crop_box(shape, crop_size, rng):
    margin_h, margin_w = max(shape[0] - crop_size[0], 0), max(shape[1] - crop_size[1], 0)
    y, x = rng.randint(0, margin_h + 1), rng.randint(0, margin_w + 1)
    return y, min(y + crop_size[0], shape[0]), x, min(x + crop_size[1], shape[1])


def random_crop(image, label, crop_size, cat_max_ratio=0.75, ignore_label=255, tries=10, rng=None):
    """Random crop of at most ``crop_size``; class-balance check as described in the module doc."""
    rng = rng or np.random
    y0, y1, x0, x1 = _crop_box(label.shape, crop_size, rng)
    if cat_max_ratio < 1.0:
        for _ in range(tries):
            classes, counts = np.unique(label[y0:y1, x0:x1], return_counts=True)
            counts = counts[classes != ignore_label]
            if len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio:
                break
            y0, y1, x0, x1 = _crop_box(label.shape, crop_size, rng)
    return image[y0:y1, x0:x1], label[y0:y1, x0:x1]


def random_flip(image, label, prob=0.5, rng=None):
    """Horizontal flip of image (H, W, C) and label (H, W) together with probability ``prob``."""
    if (rng or np.random).rand() < prob:
        return image[:, ::-1], label[:, ::-1]
    return image, label


def rgb_to_hsv(image):
    """OpenCV 8-bit ``COLOR_RGB2HSV``: H = hue/2 in [0, 180), S = 255*(V-min)/V, V = max."""
    rgb = image.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(-1)
    diff = v - rgb.min(-1)
    s = np.where(v > 0, 255.0 * diff / np.maximum(v, 1e-12), 0.0)
    d = np.maximum(diff, 1e-12)
    h = np.where(v == r, 60.0 * (g - b) / d,
                 np.where(v == g, 120.0 + 60.0 * (b - r) / d, 240.0 + 60.0 * (r - g) / d))
    h = np.where(diff == 0, 0.0, h)
    h = np.where(h < 0, h + 360.0, h)
    hsv = np.stack([np.rint(h / 2.0) % 180, np.rint(s), v], axis=-1)
    return hsv.astype(np.uint8)


def hsv_to_rgb(hsv):
    """OpenCV 8-bit ``COLOR_HSV2RGB`` (H in [0, 180)), rounded to uint8."""
    h = hsv[..., 0].astype(np.float64) * 2.0 / 60.0
    s, v = hsv[..., 1].astype(np.float64) / 255.0, hsv[..., 2].astype(np.float64)
    i = np.floor(h).astype(np.int64) % 6
    f = h - np.floor(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros(hsv.shape, np.float64)
    for k, (rr, gg, bb) in enumerate(choices):
        m = i == k
        out[..., 0][m], out[..., 1][m], out[..., 2][m] = rr[m], gg[m], bb[m]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _convert(image, alpha=1.0, beta=0.0):
    """mmseg ``convert``: float32 * alpha + beta, clip to [0, 255], truncate to uint8."""
    return np.clip(image.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def photometric_distortion(image, brightness_delta=32, contrast_range=(0.5, 1.5),
                           saturation_range=(0.5, 1.5), hue_delta=18, rng=None):
    """mmseg PhotoMetricDistortion on an RGB uint8 image; each step applies with p = 0.5.

    brightness +U(-32, 32); then contrast x U(0.5, 1.5) either first or last (p = 0.5 each);
    saturation x U(0.5, 1.5) and hue + randint(-18, 18) (mod 180) in HSV.
    """
    rng = rng or np.random
    img = image
    if rng.randint(2):
        img = _convert(img, beta=rng.uniform(-brightness_delta, brightness_delta))
    mode = rng.randint(2)
    if mode == 1 and rng.randint(2):
        img = _convert(img, alpha=rng.uniform(*contrast_range))
    if rng.randint(2):
        hsv = rgb_to_hsv(img)
        hsv[..., 1] = _convert(hsv[..., 1], alpha=rng.uniform(*saturation_range))
        img = hsv_to_rgb(hsv)
    if rng.randint(2):
        hsv = rgb_to_hsv(img)
        hsv[..., 0] = (hsv[..., 0].astype(np.int64) + rng.randint(-hue_delta, hue_delta)) % 180
        img = hsv_to_rgb(hsv)
    if mode == 0 and rng.randint(2):
        img = _convert(img, alpha=rng.uniform(*contrast_range))
    return img


def normalize(image, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """RGB uint8 (H, W, 3) -> float32 ``(image - mean) / std`` (ImageNet statistics, RGB order)."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"normalize expects (H, W, 3), got {image.shape}")
    return ((image.astype(np.float64) - np.asarray(mean)) / np.asarray(std)).astype(np.float32)


def pad_centred(image_chw, label, crop_size, ignore_label=255):
    """Centre ``image`` (C, h, w) and ``label`` (h, w) on a ``crop_size`` canvas (0 / ignore)."""
    h, w = image_chw.shape[1:]
    ph, pw = max(crop_size[0] - h, 0), max(crop_size[1] - w, 0)
    # faithful: sssegmentation pads on all sides (centred), mmseg bottom/right only
    top, left = ph // 2, pw // 2
    pads = ((top, ph - top), (left, pw - left))
    image_chw = np.pad(image_chw, ((0, 0),) + pads, constant_values=0)
    if label is not None:
        label = np.pad(label, pads, constant_values=ignore_label)
    return image_chw, label


def train_pipeline(image, label, crop_size, base_scale, ratio_range=(0.5, 2.0), cat_max_ratio=0.75,
                   ignore_label=255, scale=True, mirror=True, photometric=True, rng=None):
    """The full training pipeline: RGB uint8 image (H, W, 3) + train-id label (H, W) ->
    (float32 (3, ch, cw), uint8 (ch, cw))."""
    if scale:
        image, label = random_resize(image, label, base_scale, ratio_range, rng)
    else:
        image, label = resize_keep_ratio(image, label, base_scale)
    image, label = random_crop(image, label, crop_size, cat_max_ratio, ignore_label, rng=rng)
    if mirror:
        image, label = random_flip(image, label, rng=rng)
    if photometric:
        image = photometric_distortion(np.ascontiguousarray(image), rng=rng)
    image = normalize(image).transpose(2, 0, 1)                       # (3, h, w)
    return pad_centred(image, label, crop_size, ignore_label)
