"""utils/inference.py: whole / sliding / multi-scale + flip with tiny deterministic fake models."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from network import SegOutput
from utils.inference import (
    predict,
    predict_multi_scale,
    predict_sliding,
    predict_whole,
    scale_image,
    tile_boxes,
)


class Pixelwise(nn.Module):
    """logits[c] = (c + 1) * x[0] at full resolution; returns SegOutput(aux=99, main) like a *_dsn
    model (the inference must take .main)."""
    has_aux, align_corners = True, True

    def __init__(self, num_classes=3, bias_by_column=False):
        super().__init__()
        self.register_buffer("w", torch.arange(1.0, num_classes + 1).view(1, -1, 1, 1))
        self.bias_by_column = bias_by_column

    def forward(self, x):
        main = x[:, :1] * self.w
        if self.bias_by_column:                      # not flip-equivariant: + column index
            main = main + torch.arange(x.shape[-1], dtype=x.dtype)
        return SegOutput(torch.full_like(main, 99.0), main)


class Stride2(nn.Module):
    """Average-pool by 2 then a fixed 1x1 conv: logits at 1/2 resolution, a single tensor."""
    has_aux, align_corners = False, True

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        torch.nn.init.normal_(self.conv.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, x):
        return self.conv(F.avg_pool2d(x, 2))


def _ramp(h=8, w=12):
    """Image whose channel 0 is the column index (a linear ramp)."""
    x = torch.zeros(1, 3, h, w)
    x[:, 0] = torch.arange(float(w))
    return x


def test_tile_boxes_like_the_original():
    # 1.25 x 1024x2048 = 1280x2560 with 1024x2048 tiles: 2x2 tiles, the last shifted back.
    assert tile_boxes(1280, 2560, (1024, 2048)) == [(0, 1024, 0, 2048), (0, 1024, 512, 2560),
                                                    (256, 1280, 0, 2048), (256, 1280, 512, 2560)]
    assert tile_boxes(1024, 2048, (1024, 2048)) == [(0, 1024, 0, 2048)]
    assert tile_boxes(500, 900, (1024, 2048)) == [(0, 500, 0, 900)]      # smaller: one padded tile
    assert tile_boxes(10, 14, (6, 8)) == [(0, 6, 0, 8), (0, 6, 6, 14), (4, 10, 0, 8), (4, 10, 6, 14)]


def test_sliding_equals_whole_when_one_tile_covers_the_image():
    x = torch.randn(2, 3, 16, 20, generator=torch.Generator().manual_seed(1))
    model = Stride2()
    whole = predict_whole(model, x)
    assert whole.shape == (2, 4, 16, 20)
    torch.testing.assert_close(predict_sliding(model, x, (16, 20)), whole)
    # A pixelwise model is also unaffected by zero padding and by overlapping, count-averaged tiles.
    pm = Pixelwise()
    torch.testing.assert_close(predict_sliding(pm, x, (32, 32)), pm(x).main)
    torch.testing.assert_close(predict_sliding(pm, x, (6, 8)), pm(x).main)


def test_whole_upsamples_logits_to_input_size():
    x = torch.randn(1, 3, 8, 10, generator=torch.Generator().manual_seed(2))
    model = Stride2()
    expected = F.interpolate(model(x), size=(8, 10), mode="bilinear", align_corners=True)
    torch.testing.assert_close(predict_whole(model, x), expected)


def test_scale_image_is_corner_aligned_with_rounded_size():
    x = _ramp(8, 12)
    y = scale_image(x, 0.75)                      # round(6.0), round(9.0)
    assert y.shape[-2:] == (6, 9)
    # Corner-aligned linear resize of a ramp 0..11 is the ramp 0..11 over 9 samples: 11 * j / 8.
    torch.testing.assert_close(y[0, 0, 0], torch.arange(9.0) * 11 / 8)
    assert scale_image(x, 1.25).shape[-2:] == (10, 15)


def test_multi_scale_and_flip_average_raw_logits():
    # Linear resizes keep a ramp exactly and the model is pixelwise, so every scale (whole for
    # 0.75 / 1, sliding tiles for 1.25) and the un-flipped flip pass give (c + 1) * ramp; the
    # average of the 6 passes is that again. Forgetting to un-flip would give a constant, summing
    # instead of averaging 3x the values, a softmax values in (0, 1).
    x = _ramp()
    expected = torch.arange(1.0, 4).view(1, 3, 1, 1) * x[:, :1]
    out = predict_multi_scale(Pixelwise(), x, (0.75, 1.0, 1.25), flip=True, tile_size=(6, 8))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_flip_pass_is_flipped_back():
    # model(x) = x0 * w + column index b_j. Flip pass flipped back: x0 * w + b_{W-1-j}; averaged
    # 0.5 / 0.5 the bias becomes (j + W - 1 - j) / 2 = (W - 1) / 2 everywhere: x0 * w + 5.5.
    x = torch.randn(1, 3, 4, 12, generator=torch.Generator().manual_seed(3))
    model = Pixelwise(bias_by_column=True)
    out = predict(model, x, scales=(1.0,), flip=True)
    expected = torch.arange(1.0, 4).view(1, 3, 1, 1) * x[:, :1] + 5.5
    torch.testing.assert_close(out, expected)
    no_flip = predict(model, x, scales=(1.0,), flip=False)
    torch.testing.assert_close(no_flip, expected - 5.5 + torch.arange(12.0))


def test_predict_modes_and_checks():
    x = _ramp()
    model = Pixelwise()
    whole_125 = predict(model, x, scales=(1.25,))                  # --whole-scale 1.25: whole image
    torch.testing.assert_close(whole_125, predict_whole(model, x, 1.25))
    sliding = predict(model, x, scales=(1.0,), tile_size=(6, 8), mode="sliding")
    torch.testing.assert_close(sliding, predict_sliding(model, x, (6, 8)))
    with pytest.raises(ValueError, match="--num-classes"):
        predict(model, x, num_classes=19)
    with pytest.raises(ValueError, match="--predict-choice"):
        predict(model, x, mode="tiles")


@pytest.mark.cuda
def test_on_cuda():
    x = _ramp().cuda()
    out = predict(Pixelwise().cuda(), x, scales=(0.75, 1.0, 1.25), flip=True, tile_size=(6, 8))
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), torch.arange(1.0, 4).view(1, 3, 1, 1) * _ramp()[:, :1],
                               atol=1e-5, rtol=1e-5)
