"""``conv(relu(z))`` that keeps only ``z`` for backward (memory beyond the original).

In the faithful backbone every norm is followed by a separate out-of-place ReLU, so autograd keeps
two tensors per pair: the norm's output ``z`` (InPlace-ABN keeps it to invert itself) and the
ReLU output ``r = relu(z)``, which the next conv also needs for its weight gradient. ``r`` is
cheap to recompute from ``z``, so this function saves only ``z`` (storage the norm already holds)
and, in backward, recomputes ``r`` before the conv's own backward::

    forward:   y = conv(r), r = max(z, 0)          saved: z (shared with the norm), weight
    backward:  r = max(z, 0);  (dr, dw, db) = conv_backward(dy, r, w);  dz = dr * [z > 0]

The maths is the same as ``F.conv2d(F.relu(z), ...)``: same kernels, same order of operations.
Autocast is honoured: the conv runs in the autocast dtype of ``z``'s device and backward
recomputes ``r`` in that dtype.
"""
import torch
import torch.nn.functional as F

__all__ = ["relu_conv2d"]


def _autocast_dtype(device_type):
    if device_type in ("cpu", "cuda") and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


class _ReLUConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, weight, bias, stride, padding, dilation, groups):
        dtype = _autocast_dtype(z.device.type)
        with torch.autocast(z.device.type, enabled=False):
            w = weight if dtype is None else weight.to(dtype)
            b = bias if (dtype is None or bias is None) else bias.to(dtype)
            r = F.relu(z if dtype is None else z.to(dtype))
            y = F.conv2d(r, w, b, stride, padding, dilation, groups)
        ctx.save_for_backward(z, weight)
        ctx.conf = (stride, padding, dilation, groups, dtype, bias is not None)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        z, weight = ctx.saved_tensors
        stride, padding, dilation, groups, dtype, has_bias = ctx.conf
        w = weight if dtype is None else weight.to(dtype)
        zc = z if dtype is None else z.to(dtype)
        r = F.relu(zc)  # recomputed: r was not kept
        grad_r, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_y.to(r.dtype), r, w, [w.shape[0]] if has_bias else None, list(stride),
            list(padding), list(dilation), False, [0, 0], groups,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], has_bias and ctx.needs_input_grad[2]])
        grad_z = None
        if ctx.needs_input_grad[0]:
            grad_z = torch.ops.aten.threshold_backward(grad_r, zc, 0).to(z.dtype)
        if grad_w is not None:
            grad_w = grad_w.to(weight.dtype)
        if grad_b is not None:
            grad_b = grad_b.to(weight.dtype)
        return grad_z, grad_w, grad_b, None, None, None, None


def relu_conv2d(z, conv):
    """``conv(relu(z))`` for an ``nn.Conv2d`` ``conv`` (zero padding), keeping only ``z`` for
    backward. Plain ``conv(relu(z))`` when no gradient is needed."""
    if not torch.is_grad_enabled() or not (z.requires_grad or conv.weight.requires_grad):
        return conv(F.relu(z))
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError("relu_conv2d supports numeric zero padding only")
    return _ReLUConv2d.apply(z, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation,
                             conv.groups)
