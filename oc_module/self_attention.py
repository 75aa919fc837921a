# Port of the _SelfAttentionBlock copies in OCNet.pytorch oc_module/{base,pyramid}_oc_block.py (679a45b).
# MIT License; original (c) Yuhui Yuan / openseg-group. Re-written for PyTorch 2.x.
"""The one object-context (self-attention) primitive.

For a feature map ``x`` of shape (N, C, H, W) the block computes, with ``q = k = f_key(x)``
(Ck channels) and ``v = f_value(x)`` (Cv channels), flattened over the HW positions::

    sim     = softmax(Ck^-0.5 * q^T k, dim=keys)       # (N, HW, HW), rows = query positions
    context = W(sim @ v^T)                              # (N, out, H, W), W zero-initialised

``scale > 1`` max-pools x by ``scale`` first and upsamples the context back (bilinear,
align_corners=True). The pyramid variant runs the same attention independently inside an
``s x s`` grid of cells (the last row/column absorbs the remainder).

The product runs through ``F.scaled_dot_product_attention`` by default, on inputs laid out so that
its fused (flash / memory-efficient) kernels run: they never materialise the HW x HW matrix (a
1024x2048 image at stride 8 has HW = 33,153; the matrix alone would take 4.4 GB in fp32).
``impl="naive"`` is the literal bmm -> softmax -> bmm of the original, kept as the reference path.
"""
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["attention", "SelfAttentionBlock2D", "PyramidSelfAttentionBlock2D", "pyramid_cells",
           "ATTENTION_IMPLS"]

ATTENTION_IMPLS = ("sdpa", "naive")


def _fused_inputs(query, key, value):
    """(N, 1, L, C) contiguous q, k, v for SDPA's fused kernels, and the value width to keep.

    SDPA's fused kernels need a contiguous last dimension (transposed views send it to the math
    kernel, which builds the whole Lq x Lk matrix). The CPU flash kernel also needs one width for
    q, k and v: the narrower side is zero-padded, which changes neither q k^T (zeros add nothing
    to the dot products; the scale is passed explicitly) nor the kept value columns.
    """
    ck, cv = query.shape[-1], value.shape[-1]
    if query.device.type == "cpu" and ck != cv:
        if ck < cv:
            query, key = F.pad(query, (0, cv - ck)), F.pad(key, (0, cv - ck))  # (N, L, Cv)
        else:
            value = F.pad(value, (0, ck - cv))                                  # (N, Lk, Ck)
    return (query.contiguous().unsqueeze(1), key.contiguous().unsqueeze(1),
            value.contiguous().unsqueeze(1), cv)


def attention(query, key, value, scale, impl="sdpa"):
    """softmax(scale * query @ key^T, dim=-1) @ value.

    Args:
        query: (N, Lq, Ck); key: (N, Lk, Ck); value: (N, Lk, Cv). Any strides.
        scale (float): multiplier of the scores (``Ck ** -0.5`` in OCNet and OCR).
        impl (str): ``"sdpa"`` (memory-efficient fused kernels: the Lq x Lk matrix is never
            stored; extra memory is linear in L) or ``"naive"`` (bmm + softmax + bmm, the
            original's maths, stores the Lq x Lk matrix).
    Returns:
        (N, Lq, Cv)
    """
    if impl == "sdpa":
        q, k, v, cv = _fused_inputs(query, key, value)  # (N, 1, L, C) contiguous: one head
        out = F.scaled_dot_product_attention(q, k, v, scale=scale)  # (N, 1, Lq, C')
        return out.squeeze(1)[..., :cv]
    if impl == "naive":
        sim = torch.bmm(query, key.transpose(1, 2)) * scale  # (N, Lq, Lk)
        sim = F.softmax(sim, dim=-1)
        return torch.bmm(sim, value)                          # (N, Lq, Cv)
    raise ValueError(f"attention impl must be one of {ATTENTION_IMPLS}, got {impl!r}")


def _abn():
    from inplace_abn import InPlaceABNSync
    return InPlaceABNSync


class SelfAttentionBlock2D(nn.Module):
    """Object-context self-attention (the original ``SelfAttentionBlock2D``).

    Args:
        in_channels (int): channels of the input map.
        key_channels (int): Ck, channels of the shared query/key projection.
        value_channels (int): Cv.
        out_channels (int, optional): channels of the returned context (default ``in_channels``).
        scale (int): max-pool factor before attention (1 = none).
        impl (str): ``"sdpa"`` or ``"naive"`` (see :func:`attention`).
    """

    def __init__(self, in_channels, key_channels, value_channels, out_channels=None, scale=1,
                 impl="sdpa"):
        super().__init__()
        if impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention impl must be one of {ATTENTION_IMPLS}, got {impl!r}")
        self.scale, self.impl = scale, impl
        self.key_channels, self.value_channels = key_channels, value_channels
        out_channels = out_channels or in_channels
        self.pool = nn.MaxPool2d(kernel_size=scale) if scale > 1 else None
        self.f_key = nn.Sequential(
            nn.Conv2d(in_channels, key_channels, kernel_size=1), _abn()(key_channels))
        # faithful: query and key share ONE module object, so both key sets are in the state_dict,
        # q == k exactly, and in train mode that ABN's running stats update twice per forward.
        self.f_query = self.f_key
        self.f_value = nn.Conv2d(in_channels, value_channels, kernel_size=1)
        self.W = nn.Conv2d(value_channels, out_channels, kernel_size=1)
        # faithful: W starts at exactly zero, so the object context is 0 at step 0.
        nn.init.zeros_(self.W.weight)
        nn.init.zeros_(self.W.bias)

    def _project(self, x):
        n = x.shape[0]
        value = self.f_value(x).flatten(2).transpose(1, 2)  # (N, HW, Cv)
        query = self.f_query(x).flatten(2).transpose(1, 2)  # (N, HW, Ck)
        key = self.f_key(x).flatten(2).transpose(1, 2)      # (N, HW, Ck), == query
        return n, query, key, value

    def forward(self, x):
        h, w = x.shape[2:]
        if self.pool is not None:
            x = self.pool(x)                                 # (N, C, H//s, W//s), floor
        hs, ws = x.shape[2:]
        n, query, key, value = self._project(x)
        context = attention(query, key, value, self.key_channels ** -0.5, self.impl)
        context = context.transpose(1, 2).reshape(n, self.value_channels, hs, ws)
        context = self.W(context)                            # (N, out, h, w)
        if self.pool is not None:
            context = F.interpolate(context, size=(h, w), mode="bilinear", align_corners=True)
        return context


def pyramid_cells(size, scale):
    """Cell boundaries ``[(start, end), ...]`` of one axis split into ``scale`` parts.

    step = size // scale; cell i spans [i*step, (i+1)*step), the last one ends at ``size``
    (97 with scale 6 -> starts 0, 16, ..., 80 and a last cell of 17).
    """
    if size < scale:
        raise ValueError(f"a feature map of size {size} cannot be split into {scale} cells")
    step = size // scale
    return [(i * step, size if i == scale - 1 else (i + 1) * step) for i in range(scale)]


class PyramidSelfAttentionBlock2D(SelfAttentionBlock2D):
    """Pyramid-OC attention: the projections run once on the whole map, the attention inside each
    cell of an ``scale x scale`` grid (no pooling), then ``W`` once on the re-assembled map."""

    def __init__(self, in_channels, key_channels, value_channels, out_channels=None, scale=1,
                 impl="sdpa"):
        super().__init__(in_channels, key_channels, value_channels, out_channels, 1, impl)
        self.scale = scale

    def forward(self, x):
        n, _, h, w = x.shape
        value = self.f_value(x)                               # (N, Cv, H, W)
        query = self.f_query(x)                               # (N, Ck, H, W)
        key = self.f_key(x)                                   # (N, Ck, H, W)
        rows = []
        for r0, r1 in pyramid_cells(h, self.scale):
            row = []
            for c0, c1 in pyramid_cells(w, self.scale):
                q = query[:, :, r0:r1, c0:c1].flatten(2).transpose(1, 2)  # (N, hw, Ck)
                k = key[:, :, r0:r1, c0:c1].flatten(2).transpose(1, 2)
                v = value[:, :, r0:r1, c0:c1].flatten(2).transpose(1, 2)  # (N, hw, Cv)
                ctx = attention(q, k, v, self.key_channels ** -0.5, self.impl)
                row.append(ctx.transpose(1, 2).reshape(n, self.value_channels, r1 - r0, c1 - c0))
            rows.append(torch.cat(row, dim=3))                # cells of a row along width
        context = torch.cat(rows, dim=2)                      # then the rows along height
        return self.W(context)
