"""utils/engine.py: crop to the original size, argmax, and upsampling to a label of another size."""
import argparse

import torch
import torch.nn.functional as F
from torch import nn

from network import SegOutput

from utils.engine import predict_labels
from utils.options import predict_options


class Fixed(nn.Module):
    """Returns fixed logits (1, 3, 4, 4) whatever the input; has a parameter so it has a device."""

    def __init__(self, logits):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.logits = logits

    def forward(self, x):
        return SegOutput(self.logits * 0, self.logits.expand(x.shape[0], -1, -1, -1))


def args(**kw):
    base = dict(num_classes=3, use_ms=False, whole_scale=1.0, ms_scales=[0.75, 1.0, 1.25], use_flip=False,
                tile_size=(8, 8), predict_choice="whole")
    base.update(kw)
    return argparse.Namespace(**base)


def test_scales_from_flags():
    assert predict_options(args())["scales"] == [1.0]
    assert predict_options(args(whole_scale=0.5))["scales"] == [0.5]
    assert predict_options(args(use_ms=True))["scales"] == [0.75, 1.0, 1.25]
    assert predict_options(args(use_flip=True, predict_choice="sliding")) == dict(
        num_classes=3, scales=[1.0], flip=True, tile_size=(8, 8), mode="sliding")


def test_crop_then_upsample_to_label_size():
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 4, 4)
    model = Fixed(logits)
    images = torch.zeros(1, 3, 8, 8)
    # oracle: upsample to the 8x8 input (align_corners=True), crop the 6x7 original, upsample to 12x14
    full = F.interpolate(logits, size=(8, 8), mode="bilinear", align_corners=True)[:, :, :6, :7]
    expected = F.interpolate(full, size=(12, 14), mode="bilinear", align_corners=True)[0].argmax(0)
    out = predict_labels(model, images, [(6, 7, 3)], True, **predict_options(args()),
                         label_shapes=[(12, 14)])
    assert out[0].shape == (12, 14) and torch.equal(out[0], expected)
    plain = predict_labels(model, images, [(6, 7, 3)], True, **predict_options(args()))
    assert torch.equal(plain[0], full[0].argmax(0))
