# Port of OCNet.pytorch network/resnet101_{baseline,base_oc,pyramid_oc,asp_oc}.py (679a45b).
# MIT License; original (c) Yuhui Yuan / openseg-group. Re-written for PyTorch 2.x.
"""OCNet models: one dilated ResNet, one DSN head, and a context head that differs per variant.

The original defined each model as a ResNet subclass with its heads as attributes, so the
checkpoints keep backbone keys at the top level (``conv1.weight``, ``layer4.2.bn3.bias``...).
``OCNet`` keeps that layout by extending :class:`~network.resnet.ResNet`; the variants differ only in
the ``heads`` they pass.

Builder options: ``attention`` (``"sdpa"`` or the literal ``"naive"``), ``stem``, ``depth`` (101,
the paper's; 50 gives the same heads on a ResNet-50, used by the quick benchmark and the tests) and
``backbone_memory`` (``"literal"``, ``"relu"`` or ``"recompute"``: the training-time activation memory
of the backbone, :data:`network.resnet.MEMORY_MODES`; the same maths in every mode).
"""
from collections import OrderedDict

from torch import nn

from oc_module import ASP_OC_Module, BaseOC_Module, Pyramid_OC_Module

from .outputs import SegOutput
from .registry import register
from .resnet import ResNet

__all__ = ["OCNet", "DSNHead", "resnet101_baseline", "resnet101_base_oc_dsn",
           "resnet101_pyramid_oc_dsn", "resnet101_asp_oc_dsn", "resnet101_asp_oc_v1_dsn"]


def _abn(channels, activation="leaky_relu"):
    from inplace_abn import InPlaceABNSync
    return InPlaceABNSync(channels, activation=activation)


def DSNHead(num_classes, dropout, activation="leaky_relu", in_channels=1024):
    """Deep-supervision head on layer3: conv3x3 1024->512 (bias), ABN, Dropout2d, conv1x1 -> K."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 512, kernel_size=3, padding=1), _abn(512, activation),
        nn.Dropout2d(dropout), nn.Conv2d(512, num_classes, kernel_size=1))


class OCNet(ResNet):
    """Dilated ResNet + sequential heads on layer4 (+ optional DSN head on layer3).

    Args:
        heads (OrderedDict[str, nn.Module]): applied in order to the layer4 features; the last one
            must produce the class logits. Their names become the state_dict prefixes.
        dsn (nn.Module, optional): auxiliary head on the layer3 features.
        min_feature (int): smallest stride-8 map the heads accept (checked before the forward).
        **backbone: passed to :class:`ResNet` (``depth``, ``stem``, ...).

    Returns ``SegOutput(aux=dsn, main)`` (both at 1/8 resolution; the original's ``[dsn, main]``
    order) with a DSN head, otherwise the main logits tensor.
    """

    align_corners = True  # faithful: OCNet upsamples every logit map with align_corners=True

    def __init__(self, heads, dsn=None, min_feature=1, **backbone):
        super().__init__(**backbone)
        self.head_names = list(heads)
        for name, module in heads.items():
            self.add_module(name, module)
        self.has_aux = dsn is not None
        if dsn is not None:
            self.dsn = dsn
        self.min_feature = min_feature

    def forward(self, x):
        self.check_input(x, self.min_feature)
        x = self.layer2(self.layer1(self.forward_stem(x)))  # (N, 512, H/8, W/8)
        x = self.layer3(x)                                  # (N, 1024, H/8, W/8)
        x_dsn = self.dsn(x) if self.has_aux else None       # (N, K, H/8, W/8)
        x = self.layer4(x)                                  # (N, 2048, H/8, W/8)
        for name in self.head_names:
            x = getattr(self, name)(x)                      # ... -> (N, K, H/8, W/8)
        return SegOutput(x_dsn, x) if self.has_aux else x


def _cls(num_classes, channels=512):
    return nn.Conv2d(channels, num_classes, kernel_size=1)


@register
def resnet101_baseline(num_classes=21, *, stem="deep", depth=101, backbone_memory="relu"):
    """Dilated ResNet-101 + conv3x3(2048->512, bias) + ABN + Dropout2d(0.05) + conv1x1 (no DSN).

    It has no attention, so it takes no ``attention`` option (the registry rejects one)."""
    heads = OrderedDict(
        layer5=nn.Sequential(nn.Conv2d(2048, 512, kernel_size=3, padding=1), _abn(512),
                             nn.Dropout2d(0.05)),
        layer6=_cls(num_classes))
    return OCNet(heads, stem=stem, depth=depth, memory_efficient=backbone_memory)


@register
def resnet101_base_oc_dsn(num_classes=21, *, attention="sdpa", stem="deep", depth=101,
                          backbone_memory="relu"):
    """Base-OC: conv3x3 + ABN + BaseOC_Module(512, 512, key 256, value 256, sizes [1])."""
    heads = OrderedDict(
        context=nn.Sequential(
            nn.Conv2d(2048, 512, kernel_size=3, padding=1), _abn(512),
            BaseOC_Module(512, 512, 256, 256, dropout=0.05, sizes=(1,), impl=attention)),
        cls=_cls(num_classes))
    return OCNet(heads, dsn=DSNHead(num_classes, 0.05), stem=stem, depth=depth,
                 memory_efficient=backbone_memory)


@register
def resnet101_pyramid_oc_dsn(num_classes=21, *, attention="sdpa", stem="deep", depth=101,
                             backbone_memory="relu"):
    """Pyramid-OC: conv3x3 + BN-noact, Pyramid_OC_Module(sizes [1, 2, 3, 6])."""
    heads = OrderedDict(
        # faithful: layer5 has a BN without activation and no dropout in the original.
        layer5=nn.Sequential(nn.Conv2d(2048, 512, kernel_size=3, padding=1),
                             _abn(512, activation="none")),
        context=Pyramid_OC_Module(512, 512, dropout=0.05, sizes=(1, 2, 3, 6), impl=attention),
        cls=_cls(num_classes))
    # faithful: the Pyramid-OC DSN head's BN has no activation either.
    return OCNet(heads, dsn=DSNHead(num_classes, 0.05, activation="none"), min_feature=6, stem=stem,
                 depth=depth, memory_efficient=backbone_memory)


@register
def resnet101_asp_oc_dsn(num_classes=21, *, attention="sdpa", stem="deep", depth=101,
                         backbone_memory="relu"):
    """ASP-OC as at HEAD (2019): conv3x3 2048->512 + ABN, then ASP_OC_Module(512, 256)."""
    heads = OrderedDict(
        context=nn.Sequential(
            nn.Conv2d(2048, 512, kernel_size=3, padding=1), _abn(512),
            ASP_OC_Module(512, 256, impl=attention)),
        cls=_cls(num_classes))
    return OCNet(heads, dsn=DSNHead(num_classes, 0.10), min_feature=2, stem=stem, depth=depth,
                 memory_efficient=backbone_memory)


@register
def resnet101_asp_oc_v1_dsn(num_classes=21, *, attention="sdpa", stem="deep", depth=101,
                            backbone_memory="relu"):
    """ASP-OC of the 2018 paper code (a8e038d): ASP_OC_Module(2048, 512) directly on layer4."""
    heads = OrderedDict(
        context=ASP_OC_Module(2048, 512, fuse_features=512, impl=attention),
        cls=_cls(num_classes))
    return OCNet(heads, dsn=DSNHead(num_classes, 0.10), min_feature=2, stem=stem, depth=depth,
                 memory_efficient=backbone_memory)
