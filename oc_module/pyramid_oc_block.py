# Port of OCNet.pytorch oc_module/pyramid_oc_block.py (679a45b).
# MIT License; original (c) Yuhui Yuan / openseg-group. Re-written for PyTorch 2.x.
"""Pyramid-OC: attention inside 1x1, 2x2, 3x3 and 6x6 grids, fused with a widened input."""
import torch
from torch import nn

from .self_attention import PyramidSelfAttentionBlock2D, _abn

__all__ = ["Pyramid_OC_Module"]


class Pyramid_OC_Module(nn.Module):
    """``conv_bn_dropout(cat([up_dr(x), ctx_s1, ctx_s2, ...]))`` with one grid stage per size.

    Each stage uses key = in/2 and value = in channels (as in the original). ``up_dr`` widens the
    input to ``in * len(sizes)`` channels so that input and context carry equal weight in the
    ``2 * in * len(sizes)`` channel concat.

    Args:
        in_channels (int), out_channels (int), dropout (float), sizes (list[int]) and impl (str).
    """

    def __init__(self, in_channels, out_channels, dropout, sizes=(1,), impl="sdpa"):
        super().__init__()
        group = len(sizes)
        self.stages = nn.ModuleList([
            PyramidSelfAttentionBlock2D(in_channels, in_channels // 2, in_channels, out_channels,
                                        s, impl) for s in sizes])
        # faithful: 2 * in * group assumes out_channels == in_channels, as the original does.
        self.conv_bn_dropout = nn.Sequential(
            nn.Conv2d(2 * in_channels * group, out_channels, kernel_size=1),
            _abn()(out_channels), nn.Dropout2d(dropout))
        self.up_dr = nn.Sequential(
            nn.Conv2d(in_channels, in_channels * group, kernel_size=1),
            _abn()(in_channels * group))

    def forward(self, feats):
        context = [self.up_dr(feats)]                      # (N, in*group, H, W)
        context += [stage(feats) for stage in self.stages]  # group x (N, out, H, W)
        return self.conv_bn_dropout(torch.cat(context, dim=1))
