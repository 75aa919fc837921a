"""OCRNet models: parameter counts (README, "OCRNet"), sssegmentation key names, forward/backward."""
import ast
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import network
from network.ocrnet import OCR_PRESETS, build_ocrnet

KEYS_DIR = Path(__file__).parent / "data" / "ssseg_ocrnet_keys"  # recorded sssegmentation key lists
KEY_FILES = {"resnet50": "resnet50os8.txt", "resnet101": "resnet101os8.txt",
             "hrnetv2_w18s": "hrnetv2w18s.txt", "hrnetv2_w18": "hrnetv2w18.txt",
             "hrnetv2_w48": "hrnetv2w48.txt"}
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
# sssegmentation VOC-21 sizes, exact (derived from the recorded key lists)
SPEC_VOC = {"resnet50": 43_085_194, "resnet101": 62_077_322, "hrnetv2_w18s": 11_751_194,
            "hrnetv2_w18": 17_452_734, "hrnetv2_w48": 77_362_794}
# sssegmentation ADE-150 and CS-19 sizes rounded to 0.1 M; mmseg-shaped heads CS-19 (M)
SPEC_ADE_M = {"resnet50": 43.22, "resnet101": 62.21, "hrnetv2_w18s": 11.88, "hrnetv2_w18": 17.59,
              "hrnetv2_w48": 77.50}
SPEC_CS_M = {"resnet50": 43.08, "resnet101": 62.08, "hrnetv2_w18s": 11.75, "hrnetv2_w18": 17.45,
             "hrnetv2_w48": 77.36}
SPEC_MMSEG_CS_M = {"resnet50": 36.5, "resnet101": 55.5, "hrnetv2_w18s": 6.4, "hrnetv2_w18": 12.1,
                   "hrnetv2_w48": 70.4}
# forward/backward at 64x64 on 2 CPU cores: W18-Small ~10 s; R-50 ~25 s and W18 ~40 s are `slow`
FAST = ["hrnetv2_w18s"]
SLOW = ["resnet50", "hrnetv2_w18", "resnet101", "hrnetv2_w48"]


def _keys(backbone):
    out = {}
    for line in (KEYS_DIR / KEY_FILES[backbone]).read_text().splitlines():
        k, s = line.split("\t")
        out[k] = tuple(ast.literal_eval(s))
    return out


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


def _key_file_params(backbone, prefix=""):
    return sum(math.prod(s) for k, s in _keys(backbone).items()
               if k.startswith(prefix) and not k.endswith(BUFFERS))


def _mmseg_head_params(backbone, k):
    """Independent re-statement of mmseg's OCRNet head sizes (FCNHead aux + OCRHead)."""
    hrnet = backbone.startswith("hrnet")
    cin = {"hrnetv2_w48": 720}.get(backbone, 270) if hrnet else 2048
    aux_in = cin if hrnet else 1024
    aux_ch, aux_k = (cin, 1) if hrnet else (256, 3)
    aux = aux_in * aux_ch * aux_k ** 2 + 2 * aux_ch + aux_ch * k + k   # conv(no bias), BN, conv_seg
    pre = cin * 512 * 9 + 2 * 512                                      # 3x3 bottleneck + BN
    cbr = lambda i, o: i * o + 2 * o                                    # noqa: E731 1x1 conv + BN
    ocb = 2 * (cbr(512, 256) + cbr(256, 256)) + cbr(512, 256) + cbr(256, 512) + cbr(1024, 512)
    return aux + pre + ocb + 512 * k + k


@pytest.mark.parametrize("backbone", sorted(KEY_FILES))
def test_ssseg_state_dict_and_param_count(backbone):
    model = build_ocrnet(backbone, num_classes=21)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == _keys(backbone)
    assert _n_params(model) == _key_file_params(backbone) == SPEC_VOC[backbone]
    # other datasets only change the two classifiers: (K - 21) * (512 + 1) each
    for k, spec in ((150, SPEC_ADE_M), (19, SPEC_CS_M)):
        n = SPEC_VOC[backbone] + 2 * (k - 21) * 513
        assert _n_params(build_ocrnet(backbone, num_classes=k)) == n
        assert round(n / 1e6, 2) == spec[backbone]


@pytest.mark.parametrize("backbone", sorted(KEY_FILES))
def test_mmseg_param_count(backbone):
    model = build_ocrnet(backbone, num_classes=19, preset="mmseg")
    expected = _key_file_params(backbone, "backbone_net.") + _mmseg_head_params(backbone, 19)
    assert _n_params(model) == expected
    assert abs(expected / 1e6 - SPEC_MMSEG_CS_M[backbone]) < 0.05


def test_presets_shape_the_head():
    ss, mm, op = (build_ocrnet("hrnetv2_w18s", 19, preset=p) for p in ("ssseg", "mmseg", "openseg"))
    assert ss.object_context_block.bottleneck[0].kernel_size == (3, 3)
    assert mm.object_context_block.bottleneck[0].kernel_size == (1, 1)
    assert mm.auxiliary_decoder[0].kernel_size == (1, 1) and mm.auxiliary_decoder[0].out_channels == 270
    assert op.auxiliary_decoder[0].out_channels == 270 and op.bottleneck[0].bias is not None
    assert (ss.align_corners, mm.align_corners, op.align_corners) == (False, False, True)
    assert ss.backbone_net.stem_relu is False and mm.backbone_net.stem_relu is True
    assert isinstance(ss.bottleneck[1], torch.nn.SyncBatchNorm)      # SyncBN under DDP, BN otherwise
    assert isinstance(ss.backbone_net.layer1[0].bn1, torch.nn.SyncBatchNorm)
    assert build_ocrnet("hrnetv2_w18s", 19, stem_relu=True).backbone_net.stem_relu is True
    r = build_ocrnet("resnet50", 19, preset="mmseg")
    assert r.auxiliary_decoder[0].out_channels == 256 and r.decoder[0].p == 0.1
    with pytest.raises(ValueError, match="preset"):
        build_ocrnet("resnet50", 19, preset="paddle")
    assert set(OCR_PRESETS) == {"ssseg", "mmseg", "openseg"}


def test_resnet_is_v1c_d8_with_contract_dilation():
    bb = build_ocrnet("resnet50", 19).backbone_net
    assert bb.stem[0].out_channels == 32 and bb.stem[6].out_channels == 64
    assert [b.conv2.dilation[0] for b in bb.layer3] == [1, 2, 2, 2, 2, 2]
    assert [b.conv2.dilation[0] for b in bb.layer4] == [2, 4, 4]
    assert bb.layer2[0].conv2.stride == (2, 2) and bb.layer3[0].conv2.stride == (1, 1)


def _forward_backward(name, size=64):
    torch.manual_seed(0)
    model = network.get_segmentation_model(name, num_classes=5)
    assert model.has_aux and model.align_corners is False
    x = torch.randn(2, 3, size, size)
    out = model(x)
    assert isinstance(out, network.SegOutput)
    aux, main = out
    stride = 4 if name.startswith("hrnet") else 8
    assert aux.shape == main.shape == (2, 5, size // stride, size // stride)
    label = torch.randint(0, 5, (2, size, size))
    up = lambda t: F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)  # noqa
    # the main loss alone reaches the aux head: the soft regions are not detached
    F.cross_entropy(up(main), label).backward(retain_graph=True)
    assert model.auxiliary_decoder[4].weight.grad.abs().sum() > 0
    loss = F.cross_entropy(up(main), label) + 0.4 * F.cross_entropy(up(aux), label)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("backbone", FAST)
def test_forward_backward(backbone):
    _forward_backward(f"{backbone}_ocr")


@pytest.mark.slow
@pytest.mark.parametrize("backbone", SLOW)
def test_forward_backward_big(backbone):
    _forward_backward(f"{backbone}_ocr")


def test_eval_is_deterministic_and_impls_agree():
    torch.manual_seed(0)
    a = build_ocrnet("hrnetv2_w18s", 4, attention="sdpa").eval()
    b = build_ocrnet("hrnetv2_w18s", 4, attention="naive").eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(a(x).main, b(x).main, rtol=1e-4, atol=1e-5)


def test_registry_names():
    for name in ("resnet50_ocr", "resnet101_ocr", "hrnetv2_w18s_ocr", "hrnetv2_w18_ocr",
                 "hrnetv2_w48_ocr"):
        assert name in network.NETWORKS
