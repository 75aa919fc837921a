"""oc_module BaseOC / Pyramid-OC / ASP-OC: wiring, concat order and the zero-context start."""
import pytest
import torch
import torch.nn.functional as F

from oc_module import ASP_OC_Module, BaseOC_Context_Module, BaseOC_Module, Pyramid_OC_Module


def _abn_eval(y, abn, activation=True):
    """Eval-mode InPlace-ABN oracle: (y - mean) / sqrt(var + eps) * (|w| + eps) + b, leaky 0.01."""
    scale = (abn.weight.abs() + abn.eps) / torch.sqrt(abn.running_var + abn.eps)
    y = (y - abn.running_mean[None, :, None, None]) * scale[None, :, None, None]
    y = y + abn.bias[None, :, None, None]
    return F.leaky_relu(y, 0.01) if activation else y


def _conv_abn(seq, x):
    conv = seq[0]
    y = F.conv2d(x, conv.weight, conv.bias, padding=conv.padding, dilation=conv.dilation)
    return _abn_eval(y, seq[1])


def _perturb_stats(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return module.eval()


def test_base_oc_starts_from_zero_context_and_concats_context_first():
    m = _perturb_stats(BaseOC_Module(8, 8, 4, 4, dropout=0.05, sizes=(1,)))
    x = torch.randn(2, 8, 5, 6)
    # W is zero at init: the fused input is cat([0, x])
    expected = _conv_abn(m.conv_bn_dropout, torch.cat([torch.zeros_like(x), x], 1))
    torch.testing.assert_close(m(x), expected, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        torch.nn.init.normal_(m.stages[0].W.weight)
        ctx = m.stages[0](x)
    assert ctx.abs().sum() > 0
    expected = _conv_abn(m.conv_bn_dropout, torch.cat([ctx, x], 1))
    torch.testing.assert_close(m(x), expected, rtol=1e-5, atol=1e-5)


def test_base_oc_context_module_has_no_concat_and_no_dropout():
    m = _perturb_stats(BaseOC_Context_Module(6, 6, 3, 6, dropout=0.5, sizes=(2,)))
    assert not any(isinstance(c, torch.nn.Dropout2d) for c in m.modules())
    x = torch.randn(1, 6, 8, 8)
    # zero context -> conv_bn(0) = ABN(conv bias), a per-channel constant
    bias_map = m.conv_bn_dropout[0].bias[None, :, None, None].expand(1, 6, 8, 8)
    torch.testing.assert_close(m(x), _abn_eval(bias_map, m.conv_bn_dropout[1]))


def test_pyramid_oc_concat_order_and_widths():
    m = _perturb_stats(Pyramid_OC_Module(8, 8, dropout=0.05, sizes=(1, 2, 3, 6)))
    assert m.up_dr[0].out_channels == 32 and m.conv_bn_dropout[0].in_channels == 64
    assert [s.key_channels for s in m.stages] == [4] * 4
    assert [s.value_channels for s in m.stages] == [8] * 4
    with torch.no_grad():
        for s in m.stages:
            torch.nn.init.normal_(s.W.weight)
    x = torch.randn(1, 8, 13, 13)
    with torch.no_grad():
        parts = [_conv_abn(m.up_dr, x)] + [s(x) for s in m.stages]
        expected = _conv_abn(m.conv_bn_dropout, torch.cat(parts, 1))
        torch.testing.assert_close(m(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("features,out,fuse", [(16, 8, 16), (32, 8, 8)])
def test_asp_oc_branches_and_order(features, out, fuse):
    m = _perturb_stats(ASP_OC_Module(features, out, dilations=(1, 2, 3), fuse_features=fuse))
    assert [c[0].dilation[0] for c in (m.conv3, m.conv4, m.conv5)] == [1, 2, 3]
    assert m.conv_bn_dropout[0].weight.shape == (fuse, 5 * out, 1, 1)
    assert m.context[2].stages[0].scale == 2 and m.context[2].stages[0].key_channels == out // 2
    x = torch.randn(1, features, 9, 9)
    with torch.no_grad():
        parts = [m.context(x)] + [_conv_abn(c, x) for c in (m.conv2, m.conv3, m.conv4, m.conv5)]
        expected = _abn_eval(F.conv2d(torch.cat(parts, 1), m.conv_bn_dropout[0].weight),
                             m.conv_bn_dropout[1])
        torch.testing.assert_close(m(x), expected, rtol=1e-5, atol=1e-5)


def test_default_asp_dilations_match_paper():
    m = ASP_OC_Module(32, 8)
    assert [c[0].dilation[0] for c in (m.conv3, m.conv4, m.conv5)] == [12, 24, 36]
    assert [c[0].padding[0] for c in (m.conv3, m.conv4, m.conv5)] == [12, 24, 36]
    assert m.conv2[0].bias is None and m.context[0].bias is not None
