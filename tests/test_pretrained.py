"""utils/pretrained.py: the explicit table of ImageNet layouts, loaded into each model family's backbone.

Stand-ins carry the real key names of each layout (CSAIL deep stem, torchvision 7x7, open-mmlab V1c
``stem.*``) at small sizes; the oracle for every load is the tensor we put in the file. The real OCNet
and OCRNet backbones are checked at the end.
"""
import pytest
import torch
from torch import nn

from utils.checkpoint import CheckpointMismatchError
from utils.pretrained import IMAGENET_LAYOUTS, detect_layout, load_pretrained


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(8, 8, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)


class Backbone(nn.Module):
    """Key layout of a ResNet with the given stem: deep (CSAIL), standard (torchvision), v1c (mmcv)."""

    def __init__(self, stem="deep"):
        super().__init__()
        if stem == "deep":
            self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8)
            self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), nn.BatchNorm2d(8)
            self.conv3, self.bn3 = nn.Conv2d(8, 8, 3, bias=False), nn.BatchNorm2d(8)
        elif stem == "standard":
            self.conv1, self.bn1 = nn.Conv2d(3, 8, 7, bias=False), nn.BatchNorm2d(8)
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = nn.Sequential(Block())


class OCNetLike(Backbone):
    """OCNet: the backbone keys at the top level, plus a head."""

    def __init__(self, stem="deep"):
        super().__init__(stem)
        self.head = nn.Conv2d(8, 4, 1)


class OCRNetLike(nn.Module):
    """OCRNet: the backbone under ``backbone_net.``."""

    def __init__(self, stem="v1c"):
        super().__init__()
        self.backbone_net = Backbone(stem)
        self.decoder = nn.Conv2d(8, 4, 1)


def imagenet_file(tmp_path, stem="deep", extra=None, wrap=None, classifier="fc"):
    """A classification checkpoint: backbone keys + classifier + num_batches_tracked."""
    gen = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(v.shape, generator=gen) for k, v in Backbone(stem).state_dict().items()
          if v.is_floating_point()}
    sd["bn1.num_batches_tracked" if stem != "v1c" else "stem.1.num_batches_tracked"] = torch.tensor(5)
    sd[f"{classifier}.weight"], sd[f"{classifier}.bias"] = torch.randn(1000, 8), torch.randn(1000)
    sd.update(extra or {})
    path = tmp_path / f"imagenet_{stem}.pth"
    torch.save(wrap(sd) if wrap else sd, path)
    return path, sd


def test_csail_file_copies_backbone_and_keeps_head(tmp_path):
    path, sd = imagenet_file(tmp_path)
    model = OCNetLike()
    head_before = model.head.weight.clone()
    loaded = load_pretrained(model, str(path))
    backbone = {k for k, v in sd.items() if not k.startswith("fc") and not k.endswith("num_batches_tracked")}
    assert set(loaded) == backbone
    for key in backbone:
        assert torch.equal(model.state_dict()[key], sd[key]), key
    assert torch.equal(model.head.weight, head_before)
    assert int(model.bn1.num_batches_tracked) == 0  # dropped from the file


def test_only_the_classifier_is_skipped(tmp_path):
    path, _ = imagenet_file(tmp_path, extra={"last_linear.weight": torch.zeros(2), "classifier.x": torch.zeros(1),
                                             "aux.weight": torch.zeros(3)})
    with pytest.raises(CheckpointMismatchError, match=r"1 unexpected keys.*aux\.weight"):
        load_pretrained(OCNetLike(), str(path))


def test_torchvision_file_into_deep_stem_is_refused_with_a_fix(tmp_path):
    path, _ = imagenet_file(tmp_path, stem="standard")
    with pytest.raises(CheckpointMismatchError, match="--stem standard") as err:
        load_pretrained(OCNetLike("deep"), str(path))
    assert "resnet101-imagenet.pth" in str(err.value)


def test_torchvision_file_loads_into_standard_stem(tmp_path):
    path, sd = imagenet_file(tmp_path, stem="standard")
    model = OCNetLike("standard")
    load_pretrained(model, str(path))
    assert torch.equal(model.conv1.weight, sd["conv1.weight"])


def test_csail_file_into_standard_stem_is_refused(tmp_path):
    path, _ = imagenet_file(tmp_path, stem="deep")
    with pytest.raises(CheckpointMismatchError, match="drop --stem standard"):
        load_pretrained(OCNetLike("standard"), str(path))


def test_mmcv_v1c_file_goes_under_backbone_net(tmp_path):
    """open-mmlab files come wrapped ({'state_dict': ...}); the OCRNet backbone sits at backbone_net."""
    path, sd = imagenet_file(tmp_path, stem="v1c", wrap=lambda s: {"meta": {}, "state_dict": s})
    model = OCRNetLike("v1c")
    loaded = load_pretrained(model, str(path))
    assert all(k.startswith("backbone_net.") for k in loaded)
    assert torch.equal(model.backbone_net.stem[3].weight, sd["stem.3.weight"])
    assert torch.equal(model.backbone_net.layer1[0].bn1.running_var, sd["layer1.0.bn1.running_var"])


def test_layout_table_is_explicit(tmp_path):
    names = [layout.name for layout in IMAGENET_LAYOUTS]
    for stem, expected in (("deep", "CSAIL"), ("standard", "torchvision"), ("v1c", "V1c")):
        sd = imagenet_file(tmp_path, stem=stem)[1]
        assert expected in detect_layout(sd).name
    with pytest.raises(CheckpointMismatchError, match="not a supported ImageNet backbone file") as err:
        detect_layout({"backbone.layer1.0.conv1.weight": torch.zeros(1)}, "x.pth")
    assert all(name in str(err.value) for name in names)


@pytest.mark.slow
def test_real_models_csail_and_torchvision_layouts(tmp_path):
    """The real OCNet backbone: a CSAIL-layout file (deep stem + fc) loads; a torchvision ResNet-101
    file is refused by the deep stem and loads into --stem standard."""
    import torchvision

    import network
    donor = network.get_segmentation_model("resnet101_baseline", num_classes=19)
    csail = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in donor.state_dict().items()
             if k.split(".")[0] in ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "layer1", "layer2", "layer3",
                                   "layer4")}
    assert len(csail) == 530  # the ResNet-101 deep-stem backbone has 530 entries
    csail["fc.weight"], csail["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    torch.save(csail, tmp_path / "resnet101-imagenet.pth")
    model = network.get_segmentation_model("resnet101_asp_oc_dsn", num_classes=19)
    assert len(load_pretrained(model, str(tmp_path / "resnet101-imagenet.pth"))) == 530
    assert torch.equal(model.state_dict()["layer3.22.bn2.running_var"], csail["layer3.22.bn2.running_var"])

    tv = torchvision.models.resnet101(weights=None).state_dict()
    torch.save(tv, tmp_path / "tv.pth")
    with pytest.raises(CheckpointMismatchError, match="7x7"):
        load_pretrained(model, str(tmp_path / "tv.pth"))
    standard = network.get_segmentation_model("resnet101_asp_oc_dsn", num_classes=19, stem="standard")
    loaded = load_pretrained(standard, str(tmp_path / "tv.pth"))
    assert "fc.weight" not in loaded and not any(k.endswith("num_batches_tracked") for k in loaded)
    assert torch.equal(standard.state_dict()["conv1.weight"], tv["conv1.weight"])


def test_hrnet_imagenet_file_drops_classification_neck(tmp_path):
    # HRNet-Image-Classification files carry incre_modules / downsamp_modules / final_layer /
    # classifier next to the backbone; only the backbone keys (no `backbone_net.` prefix) load.
    from network import get_segmentation_model
    model = get_segmentation_model("hrnetv2_w18s_ocr", num_classes=3)
    backbone = {k[len("backbone_net."):]: torch.randn_like(v, dtype=torch.float32)
                if v.is_floating_point() else v
                for k, v in model.state_dict().items() if k.startswith("backbone_net.")}
    extra = {"incre_modules.0.0.conv1.weight": torch.zeros(32, 18, 1, 1),
             "downsamp_modules.0.0.weight": torch.zeros(64, 32, 3, 3),
             "final_layer.0.weight": torch.zeros(2048, 1024, 1, 1),
             "classifier.weight": torch.zeros(1000, 2048)}
    path = tmp_path / "hrnetv2_w18_small.pth"
    torch.save({**backbone, **extra}, path)
    loaded = load_pretrained(model, str(path))
    assert len(loaded) == len([k for k in backbone if not k.endswith("num_batches_tracked")])
    sd = model.state_dict()
    for key, value in backbone.items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(sd["backbone_net." + key], value), key
