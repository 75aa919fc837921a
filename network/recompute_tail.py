"""The bottleneck tail ``relu(bn3(conv3(relu(z2))) + residual)`` keeping no 4C activation of its
own for backward (memory beyond the original; ``ResNet(memory_efficient="recompute")``).

With ``relu_conv2d`` the tail still keeps ``z3 = bn3(c3)`` (InPlace-ABN inverts its output in
backward) next to ``out`` (the final ReLU's output): 4C + 4C per block. This function keeps only
``out`` (which the next block keeps anyway as its input) and ``z2`` (kept anyway by bn2), and
recomputes ``c3`` and ``z3`` in backward with one extra 1x1 conv. Per channel c of conv3's output,
over the n = N*H*W values of the (global) batch, with gamma = |w| + eps (InPlace-ABN)::

    forward:   r2 = max(z2, 0);  c3 = conv3(r2)                              (N, 4C, H, W)
               mu, var = mean(c3), mean((c3 - mu)^2)    (reducer: global batch, as InPlace-ABN)
               running stats updated once, exactly as InPlace-ABN does
               z3 = (c3 - mu) / sqrt(var + eps) * gamma + b                  in place in c3
               out = max(z3 + residual, 0)                                   in place in c3
    saved:     z2, conv3.weight, out, mu, var, w, b
    backward:  g = dout * [out > 0]                     (= d residual = d z3)
               r2, c3, z3 recomputed from z2 with the SAVED mu, var (no new statistics)
               edz = sum(g), eydz = sum(y3 * g), y3 = (z3 - b) / gamma      (reducer: summed)
               dc3 = (g - edz/n - y3 * eydz/n) * gamma / sqrt(var + eps)
               dw = eydz_local * sign(w),  db = edz_local                   (InPlace-ABN backward)
               (dr2, dW3) = conv_backward(dc3, r2, W3);  dz2 = dr2 * [z2 > 0]

The kernels are InPlace-ABN's backend ops and the convolution autograd would use, so the results
equal the ``relu_conv2d`` path. Only for InPlace-ABN norms with activation 'none' in train mode
(:func:`supports_recompute`); the caller keeps the other path otherwise. Autocast is honoured as in
``relu_conv.py``: conv3 and the norm run in the autocast dtype of ``z2``'s device, the sum with
the residual in the promoted dtype, and backward recomputes in the same dtypes.
"""
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from inplace_abn import InPlaceABN, InPlaceABNSync
from inplace_abn.backend import backend_for
from inplace_abn.functions import batch_statistics, global_grad_sums
from inplace_abn.reference import acc_dtype
from inplace_abn.sync import select_reducer

from .relu_conv import _autocast_dtype

__all__ = ["supports_recompute", "recompute_tail"]


def supports_recompute(bn):
    """True when ``bn`` is an InPlace-ABN (not the out-of-place ABN of the reference
    configuration) with activation 'none' that normalises with batch statistics."""
    return type(bn) in (InPlaceABN, InPlaceABNSync) and bn.activation == "none" and bn.training


def _normalised_c3(z2, weight, mean, var, w, b, conf):
    """(r2, z3): r2 = relu(z2) and z3 = bn(conv(r2)) with the given statistics (z3 contiguous)."""
    stride, padding, dilation, groups, dtype, affine, eps = conf
    r2 = F.relu(z2 if dtype is None else z2.to(dtype))                       # (N, C, H, W)
    c3 = F.conv2d(r2, weight if dtype is None else weight.to(dtype), None, stride, padding,
                  dilation, groups)                                         # (N, 4C, H, W)
    z3 = c3 if c3.is_contiguous() else c3.contiguous()
    backend_for(z3).forward(z3, mean, var, w, b, affine, eps)               # in place
    return r2, z3


class _RecomputeTail(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z2, weight, bn_weight, bn_bias, residual, running_mean, running_var,
                conv_conf, momentum, eps, reducer):
        dtype = _autocast_dtype(z2.device.type)
        affine = bn_weight is not None
        ctx.conf = (*conv_conf, dtype, affine, eps)
        ctx.reducer, ctx.residual_dtype = reducer, residual.dtype
        with torch.autocast(z2.device.type, enabled=False):
            r2 = F.relu(z2 if dtype is None else z2.to(dtype))
            c3 = F.conv2d(r2, weight if dtype is None else weight.to(dtype), None, *conv_conf)
            del r2
            if c3.shape != residual.shape:
                raise ValueError(f"recompute_tail: conv output {tuple(c3.shape)} and residual "
                                 f"{tuple(residual.shape)} differ")
            be, acc = backend_for(c3), acc_dtype(c3.dtype)
            w = bn_weight.detach().to(acc).contiguous() if affine else c3.new_empty(0, dtype=acc)
            b = bn_bias.detach().to(acc).contiguous() if affine else c3.new_empty(0, dtype=acc)
            work = c3 if c3.is_contiguous() else c3.contiguous()              # (N, 4C, H, W)
            ctx.count = work.numel() // work.size(1)
            # the batch statistics, synchronisation and running-stat update of InPlace-ABN
            mean, var = batch_statistics(be, work, reducer, running_mean, running_var,
                                         momentum)                            # (4C,), (4C,)
            be.forward(work, mean, var, w, b, affine, eps)                    # z3, in place
            if torch.promote_types(work.dtype, residual.dtype) == work.dtype:
                out = work.add_(residual).relu_()                             # in z3's storage
                if work is not c3:  # keep the conv output's memory format, as InPlace-ABN does
                    out = c3.copy_(work)
            else:  # autocast: a float32 residual promotes the sum, as `z3 + residual` would
                out = torch.add(work, residual).relu_()
        ctx.save_for_backward(z2, weight, out, mean, var, w, b)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        z2, weight, out, mean, var, w, b = ctx.saved_tensors
        need_z2, need_w, need_bw, need_bb, need_res = ctx.needs_input_grad[:5]
        stride, padding, dilation, groups, dtype, affine, eps = ctx.conf
        need_c3 = need_z2 or need_w
        dz2 = dweight = dbw = dbb = dres = None
        with torch.autocast(z2.device.type, enabled=False):
            g = torch.ops.aten.threshold_backward(dout, out, 0)  # d(z3 + residual), (N, 4C, H, W)
            if need_res:
                dres = g.to(ctx.residual_dtype)
            if not (need_c3 or need_bw or need_bb):
                return dz2, dweight, dbw, dbb, dres, None, None, None, None, None, None
            r2, z3 = _normalised_c3(z2, weight, mean, var, w, b, ctx.conf)  # recomputed
            dz3 = g.to(z3.dtype).contiguous()
            del g
            be = backend_for(z3)
            edz, eydz = be.edz_eydz(z3, dz3, w, b, affine, eps)               # local sums, (4C,)
            if need_c3:
                edz_x, eydz_x = global_grad_sums(ctx.reducer, ctx.count, edz, eydz)
                dc3 = be.backward(z3, dz3, var, w, b, edz_x, eydz_x, affine, eps)[0]
                del z3, dz3
                wc = weight if dtype is None else weight.to(dtype)
                dr2, dweight, _ = torch.ops.aten.convolution_backward(
                    dc3, r2, wc, None, list(stride), list(padding), list(dilation), False,
                    [0, 0], groups, [need_z2, need_w, False])
                if need_z2:
                    zc = z2 if dtype is None else z2.to(dtype)
                    dz2 = torch.ops.aten.threshold_backward(dr2, zc, 0).to(z2.dtype)
                if dweight is not None:
                    dweight = dweight.to(weight.dtype)
            if affine and need_bw:
                dbw = eydz * torch.sign(w)
            if affine and need_bb:
                dbb = edz
        return dz2, dweight, dbw, dbb, dres, None, None, None, None, None, None


def recompute_tail(z2, conv, bn, residual):
    """``relu(bn(conv(relu(z2))) + residual)`` for a bias-free zero-padded ``nn.Conv2d`` ``conv``
    and an InPlace-ABN ``bn`` (:func:`supports_recompute`), keeping only ``z2`` and the output
    for backward. ``z2``: (N, C, H, W); ``residual``: (N, 4C, H', W'), the conv's output shape."""
    if not supports_recompute(bn):
        raise ValueError("recompute_tail needs an InPlaceABN / InPlaceABNSync with activation "
                         f"'none' in train mode, got {bn!r} (training={bn.training})")
    if conv.bias is not None or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError("recompute_tail supports bias-free convs with numeric zero padding only")
    reducer = select_reducer(bn, z2, True) if isinstance(bn, InPlaceABNSync) else None
    return _RecomputeTail.apply(z2, conv.weight, bn.weight, bn.bias, residual, bn.running_mean,
                                bn.running_var, (conv.stride, conv.padding, conv.dilation,
                                                 conv.groups), bn.momentum, bn.eps, reducer)
