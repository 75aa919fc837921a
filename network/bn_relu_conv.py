"""``conv(relu(bn(c)))`` for a stock ``nn.BatchNorm2d`` that keeps only ``c`` for backward.

With plain autograd a BatchNorm -> ReLU -> conv pair keeps two tensors of the pair's size: the
norm's input ``c`` (batch-norm backward needs it) and ``r = relu(bn(c))`` (the conv needs it for
its weight gradient; an in-place ReLU saves it too). Both are functions of ``c`` and the batch
statistics, so this function keeps ``c`` (which the previous conv produced), the per-channel
``mean`` and ``invstd``, and recomputes ``r`` in backward::

    forward:   mean, invstd = batch stats of c    (running stats updated once, as nn.BatchNorm2d)
               z = (c - mean) * invstd * w + b;   r = max(z, 0);   y = conv(r)
    saved:     c, mean, invstd, w, b, conv weight                  (not z, not r)
    backward:  z = (c - mean) * (invstd * w) + b;  r = max(z, 0)   (recomputed)
               (dr, dW, db) = conv_backward(dy, r, W);  dz = dr * [z > 0]
               (dc, dw, db) = batch_norm_backward(dz, c, w, mean, invstd)

The same kernels as ``conv(relu(bn(c)))`` for the forward and the two backwards; the recomputed
``z`` may differ from the forward's in the last bit (a separate elementwise kernel), so gradients
agree to float rounding. Only train mode with batch statistics takes this path
(:func:`bn_relu_conv2d` falls back to plain ops otherwise). Autocast: the conv runs in the autocast
dtype; the norm follows ``nn.BatchNorm2d`` (it is autocast-neutral: ``c``'s dtype, fp32 weights).
"""
import torch
import torch.nn.functional as F
from torch import nn

from .relu_conv import _autocast_dtype

__all__ = ["bn_relu_conv2d", "supports"]


def _syncs_across_processes(bn) -> bool:
    """Whether an ``nn.SyncBatchNorm`` would exchange statistics now (as its forward decides:
    an initialised process group of more than one process)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return False
    group = bn.process_group or torch.distributed.group.WORLD
    return torch.distributed.get_world_size(group) > 1


def supports(bn, conv) -> bool:
    """Whether ``bn -> ReLU -> conv`` can take the recompute path: ``nn.BatchNorm2d``, or an
    ``nn.SyncBatchNorm`` that computes local statistics (one process; across processes it keeps
    its own synchronised path), with affine weights and running statistics, and an
    ``nn.Conv2d`` with numeric zero padding. Not InPlace-ABN (``relu_conv.py`` covers it)."""
    if type(bn) is nn.SyncBatchNorm:
        if _syncs_across_processes(bn):
            return False
    elif type(bn) is not nn.BatchNorm2d:
        return False
    return (bn.affine and bn.track_running_stats and isinstance(conv, nn.Conv2d)
            and conv.padding_mode == "zeros" and not isinstance(conv.padding, str))


def _normalise(c, mean, invstd, weight, bias):
    """z = (c - mean) * (invstd * w) + b per channel, computed in fp32 at least; c's dtype."""
    shape = (1, -1) + (1,) * (c.dim() - 2)
    scale = (invstd * weight.to(invstd.dtype)).reshape(shape)
    z = (c.to(scale.dtype) - mean.reshape(shape)) * scale + bias.to(scale.dtype).reshape(shape)
    return z.to(c.dtype)


class _BNReLUConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, c, bn_weight, bn_bias, running_mean, running_var, momentum, eps,
                weight, bias, stride, padding, dilation, groups):
        dtype = _autocast_dtype(c.device.type)
        with torch.autocast(c.device.type, enabled=False):
            z, mean, invstd = torch.native_batch_norm(c, bn_weight, bn_bias, running_mean,
                                                      running_var, True, momentum, eps)
            r = F.relu_(z)  # (N, C, H, W), the only full-size temporary; not kept
            w = weight if dtype is None else weight.to(dtype)
            b = bias if (dtype is None or bias is None) else bias.to(dtype)
            y = F.conv2d(r if dtype is None else r.to(dtype), w, b, stride, padding, dilation,
                         groups)
        ctx.save_for_backward(c, mean, invstd, bn_weight, bn_bias, weight)
        ctx.conf = (eps, stride, padding, dilation, groups, dtype, bias is not None)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        c, mean, invstd, bn_weight, bn_bias, weight = ctx.saved_tensors
        eps, stride, padding, dilation, groups, dtype, has_bias = ctx.conf
        need_c, need_bw, need_bb = ctx.needs_input_grad[:3]
        need_w, need_b = ctx.needs_input_grad[7], has_bias and ctx.needs_input_grad[8]
        z = _normalise(c, mean, invstd, bn_weight, bn_bias)  # recomputed, (N, C, H, W)
        r = F.relu(z) if dtype is None else F.relu(z).to(dtype)
        w = weight if dtype is None else weight.to(dtype)
        grad_r, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_y.to(r.dtype), r, w, [w.shape[0]] if has_bias else None, list(stride),
            list(padding), list(dilation), False, [0, 0], groups,
            [need_c or need_bw or need_bb, need_w, need_b])
        grad_c = grad_bw = grad_bb = None
        if need_c or need_bw or need_bb:
            del r
            grad_z = torch.ops.aten.threshold_backward(grad_r.to(z.dtype), z, 0)
            grad_c, grad_bw, grad_bb = torch.ops.aten.native_batch_norm_backward(
                grad_z, c, bn_weight, None, None, mean, invstd, True, eps,
                [need_c, need_bw, need_bb])
        if grad_w is not None:
            grad_w = grad_w.to(weight.dtype)
        if grad_b is not None:
            grad_b = grad_b.to(weight.dtype)
        return (grad_c, grad_bw, grad_bb, None, None, None, None, grad_w, grad_b,
                None, None, None, None)


def bn_relu_conv2d(c, bn, conv):
    """``conv(relu(bn(c)))`` keeping only ``c`` for backward (module docstring). Plain ops in eval
    mode, without gradients, or when :func:`supports` is False."""
    needs_grad = torch.is_grad_enabled() and (
        c.requires_grad or any(p.requires_grad for p in (*bn.parameters(), *conv.parameters())))
    if not (bn.training and needs_grad and supports(bn, conv)):
        return conv(F.relu(bn(c)))
    # the module's bookkeeping, as nn.BatchNorm2d.forward does it
    bn.num_batches_tracked.add_(1)
    momentum = (1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum)
    return _BNReLUConv2d.apply(c, bn.weight, bn.bias, bn.running_mean, bn.running_var, momentum,
                               bn.eps, conv.weight, conv.bias, conv.stride, conv.padding,
                               conv.dilation, conv.groups)
