# Port of the id_to_trainid dicts in OCNet.pytorch dataset/cityscapes.py, eval.py and
# generate_submit.py (679a45b). MIT licence, after openseg-group/OCNet.pytorch.
"""The Cityscapes label table: labelId <-> trainId, class names.

Built once from the official table in ``cityscapesscripts.helpers.labels`` (the original wrote the
same dict out five times). Every other module (transforms, evaluation, submission, palettes) uses
the lookup tables defined here.

* ``*_gtFine_labelIds.png`` / ``*_gtCoarse_labelIds.png`` hold labelIds 0..33. The only negative id,
  -1 (license plate), is never written into those PNGs: cityscapesscripts' ``json2labelImg`` skips
  labels with ``id < 0`` (the plate stays part of its vehicle). Any stored value > 33 is therefore
  not a Cityscapes labelId (a common cause: a ``*_labelTrainIds.png`` or colour PNG in the list).
* labelIds without a trainId (unlabeled, ego vehicle, parking, ...) map to the ignore label 255.
"""
from __future__ import annotations

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CS_LABELS

from utils.errors import DatasetError

NUM_CLASSES = 19
IGNORE_LABEL = 255
MAX_LABEL_ID = 33  # largest labelId stored in a Cityscapes labelIds PNG

# {labelId: trainId}, including -1 (license plate) -> 255, exactly like the original's dict.
ID_TO_TRAINID: dict[int, int] = {
    lab.id: (lab.trainId if 0 <= lab.trainId < NUM_CLASSES else IGNORE_LABEL)
    for lab in _CS_LABELS
}
# {trainId: labelId} for the 19 evaluated classes (what the test server expects).
TRAINID_TO_ID: dict[int, int] = {t: i for i, t in ID_TO_TRAINID.items() if t != IGNORE_LABEL}

CLASS_NAMES: tuple[str, ...] = tuple(
    next(lab.name for lab in _CS_LABELS if lab.id == TRAINID_TO_ID[t]) for t in range(NUM_CLASSES))
# Cityscapes colours of the 19 train classes, in trainId order (RGB).
CLASS_COLORS: tuple[tuple[int, int, int], ...] = tuple(
    tuple(next(lab.color for lab in _CS_LABELS if lab.id == TRAINID_TO_ID[t]))
    for t in range(NUM_CLASSES))

# uint8 lookup tables of 256 entries (vectorised mapping, NumPy-2 safe: no -1 is ever stored).
_ID_LUT = np.full(256, IGNORE_LABEL, dtype=np.uint8)
for _i, _t in ID_TO_TRAINID.items():
    if _i >= 0:
        _ID_LUT[_i] = _t
_TRAIN_LUT = np.zeros(256, dtype=np.uint8)
for _t, _i in TRAINID_TO_ID.items():
    _TRAIN_LUT[_t] = _i
# trainId 255 (ignore) -> labelId 0 ("unlabeled"): the original inverse dict held 255 -> -1, and
# `uint8_array[mask] = -1` raises OverflowError under NumPy 2. 0 is a valid id the server ignores.
_TRAIN_LUT[IGNORE_LABEL] = 0


def _describe_bad(values: np.ndarray) -> str:
    bad = np.unique(values)
    shown = ", ".join(str(int(v)) for v in bad[:8])
    return shown + (", ..." if bad.size > 8 else "")


def id_to_train_id(label: np.ndarray, source: str | None = None) -> np.ndarray:
    """Map a labelId map (H, W) to trainIds (uint8, 255 = ignore) with a lookup table.

    Args:
        label: integer array of Cityscapes labelIds (0..33).
        source: file name used in the error message.
    Raises:
        DatasetError (a ValueError): if a value is not a Cityscapes labelId (< 0 or > 33), naming ``source``.
    """
    label = np.asarray(label)
    if label.dtype.kind not in "ui":
        raise DatasetError(f"{source or 'label'}: label map must hold integers, got dtype {label.dtype}")
    if label.size and (label.min() < 0 or label.max() > MAX_LABEL_ID):
        bad = label[(label < 0) | (label > MAX_LABEL_ID)]
        raise DatasetError(
            f"{source or 'label'}: values {_describe_bad(bad)} are not Cityscapes labelIds (0..33); "
            "the list must point at *_labelIds.png files (not labelTrainIds or colour PNGs)")
    return _ID_LUT[label]


def train_id_to_label_id(pred: np.ndarray) -> np.ndarray:
    """Map trainIds (0..18, 255) to Cityscapes labelIds (uint8) for the test server.

    255 (ignore) becomes 0 ("unlabeled"). Any other value outside 0..18 raises ValueError.
    """
    pred = np.asarray(pred)
    if pred.dtype.kind not in "ui":
        raise ValueError(f"trainId map must hold integers, got dtype {pred.dtype}")
    bad = ((pred < 0) | (pred >= NUM_CLASSES)) & (pred != IGNORE_LABEL)
    if bad.any():
        raise ValueError(f"values {_describe_bad(pred[bad])} are not trainIds (0..18 or 255)")
    return _TRAIN_LUT[pred.astype(np.int64)]
