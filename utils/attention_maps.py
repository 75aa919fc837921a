"""Read what the object context attends to, through forward hooks (nothing changes in the model).

:class:`AttentionProbe` registers hooks only inside its ``with`` block, so a model that is not probed
runs exactly as before (no hooks, the memory-efficient attention path). During one forward it keeps
the *input* of each attention block; afterwards it recomputes, with the block's own submodules, only
what the chosen query pixels need, so the cost is O(points x L) and the L x L matrix never exists.

OCNet (:class:`~oc_module.self_attention.SelfAttentionBlock2D`, Base-OC / ASP-OC, and
:class:`~oc_module.self_attention.PyramidSelfAttentionBlock2D`), for a query pixel q::

    x'      = maxpool_s(x)                      (scale s > 1; the query is the pooled cell of q)
    k       = f_key(x')                         (N, Ck, h', w'); the query vector is k[:, :, q]
    a_q     = softmax_j(Ck^-0.5 * k_q . k_j)    over all j (Pyramid-OC: over the cell of q only,
                                                 0 elsewhere)

OCRNet (:class:`~oc_module.ocr_block.SpatialGather_Module` and
:class:`~oc_module.ocr_block.SpatialOCR_Module`)::

    M_k     = softmax_pixels(s * A_k)           soft object region k (the aux logits A)
    w_qk    = softmax_k(Ck^-0.5 * phi(x_q) . psi(f_k))   pixel-region relation of pixel q
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from oc_module.ocr_block import SpatialGather_Module, SpatialOCR_Module
from oc_module.self_attention import PyramidSelfAttentionBlock2D, SelfAttentionBlock2D, pyramid_cells
from utils.errors import ConfigError

__all__ = ["AttentionProbe", "BlockAttention", "attention_blocks", "check_points", "feature_point",
           "ocnet_attention", "ocr_relation", "soft_regions"]


@dataclass
class BlockAttention:
    """Maps of one attention block: ``maps`` (P, h, w) in feature pixels, one per query point."""

    name: str
    kind: str
    maps: torch.Tensor
    extra: dict = field(default_factory=dict)


def attention_blocks(model):
    """[(name, module)] of the OCNet attention blocks and OCR modules inside ``model``."""
    kinds = (SelfAttentionBlock2D, SpatialGather_Module, SpatialOCR_Module)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, kinds)]


def check_points(points, height, width):
    """ConfigError naming the image size when a query (x, y) lies outside the image."""
    bad = [(x, y) for x, y in points if not (0 <= x < width and 0 <= y < height)]
    if bad:
        shown = " ".join(f"{x},{y}" for x, y in bad)
        raise ConfigError(f"--points {shown} outside the image of {width}x{height} pixels (W x H): "
                          f"x must be in 0..{width - 1} and y in 0..{height - 1}")


def feature_point(x, y, image_hw, feature_hw):
    """Image pixel (x, y) -> feature-map cell (fx, fy), scaling each axis proportionally."""
    (h, w), (fh, fw) = image_hw, feature_hw
    fx = min(int((x + 0.5) * fw / w), fw - 1)
    fy = min(int((y + 0.5) * fh / h), fh - 1)
    return fx, fy


@torch.no_grad()
def ocnet_attention(block, x, fpoints):
    """Attention maps (P, h', w') of ``block`` for its input ``x`` (1, C, h, w) at feature cells
    ``fpoints`` [(fx, fy)]; h' x w' is the map the block attends over (pooled when scale > 1)."""
    pyramid = isinstance(block, PyramidSelfAttentionBlock2D)
    h, w = x.shape[-2:]
    if block.pool is not None and not pyramid:
        x = block.pool(x)                                               # (1, C, h/s, w/s)
    hs, ws = x.shape[-2:]
    key = block.f_key(x)[0]                                             # (Ck, hs, ws)
    scale = block.key_channels ** -0.5
    maps = key.new_zeros(len(fpoints), hs, ws)
    for i, (fx, fy) in enumerate(fpoints):
        if pyramid:
            (r0, r1), = [c for c in pyramid_cells(h, block.scale) if c[0] <= fy < c[1]]
            (c0, c1), = [c for c in pyramid_cells(w, block.scale) if c[0] <= fx < c[1]]
        else:  # the context is upsampled with align_corners=True: nearest pooled cell
            fy = round(fy * (hs - 1) / max(h - 1, 1))
            fx = round(fx * (ws - 1) / max(w - 1, 1))
            r0, r1, c0, c1 = 0, hs, 0, ws
        query = key[:, fy, fx]                                          # (Ck,)
        cell = key[:, r0:r1, c0:c1]                                     # (Ck, hc, wc)
        scores = torch.einsum("c,chw->hw", query, cell) * scale
        maps[i, r0:r1, c0:c1] = F.softmax(scores.flatten(), 0).view_as(scores)
    return maps


@torch.no_grad()
def soft_regions(gather, probs):
    """Soft object regions (1, K, h, w) -> (K, h, w), softmax over the pixels as the gather does."""
    k = probs.shape[1]
    return F.softmax(gather.scale * probs[0].reshape(k, -1), dim=1).view(probs.shape[1:])


@torch.no_grad()
def ocr_relation(block, feats, regions, fpoints):
    """Pixel-region weights (P, K) of the OCR block for pixel features ``feats`` (1, C, h, w) and the
    region representations ``regions`` (1, C, K, 1); only the chosen pixels are projected."""
    cols = torch.stack([feats[0, :, fy, fx] for fx, fy in fpoints], dim=1)  # (C, P)
    query = block.query_project(cols[None, :, :, None])[0, :, :, 0]         # (Ck, P)
    key = block.key_project(regions)[0, :, :, 0]                             # (Ck, K)
    return F.softmax(query.t() @ key * block.key_channels ** -0.5, dim=1)  # (P, K)


class AttentionProbe:
    """``with AttentionProbe(model) as probe: model(x)``; then ``probe.maps(points, image_hw)``.

    Keeps the inputs of every attention block (or of the OCR gather / block) of the last forward.
    """

    def __init__(self, model):
        self.model = model
        self.blocks = attention_blocks(model)
        if not self.blocks:
            raise ConfigError(f"{type(model).__name__} has no object-context attention to show "
                              "(e.g. the baseline model); pick an *_oc_dsn or *_ocr model")
        self.inputs, self._handles = {}, []

    def _keep(self, name):
        def hook(module, args):
            self.inputs[name] = tuple(a.detach().clone() for a in args)
        return hook

    def __enter__(self):
        self._handles = [m.register_forward_pre_hook(self._keep(n)) for n, m in self.blocks]
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles = []
        return False

    def feature_size(self):
        name = self.blocks[0][0]
        return tuple(self.inputs[name][0].shape[-2:])

    def maps(self, points, image_hw):
        """[BlockAttention] for image points [(x, y)] of an image of size ``image_hw``."""
        if not self.inputs:
            raise RuntimeError("run the model inside the probe's `with` block first")
        out = []
        for name, module in self.blocks:
            args = self.inputs[name]
            fpoints = [feature_point(x, y, image_hw, args[0].shape[-2:]) for x, y in points]
            if isinstance(module, SelfAttentionBlock2D):
                if isinstance(module, PyramidSelfAttentionBlock2D):
                    kind = f"pyramid {module.scale}x{module.scale}"
                else:
                    kind = f"pool {module.scale}" if module.pool is not None else "full"
                out.append(BlockAttention(name, kind, ocnet_attention(module, args[0], fpoints).cpu(),
                                          {"fpoints": fpoints}))
            elif isinstance(module, SpatialGather_Module):
                out.append(BlockAttention(name, "regions", soft_regions(module, args[1]).cpu()))
            else:
                out.append(BlockAttention(name, "relation", ocr_relation(module, *args[:2], fpoints).cpu(),
                                          {"fpoints": fpoints}))
        return out
