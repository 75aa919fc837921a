"""HRNetV2 backbone: exact sssegmentation key names/shapes, fusion maths, stem_relu switch."""
import ast
import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from network.hrnet import BasicBlock, HRModule, HRNet
from saved_tensors import saved_storages

KEYS_DIR = Path(__file__).parent / "data" / "ssseg_ocrnet_keys"  # recorded sssegmentation key lists
KEY_FILES = {"hrnetv2_w18_small": "hrnetv2w18s.txt", "hrnetv2_w18": "hrnetv2w18.txt",
             "hrnetv2_w48": "hrnetv2w48.txt"}
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _ssseg_backbone_keys(arch):
    """{key: shape} of sssegmentation's ``backbone_net.*`` entries (prefix stripped)."""
    out = {}
    for line in (KEYS_DIR / KEY_FILES[arch]).read_text().splitlines():
        k, s = line.split("\t")
        if k.startswith("backbone_net."):
            out[k[len("backbone_net."):]] = tuple(ast.literal_eval(s))
    return out


@pytest.mark.parametrize("arch", sorted(KEY_FILES))
def test_state_dict_equals_sssegmentation(arch):
    theirs = _ssseg_backbone_keys(arch)
    net = HRNet(arch)
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert ours == theirs
    # parameter count = sum of the non-buffer shapes of the key file (3,860,720 for W18-S ...)
    expected = sum(math.prod(s) for k, s in theirs.items() if not k.endswith(BUFFERS))
    assert sum(p.numel() for p in net.parameters()) == expected


@pytest.mark.parametrize("arch,channels", [("hrnetv2_w18_small", 270), ("hrnetv2_w48", 720)])
def test_output_is_quarter_resolution_concat(arch, channels):
    net = HRNet(arch).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 64)).shape == (1, channels, 16, 16)
        if arch == "hrnetv2_w18_small":
            # odd sizes: the exact-size resize keeps every branch aligned with the 1/4 branch
            assert net(torch.randn(1, 3, 70, 90)).shape[2:] == (18, 23)


def test_stem_relu_same_state_dict_different_forward():
    torch.manual_seed(0)
    on, off = HRNet("hrnetv2_w18_small", stem_relu=True), HRNet("hrnetv2_w18_small", stem_relu=False)
    off.load_state_dict(on.state_dict(), strict=True)
    assert list(on.state_dict()) == list(off.state_dict())
    on.eval(), off.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(on(x), off(x))
        # oracle: with bn1's output forced positive the ReLU is a no-op, so both must agree exactly
        for net in (on, off):
            net.bn1.bias.data.fill_(100.0)
        torch.testing.assert_close(on(x), off(x), rtol=0, atol=0)


def _bn_eval(bn, x):
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0., bn.eps)


def test_hrmodule_fusion_equals_oracle():
    """Two branches, no blocks: y0 = relu(x0 + up(BN(conv1x1 x1))); y1 = relu(BN(conv3x3s2 x0) + x1)."""
    torch.manual_seed(0)
    m = HRModule((0, 0), (2, 4), nn.BatchNorm2d).double().eval()
    for bn in (m.fuse_layers[0][1][1], m.fuse_layers[1][0][0][1]):
        bn.running_mean.uniform_(-0.2, 0.2), bn.running_var.uniform_(0.5, 1.5)
        bn.weight.data.uniform_(0.5, 1.5), bn.bias.data.uniform_(-0.2, 0.2)
    x0, x1 = torch.randn(1, 2, 8, 6, dtype=torch.float64), torch.randn(1, 4, 4, 3, dtype=torch.float64)
    c01, c10 = m.fuse_layers[0][1][0], m.fuse_layers[1][0][0][0]
    up = F.interpolate(_bn_eval(m.fuse_layers[0][1][1], F.conv2d(x1, c01.weight)), size=(8, 6),
                       mode="bilinear", align_corners=False)
    y0 = torch.relu(x0 + up)
    y1 = torch.relu(_bn_eval(m.fuse_layers[1][0][0][1], F.conv2d(x0, c10.weight, stride=2, padding=1))
                    + x1)
    got = m([x0, x1])
    torch.testing.assert_close(got[0], y0), torch.testing.assert_close(got[1], y1)


def test_three_step_downsample_has_relu_only_between_steps():
    m = HRModule((1, 1, 1, 1), (2, 3, 4, 5), nn.BatchNorm2d)
    chain = m.fuse_layers[3][0]
    assert [len(step) for step in chain] == [3, 3, 2]          # conv, BN, ReLU | ... | conv, BN
    assert chain[2][0].out_channels == 5 and chain[0][0].out_channels == 2


def test_bad_input():
    net = HRNet("hrnetv2_w18_small")
    with pytest.raises(ValueError, match="too small"):
        net(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        net(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match="arch"):
        HRNet("hrnetv2_w32")


@pytest.mark.parametrize("norm", [nn.BatchNorm2d, nn.SyncBatchNorm])
def test_memory_efficient_same_function_fewer_saved_bytes(norm):
    """HRNet(memory_efficient=True): the same outputs, gradients and running statistics as the
    literal graph; the BasicBlocks' bn1 -> ReLU -> conv2 keep one tensor instead of two, so the
    saved bytes drop by at least one conv1 output per BasicBlock (counted from the model)."""
    torch.manual_seed(0)
    net = HRNet("hrnetv2_w18_small", norm_layer=norm).double().train()
    ref = copy.deepcopy(net)
    net.set_memory_efficient(True)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    outs = []
    for model in (net, ref):
        xi = x.clone().requires_grad_()
        y = model(xi)
        y.backward(torch.ones_like(y) / y.numel())
        outs.append((y.detach(), xi.grad))
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=0, atol=0)
    torch.testing.assert_close(outs[0][1], outs[1][1])
    for (name, a), b in zip(net.named_parameters(), ref.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)
    for (name, a), b in zip(net.named_buffers(), ref.buffers()):
        torch.testing.assert_close(a, b, msg=name)
    # one conv1 output per BasicBlock is no longer kept: sizes from a forward hook
    sizes = []
    hooks = [m.conv1.register_forward_hook(lambda m, i, o: sizes.append(o.numel() * o.element_size()))
             for m in ref.modules() if isinstance(m, BasicBlock)]
    literal = sum(saved_storages(lambda: ref(x)).values())
    for h in hooks:
        h.remove()
    assert sizes
    assert sum(saved_storages(lambda: net(x)).values()) <= literal - sum(sizes)
