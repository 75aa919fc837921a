# HRNetV2 backbone: re-statement of HRNet-Semantic-Segmentation lib/models/seg_hrnet.py and
# sssegmentation ssseg/modules/models/backbones/hrnet.py (state_dict names and stem quirk).
# MIT License; HRNet (c) Microsoft (Ke Sun, Jingdong Wang et al.).
"""HRNetV2 W18-Small (v2), W18 and W48, as in the HRNet-Semantic-Segmentation and sssegmentation code.

Stem: conv3x3 s2 3->64, BN, [ReLU if ``stem_relu``], conv3x3 s2 64->64, BN, ReLU; ``layer1``
= Bottlenecks to 256 channels. Stages 2-4 are ``HRModule``s over 2/3/4 parallel branches (BasicBlocks)
exchanging information in ``fuse_layers``. The output is the HRNetV2 representation: the four
branches upsampled bilinearly (align_corners False) to the 1/4 branch and concatenated
(270 channels for W18/W18-S, 720 for W48).

State_dict names equal the ImageNet / sssegmentation / mmseg ones: ``conv1``, ``bn1``, ``conv2``,
``bn2``, ``layer1.*``, ``transition{1,2,3}.*``, ``stage{2,3,4}.M.{branches,fuse_layers}.*``.
"""
import torch
import torch.nn.functional as F
from torch import nn

from network.bn_relu_conv import bn_relu_conv2d
from network.resnet import Bottleneck, conv3x3
from utils.errors import ConfigError

__all__ = ["BasicBlock", "HRModule", "HRNet", "HRNET_ARCHS", "hrnetv2"]

# arch -> (stage1 blocks, [(num_modules, blocks per branch, channels per branch) for stages 2-4])
HRNET_ARCHS = {
    "hrnetv2_w18_small": ((2,), [(1, (2, 2), (18, 36)), (3, (2, 2, 2), (18, 36, 72)),
                                 (2, (2, 2, 2, 2), (18, 36, 72, 144))]),
    "hrnetv2_w18": ((4,), [(1, (4, 4), (18, 36)), (4, (4, 4, 4), (18, 36, 72)),
                           (3, (4, 4, 4, 4), (18, 36, 72, 144))]),
    "hrnetv2_w48": ((4,), [(1, (4, 4), (48, 96)), (4, (4, 4, 4), (48, 96, 192)),
                           (3, (4, 4, 4, 4), (48, 96, 192, 384))]),
}


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN + identity, ReLU (in == out channels in every HRNet branch)."""

    expansion = 1

    def __init__(self, channels, norm_layer):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(channels, channels), norm_layer(channels)
        self.conv2, self.bn2 = conv3x3(channels, channels), norm_layer(channels)
        self.relu = nn.ReLU(inplace=True)
        self.memory_efficient = False  # set by HRNet: bn1 -> ReLU -> conv2 keeps only bn1's input

    def forward(self, x):
        if self.memory_efficient and self.training:  # same maths; bn1 + ReLU recomputed in backward
            out = bn_relu_conv2d(self.conv1(x), self.bn1, self.conv2)
        else:
            out = self.conv2(self.relu(self.bn1(self.conv1(x))))
        out = self.bn2(out)
        return self.relu(out + x)


def _down(in_c, out_c, norm_layer, relu):
    layers = [conv3x3(in_c, out_c, stride=2), norm_layer(out_c)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class HRModule(nn.Module):
    """Parallel branches followed by multi-resolution fusion (all outputs kept).

    ``fuse_layers[i][j]`` brings branch j to branch i: j > i: 1x1 conv + BN + Upsample(2^(j-i))
    (then an exact-size bilinear resize); j < i: (i-j) 3x3 s2 conv + BN steps, ReLU between steps
    only. The inputs of each target are summed and passed through ReLU.
    """

    def __init__(self, blocks, channels, norm_layer):
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c, norm_layer) for _ in range(b)])
            for b, c in zip(blocks, channels))
        self.fuse_layers = nn.ModuleList()
        for i in range(n):
            row = nn.ModuleList()
            for j in range(n):
                if j > i:
                    # faithful: mmseg/sssegmentation keep an Upsample module here (no parameters)
                    row.append(nn.Sequential(
                        nn.Conv2d(channels[j], channels[i], 1, bias=False), norm_layer(channels[i]),
                        nn.Upsample(scale_factor=2 ** (j - i), mode="bilinear", align_corners=False)))
                elif j == i:
                    row.append(None)
                else:
                    steps = [_down(channels[j], channels[j], norm_layer, True)
                             for _ in range(i - j - 1)]
                    steps.append(_down(channels[j], channels[i], norm_layer, False))
                    row.append(nn.Sequential(*steps))
            self.fuse_layers.append(row)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, xs):
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[i]
            for j, layer in enumerate(row):
                if j > i:
                    # the Upsample gives 2^(j-i) * size; the resize makes odd sizes match exactly
                    y = y + F.interpolate(layer(xs[j]), size=xs[i].shape[2:], mode="bilinear",
                                          align_corners=False)
                elif j < i:
                    y = y + layer(xs[j])
            out.append(self.relu(y))
        return out


class HRNet(nn.Module):
    """HRNetV2 backbone; ``forward(x)`` returns the (N, sum(channels), H/4, W/4) concat.

    Args:
        arch (str): ``hrnetv2_w18_small``, ``hrnetv2_w18`` or ``hrnetv2_w48``.
        stem_relu (bool): ReLU after ``bn1``. True is the standard HRNet (ImageNet weights, mmseg,
            HRNet-OCR, sssegmentation after June 2025); False is the sssegmentation variant of
            Nov 2020 - June 2025 that produced the seed-era numbers and ``*_train.pth`` weights.
        norm_layer (callable): ``norm_layer(C)``; default ``nn.BatchNorm2d``.
        memory_efficient (bool): the BN -> ReLU -> conv pairs of the BasicBlocks and of layer1's
            Bottlenecks keep only the norm's input for backward and recompute the norm and the ReLU
            (``bn_relu_conv.py``; train mode with stock BN only). Same maths and state_dict.
    """

    def __init__(self, arch="hrnetv2_w48", stem_relu=True, norm_layer=nn.BatchNorm2d,
                 memory_efficient=False):
        super().__init__()
        if arch not in HRNET_ARCHS:
            raise ValueError(f"HRNet arch must be one of {sorted(HRNET_ARCHS)}, got {arch!r}")
        stage1_blocks, stages = HRNET_ARCHS[arch]
        self.arch, self.stem_relu = arch, stem_relu
        self.conv1, self.bn1 = conv3x3(3, 64, stride=2), norm_layer(64)
        self.conv2, self.bn2 = conv3x3(64, 64, stride=2), norm_layer(64)
        self.relu = nn.ReLU(inplace=True)
        down = nn.Sequential(nn.Conv2d(64, 256, 1, bias=False), norm_layer(256))
        self.layer1 = nn.Sequential(*[
            Bottleneck(64 if b == 0 else 256, 64, downsample=down if b == 0 else None,
                       norm_layer=norm_layer) for b in range(stage1_blocks[0])])
        prev = [256]
        for s, (modules, blocks, channels) in enumerate(stages, start=2):
            self.add_module(f"transition{s - 1}", self._transition(prev, channels, norm_layer))
            self.add_module(f"stage{s}", nn.Sequential(
                *[HRModule(blocks, channels, norm_layer) for _ in range(modules)]))
            prev = list(channels)
        self.out_channels = sum(prev)
        self.set_memory_efficient(memory_efficient)

    def set_memory_efficient(self, enabled=True):
        """Switch the recompute-the-norm backward of the BN -> ReLU -> conv pairs on or off."""
        self.memory_efficient = bool(enabled)
        for m in self.modules():
            if isinstance(m, (BasicBlock, Bottleneck)):
                m.memory_efficient = self.memory_efficient
        return self

    @staticmethod
    def _transition(prev, cur, norm_layer):
        layers = nn.ModuleList()
        for i, c in enumerate(cur):
            if i < len(prev):
                layers.append(None if prev[i] == c else nn.Sequential(
                    conv3x3(prev[i], c), norm_layer(c), nn.ReLU(inplace=True)))
            else:  # a new, lower-resolution branch from the last existing one
                layers.append(nn.Sequential(_down(prev[-1], c, norm_layer, True)))
        return layers

    @staticmethod
    def _apply_transition(transition, xs):
        out = []
        for i, t in enumerate(transition):
            x = xs[i] if i < len(xs) else xs[-1]
            out.append(x if t is None else t(x))
        return out

    def forward(self, x):
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an image batch of shape (N, 3, H, W), got {tuple(x.shape)}")
        if min(x.shape[2:]) < 32:
            raise ConfigError(f"input {tuple(x.shape[2:])} is too small for HRNet: the 1/32 branch "
                             "needs an input of at least 32x32")
        x = self.bn1(self.conv1(x))                     # (N, 64, H/2, W/2)
        if self.stem_relu:
            x = self.relu(x)
        # else faithful: seed-era sssegmentation HRNet skips this ReLU (conv1-bn1-conv2-bn2-ReLU)
        x = self.relu(self.bn2(self.conv2(x)))          # (N, 64, H/4, W/4)
        xs = [self.layer1(x)]                           # (N, 256, H/4, W/4)
        for s in (2, 3, 4):
            xs = self._apply_transition(getattr(self, f"transition{s - 1}"), xs)
            xs = getattr(self, f"stage{s}")(xs)         # branch b: (N, C_b, H/2^(b+2), W/2^(b+2))
        size = xs[0].shape[2:]
        ups = [xs[0]] + [F.interpolate(t, size=size, mode="bilinear", align_corners=False)
                         for t in xs[1:]]
        return torch.cat(ups, dim=1)                    # (N, sum C_b, H/4, W/4)


def hrnetv2(arch, stem_relu=True, norm_layer=nn.BatchNorm2d, memory_efficient=False):
    """Build an :class:`HRNet` (``arch`` as in :data:`HRNET_ARCHS`)."""
    return HRNet(arch, stem_relu=stem_relu, norm_layer=norm_layer,
                 memory_efficient=memory_efficient)
