# Port of OCNet.pytorch utils/resnet_block.py + the ResNet copies in network/resnet101_*.py (679a45b).
# MIT License; original (c) Yuhui Yuan / openseg-group. Re-written for PyTorch 2.x.
"""The one dilated ResNet backbone of the repository.

Three stems cover the checkpoints our users load:

=========== ===================================================== ===============================
stem        layout (state_dict names)                             used by
=========== ===================================================== ===============================
``deep``    conv1/bn1 3->64 s2, conv2/bn2 64->64, conv3/bn3        OCNet (CSAIL resnet101-imagenet)
            64->128, MaxPool(3, 2, 1, ceil_mode=True); layer1
            takes 128 channels
``v1c``     ``stem`` Sequential: 3->32 s2, 32->32, 32->64 (conv at  mmseg / sssegmentation ResNetV1c
            indices 0, 3, 6; norm at 1, 4, 7), MaxPool(3, 2, 1)
``standard`` conv1 7x7 3->64 s2 + bn1, MaxPool(3, 2, 1)            torchvision ImageNet ResNets
=========== ===================================================== ===============================

Output stride 8 comes from ``strides=(1, 2, 1, 1)`` and ``dilations=(1, 1, 2, 4)``. OCNet dilates
every block of a stage fully (``contract_dilation=False``); mmseg's ResNetV1c gives the first block of
a dilated stage half the dilation (``contract_dilation=True``: layer3 = [1, 2, 2, ...], layer4 =
[2, 4, 4]).
"""
from functools import partial

from torch import nn

from utils.errors import ConfigError

from . import bn_relu_conv
from .recompute_tail import recompute_tail, supports_recompute
from .relu_conv import relu_conv2d

__all__ = ["Bottleneck", "ResNet", "conv3x3", "RESNET_LAYERS", "MEMORY_MODES", "memory_mode",
           "stride8_size", "count_parameters"]

RESNET_LAYERS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
# Training-time memory of the bottlenecks (same maths and state_dict in every mode; eval mode
# always runs the literal graph): "literal" the original graph; "relu" every norm -> ReLU -> conv
# pair keeps only the norm output (relu_conv.py); "recompute" also the tail conv3 -> bn3 -> +
# residual -> ReLU keeps only its output (recompute_tail.py; InPlace-ABN norms only).
MEMORY_MODES = ("literal", "relu", "recompute")


def memory_mode(value):
    """The memory mode named by ``value``: one of :data:`MEMORY_MODES`, or a bool (the former
    ``memory_efficient`` switch: False = "literal", True = "relu")."""
    if isinstance(value, bool):
        return "relu" if value else "literal"
    if isinstance(value, str) and value in MEMORY_MODES:
        return value
    raise ValueError(f"backbone memory mode must be one of {MEMORY_MODES} (or a bool: False = "
                     f"'literal', True = 'relu'), got {value!r}")


def norm_relu_conv(c, norm, conv):
    """``conv(relu(norm(c)))`` keeping one tensor of the pair's size for backward: InPlace-ABN keeps
    its output and the ReLU is recomputed (``relu_conv.py``); a stock BatchNorm keeps its input and
    the norm and the ReLU are recomputed (``bn_relu_conv.py``). Train mode only."""
    if bn_relu_conv.supports(norm, conv):
        return bn_relu_conv.bn_relu_conv2d(c, norm, conv)
    return relu_conv2d(norm(c), conv)


def conv3x3(in_planes, out_planes, stride=1):
    """3x3 convolution with padding 1 and no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def stride8_size(size, stem="deep"):
    """Spatial size after the stem, the max-pool and layer2 (output stride 8) for an input ``size``.

    conv s2 p1 k3: ceil(h/2); max-pool k3 s2 p1 (ceil_mode for ``deep``): ceil((h-1)/2)+1, else
    floor((h-1)/2)+1; layer2 conv s2 p1 k3: ceil(h/2). 769 -> 385 -> 193 -> 97 and 1024 -> 129.
    """
    h = (size + 1) // 2
    h = -(-(h - 1) // 2) + 1 if stem == "deep" else (h - 1) // 2 + 1
    return (h + 1) // 2


class Bottleneck(nn.Module):
    """ResNet v1 bottleneck; stride and dilation both sit on the 3x3 conv (padding = dilation)."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None, norm_layer=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = norm_layer(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=dilation,
                               dilation=dilation, bias=False)
        self.bn2 = norm_layer(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = norm_layer(planes * 4)
        # faithful: ReLU after a norm is out of place, as in the original: InPlace-ABN saves its
        # output for backward, so an in-place activation on it would corrupt the gradient.
        self.relu = nn.ReLU(inplace=False)
        self.relu_inplace = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.memory_mode = "literal"  # set by ResNet (MEMORY_MODES)

    @property
    def memory_efficient(self):
        """Whether a memory mode other than "literal" is on (assign a bool or a mode name)."""
        return self.memory_mode != "literal"

    @memory_efficient.setter
    def memory_efficient(self, value):
        self.memory_mode = memory_mode(value)

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        if self.memory_mode != "literal" and self.training:  # same maths, recomputed in backward
            c2 = norm_relu_conv(self.conv1(x), self.bn1, self.conv2)
            if self.memory_mode == "recompute" and supports_recompute(self.bn3):
                return recompute_tail(self.bn2(c2), self.conv3, self.bn3, residual)
            out = self.bn3(norm_relu_conv(c2, self.bn2, self.conv3))
            return self.relu_inplace(out + residual)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu_inplace(out + residual)


def _default_norm():
    # faithful: the original backbone normalises with InPlaceABNSync(activation='none') followed by
    # a separate nn.ReLU, so |weight|+eps is the effective scale of every backbone BN.
    from inplace_abn import InPlaceABNSync
    return partial(InPlaceABNSync, activation="none")


class ResNet(nn.Module):
    """Dilated ResNet backbone. ``forward(x)`` returns ``[c1, c2, c3, c4]`` (strides 4, 8, 8, 8).

    Args:
        depth (int): 50, 101 or 152.
        stem (str): ``"deep"`` (OCNet), ``"v1c"`` (mmseg/sssegmentation) or ``"standard"``.
        strides (tuple[int]): stride of layer1..layer4. Default (1, 2, 1, 1).
        dilations (tuple[int]): dilation of layer1..layer4. Default (1, 1, 2, 4).
        contract_dilation (bool): first block of a dilated stage uses dilation // 2.
        multi_grid (tuple[int]): per-block dilation multipliers of layer4 (OCNet: (1, 1, 1)).
        norm_layer (callable): ``norm_layer(C)`` builds a norm without activation. Default
            ``InPlaceABNSync(C, activation='none')`` as in the original.
        memory_efficient (bool | str): training-time activation memory, one of
            :data:`MEMORY_MODES` (True = ``"relu"``, the default; False = ``"literal"``).
            ``"relu"``: every norm -> ReLU -> conv pair (bottlenecks, deep stem) keeps only the
            norm output for backward and recomputes the ReLU (``relu_conv.py``); with
            InPlace-ABN it saves one activation per pair; with a stock BatchNorm the pair keeps
            the norm input instead and recomputes the norm too (``bn_relu_conv.py``).
            ``"recompute"``: in addition, each bottleneck's conv3 -> bn3 -> + residual -> ReLU
            keeps only its output and recomputes conv3 and bn3 in backward (``recompute_tail.py``; InPlace-ABN norms with activation
            'none' only, other norms keep the ``"relu"`` path). Train mode only, so eval graphs
            and exports see plain ops; the same maths and state_dict in every mode.
    """

    def __init__(self, depth=101, stem="deep", strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
                 contract_dilation=False, multi_grid=(1, 1, 1), norm_layer=None,
                 memory_efficient=True):
        super().__init__()
        if depth not in RESNET_LAYERS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_LAYERS)}, got {depth}")
        if stem not in ("deep", "v1c", "standard"):
            raise ValueError(f"stem must be 'deep', 'v1c' or 'standard', got {stem!r}")
        norm_layer = norm_layer or _default_norm()
        self.stem_type, self.norm_layer = stem, norm_layer
        if stem == "deep":
            self.conv1, self.bn1, self.relu1 = conv3x3(3, 64, stride=2), norm_layer(64), nn.ReLU()
            self.conv2, self.bn2, self.relu2 = conv3x3(64, 64), norm_layer(64), nn.ReLU()
            self.conv3, self.bn3, self.relu3 = conv3x3(64, 128), norm_layer(128), nn.ReLU()
            # faithful: the original creates a floor-mode max-pool and then overrides it with this one.
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True)
            self.inplanes = 128
        elif stem == "v1c":
            self.stem = nn.Sequential(
                conv3x3(3, 32, stride=2), norm_layer(32), nn.ReLU(),
                conv3x3(32, 32), norm_layer(32), nn.ReLU(),
                conv3x3(32, 64), norm_layer(64), nn.ReLU())
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.inplanes = 64
        else:
            self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1, self.relu1 = norm_layer(64), nn.ReLU()
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.inplanes = 64
        layers = RESNET_LAYERS[depth]
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            grid = multi_grid if i == 3 else (1,)
            self.add_module(f"layer{i + 1}", self._make_layer(
                planes, blocks, strides[i], dilations[i], grid, contract_dilation))
        self.out_channels = (256, 512, 1024, 2048)
        self.set_memory_efficient(memory_efficient)

    def set_memory_efficient(self, mode=True):
        """Set the training-time memory mode (:data:`MEMORY_MODES`, or True = "relu", False =
        "literal") of the stem and every bottleneck. Returns ``self``."""
        self.memory_mode = memory_mode(mode)
        for m in self.modules():
            if isinstance(m, Bottleneck):
                m.memory_mode = self.memory_mode
        return self

    @property
    def memory_efficient(self):
        """Whether a memory mode other than "literal" is on."""
        return self.memory_mode != "literal"

    def _make_layer(self, planes, blocks, stride, dilation, multi_grid, contract_dilation):
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, kernel_size=1, stride=stride, bias=False),
                self.norm_layer(planes * 4))
        layers = []
        for b in range(blocks):
            d = dilation * multi_grid[b % len(multi_grid)]
            if b == 0 and contract_dilation and dilation > 1:
                d = dilation // 2
            layers.append(Bottleneck(self.inplanes, planes, stride if b == 0 else 1, d,
                                     downsample if b == 0 else None, self.norm_layer))
            self.inplanes = planes * 4
        return nn.Sequential(*layers)

    def check_input(self, x, min_feature=1):
        """Raise a ValueError unless ``x`` is (N, 3, H, W) with a stride-8 map >= ``min_feature``."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an image batch of shape (N, 3, H, W), got {tuple(x.shape)}")
        h, w = (stride8_size(s, self.stem_type) for s in x.shape[2:])
        if min(h, w) < min_feature:
            need = next(s for s in range(1, 4096) if stride8_size(s, self.stem_type) >= min_feature)
            raise ConfigError(f"input {tuple(x.shape[2:])} is too small for this network: its "
                             f"stride-8 feature map would be {h}x{w}, the head needs at least "
                             f"{min_feature}x{min_feature} (input >= {need}x{need})")

    def forward_stem(self, x):
        if self.stem_type == "deep" and self.memory_efficient and self.training:
            x = norm_relu_conv(self.conv1(x), self.bn1, self.conv2)
            x = norm_relu_conv(x, self.bn2, self.conv3)
            x = self.relu3(self.bn3(x))
        elif self.stem_type == "deep":
            x = self.relu1(self.bn1(self.conv1(x)))
            x = self.relu2(self.bn2(self.conv2(x)))
            x = self.relu3(self.bn3(self.conv3(x)))
        elif self.stem_type == "v1c":
            x = self.stem(x)
        else:
            x = self.relu1(self.bn1(self.conv1(x)))
        return self.maxpool(x)

    def forward(self, x):
        self.check_input(x)
        c1 = self.layer1(self.forward_stem(x))  # (N, 256, H/4, W/4)
        c2 = self.layer2(c1)                     # (N, 512, H/8, W/8)
        c3 = self.layer3(c2)                     # (N, 1024, H/8, W/8)
        c4 = self.layer4(c3)                     # (N, 2048, H/8, W/8)
        return [c1, c2, c3, c4]


def count_parameters(module: nn.Module) -> int:
    """Unique parameters (an aliased module such as ``f_query = f_key`` counts once)."""
    return sum(p.numel() for p in module.parameters())
