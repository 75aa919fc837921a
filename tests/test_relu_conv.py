"""network/relu_conv.py: conv(relu(z)) keeping only z, against F.conv2d(F.relu(z)) (the oracle)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inplace_abn import InPlaceABNSync
from network.relu_conv import relu_conv2d
from network.resnet import Bottleneck, ResNet
from saved_tensors import saved_storages


@pytest.mark.parametrize("stride,padding,dilation,bias", [(1, 1, 1, True), (2, 1, 1, False),
                                                          (1, 2, 2, False), (1, 0, 1, True)])
def test_gradcheck_float64(stride, padding, dilation, bias):
    conv = nn.Conv2d(2, 3, 3 if padding else 1, stride, padding, dilation, bias=bias).double()
    z = torch.randn(2, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    params = [conv.weight] + ([conv.bias] if bias else [])

    def fn(z, *p):
        return relu_conv2d(z, conv)
    assert torch.autograd.gradcheck(fn, (z, *params), fast_mode=True)


def test_same_values_and_gradients_as_relu_then_conv():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 6, 3, padding=2, dilation=2)
    z = torch.randn(2, 8, 9, 9, requires_grad=True)
    g = torch.randn(2, 6, 9, 9)
    y = relu_conv2d(z, conv)
    grads = torch.autograd.grad(y, (z, conv.weight, conv.bias), g)
    y_ref = conv(F.relu(z))
    grads_ref = torch.autograd.grad(y_ref, (z, conv.weight, conv.bias), g)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_autocast_bf16_matches_relu_then_conv():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 4, 3, padding=1)
    z = torch.randn(1, 4, 6, 6, requires_grad=True)
    out = []
    for fn in (lambda: relu_conv2d(z, conv), lambda: conv(F.relu(z))):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = fn()
        assert y.dtype == torch.bfloat16
        out.append((y, *torch.autograd.grad(y.float().sum(), (z, conv.weight))))
    for a, b in zip(*out):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b)


def test_bottleneck_saves_one_activation_less_per_norm_relu_pair():
    """With InPlace-ABN norms, a bottleneck keeps exactly the two ReLU outputs (bn1 and bn2
    branches, N x planes x H x W fp32 each) less, counted with saved_tensors_hooks."""
    torch.manual_seed(0)
    n, planes, h, w = 2, 16, 12, 10
    block = Bottleneck(planes * 4, planes, norm_layer=lambda c: InPlaceABNSync(c, activation="none"))
    x = torch.randn(n, planes * 4, h, w, requires_grad=True)
    saved = {}
    for flag in (False, True):
        block.memory_efficient = flag
        saved[flag] = sum(saved_storages(lambda: block(x.clone())).values())
    assert saved[False] - saved[True] == 2 * n * planes * h * w * 4


@pytest.mark.slow
def test_resnet_memory_efficient_same_outputs_and_gradients():
    """The default (memory_efficient) backbone and the literal one: same logits and gradients."""
    torch.manual_seed(0)
    net = ResNet(depth=50).double()
    assert net.memory_efficient and all(m.memory_efficient for m in net.modules()
                                        if isinstance(m, Bottleneck))
    x = torch.randn(1, 3, 33, 33, dtype=torch.float64)
    results = []
    for flag in (True, False):
        net.set_memory_efficient(flag)
        net.zero_grad()
        out = net(x)[-1]
        out.square().mean().backward()
        results.append((out.detach(), [p.grad.clone() for p in net.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-12, atol=1e-12)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_channels_last_input():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 5, 3, padding=1).to(memory_format=torch.channels_last)
    z = torch.randn(2, 4, 6, 7).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = relu_conv2d(z, conv)
    gz, gw = torch.autograd.grad(y.square().sum(), (z, conv.weight))
    y_ref = conv(F.relu(z))
    gz_ref, gw_ref = torch.autograd.grad(y_ref.square().sum(), (z, conv.weight))
    for a, b in ((y, y_ref), (gz, gz_ref), (gw, gw_ref)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [None, torch.float16, torch.bfloat16])
def test_cuda_matches_relu_then_conv(dtype):
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 8, 3, padding=1).cuda().to(memory_format=torch.channels_last)
    z = torch.randn(2, 16, 12, 12, device="cuda").requires_grad_()
    out = []
    for fn in (lambda: relu_conv2d(z, conv), lambda: conv(F.relu(z))):
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            y = fn()
        out.append((y, *torch.autograd.grad(y.float().square().sum(), (z, conv.weight, conv.bias))))
    tol = 1e-4 if dtype is None else 2e-2
    for a, b in zip(*out):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
