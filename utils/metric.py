# Port of get_confusion_matrix and the mIoU of OCNet.pytorch eval.py (679a45b), in torch.
# MIT licence, after openseg-group/OCNet.pytorch.
"""Dataset-level confusion matrix and IoU.

``cm[g, p]`` counts pixels with ground truth ``g`` predicted as ``p`` (rows: ground truth), built
with one ``bincount(g * C + p)`` per update and accumulated over the whole set. Then

    IoU_c = tp_c / max(1, gt_c + pred_c - tp_c),  tp_c = cm[c, c], gt_c = sum_p cm[c, p],
    pred_c = sum_g cm[g, c]

* ``miou()``: plain mean over all classes. # faithful: an absent class (gt_c = pred_c = 0) counts 0,
  as in the original; on the full Cityscapes val set every class is present.
* ``miou_present()``: mean over classes with gt_c > 0 (the number to read on small or synthetic sets).
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from utils.errors import DatasetError


def get_confusion_matrix(gt, pred, num_classes, ignore_label=255):
    """(C, C) int64 confusion matrix on ``gt``'s device; pixels with ``gt == ignore_label`` dropped.

    Args:
        gt, pred: integer tensors (or arrays) of the same shape; pred in [0, C).
    Raises:
        ValueError: for a shape mismatch or values outside [0, C) (other than the ignore label).
    """
    gt, pred = torch.as_tensor(gt), torch.as_tensor(pred, device=torch.as_tensor(gt).device)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {tuple(gt.shape)} and prediction {tuple(pred.shape)} differ")
    gt, pred = gt.reshape(-1).long(), pred.reshape(-1).long()
    keep = gt != ignore_label
    gt, pred = gt[keep], pred[keep]
    for what, v in (("ground truth", gt), ("prediction", pred)):
        if v.numel() and (int(v.min()) < 0 or int(v.max()) >= num_classes):
            raise DatasetError(f"{what} has values outside [0, {num_classes}) "
                             f"(min {int(v.min())}, max {int(v.max())}; ignore label {ignore_label})")
    counts = torch.bincount(gt * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def iou_from_confusion(cm):
    """Per-class IoU (float64) from a confusion matrix (rows: ground truth)."""
    cm = torch.as_tensor(cm).double()
    tp = cm.diagonal()
    return tp / torch.clamp(cm.sum(1) + cm.sum(0) - tp, min=1.0)


class ConfusionMatrix:
    """Accumulates a confusion matrix over a dataset.

    Args:
        num_classes: C. ignore_label: ground-truth value to skip.
        device: where the (C, C) int64 matrix lives (moves to the first update's device if None).
    """

    def __init__(self, num_classes, ignore_label=255, device=None):
        self.num_classes, self.ignore_label = int(num_classes), ignore_label
        self.mat = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64, device=device)
        self._placed = device is not None

    def reset(self):
        self.mat.zero_()
        return self

    def update(self, gt, pred):
        """Add the pixels of one batch (any shape; gt and pred aligned)."""
        cm = get_confusion_matrix(gt, pred, self.num_classes, self.ignore_label)
        if not self._placed:
            self.mat, self._placed = self.mat.to(cm.device), True
        self.mat += cm.to(self.mat.device)
        return self

    def reduce(self):
        """Sum the matrices of all processes when torch.distributed is initialised (in place)."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(self.mat, op=dist.ReduceOp.SUM)
        return self

    def iou(self):
        """Per-class IoU, float64 tensor (C,)."""
        return iou_from_confusion(self.mat)

    def miou(self):
        """Mean IoU over all C classes (absent classes count 0, as the original)."""
        return float(self.iou().mean())

    def present(self):
        """Bool (C,): classes that occur in the ground truth."""
        return self.mat.sum(1) > 0

    def miou_present(self):
        """Mean IoU over the classes present in the ground truth (nan if none)."""
        present = self.present().to(self.mat.device)
        if not bool(present.any()):
            return float("nan")
        return float(self.iou()[present].mean())
