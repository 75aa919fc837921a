"""network/resnet.py: the one configurable dilated ResNet, checked against independent layouts."""
import os

import pytest
import torch
import torchvision
from torch import nn

from network.resnet import ResNet, count_parameters, stride8_size

SSSEG_KEYS = os.path.join(os.path.dirname(__file__), "data", "ssseg_ocrnet_keys", "{}.txt")


def _shapes(sd, drop_nbt=True):
    return {k: tuple(v.shape) for k, v in sd.items()
            if not (drop_nbt and k.endswith("num_batches_tracked"))}


def test_deep_stem_backbone_parameter_count():
    # torchvision R-101 without fc (42,500,160) + 103,296 deep stem + 20,480 wider
    # layer1 input = 42,623,936.
    assert count_parameters(ResNet(101, stem="deep")) == 42_500_160 + 103_296 + 20_480


def test_standard_stem_equals_torchvision_layout():
    ours = _shapes(ResNet(101, stem="standard", norm_layer=nn.BatchNorm2d).state_dict())
    tv = _shapes(torchvision.models.resnet101(weights=None).state_dict())
    tv = {k: v for k, v in tv.items() if not k.startswith("fc.")}
    assert ours == tv


@pytest.mark.parametrize("depth,fname", [(50, "resnet50os8"), (101, "resnet101os8")])
def test_v1c_stem_equals_sssegmentation_backbone_keys(depth, fname):
    expected = {}
    with open(SSSEG_KEYS.format(fname)) as f:
        for line in f:
            key, shape = line.rstrip("\n").split("\t")
            if key.startswith("backbone_net."):
                expected[key[len("backbone_net."):]] = tuple(eval(shape))  # "(32, 3, 3, 3)"
    ours = _shapes(ResNet(depth, stem="v1c", contract_dilation=True,
                          norm_layer=nn.BatchNorm2d).state_dict(), drop_nbt=False)
    assert ours == expected


def _dilations(layer):
    return [blk.conv2.dilation[0] for blk in layer]


def test_dilation_schedules():
    full = ResNet(50, stem="deep")
    assert _dilations(full.layer3) == [2] * 6 and _dilations(full.layer4) == [4] * 3
    contracted = ResNet(50, stem="v1c", contract_dilation=True, norm_layer=nn.BatchNorm2d)
    assert _dilations(contracted.layer3) == [1, 2, 2, 2, 2, 2]
    assert _dilations(contracted.layer4) == [2, 4, 4]
    grid = ResNet(50, multi_grid=(1, 2, 1))
    assert _dilations(grid.layer4) == [4, 8, 4]
    assert [full.layer2[0].conv2.stride[0], full.layer3[0].conv2.stride[0]] == [2, 1]


@pytest.mark.parametrize("stem", ["deep", "v1c", "standard"])
@pytest.mark.parametrize("size", [33, 64, 65, 97])
def test_stride8_size_matches_forward(stem, size):
    net = ResNet(50, stem=stem, norm_layer=nn.BatchNorm2d).eval()
    with torch.no_grad():
        c1, c2, c3, c4 = net(torch.randn(1, 3, size, size + 8))
    assert c4.shape[2:] == (stride8_size(size, stem), stride8_size(size + 8, stem))
    assert [c.shape[1] for c in (c1, c2, c3, c4)] == [256, 512, 1024, 2048]
    assert c3.shape[2:] == c4.shape[2:] == c2.shape[2:]


def test_known_sizes():
    assert stride8_size(769) == 97 and stride8_size(1024) == 129 and stride8_size(2048) == 257


def test_bad_input_rejected():
    net = ResNet(50, norm_layer=nn.BatchNorm2d)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        net(torch.randn(1, 4, 64, 64))
    with pytest.raises(ValueError, match="depth"):
        ResNet(34)
    with pytest.raises(ValueError, match="stem"):
        ResNet(50, stem="wide")
