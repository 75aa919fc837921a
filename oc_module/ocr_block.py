# OCR blocks: re-statement of sssegmentation ssseg/modules/models/segmentors/ocrnet/ (spatial gather,
# ObjectContextBlock) and openseg.pytorch lib/models/modules/spatial_ocr_block.py (reference only).
# MIT License; OCR (c) Yuhui Yuan et al. / openseg-group, sssegmentation (c) Zhenchao Jin.
"""Object-contextual representations (OCR, Yuan et al. 2020).

Notation: pixel features ``X`` (N, C, H, W), soft object regions ``A`` (N, K, H, W) (the aux
logits, K = classes), key width ``Ck`` (256).

Spatial gather (no parameters)::

    M      = softmax(s * A.flatten(2), dim=HW)            # (N, K, HW)
    f_k    = M @ X.flatten(2)^T                           # (N, K, C): one vector per region

Object context (``SpatialOCR_Module``)::

    q = phi(X)   (2 x [1x1 conv + BN + ReLU], C -> Ck -> Ck)      per pixel
    k = psi(f)   (2 x [1x1 conv + BN + ReLU], C -> Ck -> Ck)      per region
    v = delta(f) (1 x [1x1 conv + BN + ReLU], C -> Ck)            per region
    W = softmax(Ck^-0.5 * q k^T, dim=regions)                     (N, HW, K)
    y = rho(W v)  (1 x [1x1 conv + BN + ReLU], Ck -> C)
    out = g([y, X])   concat on channels (context first), then the fusion conv + BN + ReLU

The attention product is the repository's one primitive
(:func:`oc_module.self_attention.attention`). Module attribute names follow sssegmentation
(``query_project``, ``key_project``, ``value_project``, ``out_project``, ``bottleneck``) so its
checkpoints import by a prefix rename; the class names follow openseg/OCNet.
"""
import torch
import torch.nn.functional as F
from torch import nn

from oc_module.self_attention import ATTENTION_IMPLS, attention

__all__ = ["conv_bn_relu", "SpatialGather_Module", "SpatialOCR_Module", "ObjectContextBlock"]


def conv_bn_relu(in_channels, out_channels, kernel_size=1, bias=False, norm_layer=nn.BatchNorm2d):
    """``Sequential(conv, norm, ReLU)``: state_dict keys ``0.weight[, 0.bias], 1.*``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias),
        norm_layer(out_channels), nn.ReLU(inplace=True))


class SpatialGather_Module(nn.Module):
    """Region representations from soft object regions (no parameters).

    Args:
        scale (float): temperature ``s`` multiplying the region logits before the softmax (1 in
            every published config).
    """

    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale

    def forward(self, feats, probs):
        n, k = probs.shape[:2]
        c = feats.shape[1]
        if probs.shape[2:] != feats.shape[2:]:
            raise ValueError(f"object regions {tuple(probs.shape)} and pixel features "
                             f"{tuple(feats.shape)} must share the spatial size")
        probs = F.softmax(self.scale * probs.reshape(n, k, -1), dim=2)  # (N, K, HW), over pixels
        feats = feats.reshape(n, c, -1).transpose(1, 2)                  # (N, HW, C)
        regions = torch.bmm(probs, feats)                                # (N, K, C)
        return regions.transpose(1, 2).unsqueeze(3)                      # (N, C, K, 1)


class SpatialOCR_Module(nn.Module):
    """The object-context block: pixel-region attention, then fusion with the pixel features.

    Args:
        in_channels (int): C, channels of the pixel features and region representations (512).
        key_channels (int): Ck of query/key/value (256); the scores are scaled by ``Ck ** -0.5``.
        out_channels (int): channels after the fusion conv (512).
        fusion_kernel (int): 3 (sssegmentation) or 1 (mmseg, openseg, HRNet-OCR).
        dropout (float): Dropout2d after the fusion (openseg/HRNet-OCR 0.05; otherwise 0).
        bias (bool): convs with bias (openseg) or without (sssegmentation, mmseg).
        norm_layer (callable): ``norm_layer(C)``; default ``nn.BatchNorm2d``.
        impl (str): ``"sdpa"`` or ``"naive"`` (see :func:`attention`).
    """

    def __init__(self, in_channels=512, key_channels=256, out_channels=512, fusion_kernel=3,
                 dropout=0.0, bias=False, norm_layer=nn.BatchNorm2d, impl="sdpa"):
        super().__init__()
        if impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention impl must be one of {ATTENTION_IMPLS}, got {impl!r}")
        if fusion_kernel not in (1, 3):
            raise ValueError(f"fusion_kernel must be 1 or 3, got {fusion_kernel}")
        cbr = lambda i, o, k=1: conv_bn_relu(i, o, k, bias, norm_layer)  # noqa: E731
        self.key_channels, self.impl = key_channels, impl
        self.query_project = nn.Sequential(cbr(in_channels, key_channels),
                                           cbr(key_channels, key_channels))
        self.key_project = nn.Sequential(cbr(in_channels, key_channels),
                                         cbr(key_channels, key_channels))
        self.value_project = cbr(in_channels, key_channels)
        self.out_project = cbr(key_channels, in_channels)
        self.bottleneck = cbr(2 * in_channels, out_channels, fusion_kernel)
        if dropout > 0:
            self.bottleneck.append(nn.Dropout2d(dropout))

    def object_context(self, feats, regions):
        """The context ``y`` (N, C, H, W) before the fusion."""
        n, _, h, w = feats.shape
        query = self.query_project(feats).flatten(2).transpose(1, 2)    # (N, HW, Ck)
        key = self.key_project(regions).flatten(2).transpose(1, 2)      # (N, K, Ck)
        value = self.value_project(regions).flatten(2).transpose(1, 2)  # (N, K, Ck)
        context = attention(query, key, value, self.key_channels ** -0.5, self.impl)  # (N, HW, Ck)
        context = context.transpose(1, 2).reshape(n, self.key_channels, h, w)
        return self.out_project(context)                                 # (N, C, H, W)

    def forward(self, feats, regions):
        """feats (N, C, H, W) pixel features; regions (N, C, K, 1) from the spatial gather."""
        context = self.object_context(feats, regions)
        return self.bottleneck(torch.cat([context, feats], dim=1))       # (N, out, H, W)


ObjectContextBlock = SpatialOCR_Module  # sssegmentation's name for the same block
