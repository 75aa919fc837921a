# Port of OCNet.pytorch@679a45b inplace_abn/bn.py (ABN, InPlaceABN, InPlaceABNSync).
# License: BSD-3-Clause (original InPlace-ABN, Mapillary) / MIT (this reproduction).
"""Activated Batch Normalization modules with the original constructor signatures.

All three compute, per channel, y = act((x - mu) / sqrt(var + eps) * (|w| + eps) + b) with
act in {'leaky_relu' (slope), 'elu', 'none'}; see ``functions.py`` for the maths.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .functions import check_activation, inplace_abn, inplace_abn_sync
from .sync import ReplicaRegistry, select_reducer


class ABN(nn.Module):
    """Batch normalization followed by an activation, with plain autograd (not in place).

    Args:
        num_features: number of channels C of the (N, C, *) input.
        eps: added to the variance and to |weight|.
        momentum: running-statistics momentum (0.1 = PyTorch's convention).
        affine: learn `weight` (init 1) and `bias` (init 0).
        activation: 'leaky_relu', 'elu' or 'none'; anything else raises ValueError.
        slope: negative slope of the leaky ReLU.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 activation="leaky_relu", slope=0.01):
        super().__init__()
        self.num_features = num_features
        self.affine = affine
        self.eps = eps
        self.momentum = momentum
        self.activation = check_activation(activation)
        self.slope = slope
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        # faithful: no num_batches_tracked buffer, so the original checkpoints load strictly
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def reset_parameters(self):
        self.running_mean.zero_()
        self.running_var.fill_(1)
        if self.affine:
            nn.init.ones_(self.weight)
            nn.init.zeros_(self.bias)

    def forward(self, x):
        # deviation: the original ABN used the raw weight; |w| + eps makes ABN the exact
        # out-of-place twin of InPlaceABN for the same state_dict.
        weight = self.weight.abs() + self.eps if self.affine else None
        x = F.batch_norm(x, self.running_mean, self.running_var, weight, self.bias,
                         self.training, self.momentum, self.eps)
        if self.activation == "leaky_relu":
            return F.leaky_relu(x, negative_slope=self.slope, inplace=True)
        if self.activation == "elu":
            return F.elu(x, inplace=True)
        return x

    def extra_repr(self):
        rep = f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"
        rep += f", activation={self.activation}"
        return rep + (f", slope={self.slope}" if self.activation == "leaky_relu" else "")


class InPlaceABN(ABN):
    """ABN computed in place: the input tensor is overwritten by the output and only the output
    is kept for backward (saves the memory of one activation per layer). Same arguments as ABN."""

    def forward(self, x):
        return inplace_abn(x, self.weight, self.bias, self.running_mean, self.running_var,
                           self.training, self.momentum, self.eps, self.activation, self.slope)


class InPlaceABNSync(ABN):
    """InPlaceABN whose batch statistics span all DDP processes or DataParallel replicas.

    Over an initialised default process group it all-gathers the statistics; under
    ``nn.DataParallel`` the replicas exchange them through queues (``sync.py``). On CPU, with a
    single replica/process or in eval mode it is exactly InPlaceABN.

    Args:
        devices: kept for the original signature; defaults to every visible GPU at construction
            time. The replicas that actually run are counted per call, so it no longer has to
            match the number of replicas.
        other arguments: as ABN.
    """

    def __init__(self, num_features, devices=None, eps=1e-5, momentum=0.1, affine=True,
                 activation="leaky_relu", slope=0.01):
        super().__init__(num_features, eps, momentum, affine, activation, slope)
        self.devices = list(range(torch.cuda.device_count())) if devices is None else devices
        self._dp_registry = ReplicaRegistry()
        self._dp_member = None

    def _replicate_for_data_parallel(self):
        replica = super()._replicate_for_data_parallel()
        replica._dp_member = self._dp_registry.register()  # rank = order of creation
        return replica

    def forward(self, x):
        reducer = select_reducer(self, x, self.training)
        return inplace_abn_sync(x, self.weight, self.bias, self.running_mean, self.running_var,
                                self.training, self.momentum, self.eps, self.activation,
                                self.slope, reducer)

    def extra_repr(self):
        return super().extra_repr() + f", devices={self.devices}"


def convert_to_abn(module: nn.Module) -> nn.Module:
    """Replace (in place) every InPlaceABN / InPlaceABNSync inside `module` by an ABN with the
    same settings, parameters and buffers: the same function computed with standard autograd
    (BN + activation), e.g. for memory comparisons or double backward. Returns `module`."""
    for name, child in module.named_children():
        if isinstance(child, InPlaceABN | InPlaceABNSync):
            abn = ABN(child.num_features, child.eps, child.momentum, child.affine,
                      child.activation, child.slope)
            abn.load_state_dict(child.state_dict())
            setattr(module, name, abn.to(child.running_mean.device, child.running_mean.dtype))
        else:
            convert_to_abn(child)
    return module
