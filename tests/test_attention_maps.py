"""utils/attention_maps.py: attention read through hooks, checked against known attention and against
the blocks' own forward outputs."""
import numpy as np
import pytest
import torch
from torch import nn

from oc_module.ocr_block import SpatialGather_Module, SpatialOCR_Module
from oc_module.self_attention import PyramidSelfAttentionBlock2D, SelfAttentionBlock2D, pyramid_cells
from utils.attention_maps import AttentionProbe, check_points, feature_point
from utils.errors import ConfigError


def _identity_abn(abn):
    """ABN computing the identity (then leaky ReLU): |w| + eps = 1, mean 0, var + eps = 1."""
    with torch.no_grad():
        abn.weight.fill_(1 - abn.eps)
        abn.bias.zero_()
        abn.running_mean.zero_()
        abn.running_var.fill_(1 - abn.eps)


def _colour_block(gain=10.0):
    """key = gain * x, value = x, W = identity: a pixel of one-hot colour c scores gain^2 / sqrt(3)
    (= 57.7) with the pixels of its own colour and 0 with the others."""
    block = SelfAttentionBlock2D(3, 3, 3, 3, scale=1).eval()
    with torch.no_grad():
        block.f_key[0].weight.copy_(gain * torch.eye(3)[:, :, None, None])
        block.f_key[0].bias.zero_()
        block.f_value.weight.copy_(torch.eye(3)[:, :, None, None])
        block.f_value.bias.zero_()
        block.W.weight.copy_(torch.eye(3)[:, :, None, None])
        block.W.bias.zero_()
    _identity_abn(block.f_key[1])
    return block


def _colour_image():
    """8x10 image of three one-hot colours in irregular regions; returns (x (1, 3, 8, 10), ids)."""
    ids = np.zeros((8, 10), int)
    ids[2:6, 1:4] = 1
    ids[5:, 6:] = 2
    ids[0, 9] = 2
    x = torch.from_numpy(np.eye(3, dtype=np.float32)[ids]).permute(2, 0, 1)[None]
    return x, ids


def test_attention_falls_on_own_colour():
    block = _colour_block()
    model = nn.Sequential(block)
    x, ids = _colour_image()
    points = [(0, 0), (2, 3), (7, 6), (9, 0)]        # (x, y): colours 0, 1, 2, 2
    with AttentionProbe(model) as probe:
        out = model(x)
    (res,) = probe.maps(points, (8, 10))
    assert res.maps.shape == (4, 8, 10)
    for i, (px, py) in enumerate(points):
        same = ids == ids[py, px]
        expected = same / same.sum()                  # uniform over the pixels of its colour
        np.testing.assert_allclose(res.maps[i].numpy(), expected, atol=1e-6)
    # the forward really attends there: the context of each pixel is its own colour
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_hooks_only_inside_the_probe():
    model = nn.Sequential(_colour_block())
    with AttentionProbe(model):
        assert len(model[0]._forward_pre_hooks) == 1
    assert len(model[0]._forward_pre_hooks) == 0
    with pytest.raises(ConfigError, match="no object-context attention"):
        AttentionProbe(nn.Sequential(nn.Conv2d(3, 3, 1)))


def _random_block(cls, scale, seed=0):
    torch.manual_seed(seed)
    block = cls(6, 4, 5, 6, scale=scale).eval()
    nn.init.normal_(block.W.weight)
    nn.init.normal_(block.W.bias)
    with torch.no_grad():
        block.f_key[1].running_mean.normal_()
        block.f_key[1].running_var.uniform_(0.5, 2)
    return block


def _context_from_map(block, x, amap):
    """W(sum_j a_j v_j): the block's output at the query, rebuilt from the probed map."""
    if block.pool is not None:
        x = block.pool(x)
    value = block.f_value(x)[0]                                    # (Cv, h, w)
    mixed = torch.einsum("hw,chw->c", amap, value)
    return block.W.weight[:, :, 0, 0] @ mixed + block.W.bias


@pytest.mark.parametrize("cls,scale", [(SelfAttentionBlock2D, 1), (SelfAttentionBlock2D, 2),
                                       (PyramidSelfAttentionBlock2D, 2), (PyramidSelfAttentionBlock2D, 3)])
def test_map_reproduces_block_output(cls, scale):
    block = _random_block(cls, scale)
    x = torch.randn(1, 6, 9, 7)
    # corners and cell corners: where the pooled block's upsampling hits a pooled cell exactly
    points = [(0, 0), (6, 8), (3, 4)] if cls is PyramidSelfAttentionBlock2D else [(0, 0)]
    if cls is SelfAttentionBlock2D and scale == 1:
        points += [(3, 4), (6, 2)]
    with AttentionProbe(block) as probe:
        out = block(x)[0]                                          # (out, 9, 7)
    (res,) = probe.maps(points, (9, 7))
    torch.testing.assert_close(res.maps.flatten(1).sum(1), torch.ones(len(points)))
    for i, (px, py) in enumerate(points):
        torch.testing.assert_close(_context_from_map(block, x, res.maps[i]), out[:, py, px],
                                   atol=1e-5, rtol=1e-4)
        if cls is PyramidSelfAttentionBlock2D:             # zero outside the query's cell
            (r0, r1), = [c for c in pyramid_cells(9, scale) if c[0] <= py < c[1]]
            (c0, c1), = [c for c in pyramid_cells(7, scale) if c[0] <= px < c[1]]
            inside = torch.zeros(9, 7, dtype=torch.bool)
            inside[r0:r1, c0:c1] = True
            assert float(res.maps[i][~inside].abs().max()) == 0.0


class _TinyOCR(nn.Module):
    def __init__(self):
        super().__init__()
        self.gather = SpatialGather_Module()
        self.ocr = SpatialOCR_Module(6, 4, 6, fusion_kernel=1)

    def forward(self, feats, aux):
        regions = self.gather(feats, aux)
        return self.ocr.object_context(feats, regions), self.ocr(feats, regions)


def test_ocr_regions_and_relation():
    torch.manual_seed(0)
    model = _TinyOCR().eval()
    feats, aux = torch.randn(1, 6, 5, 4), torch.randn(1, 3, 5, 4)
    with AttentionProbe(model) as probe:
        context, _ = model(feats, aux)
    regions, relation = probe.maps([(0, 0), (3, 4)], (5, 4))
    assert regions.kind == "regions" and relation.kind == "relation"
    expected = torch.softmax(aux[0].reshape(3, -1), dim=1).reshape(3, 5, 4)   # over the pixels
    torch.testing.assert_close(regions.maps, expected)
    # rebuild the block's context at each pixel from the relation weights
    f = torch.einsum("khw,chw->ck", expected, feats[0])[None, :, :, None]    # (1, C, K, 1)
    value = model.ocr.value_project(f)[0, :, :, 0]                           # (Ck, K)
    for i, (px, py) in enumerate([(0, 0), (3, 4)]):
        torch.testing.assert_close(relation.maps[i].sum(), torch.tensor(1.0))
        mixed = (value @ relation.maps[i])[None, :, None, None]              # (1, Ck, 1, 1)
        torch.testing.assert_close(model.ocr.out_project(mixed)[0, :, 0, 0], context[0, :, py, px],
                                   atol=1e-5, rtol=1e-4)


def test_points_outside_and_mapping():
    with pytest.raises(ConfigError, match=r"100x50 pixels.*x must be in 0..99 and y in 0..49"):
        check_points([(10, 10), (100, 3)], 50, 100)
    check_points([(0, 0), (99, 49)], 50, 100)
    assert feature_point(0, 0, (64, 64), (8, 8)) == (0, 0)
    assert feature_point(63, 63, (64, 64), (8, 8)) == (7, 7)
    assert feature_point(8, 15, (64, 64), (8, 8)) == (1, 1)
