# Port of OCNet.pytorch utils/loss.py (679a45b): OhemCrossEntropy2d, in torch on the input's device.
# MIT licence, after openseg-group/OCNet.pytorch.
"""Online hard example mining (OHEM) cross entropy, with the original's semantics.

For the pixels of one call (one GPU chunk in the original, one process's batch under DDP):

1. ``p`` = softmax probability of the ground-truth class at each valid (non-ignored) pixel.
2. If ``min_kept >= #valid``: keep every valid pixel (no thresholding at all).
3. Else ``threshold = thresh``; if ``min_kept > 0`` and ``p_k`` (the ``min_kept``-th smallest ``p``,
   i.e. sorted index ``min(#valid, min_kept) - 1``) exceeds ``thresh``, ``threshold = p_k``.
4. Keep pixels with ``p <= threshold`` (ties at the threshold are kept), ignore the rest, and return
   the (weighted) cross entropy ``sum_i w_{y_i} nll_i / sum_i w_{y_i}`` over the kept pixels.

The selection is made without gradient (the original worked on ``.data`` in NumPy). All comparisons
are in the logits' dtype, as the original compared float32 arrays with a Python float.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from utils.errors import ConfigError

# faithful: the 19 Cityscapes class weights of the original (trainId order), defined once here.
CITYSCAPES_CLASS_WEIGHTS = (0.8373, 0.918, 0.866, 1.0345, 1.0166, 0.9969, 0.9754, 1.0489, 0.8786,
                            1.0023, 0.9539, 0.9843, 1.1116, 0.9037, 1.0865, 1.0955, 1.0865, 1.1529,
                            1.0507)


def class_weight_tensor(use_weight: bool, num_classes: int | None = None):
    """The class-weight tensor (float32) or None; num_classes must be 19 when weighting."""
    if not use_weight:
        return None
    if num_classes is not None and num_classes != len(CITYSCAPES_CLASS_WEIGHTS):
        raise ConfigError(f"use_weight=True applies the 19 Cityscapes class weights, but the logits "
                         f"have {num_classes} classes; pass --use-weight False for other datasets")
    return torch.tensor(CITYSCAPES_CLASS_WEIGHTS, dtype=torch.float32)


def weighted_cross_entropy(logits, target, weight, ignore_index):
    """``sum w_y nll / sum w_y`` over pixels with ``target != ignore_index`` (NaN if there are none,
    like the original). ``weight`` None means plain mean."""
    if weight is not None:
        class_weight_tensor(True, logits.shape[1])
        weight = weight.to(device=logits.device, dtype=logits.dtype)
    return F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index)


@torch.no_grad()
def ohem_target(logits, target, ignore_label=255, thresh=0.6, min_kept=0):
    """The OHEM-filtered target: ``target`` with easy pixels set to ``ignore_label`` (see module doc).

    Args:
        logits: (N, C, H, W), already at the label size.
        target: (N, H, W) integer labels.
    """
    valid = target != ignore_label                                      # (N, H, W)
    prob = torch.softmax(logits.detach(), dim=1)                        # (N, C, H, W)
    gt = torch.where(valid, target, torch.zeros_like(target)).long()
    p = prob.gather(1, gt.unsqueeze(1)).squeeze(1)                      # (N, H, W)
    threshold = torch.tensor(float(thresh), dtype=p.dtype, device=p.device)
    if min_kept > 0:
        # No host synchronisation: the min_kept smallest probabilities of the valid pixels (the
        # invalid ones count as +inf), then the k-th with k = min(#valid, min_kept) picked on the
        # device. When #valid <= min_kept every valid pixel is kept (threshold +inf), as in the
        # original, which then returned the target unchanged.
        p_valid = torch.where(valid, p, torch.full_like(p, float("inf"))).flatten()
        smallest = torch.topk(p_valid, min(min_kept, p_valid.numel()), largest=False).values
        num_valid = valid.sum()
        k = torch.clamp(torch.minimum(num_valid, torch.tensor(min_kept, device=p.device)) - 1, min=0)
        kth = smallest.gather(0, k.reshape(1)).squeeze(0)
        threshold = torch.where(num_valid <= min_kept, torch.full_like(threshold, float("inf")),
                                torch.maximum(threshold, kth))
    keep = valid & (p <= threshold)
    return torch.where(keep, target, torch.full_like(target, ignore_label))


class OhemCrossEntropy2d(nn.Module):
    """OHEM cross entropy (original name and defaults ``thresh=0.6, min_kept=0``).

    Args:
        ignore_label: label value excluded from the loss.
        thresh: keep pixels whose ground-truth probability is ``<= thresh`` ...
        min_kept: ... or the ``min_kept`` hardest ones if that is more (see module doc).
        use_weight: weight the CE with ``CITYSCAPES_CLASS_WEIGHTS``.
    """

    def __init__(self, ignore_label=255, thresh=0.6, min_kept=0, use_weight=True):
        super().__init__()
        self.ignore_label = int(ignore_label)
        self.thresh = float(thresh)
        self.min_kept = int(min_kept)
        if self.min_kept < 0:
            raise ConfigError(f"min_kept (--ohem-keep) must be >= 0, got {min_kept}")
        self.register_buffer("weight", class_weight_tensor(use_weight), persistent=False)

    def forward(self, predict, target):
        """predict (N, C, H, W) logits at the label size; target (N, H, W) integer labels."""
        if predict.shape[-2:] != target.shape[-2:]:
            raise ValueError(f"OHEM logits {tuple(predict.shape)} and target {tuple(target.shape)} "
                             "differ in size; upsample the logits first")
        target = ohem_target(predict, target, self.ignore_label, self.thresh, self.min_kept)
        return weighted_cross_entropy(predict, target.long(), self.weight, self.ignore_label)
