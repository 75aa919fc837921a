"""network/registry.py: names registered once by decorator; options checked against the signature."""
import pytest
import torch
from torch import nn

import network
from network import registry
from network.registry import builder_options, get_segmentation_model, register
from utils.errors import ConfigError, UnknownNameError

OCNET = ["resnet101_baseline", "resnet101_base_oc_dsn", "resnet101_pyramid_oc_dsn",
         "resnet101_asp_oc_dsn", "resnet101_asp_oc_v1_dsn"]
OCR = ["resnet50_ocr", "resnet101_ocr", "hrnetv2_w18s_ocr", "hrnetv2_w18_ocr", "hrnetv2_w48_ocr"]


def test_every_model_registered_once_under_its_builder_name():
    assert sorted(network.NETWORKS) == sorted(OCNET + OCR) == network.list_models()
    for name, builder in network.NETWORKS.items():
        assert builder.__name__ == name
    assert network.NETWORKS is registry.NETWORKS


def test_builders_declare_their_options():
    assert builder_options(network.NETWORKS["resnet101_baseline"]) == {"stem", "depth",
                                                                       "backbone_memory"}
    for name in OCNET[1:]:
        assert builder_options(network.NETWORKS[name]) == {"attention", "stem", "depth",
                                                           "backbone_memory"}, name
    for name in OCR:
        assert builder_options(network.NETWORKS[name]) == {
            "preset", "stem_relu", "attention", "stem", "norm_layer", "backbone_memory"}, name


@pytest.fixture
def fake(monkeypatch):
    """A scratch registry with one builder that records its calls."""
    monkeypatch.setattr(registry, "NETWORKS", {})
    calls = []

    @register
    def tiny_seg(num_classes=19, *, width=4):
        calls.append((num_classes, width))
        return nn.Conv2d(3, num_classes, 1)
    return calls


def test_register_twice_is_an_error(fake):
    def tiny_seg(num_classes=19):
        return None
    with pytest.raises(ValueError, match="twice"):
        register(tiny_seg)


def test_declared_option_is_passed(fake):
    assert isinstance(get_segmentation_model("tiny_seg", num_classes=3, width=8), nn.Conv2d)
    assert fake == [(3, 8)]


def test_unknown_option_rejected_before_building(fake):
    with pytest.raises(ConfigError, match=r"preset \(--ocr-preset\).*\['width'\]"):
        get_segmentation_model("tiny_seg", preset="mmseg")
    assert fake == []  # nothing was built


def test_type_error_inside_a_builder_is_not_turned_into_a_cli_error(monkeypatch):
    monkeypatch.setattr(registry, "NETWORKS", {})

    @register
    def broken(num_classes=19, *, stem="deep"):
        raise TypeError("__init__() got an unexpected keyword argument 'bug'")
    with pytest.raises(TypeError, match="bug") as err:
        get_segmentation_model("broken", stem="v1c")
    assert not isinstance(err.value, ConfigError)


def test_unknown_name_is_unknown_name_error():
    with pytest.raises(UnknownNameError, match="resnet101_asp_oc_dsn"):
        get_segmentation_model("resnet101_aspoc")


def test_var_keyword_builder_judges_its_own_options(monkeypatch):
    monkeypatch.setattr(registry, "NETWORKS", {})

    @register
    def loose(num_classes=19, **kw):
        return kw
    assert get_segmentation_model("loose", anything=1) == {"anything": 1}


@pytest.mark.parametrize("name,kwargs", [
    ("resnet101_baseline", {"attention": "sdpa"}),
    ("resnet101_asp_oc_dsn", {"preset": "ssseg"}),
    ("resnet101_asp_oc_dsn", {"stem_relu": True}),
    ("hrnetv2_w18s_ocr", {"depth": 50}),
    ("resnet101_ocr", {"backbone_memory": "recompute"}),
])
def test_real_builders_reject_options_they_do_not_use(name, kwargs):
    with pytest.raises(ConfigError):
        get_segmentation_model(name, num_classes=3, **kwargs)


def test_options_reach_the_model():
    with torch.device("meta"):
        std = get_segmentation_model("resnet101_baseline", num_classes=3, stem="standard")
        ocr = get_segmentation_model("hrnetv2_w18s_ocr", num_classes=3, preset="openseg",
                                     stem_relu=False, norm_layer=nn.BatchNorm2d)
    assert std.conv1.weight.shape == (64, 3, 7, 7)
    assert std.memory_mode == "relu"  # the default
    with torch.device("meta"):
        rec = get_segmentation_model("resnet101_asp_oc_dsn", num_classes=3, depth=50,
                                     backbone_memory="recompute")
    assert {m.memory_mode for m in rec.modules() if hasattr(m, "memory_mode")} == {"recompute"}
    assert ocr.align_corners is True and ocr.backbone_net.stem_relu is False
    assert type(ocr.bottleneck[1]) is nn.BatchNorm2d
    assert ocr.backbone_net.memory_efficient is False  # OCR default: literal
    with torch.device("meta"):
        hr = get_segmentation_model("hrnetv2_w18s_ocr", num_classes=3, backbone_memory="relu")
        rn = get_segmentation_model("resnet50_ocr", num_classes=3, backbone_memory="relu")
    assert hr.backbone_net.memory_efficient is True
    assert {m.memory_mode for m in rn.modules() if hasattr(m, "memory_mode")} == {"relu"}
