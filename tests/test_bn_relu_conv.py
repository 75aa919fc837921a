"""network/bn_relu_conv.py: BatchNorm -> ReLU -> conv keeping only the norm's input."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from network.bn_relu_conv import _BNReLUConv2d, bn_relu_conv2d, supports
from saved_tensors import saved_storages


def _pair(channels=4, out=3, dtype=torch.float64, momentum=0.1, **conv_kw):
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(channels, momentum=momentum).to(dtype)
    conv = nn.Conv2d(channels, out, 3, **({"padding": 1} | conv_kw)).to(dtype)
    with torch.no_grad():  # mixed signs: some ReLUs off, and |w| != w
        bn.weight.uniform_(-1.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return bn.train(), conv


def test_gradcheck_float64():
    bn, conv = _pair(padding=2, dilation=2, stride=2)
    c = torch.randn(2, 4, 7, 6, dtype=torch.float64, requires_grad=True)

    def fn(c, bw, bb, w, b):
        rm, rv = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
        return _BNReLUConv2d.apply(c, bw, bb, rm, rv, 0.1, 1e-5, w, b, conv.stride, conv.padding,
                                   conv.dilation, conv.groups)
    assert torch.autograd.gradcheck(fn, (c, bn.weight, bn.bias, conv.weight, conv.bias))


@pytest.mark.parametrize("momentum", [0.1, None])  # None: cumulative average, like nn.BatchNorm2d
def test_same_outputs_gradients_and_running_stats_as_plain_modules(momentum):
    """Oracle: conv(relu(bn(c))) with the stock modules, two steps (num_batches_tracked matters
    for momentum=None)."""
    bn, conv = _pair(momentum=momentum)
    bn_ref, conv_ref = copy.deepcopy(bn), copy.deepcopy(conv)
    for step in range(2):
        c = torch.randn(3, 4, 6, 5, dtype=torch.float64) * 2 + step
        c1, c2 = c.clone().requires_grad_(), c.clone().requires_grad_()
        y = bn_relu_conv2d(c1, bn, conv)
        y_ref = conv_ref(F.relu(bn_ref(c2)))
        g = torch.randn_like(y)
        y.backward(g)
        y_ref.backward(g)
        torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
        torch.testing.assert_close(c1.grad, c2.grad)
    for mine, ref in ((bn, bn_ref), (conv, conv_ref)):
        for (name, a), b in zip(mine.named_parameters(), ref.parameters()):
            torch.testing.assert_close(a.grad, b.grad, msg=name)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(bn, name), getattr(bn_ref, name), msg=name)


def test_keeps_one_full_size_tensor_instead_of_two():
    """Measured with saved-tensor hooks: the plain pair keeps the norm input and the ReLU output
    (two tensors of the pair's size); this function keeps only the norm input."""
    bn, conv = _pair(8, 8, torch.float32)
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    size = x.numel()

    def full_size_saved(fn):
        return sum(saved_storages(lambda: fn(x * 1), keep=lambda t: t.numel() == size).values())
    plain = full_size_saved(lambda c: conv(F.relu(bn(c))))
    mine = full_size_saved(lambda c: bn_relu_conv2d(c, bn, conv))
    assert plain == 2 * size * 4
    assert mine == size * 4


def test_plain_ops_when_the_path_does_not_apply(monkeypatch):
    bn, conv = _pair(dtype=torch.float32)
    c = torch.randn(2, 4, 5, 5, requires_grad=True)
    seen = []
    orig = _BNReLUConv2d.apply
    monkeypatch.setattr(_BNReLUConv2d, "apply", lambda *args: seen.append(1) or orig(*args))
    with torch.no_grad():
        bn_relu_conv2d(c, bn, conv)  # no gradient
    bn.eval()
    bn_relu_conv2d(c, bn, conv)  # running statistics
    bn.train()
    assert seen == []
    bn_relu_conv2d(c, bn, conv)
    assert seen == [1]
    assert supports(nn.SyncBatchNorm(4), conv)  # one process: local statistics, as BN
    assert not supports(nn.GroupNorm(2, 4), conv) and not supports(nn.BatchNorm1d(4), conv)
    assert not supports(nn.BatchNorm2d(4, affine=False), conv)
    assert not supports(bn, nn.Conv2d(4, 3, 3, padding="same"))
    assert supports(bn, conv)


def test_autocast_bf16_matches_plain_modules():
    """Under CPU bf16 autocast the conv runs in bf16 like autocast's conv; tiny tensors (bf16 on
    this CPU is slow)."""
    bn, conv = _pair(4, 3, torch.float32)
    bn_ref, conv_ref = copy.deepcopy(bn), copy.deepcopy(conv)
    c = torch.randn(2, 4, 5, 5)
    c1, c2 = c.clone().requires_grad_(), c.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = bn_relu_conv2d(c1, bn, conv)
        y_ref = conv_ref(F.relu(bn_ref(c2)))
    assert y.dtype == y_ref.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), y_ref.float(), rtol=2e-2, atol=2e-2)
    g = torch.randn_like(y)
    y.backward(g)
    y_ref.backward(g)
    torch.testing.assert_close(c1.grad, c2.grad, rtol=5e-2, atol=5e-2)
    torch.testing.assert_close(conv.weight.grad, conv_ref.weight.grad, rtol=5e-2, atol=5e-2)
    assert conv.weight.grad.dtype == torch.float32


def test_sync_batch_norm_across_processes_keeps_its_own_path(monkeypatch):
    """Under a process group of 2+ processes SyncBatchNorm must exchange statistics: not ours."""
    _, conv = _pair(dtype=torch.float32)
    sync = nn.SyncBatchNorm(4)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda group=None: 2)
    assert not supports(sync, conv)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda group=None: 1)
    assert supports(sync, conv)
