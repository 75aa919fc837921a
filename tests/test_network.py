"""network/ocnet.py (+ the package API): the models equal the original's layout and sizes; their
named output. The registry itself is tested in tests/test_registry.py."""
import os
from collections import OrderedDict

import pytest
import torch

from network import SegOutput, count_parameters, get_segmentation_model, list_models, main_output

KEYS_FILE = os.path.join(os.path.dirname(__file__), "data", "OCNET_STATE_DICT_KEYS.txt")
ORIGINAL = ["resnet101_baseline", "resnet101_base_oc_dsn", "resnet101_pyramid_oc_dsn",
            "resnet101_asp_oc_dsn"]
PARAMS = {"resnet101_baseline": 52_072_403, "resnet101_base_oc_dsn": 57_722_854,
          "resnet101_pyramid_oc_dsn": 62_584_294, "resnet101_asp_oc_dsn": 62_542_182,
          "resnet101_asp_oc_v1_dsn": 88_399_078}
OCNET = list(PARAMS)


def _original_keys():
    """{model: OrderedDict(key -> shape)} parsed from the original's recorded state_dict."""
    models, current = {}, None
    with open(KEYS_FILE) as f:
        for line in f:
            if line.startswith("## ") and "unique_params" in line:
                current = models.setdefault(line.split()[1], OrderedDict())
            elif line.strip() and not line.startswith("#"):
                key, shape = line.split()
                current[key] = tuple(int(s) for s in shape.split("x"))
    return models


@pytest.fixture(scope="module")
def original_keys():
    return _original_keys()


@pytest.mark.parametrize("name", ORIGINAL)
def test_state_dict_equals_original(name, original_keys):
    model = get_segmentation_model(name, num_classes=19)
    ours = OrderedDict((k, tuple(v.shape)) for k, v in model.state_dict().items())
    assert list(ours.items()) == list(original_keys[name].items())


@pytest.mark.parametrize("name", OCNET)
def test_parameter_counts(name):
    assert count_parameters(get_segmentation_model(name, num_classes=19)) == PARAMS[name]


def test_asp_v1_head_sits_on_layer4():
    model = get_segmentation_model("resnet101_asp_oc_v1_dsn", num_classes=19)
    assert model.context.conv2[0].in_channels == 2048
    assert model.context.conv_bn_dropout[0].weight.shape == (512, 2560, 1, 1)
    assert len(model.state_dict()) == 593  # the 2018 paper code (a8e038d) has 593 keys


@pytest.mark.parametrize("name", ORIGINAL)
def test_original_layout_checkpoint_loads_strict(name, original_keys):
    g = torch.Generator().manual_seed(0)
    ckpt = OrderedDict()
    for key, shape in original_keys[name].items():
        alias = key.replace(".f_query.", ".f_key.")
        # the original saves f_query and f_key as the same tensors
        ckpt[key] = ckpt[alias].clone() if alias in ckpt else torch.randn(shape, generator=g)
    model = get_segmentation_model(name, num_classes=19)
    model.load_state_dict(ckpt, strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, ckpt[key]), key


@pytest.mark.parametrize("name", OCNET)
@pytest.mark.parametrize("size,out", [((769, 769), (97, 97)), ((1024, 2048), (129, 257))])
def test_output_shapes_at_paper_sizes(name, size, out):
    # meta tensors carry shapes through the whole network without computing anything
    with torch.device("meta"):
        model = get_segmentation_model(name, num_classes=19).eval()
        with torch.no_grad():
            preds = model(torch.empty(2, 3, *size))
    if model.has_aux:
        assert isinstance(preds, SegOutput) and len(preds) == 2
        assert [tuple(p.shape) for p in preds] == [(2, 19, *out)] * 2
    else:
        assert tuple(preds.shape) == (2, 19, *out)


@pytest.mark.slow  # five full ResNet-101 forward/backward passes
@pytest.mark.parametrize("name", OCNET)
def test_forward_backward_small(name):
    torch.manual_seed(0)
    model = get_segmentation_model(name, num_classes=5).train()
    x = torch.randn(2, 3, 57, 49)
    preds = model(x)
    outs = list(preds) if model.has_aux else [preds]
    assert all(p.shape == (2, 5, 8, 7) for p in outs)
    assert main_output(preds) is outs[-1]
    if model.has_aux:  # the original's [dsn, main] order, by name
        aux, main = preds
        assert preds.aux is aux is preds[0] and preds.main is main is preds[-1]
    sum(p.square().mean() for p in outs).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.conv1.weight.grad.abs().sum() > 0


@pytest.mark.slow  # two ResNet-101 forwards
def test_attention_impls_give_same_model_output():
    torch.manual_seed(0)
    a = get_segmentation_model("resnet101_base_oc_dsn", num_classes=3, attention="sdpa").eval()
    b = get_segmentation_model("resnet101_base_oc_dsn", num_classes=3, attention="naive").eval()
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        for m in a.modules():
            if hasattr(m, "W"):
                torch.nn.init.normal_(m.W.weight)  # make the context non-zero
        b.load_state_dict(a.state_dict())
        x = torch.randn(1, 3, 41, 41)
        torch.testing.assert_close(a(x).main, b(x).main, rtol=1e-4, atol=1e-4)


def test_unknown_name_lists_valid_names():
    with pytest.raises(KeyError) as err:
        get_segmentation_model("resnet101_base")
    assert "resnet101_asp_oc_dsn" in str(err.value) and "resnet101_baseline" in str(err.value)
    assert set(OCNET) <= set(list_models())


def test_bad_inputs_raise_value_error():
    model = get_segmentation_model("resnet101_pyramid_oc_dsn", num_classes=3).eval()
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.randn(1, 1, 65, 65))
    with pytest.raises(ValueError, match="too small"):
        model(torch.randn(1, 3, 33, 33))  # stride-8 map 5x5 < the 6x6 pyramid grid


def test_option_of_another_family_is_a_clear_error():
    with pytest.raises(ValueError, match="ocr-preset"):
        get_segmentation_model("resnet101_base_oc_dsn", preset="mmseg")


def test_baseline_has_no_attention_option():
    # the baseline has no attention: an attention= that would do nothing is an error, not dropped
    with pytest.raises(ValueError, match="attention"):
        get_segmentation_model("resnet101_baseline", num_classes=3, attention="naive")
