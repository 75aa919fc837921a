# OCRNet: re-statement of sssegmentation ssseg/modules/models/segmentors/ocrnet/ocrnet.py (seed
# table), with the head shapes of mmseg (OCRHead + FCNHead) and openseg.pytorch (SpatialOCRNet,
# HRNet_W48_OCR) as presets. MIT License; OCR (c) Yuhui Yuan et al. / openseg-group.
"""OCRNet = backbone + soft-object-region (aux) head + pixel pre-conv + OCR block + classifier.

Forward::

    c3, c4 = ResNet-D8 layer3, layer4   |  c3 = c4 = HRNetV2 concat (270 / 720 ch, 1/4)
    aux    = auxiliary_decoder(c3)      # (N, K, h, w) soft object regions = aux logits
    pix    = bottleneck(c4)             # (N, 512, h, w)
    f      = spatial_gather(pix, aux)   # (N, 512, K, 1)
    pix    = object_context_block(pix, f)
    main   = decoder(pix)               # (N, K, h, w)
    return SegOutput(aux, main)         # at feature resolution (1/8 ResNet, 1/4 HRNet)

The aux logits are not detached: the main loss back-propagates through them, as in every reference.

Presets (``preset=``):

========== ============ ===================== ========== ========== ============= =============
preset     fusion       aux head (ResNet |     conv bias  cls drop   align_corners HRNet stem
                        HRNet)                                                     ReLU default
========== ============ ===================== ========== ========== ============= =============
ssseg      3x3          3x3->512, p0 | same    no         0          False         off (seed era)
mmseg      1x1          3x3->256, p0.1 |       no         0.1 | 0    False         on
                        1x1->C_in, p0
openseg    1x1 + p0.05  3x3->512 p0.05 |       yes        0          True          on
                        3x3->C_in p0
========== ============ ===================== ========== ========== ============= =============

Module names follow sssegmentation (``backbone_net``, ``auxiliary_decoder``, ``bottleneck``,
``object_context_block``, ``decoder``), so its checkpoints load after dropping nothing but the
optimizer; see :mod:`utils.convert` for mmseg.
"""
from torch import nn

from oc_module.ocr_block import SpatialGather_Module, SpatialOCR_Module, conv_bn_relu
from utils.errors import ConfigError, UnknownNameError

from .hrnet import HRNet
from .outputs import SegOutput
from .registry import register
from .resnet import ResNet

__all__ = ["OCRNet", "OCR_PRESETS", "build_ocrnet", "resnet50_ocr", "resnet101_ocr",
           "hrnetv2_w18s_ocr", "hrnetv2_w18_ocr", "hrnetv2_w48_ocr", "OCR_BACKBONES"]

# backbone name -> (kind, arch / depth)
OCR_BACKBONES = {
    "resnet50": ("resnet", 50), "resnet101": ("resnet", 101),
    "hrnetv2_w18s": ("hrnet", "hrnetv2_w18_small"), "hrnetv2_w18": ("hrnet", "hrnetv2_w18"),
    "hrnetv2_w48": ("hrnet", "hrnetv2_w48"),
}

OCR_PRESETS = {
    # aux: {"resnet": (kernel, channels or None = input channels, dropout), "hrnet": (...)}
    "ssseg": dict(fusion_kernel=3, fusion_dropout=0.0, bias=False, align_corners=False,
                  stem_relu=False, aux={"resnet": (3, 512, 0.0), "hrnet": (3, 512, 0.0)},
                  cls_dropout={"resnet": 0.0, "hrnet": 0.0}),
    "mmseg": dict(fusion_kernel=1, fusion_dropout=0.0, bias=False, align_corners=False,
                  stem_relu=True, aux={"resnet": (3, 256, 0.1), "hrnet": (1, None, 0.0)},
                  cls_dropout={"resnet": 0.1, "hrnet": 0.0}),
    "openseg": dict(fusion_kernel=1, fusion_dropout=0.05, bias=True, align_corners=True,
                    stem_relu=True, aux={"resnet": (3, 512, 0.05), "hrnet": (3, None, 0.0)},
                    cls_dropout={"resnet": 0.0, "hrnet": 0.0}),
}


def _dropout(p):
    return nn.Dropout2d(p) if p > 0 else nn.Identity()  # parameter-free: keys never move


class OCRNet(nn.Module):
    """OCRNet head on a backbone returning ``[c1, c2, c3, c4]`` (ResNet) or one tensor (HRNet).

    Args:
        backbone (nn.Module): the feature extractor (stored as ``backbone_net``).
        aux_in, main_in (int): channels of the aux-head and pre-conv inputs.
        num_classes (int): K.
        aux (tuple): ``(kernel, channels, dropout)`` of the aux conv (channels None = aux_in).
        fusion_kernel, fusion_dropout, bias: OCR block options (:class:`SpatialOCR_Module`).
        cls_dropout (float): Dropout2d before the classifier.
        align_corners (bool): how the logits must be upsampled (read by criterion / inference).
        channels (int): pre-conv / OCR width (512); key_channels (int): Ck (256).
    """

    has_aux = True

    def __init__(self, backbone, aux_in, main_in, num_classes, aux=(3, 512, 0.0), fusion_kernel=3,
                 fusion_dropout=0.0, bias=False, cls_dropout=0.0, align_corners=False,
                 channels=512, key_channels=256, norm_layer=nn.BatchNorm2d, attention="sdpa"):
        super().__init__()
        self.align_corners = align_corners
        self.backbone_net = backbone
        k, aux_ch, aux_drop = aux
        aux_ch = aux_ch or aux_in
        self.auxiliary_decoder = nn.Sequential(
            nn.Conv2d(aux_in, aux_ch, k, padding=k // 2, bias=bias), norm_layer(aux_ch),
            nn.ReLU(inplace=True), _dropout(aux_drop), nn.Conv2d(aux_ch, num_classes, 1))
        self.bottleneck = conv_bn_relu(main_in, channels, 3, bias, norm_layer)
        self.spatial_gather_module = SpatialGather_Module(scale=1)
        self.object_context_block = SpatialOCR_Module(
            channels, key_channels, channels, fusion_kernel, fusion_dropout, bias, norm_layer,
            impl=attention)
        self.decoder = nn.Sequential(_dropout(cls_dropout), nn.Conv2d(channels, num_classes, 1))

    def forward(self, x):
        feats = self.backbone_net(x)
        if isinstance(feats, (list, tuple)):
            aux_in, main_in = feats[2], feats[3]   # ResNet layer3 (1024), layer4 (2048), 1/8
        else:
            aux_in = main_in = feats               # HRNetV2 concat, 1/4
        aux = self.auxiliary_decoder(aux_in)       # (N, K, h, w)
        pix = self.bottleneck(main_in)             # (N, 512, h, w)
        regions = self.spatial_gather_module(pix, aux)        # (N, 512, K, 1)
        pix = self.object_context_block(pix, regions)         # (N, 512, h, w)
        return SegOutput(aux, self.decoder(pix))  # (N, K, h, w) each


OCR_BACKBONE_MEMORY = ("literal", "relu")


def build_ocrnet(backbone, num_classes=19, preset="ssseg", stem_relu=None,
                 norm_layer=nn.SyncBatchNorm, attention="sdpa", stem=None,
                 backbone_memory="literal", **overrides):
    """Build an OCRNet for ``backbone`` (a key of :data:`OCR_BACKBONES`) with a head ``preset``.

    Args:
        stem_relu (bool, optional): HRNet stem ReLU; default from the preset.
        stem (str, optional): accepted for CLI symmetry (``--stem``); only ``"v1c"`` on ResNet.
        norm_layer (callable): default ``nn.SyncBatchNorm`` (every reference trains with SyncBN):
            it synchronises over the process group under torchrun/DDP and is a plain BatchNorm
            without one (CPU, one GPU, DataParallel replicas); state_dict names equal BN's.
        backbone_memory (str): ``"literal"`` (default) or ``"relu"``: the backbone's
            BN -> ReLU -> conv pairs (bottlenecks, HRNet BasicBlocks) keep only the norm input and
            recompute the norm and the ReLU in backward (``bn_relu_conv.py``; single-process BN).
            ``"recompute"`` needs InPlace-ABN norms (the OCNet models) and is refused.
        **overrides: any :class:`OCRNet` head option (``fusion_kernel``, ``aux``...).
    """
    if backbone_memory not in OCR_BACKBONE_MEMORY:
        raise ConfigError(f"--backbone-memory {backbone_memory}: the OCR models take "
                          f"{' / '.join(OCR_BACKBONE_MEMORY)} ('recompute' needs the InPlace-ABN "
                          "backbone of the OCNet models)")
    if stem is not None and (stem != "v1c" or backbone.startswith("hrnet")):
        raise ConfigError(f"--stem {stem}: OCRNet ResNets use the v1c stem (sssegmentation/mmseg "
                         "ImageNet weights) and HRNet has its own stem; drop --stem")
    if stem_relu is not None and not backbone.startswith("hrnet"):
        raise ConfigError("stem_relu applies to HRNet backbones only")
    if preset not in OCR_PRESETS:
        raise ConfigError(f"OCR preset must be one of {sorted(OCR_PRESETS)}, got {preset!r}")
    if backbone not in OCR_BACKBONES:
        raise UnknownNameError(f"OCR backbone must be one of {sorted(OCR_BACKBONES)}, got {backbone!r}")
    cfg = OCR_PRESETS[preset]
    kind, arch = OCR_BACKBONES[backbone]
    if kind == "resnet":
        net = ResNet(depth=arch, stem="v1c", strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
                     contract_dilation=True, multi_grid=(1,), norm_layer=norm_layer,
                     memory_efficient=backbone_memory)
        aux_in, main_in = 1024, 2048
    else:
        if stem_relu is None:
            stem_relu = cfg["stem_relu"]
        net = HRNet(arch, stem_relu=stem_relu, norm_layer=norm_layer,
                    memory_efficient=backbone_memory == "relu")
        aux_in = main_in = net.out_channels
    head = dict(aux=cfg["aux"][kind], fusion_kernel=cfg["fusion_kernel"],
                fusion_dropout=cfg["fusion_dropout"], bias=cfg["bias"],
                cls_dropout=cfg["cls_dropout"][kind], align_corners=cfg["align_corners"])
    head.update(overrides)
    return OCRNet(net, aux_in, main_in, num_classes, norm_layer=norm_layer, attention=attention,
                  **head)


def _ocr_builder(backbone):
    """The registered builder ``<backbone>_ocr``: the five differ only in the backbone."""
    def builder(num_classes=19, *, preset="ssseg", stem_relu=None, attention="sdpa", stem=None,
                norm_layer=nn.SyncBatchNorm, backbone_memory="literal"):
        return build_ocrnet(backbone, num_classes, preset=preset, stem_relu=stem_relu,
                            attention=attention, stem=stem, norm_layer=norm_layer,
                            backbone_memory=backbone_memory)
    builder.__name__ = builder.__qualname__ = f"{backbone}_ocr"
    builder.__doc__ = f"OCRNet on {backbone} (options: see :func:`build_ocrnet`)."
    return register(builder)


# The registered builders: one per backbone, all with the same options (see build_ocrnet).
resnet50_ocr = _ocr_builder("resnet50")
resnet101_ocr = _ocr_builder("resnet101")
hrnetv2_w18s_ocr = _ocr_builder("hrnetv2_w18s")
hrnetv2_w18_ocr = _ocr_builder("hrnetv2_w18")
hrnetv2_w48_ocr = _ocr_builder("hrnetv2_w48")
