# Port of OCNet.pytorch utils/criterion.py and the criterion choice in train.py (679a45b).
# MIT licence, after openseg-group/OCNet.pytorch.
"""Training criteria with the original semantics, in torch on the input's device.

Every prediction is first upsampled bilinearly to the label size ``(h, w)``.
# faithful: with align_corners=True for OCNet (the original's torch-0.4 branch); the value comes
# from ``model.align_corners`` so OCR models (False) share the code.
The CE is the weighted mean ``sum w_y nll / sum w_y`` over non-ignored pixels; the DSN criteria
take a ``network.SegOutput`` (or an ``[aux, main]`` pair, the original's order) and return
``dsn_weight * L(preds.aux) + L(preds.main)``.

Under DDP each process computes the loss on its own batch, like the original computed it per GPU
chunk (``DataParallelCriterion`` then averaged the chunks); OHEM's ``min_kept`` is per call.
"""
from __future__ import annotations

import logging

import torch.nn.functional as F
from torch import nn

from network.outputs import as_seg_output

from .loss import (
    CITYSCAPES_CLASS_WEIGHTS,
    OhemCrossEntropy2d,
    class_weight_tensor,
    weighted_cross_entropy,
)

__all__ = ["CITYSCAPES_CLASS_WEIGHTS", "CriterionCrossEntropy", "CriterionDSN", "CriterionOhemDSN",
           "CriterionOhemDSN_single", "OhemCrossEntropy2d", "build_criterion", "upsample_to"]
log = logging.getLogger(__name__)


def upsample_to(pred, target, align_corners=True):
    """Bilinearly resize logits (N, C, h', w') to the target's (h, w)."""
    size = target.shape[-2:]
    if pred.shape[-2:] == size:
        return pred
    return F.interpolate(pred, size=size, mode="bilinear", align_corners=align_corners)


class _Base(nn.Module):
    def __init__(self, ignore_index, use_weight, align_corners):
        super().__init__()
        self.ignore_index = int(ignore_index)
        self.align_corners = bool(align_corners)
        self.register_buffer("weight", class_weight_tensor(use_weight), persistent=False)

    def ce(self, pred, target):
        pred = upsample_to(pred, target, self.align_corners)
        return weighted_cross_entropy(pred, target.long(), self.weight, self.ignore_index)


class CriterionCrossEntropy(_Base):
    """Weighted CE on a single prediction (the baseline model)."""

    def __init__(self, ignore_index=255, use_weight=True, align_corners=True):
        super().__init__(ignore_index, use_weight, align_corners)

    def forward(self, preds, target):
        if isinstance(preds, (list, tuple)):
            raise TypeError("CriterionCrossEntropy expects one prediction tensor, got a list; "
                            "use CriterionDSN for models with an auxiliary head")
        return self.ce(preds, target)


class CriterionDSN(_Base):
    """``dsn_weight * CE(preds.aux) + CE(preds.main)``."""

    def __init__(self, ignore_index=255, use_weight=True, dsn_weight=0.4, align_corners=True):
        super().__init__(ignore_index, use_weight, align_corners)
        self.dsn_weight = float(dsn_weight)

    def forward(self, preds, target):
        aux, main = as_seg_output(preds, type(self).__name__)
        return self.dsn_weight * self.ce(aux, target) + self.ce(main, target)


class CriterionOhemDSN(_Base):
    """``dsn_weight * OHEM(preds.aux) + OHEM(preds.main)``: the same OHEM CE on both heads."""

    def __init__(self, ignore_index=255, thres=0.7, min_kept=100000, dsn_weight=0.4,
                 use_weight=True, align_corners=True):
        super().__init__(ignore_index, False, align_corners)
        self.dsn_weight = float(dsn_weight)
        self.criterion = OhemCrossEntropy2d(ignore_index, thres, min_kept, use_weight=use_weight)

    def forward(self, preds, target):
        aux, main = as_seg_output(preds, type(self).__name__)
        target = target.long()
        loss1 = self.criterion(upsample_to(aux, target, self.align_corners), target)
        loss2 = self.criterion(upsample_to(main, target, self.align_corners), target)
        return self.dsn_weight * loss1 + loss2


class CriterionOhemDSN_single(_Base):
    """``dsn_weight * CE(preds.aux) + OHEM(preds.main)``: OHEM on the main head only."""

    def __init__(self, ignore_index=255, thres=0.7, min_kept=100000, dsn_weight=0.4,
                 use_weight=True, align_corners=True):
        # use_weight: the original had no such argument and always weighted both terms.
        super().__init__(ignore_index, use_weight, align_corners)
        self.dsn_weight = float(dsn_weight)
        self.criterion_ohem = OhemCrossEntropy2d(ignore_index, thres, min_kept, use_weight=use_weight)

    def forward(self, preds, target):
        aux, main = as_seg_output(preds, type(self).__name__)
        target = target.long()
        loss2 = self.criterion_ohem(upsample_to(main, target, self.align_corners), target)
        return self.dsn_weight * self.ce(aux, target) + loss2


def build_criterion(model, *, ohem=False, ohem_single=False, ohem_thres=0.7, ohem_keep=100000,
                    dsn_weight=0.4, use_weight=True, ignore_label=255):
    """Pick the criterion from the options and the built model (no method-name parsing).

    * ``model.has_aux`` False -> CriterionCrossEntropy (the original: no "dsn" in the method).
      # faithful: ``ohem`` is ignored for such models, as in the original (a warning is logged).
    * else ``ohem`` and ``ohem_single`` -> CriterionOhemDSN_single; ``ohem`` alone ->
      CriterionOhemDSN; otherwise CriterionDSN.
    ``use_weight`` (``--use-weight``) is honoured; the original ignored it and always weighted, which
    is what the default (True) keeps. ``ignore_label`` is passed on (the original used 255).
    The keywords are the flags' names (``--ohem-thres`` -> ``ohem_thres``); train.py passes them.
    """
    common = dict(ignore_index=ignore_label, use_weight=use_weight,
                  align_corners=model.align_corners)
    if not model.has_aux:
        if ohem:
            log.warning("--ohem has no effect on a model without an auxiliary head; using "
                        "CriterionCrossEntropy (as the original did)")
        return CriterionCrossEntropy(**common)
    if ohem and ohem_single:
        return CriterionOhemDSN_single(thres=ohem_thres, min_kept=ohem_keep, dsn_weight=dsn_weight,
                                       **common)
    if ohem:
        return CriterionOhemDSN(thres=ohem_thres, min_kept=ohem_keep, dsn_weight=dsn_weight,
                                **common)
    return CriterionDSN(dsn_weight=dsn_weight, **common)
