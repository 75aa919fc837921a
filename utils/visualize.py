# Port of get_palette (eval.py / generate_submit.py) and the trainId -> labelId map of
# OCNet.pytorch (679a45b). MIT licence, after openseg-group/OCNet.pytorch.
"""Palettes and paletted PNG output for predictions.

* ``get_palette()``: the Cityscapes colours of the 19 trainIds, then index 19 = (105, 105, 105), the
  rest black (eval.py's ``--store-output`` maps, trainId values).
* ``get_voc_palette(n)``: the PASCAL-VOC bit-interleaving colormap that generate_submit.py attaches
  to its labelId PNGs. # faithful: purely cosmetic; the server reads the pixel values.
* ``trainid_to_labelid`` / ``labelid_to_trainid``: re-exported from ``dataset.labels`` (one table).
* ``log_training_images``: the TensorBoard image grid of train.py (input, ground truth, prediction).
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
    "denormalize",
    "log_training_images",
    "training_image_grid",
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


# --------------------------------------------------------------------------- training image logs
def denormalize(image_chw, dataset):
    """A normalised (3, H, W) network input of ``dataset`` back to (H, W, 3) uint8 RGB: the dataset
    class says how it normalised (``NORMALISATION``: the original's Caffe means, or ImageNet mean/std
    of the OCRNet recipe)."""
    from dataset import dataset_class
    from dataset.seg_transforms import IMAGENET_MEAN, IMAGENET_STD
    from dataset.transforms import CAFFE_MEAN
    img = np.asarray(image_chw, dtype=np.float64).transpose(1, 2, 0)     # (H, W, 3)
    if dataset_class(dataset).NORMALISATION == "caffe":
        img = img + np.asarray(CAFFE_MEAN)
    else:
        img = img * np.asarray(IMAGENET_STD) + np.asarray(IMAGENET_MEAN)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def dataset_palette(dataset):
    """(256, 3) uint8 colours of ``dataset``'s label images (the class's ``PALETTE``): the Cityscapes
    palette or VOC's (also used for ADE20K)."""
    from dataset import dataset_class
    flat = get_palette() if dataset_class(dataset).PALETTE == "cityscapes" else get_voc_palette()
    return np.asarray(flat, dtype=np.uint8).reshape(-1, 3)


def training_image_grid(images, labels, logits, dataset, num_images=2):
    """(rows * H, 3 * W, 3) uint8 grid: one row per sample (at most ``num_images``) with the input
    (de-normalised), the ground truth and the prediction (argmax of ``logits``, upsampled
    bilinearly to the label size) in the dataset palette; ignored pixels (255) keep colour 255."""
    import torch.nn.functional as F
    n = min(int(num_images), images.shape[0])
    labels = labels[:n].detach().long().cpu().numpy()                    # (n, H, W)
    logits = logits[:n].detach().float()
    if tuple(logits.shape[-2:]) != labels.shape[-2:]:
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=True)
    preds = logits.argmax(1).cpu().numpy()                               # (n, H, W)
    palette = dataset_palette(dataset)
    rows = []
    for i in range(n):
        gt = palette[np.clip(labels[i], 0, 255)]
        rows.append(np.concatenate([denormalize(images[i].detach().float().cpu().numpy(), dataset), gt,
                                    palette[preds[i]]], axis=1))
    return np.concatenate(rows, axis=0)


def log_training_images(writer, step, every, images, labels, outputs, dataset, num_images):
    """TensorBoard image ``train/input_gt_pred`` every ``every`` steps (none without a writer or
    with ``num_images`` 0). ``outputs`` is the model output (the main head is taken). Returns
    whether it logged."""
    if writer is None or num_images <= 0 or every <= 0 or step % every:
        return False
    from network import main_output
    grid = training_image_grid(images, labels, main_output(outputs), dataset, num_images)
    writer.add_image("train/input_gt_pred", grid, step, dataformats="HWC")
    return True
