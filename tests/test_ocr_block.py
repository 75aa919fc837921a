"""OCR blocks against an einsum oracle written from the paper's equations (float64)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from oc_module.ocr_block import SpatialGather_Module, SpatialOCR_Module, conv_bn_relu


def _randomise_bn(module, gen):
    """Non-trivial BN statistics and affine parameters, so eval-mode BN is not the identity."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen, dtype=torch.float64) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen, dtype=torch.float64) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen, dtype=torch.float64) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=gen, dtype=torch.float64) * 0.1)


def _cbr_1x1(seq, x):
    """Oracle of Sequential(1x1 conv, BN (eval), ReLU) with einsum."""
    conv, bn = seq[0], seq[1]
    y = torch.einsum("oc,nc...->no...", conv.weight[:, :, 0, 0], x)
    if conv.bias is not None:
        y = y + conv.bias.view(1, -1, *([1] * (x.dim() - 2)))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    y = (y - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps)
    return torch.relu(y * bn.weight.view(shape) + bn.bias.view(shape))


def test_spatial_gather_equals_softmax_over_pixels():
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 5, 3, 4, generator=gen, dtype=torch.float64)
    probs = torch.randn(2, 3, 3, 4, generator=gen, dtype=torch.float64)
    for scale in (1.0, 2.5):
        got = SpatialGather_Module(scale)(feats, probs)                   # (N, C, K, 1)
        e = torch.exp(scale * probs.flatten(2))
        m = e / e.sum(dim=2, keepdim=True)                               # softmax over HW
        want = torch.einsum("nkp,ncp->nck", m, feats.flatten(2)).unsqueeze(3)
        assert got.shape == (2, 5, 3, 1)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # a region with one dominant pixel picks that pixel's feature
    probs = torch.full((1, 1, 3, 4), -1e4, dtype=torch.float64)
    probs[0, 0, 2, 1] = 0
    torch.testing.assert_close(SpatialGather_Module()(feats[:1], probs)[0, :, 0, 0],
                               feats[0, :, 2, 1])


def test_spatial_gather_rejects_size_mismatch():
    with pytest.raises(ValueError, match="spatial size"):
        SpatialGather_Module()(torch.zeros(1, 4, 3, 3), torch.zeros(1, 2, 3, 4))


@pytest.mark.parametrize("impl", ["sdpa", "naive"])
@pytest.mark.parametrize("fusion_kernel,bias", [(3, False), (1, True)])
def test_object_context_block_equals_einsum_oracle(impl, fusion_kernel, bias):
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    c, ck, k = 8, 4, 3
    block = SpatialOCR_Module(c, ck, 6, fusion_kernel=fusion_kernel, bias=bias, impl=impl).double()
    _randomise_bn(block, gen)
    block.eval()
    x = torch.randn(2, c, 5, 6, generator=gen, dtype=torch.float64)
    regions = torch.randn(2, c, k, 1, generator=gen, dtype=torch.float64)

    q = _cbr_1x1(block.query_project[1], _cbr_1x1(block.query_project[0], x))          # (N,Ck,H,W)
    key = _cbr_1x1(block.key_project[1], _cbr_1x1(block.key_project[0], regions))      # (N,Ck,K,1)
    v = _cbr_1x1(block.value_project, regions)
    scores = torch.einsum("nchw,nck->nhwk", q, key[..., 0]) * ck ** -0.5
    att = torch.softmax(scores, dim=-1)                                                # over regions
    ctx = _cbr_1x1(block.out_project, torch.einsum("nhwk,nck->nchw", att, v[..., 0]))
    cat = torch.cat([ctx, x], dim=1)                                                   # context first
    conv, bn = block.bottleneck[0], block.bottleneck[1]
    y = F.conv2d(cat, conv.weight, conv.bias, padding=fusion_kernel // 2)
    y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    want = torch.relu(y)

    got = block(x, regions)
    assert got.shape == (2, 6, 5, 6)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_object_context_block_structure_and_grad():
    block = SpatialOCR_Module(16, 8, 16, fusion_kernel=1, dropout=0.05, bias=True)
    assert isinstance(block.bottleneck[3], nn.Dropout2d) and block.bottleneck[0].kernel_size == (1, 1)
    assert SpatialOCR_Module(16, 8, 16).bottleneck[0].kernel_size == (3, 3)
    assert block.query_project[0][0].bias is not None
    assert SpatialOCR_Module(16, 8, 16).query_project[0][0].bias is None
    x = torch.randn(2, 16, 4, 4, requires_grad=True)
    r = torch.randn(2, 16, 5, 1, requires_grad=True)
    block(x, r).sum().backward()
    assert x.grad.abs().sum() > 0 and r.grad.abs().sum() > 0


def test_object_context_block_bad_options():
    with pytest.raises(ValueError, match="fusion_kernel"):
        SpatialOCR_Module(8, 4, 8, fusion_kernel=5)
    with pytest.raises(ValueError, match="impl"):
        SpatialOCR_Module(8, 4, 8, impl="flash")


def test_conv_bn_relu_keys():
    assert list(conv_bn_relu(3, 4, 3).state_dict()) == [
        "0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var",
        "1.num_batches_tracked"]


def test_object_context_attention_runs_a_fused_kernel():
    """The OCR block's pixel-region attention reaches SDPA's fused CPU kernel (not the math path)."""
    from torch.profiler import ProfilerActivity, profile
    block = SpatialOCR_Module(16, 8, 16, fusion_kernel=1)
    feats, regions = torch.randn(2, 16, 6, 5), torch.randn(2, 16, 4, 1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        block(feats, regions).sum().backward()
    ops = {e.key for e in prof.key_averages()}
    assert "aten::_scaled_dot_product_attention_math" not in ops, sorted(ops)
    assert any("flash_attention" in op for op in ops), sorted(ops)
