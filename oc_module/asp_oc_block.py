# Port of OCNet.pytorch oc_module/asp_oc_block.py (679a45b, plus the 2018 a8e038d head).
# MIT License; original (c) Yuhui Yuan / openseg-group. Re-written for PyTorch 2.x.
"""ASP-OC: an object-context branch in parallel with the four ASPP branches."""
import torch
from torch import nn

from .base_oc_block import BaseOC_Context_Module
from .self_attention import _abn

__all__ = ["ASP_OC_Module"]


def _conv_abn(cin, cout, kernel, dilation=1, bias=False):
    pad = dilation if kernel == 3 else 0
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size=kernel, padding=pad, dilation=dilation,
                                   bias=bias), _abn()(cout))


class ASP_OC_Module(nn.Module):
    """Five parallel branches on the input, concatenated in the order
    (object context, 1x1, 3x3 d12, 3x3 d24, 3x3 d36) and fused by 1x1 conv + ABN + Dropout2d(0.1).

    The object-context branch is conv3x3 (bias) + ABN + ``BaseOC_Context_Module`` attending at half
    resolution (``sizes=[2]``, key = out/2, value = out).

    Args:
        features (int): input channels.
        out_features (int): channels of each branch (256 at HEAD, 512 in the 2018 head).
        dilations (tuple[int]): dilations of the three 3x3 ASPP branches.
        fuse_features (int, optional): output channels; HEAD uses ``2 * out_features`` (1280->512),
            the 2018 head ``out_features`` (2560->512).
        impl (str): attention implementation.
    """

    def __init__(self, features, out_features=256, dilations=(12, 24, 36), fuse_features=None,
                 impl="sdpa"):
        super().__init__()
        fuse_features = fuse_features or 2 * out_features
        self.context = nn.Sequential(
            nn.Conv2d(features, out_features, kernel_size=3, padding=1, bias=True),
            _abn()(out_features),
            BaseOC_Context_Module(out_features, out_features, out_features // 2, out_features,
                                  dropout=0, sizes=(2,), impl=impl))
        self.conv2 = _conv_abn(features, out_features, 1)
        self.conv3 = _conv_abn(features, out_features, 3, dilations[0])
        self.conv4 = _conv_abn(features, out_features, 3, dilations[1])
        self.conv5 = _conv_abn(features, out_features, 3, dilations[2])
        self.conv_bn_dropout = nn.Sequential(
            nn.Conv2d(out_features * 5, fuse_features, kernel_size=1, bias=False),
            _abn()(fuse_features), nn.Dropout2d(0.1))

    def forward(self, x):
        branches = [self.context(x), self.conv2(x), self.conv3(x), self.conv4(x), self.conv5(x)]
        return self.conv_bn_dropout(torch.cat(branches, dim=1))  # (N, 5*out -> fuse, H, W)
