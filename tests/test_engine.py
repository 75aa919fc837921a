"""utils/engine.py: crop to the original size, argmax, and upsampling to a label of another size."""
import torch
import torch.nn.functional as F
from torch import nn

from network import SegOutput
from utils.engine import predict_labels


class Fixed(nn.Module):
    """Returns fixed logits (1, 3, 4, 4) whatever the input; has a parameter so it has a device."""

    def __init__(self, logits):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.logits = logits

    def forward(self, x):
        return SegOutput(self.logits * 0, self.logits.expand(x.shape[0], -1, -1, -1))


OPTIONS = dict(num_classes=3, scales=[1.0], flip=False, tile_size=(8, 8), mode="whole")


def test_crop_then_upsample_to_label_size():
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 4, 4)
    model = Fixed(logits)
    images = torch.zeros(1, 3, 8, 8)
    # oracle: upsample to the 8x8 input (align_corners=True), crop the 6x7 original, upsample to 12x14
    full = F.interpolate(logits, size=(8, 8), mode="bilinear", align_corners=True)[:, :, :6, :7]
    expected = F.interpolate(full, size=(12, 14), mode="bilinear", align_corners=True)[0].argmax(0)
    out = predict_labels(model, images, [(6, 7, 3)], True, **OPTIONS, label_shapes=[(12, 14)])
    assert out[0].shape == (12, 14) and torch.equal(out[0], expected)
    plain = predict_labels(model, images, [(6, 7, 3)], True, **OPTIONS)
    assert torch.equal(plain[0], full[0].argmax(0))
