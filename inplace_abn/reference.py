# New file (no counterpart in OCNet.pytorch@679a45b): the torch backend of InPlace-ABN.
# License: MIT (this reproduction). Semantics: the original's inplace_abn/src/inplace_abn_cpu.cpp.
"""Pure-PyTorch implementation of the InPlace-ABN backend op API (see ``_backend.pyi``).

Every function has the name, argument order and in-place behaviour of the original C++ op, so
the compiled backends (``ocnet_iabn_cpu`` / ``ocnet_iabn_cuda``) and this module are
interchangeable behind ``inplace_abn.functions``.

Notation, per channel c (reductions run over every axis except 1, i.e. n = N*H*W values):

    mean_var:  mu = sum(x)/n,  var = sum((x-mu)^2)/n                     (biased)
    forward:   x <- (x - mu) * rsqrt(var + eps) * gamma + beta,  gamma = |w| + eps
    edz_eydz:  y = (z - beta)/gamma,  edz = sum(dz),  eydz = sum(y*dz)
    backward:  dx = (dz - edz/n - y*eydz/n) * gamma * rsqrt(var + eps)
               dweight = eydz * sign(w),  dbias = edz

Statistics (mu, var, edz, eydz) and weight/bias use the accumulation dtype: float64 for float64
inputs, float32 otherwise (half/bfloat16 inputs are computed in float32 and written back).
With ``affine=False`` weight and bias are empty tensors, gamma = 1 and beta = 0.
"""
from __future__ import annotations

import torch
from torch import Tensor

NAME = "torch"


def has_cuda() -> bool:
    """The torch ops run on every device."""
    return True


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype for an input dtype: float64 stays float64, everything else is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _per_channel(t: Tensor, x: Tensor) -> Tensor:
    """View a (C,) vector so that it broadcasts against x of shape (N, C, *spatial)."""
    return t.view(1, -1, *([1] * (x.dim() - 2)))


def _reduce_dims(x: Tensor) -> list[int]:
    return [0] + list(range(2, x.dim()))


def _gamma_beta(x: Tensor, weight: Tensor, bias: Tensor, affine: bool, eps: float):
    acc = acc_dtype(x.dtype)
    if affine:
        return weight.to(acc).abs() + eps, bias.to(acc)
    c = x.size(1)
    return x.new_ones(c, dtype=acc), x.new_zeros(c, dtype=acc)


def mean_var(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and biased variance of x (N, C, *), in the accumulation dtype."""
    var, mean = torch.var_mean(x.to(acc_dtype(x.dtype)), dim=_reduce_dims(x), correction=0)
    return mean, var  # (C,), (C,)


def forward(x: Tensor, mean: Tensor, var: Tensor, weight: Tensor, bias: Tensor,
            affine: bool, eps: float) -> Tensor:
    """Normalise x IN PLACE: x <- (x - mean) * rsqrt(var + eps) * (|w| + eps) + b. Returns x."""
    gamma, beta = _gamma_beta(x, weight, bias, affine, eps)
    scale = _per_channel(torch.rsqrt(var + eps) * gamma, x)
    mu, b = _per_channel(mean, x), _per_channel(beta, x)
    if x.dtype == scale.dtype:
        x.sub_(mu).mul_(scale).add_(b)
    else:  # half / bfloat16: compute in float32, write back
        x.copy_((x.to(scale.dtype) - mu) * scale + b)
    return x


def _normalised(z: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
    """y = (z - beta) / gamma: invert the affine map (possible because gamma = |w| + eps > 0)."""
    return (z.to(gamma.dtype) - _per_channel(beta, z)) / _per_channel(gamma, z)


def edz_eydz(z: Tensor, dz: Tensor, weight: Tensor, bias: Tensor, affine: bool,
             eps: float) -> tuple[Tensor, Tensor]:
    """edz = sum(dz), eydz = sum(y * dz) per channel, y recovered from the BN output z."""
    gamma, beta = _gamma_beta(z, weight, bias, affine, eps)
    y = _normalised(z, gamma, beta)
    dzf = dz.to(gamma.dtype)
    dims = _reduce_dims(z)
    return dzf.sum(dims), (y * dzf).sum(dims)


def backward(z: Tensor, dz: Tensor, var: Tensor, weight: Tensor, bias: Tensor, edz: Tensor,
             eydz: Tensor, affine: bool, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """dx = (dz - edz/n - y*eydz/n) * gamma * rsqrt(var+eps); dweight = eydz*sign(w); dbias = edz.

    n is the local count z.numel() / C. dx has z's dtype; dweight/dbias are empty when not affine.
    """
    gamma, beta = _gamma_beta(z, weight, bias, affine, eps)
    n = z.numel() // z.size(1)
    y = _normalised(z, gamma, beta)
    mult = _per_channel(gamma * torch.rsqrt(var + eps), z)
    dx = (dz.to(gamma.dtype) - _per_channel(edz / n, z) - y * _per_channel(eydz / n, z)) * mult
    if affine:
        dweight, dbias = eydz * torch.sign(weight.to(eydz.dtype)), edz.clone()
    else:
        dweight, dbias = edz.new_empty(0), edz.new_empty(0)
    return dx.to(z.dtype), dweight, dbias


def leaky_relu_forward(x: Tensor, slope: float) -> None:
    """x <- x where x >= 0 else slope * x, in place."""
    torch.nn.functional.leaky_relu_(x, slope)


def leaky_relu_backward(z: Tensor, dz: Tensor, slope: float) -> None:
    """In place, where z < 0: dz *= slope and z /= slope (undo the activation)."""
    factor = torch.where(z < 0, z.new_tensor(slope), z.new_tensor(1.0))
    dz.mul_(factor)
    z.div_(factor)


def elu_forward(x: Tensor) -> None:
    """x <- x where x >= 0 else exp(x) - 1, in place."""
    torch.nn.functional.elu_(x)


def elu_backward(z: Tensor, dz: Tensor) -> None:
    """In place, where z < 0: dz *= (z + 1) and z = log1p(z) (undo the activation)."""
    neg = z < 0
    dz.mul_(torch.where(neg, z + 1, torch.ones_like(z)))
    z.copy_(torch.where(neg, torch.log1p(z), z))
