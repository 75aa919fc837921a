# Port of OCNet.pytorch oc_module/base_oc_block.py (679a45b).
# MIT License; original (c) Yuhui Yuan / openseg-group. Re-written for PyTorch 2.x.
"""Base-OC: object context from one (or several summed) full-resolution attention stages."""
import torch
from torch import nn

from .self_attention import SelfAttentionBlock2D, _abn

__all__ = ["BaseOC_Module", "BaseOC_Context_Module"]


def _stages(in_channels, out_channels, key_channels, value_channels, sizes, impl):
    """One attention stage per max-pool scale in ``sizes``; their contexts are summed."""
    return nn.ModuleList([
        SelfAttentionBlock2D(in_channels, key_channels, value_channels, out_channels, s, impl)
        for s in sizes])


class BaseOC_Module(nn.Module):
    """Object context fused with the input: ``conv_bn_dropout(cat([sum_s stage_s(x), x]))``.

    Args:
        in_channels (int): C of the input map.
        out_channels (int): channels of each stage's context and of the fused output.
        key_channels (int), value_channels (int): attention widths.
        dropout (float): Dropout2d after the fusion.
        sizes (list[int]): one attention stage per max-pool scale (Base-OC uses [1]).
        impl (str): attention implementation, ``"sdpa"`` or ``"naive"``.
    """

    def __init__(self, in_channels, out_channels, key_channels, value_channels, dropout,
                 sizes=(1,), impl="sdpa"):
        super().__init__()
        self.stages = _stages(in_channels, out_channels, key_channels, value_channels, sizes, impl)
        # faithful: 2 * in_channels assumes out_channels == in_channels, as the original does.
        self.conv_bn_dropout = nn.Sequential(
            nn.Conv2d(2 * in_channels, out_channels, kernel_size=1), _abn()(out_channels),
            nn.Dropout2d(dropout))

    def forward(self, feats):
        context = sum(stage(feats) for stage in self.stages)  # (N, out, H, W)
        # faithful: context first, then the input features.
        return self.conv_bn_dropout(torch.cat([context, feats], dim=1))


class BaseOC_Context_Module(nn.Module):
    """Object context only (no concat with the input): ``conv_bn(sum_s stage_s(x))``.

    Used as the first branch of ASP-OC. The original accepts a ``dropout`` argument and never
    applies it; the signature is kept.
    """

    def __init__(self, in_channels, out_channels, key_channels, value_channels, dropout=0,
                 sizes=(1,), impl="sdpa"):
        super().__init__()
        self.stages = _stages(in_channels, out_channels, key_channels, value_channels, sizes, impl)
        # faithful: named conv_bn_dropout but holds no dropout; the conv takes in_channels.
        self.conv_bn_dropout = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1), _abn()(out_channels))

    def forward(self, feats):
        context = sum(stage(feats) for stage in self.stages)  # (N, out, H, W)
        return self.conv_bn_dropout(context)
