# Port of OCNet.pytorch@679a45b inplace_abn/functions.py (InPlaceABN / InPlaceABNSync autograd).
# License: BSD-3-Clause (original InPlace-ABN, Mapillary) / MIT (this reproduction).
"""The InPlace-ABN autograd function, written against an abstract backend (``backend.py``).

Forward, per channel c over the n = N*H*W values of the (global) batch::

    mu = mean(x),  var = mean((x - mu)^2)                      (training; eval: running stats)
    y  = act((x - mu) / sqrt(var + eps) * (|w| + eps) + b)     written IN PLACE into x
    running_mean <- (1 - momentum) * running_mean + momentum * mu
    running_var  <- (1 - momentum) * running_var  + momentum * var * n / (n - 1)   (unbiased)

act is leaky_relu(slope), elu or the identity. Only the output z (which lives in x's storage),
var, |w|-ready weight and bias are saved; the input is not kept. Backward inverts the
activation on z (leaky_relu: z /= slope where z < 0; elu: z = log1p(z) where z < 0, scaling dz
by the local derivative), recovers y_hat = (z - b) / (|w| + eps), and computes::

    edz = sum(dz),  eydz = sum(y_hat * dz)                     (summed over the global batch)
    dx  = (dz - edz/n - y_hat * eydz/n) * (|w| + eps) / sqrt(var + eps)     (eval: edz = eydz = 0)
    dw  = eydz_local * sign(w),  db = edz_local

dw/db are this process's (replica's) contributions; their sum over processes is the
global-batch gradient (DDP all-reduces them). Deviation from the original: in eval mode the
original returned dw = db = 0; we return the true gradient of the eval-mode function.
The backend ops invert z in place as the original kernels did; the function hands them a
transient copy, so the output stays valid after backward and retain_graph=True works (gradcheck).
Without an activation (the backbone's norms) there is nothing to invert and backward reads z and
dz where they are, without copies.
"""
from __future__ import annotations

import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from . import reference
from .backend import backend_for

ACTIVATIONS = ("leaky_relu", "elu", "none")


def check_activation(activation: str) -> str:
    """Return `activation` if supported, else raise ValueError (the original silently ran 'relu'
    as the identity; we refuse it)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"InPlace-ABN activation {activation!r} is not supported; "
                         f"choose one of {ACTIVATIONS}")
    return activation


def _act_forward(be, x, activation, slope):
    if activation == "leaky_relu":
        be.leaky_relu_forward(x, slope)
    elif activation == "elu":
        be.elu_forward(x)


def _act_backward(be, z, dz, activation, slope):
    if activation == "leaky_relu":
        be.leaky_relu_backward(z, dz, slope)
    elif activation == "elu":
        be.elu_backward(z, dz)


def batch_statistics(be, work, reducer, running_mean, running_var, momentum):
    """Training-mode statistics of ``work`` ((N, C, *) contiguous): (mean, biased var), (C,) each,
    over the synchronised batch when ``reducer`` is given; updates the running statistics once
    (unbiased variance, n / (n - 1) over the global count n)."""
    count = work.numel() // work.size(1)
    if reducer is None and count <= 1:
        raise ValueError(f"InPlace-ABN: expected more than 1 value per channel when training, "
                         f"got input size {tuple(work.shape)}")
    mean, var = be.mean_var(work)  # (C,), (C,)
    total = count
    if reducer is not None:
        total, mean, var = reducer.reduce_stats(count, mean, var)
        if total <= 1:
            raise ValueError(f"InPlace-ABN: expected more than 1 value per channel when "
                             f"training, got {total} over the synchronised batch")
    running_mean.mul_(1 - momentum).add_(momentum * mean.to(running_mean.dtype))
    running_var.mul_(1 - momentum).add_((momentum * total / (total - 1)) * var.to(running_var.dtype))
    return mean, var


def global_grad_sums(reducer, count, edz, eydz):
    """(edz, eydz) for the dx op: the local sums, or with ``reducer`` the global-batch sums scaled
    by n_local / n_global (the op divides by the local count ``count``)."""
    if reducer is None:
        return edz, eydz
    total, edz, eydz = reducer.reduce_grads(count, edz, eydz)
    return edz * (count / total), eydz * (count / total)


class InPlaceABNFunction(Function):
    """autograd.Function behind InPlaceABN and InPlaceABNSync (``reducer`` None = unsynchronised).

    A reducer has ``reduce_stats(count, mean, var) -> (count, mean, var)`` and
    ``reduce_grads(count, edz, eydz) -> (count, edz, eydz)`` returning global-batch values.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps,
                activation, slope, reducer):
        ctx.affine = weight is not None
        ctx.training, ctx.eps, ctx.activation, ctx.slope = training, eps, activation, slope
        ctx.reducer = reducer
        be = backend_for(x)
        acc = reference.acc_dtype(x.dtype)
        w = weight.detach().to(acc).contiguous() if ctx.affine else x.new_empty(0, dtype=acc)
        b = bias.detach().to(acc).contiguous() if ctx.affine else x.new_empty(0, dtype=acc)
        work = x if x.is_contiguous() else x.contiguous()  # (N, C, *)
        ctx.count = work.numel() // work.size(1)
        if training:
            mean, var = batch_statistics(be, work, reducer, running_mean, running_var, momentum)
        else:
            mean = running_mean.detach().to(acc, copy=True)
            var = running_var.detach().to(acc, copy=True)
        be.forward(work, mean, var, w, b, ctx.affine, eps)
        _act_forward(be, work, activation, slope)
        if work is not x:
            x.copy_(work)
        ctx.mark_dirty(x)
        ctx.save_for_backward(x, var, w, b)  # the output, not the input
        return x

    @staticmethod
    @once_differentiable
    def backward(ctx, dz):
        z, var, w, b = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        be = backend_for(z)
        if ctx.activation == "none":
            # The statistics and dx ops only read z and dz: no copy (the backbone's case) unless
            # the memory format is not (N, C, *) contiguous.
            z, dz = z.contiguous(), dz.contiguous()
        else:
            # The activation inverse works in place; on transient copies, so that neither the
            # output (which the caller and retain_graph=True backward passes still see) nor the
            # incoming gradient (autograd may share it with other consumers) is modified.
            z = z.clone(memory_format=torch.contiguous_format)
            dz = dz.clone(memory_format=torch.contiguous_format)
            _act_backward(be, z, dz, ctx.activation, ctx.slope)  # z <- BN out, dz <- dL/d(BN out)
        sync = ctx.training and need_x
        edz = eydz = None
        if sync or need_w or need_b:
            edz, eydz = be.edz_eydz(z, dz, w, b, ctx.affine, ctx.eps)  # local sums, (C,)
        dx = dweight = dbias = None
        if need_x:
            if ctx.training:
                edz_x, eydz_x = global_grad_sums(ctx.reducer, ctx.count, edz, eydz)
            else:
                edz_x, eydz_x = torch.zeros_like(var), torch.zeros_like(var)
            dx = be.backward(z, dz, var, w, b, edz_x, eydz_x, ctx.affine, ctx.eps)[0]
        if ctx.affine and need_w:
            dweight = eydz * torch.sign(w)
        if ctx.affine and need_b:
            dbias = edz
        return dx, dweight, dbias, None, None, None, None, None, None, None, None


def _check_args(x, weight, bias, running_mean, running_var, activation, slope):
    check_activation(activation)
    if activation == "leaky_relu" and not slope > 0:
        raise ValueError(f"InPlace-ABN: leaky_relu slope must be > 0 to be invertible, got {slope}")
    if (weight is None) != (bias is None):
        raise ValueError("InPlace-ABN: weight and bias must both be given or both be None")
    if x.dim() < 2:
        raise ValueError(f"InPlace-ABN: expected an input of shape (N, C, *), got {tuple(x.shape)}")
    channels = x.size(1)
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                    ("running_var", running_var)):
        if t is not None and t.shape != (channels,):
            raise ValueError(f"InPlace-ABN: {name} has shape {tuple(t.shape)}, expected "
                             f"({channels},) for an input with {channels} channels")
    if not x.is_floating_point():
        raise ValueError(f"InPlace-ABN: expected a floating-point input, got {x.dtype}")


def inplace_abn(x, weight, bias, running_mean, running_var, training=True, momentum=0.1,
                eps=1e-5, activation="leaky_relu", slope=0.01):
    """Functional InPlace-ABN: overwrites and returns x (maths in the module docstring).

    Args:
        x: (N, C, *) input, overwritten with the output.
        weight, bias: (C,) affine parameters (both or neither); the scale is |weight| + eps.
        running_mean, running_var: (C,) buffers, updated in place when training.
        training: use batch statistics (True) or the running statistics (False).
        momentum, eps: as in BatchNorm.
        activation: 'leaky_relu' | 'elu' | 'none'; slope: negative slope of the leaky ReLU.
    """
    _check_args(x, weight, bias, running_mean, running_var, activation, slope)
    return InPlaceABNFunction.apply(x, weight, bias, running_mean, running_var, training,
                                    momentum, eps, activation, slope, None)


def inplace_abn_sync(x, weight, bias, running_mean, running_var, training=True, momentum=0.1,
                     eps=1e-5, activation="leaky_relu", slope=0.01, reducer=None):
    """InPlace-ABN whose batch statistics (and backward sums) are combined by ``reducer``
    (``sync.DistributedReducer`` or a DataParallel ``sync.ReplicaGroup`` member); None = local."""
    _check_args(x, weight, bias, running_mean, running_var, activation, slope)
    return InPlaceABNFunction.apply(x, weight, bias, running_mean, running_var, training,
                                    momentum, eps, activation, slope, reducer)
