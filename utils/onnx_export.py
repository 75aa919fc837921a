"""ONNX export of any registry model, with InPlace-ABN folded, and an onnxruntime equality check.

* :func:`fold_abn` replaces every ABN / InPlaceABN / InPlaceABNSync by ``Sequential(BatchNorm2d,
  activation)`` with the BN weight set to ``|w| + eps`` (the ABN formula
  ``act((x - mu) / sqrt(var + eps) * (|w| + eps) + b)``), and every SyncBatchNorm by a BatchNorm2d:
  plain ONNX BatchNormalization / LeakyRelu / Elu nodes instead of custom autograd functions.
* :class:`Deployable` returns the main logits upsampled to the input size (bilinear, the model's
  ``align_corners``), so the exported graph maps (N, 3, H, W) to (N, K, H, W).
* :func:`max_relative_error` = ``max |onnx - torch| / max |torch|`` over the whole output (an
  element-wise ratio is meaningless near zero logits).

The exporter is the TorchScript one (``torch.onnx.export(..., dynamo=False)``). Measured on the
shared 2-core CPU of this project: the export call for ResNet-101 Pyramid-OC with dynamic H/W took 22 s;
the dynamo exporter took 43 s for a 3-block toy OC model at a fixed size, did not finish that model
with dynamic H/W in 5 minutes, nor ResNet-101 Pyramid-OC with dynamic H/W in 10 minutes.
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils.errors import ConfigError, OCNetError

__all__ = ["Deployable", "ExportCheckError", "export_onnx", "fold_abn", "max_relative_error",
           "require_onnx", "run_onnx"]

MIN_OPSET = 17
INSTALL_HINT = "pip install onnx onnxruntime (both are in requirements-dev.txt)"


class ExportCheckError(OCNetError, ValueError):
    """The exported model disagrees with PyTorch beyond the tolerance."""


def require_onnx():
    """Import onnx and onnxruntime, or say what to install."""
    missing = []
    for name in ("onnx", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(f"ONNX export needs {', '.join(missing)}: pip install {' '.join(missing)} "
                          f"({INSTALL_HINT})")


def _activation(abn):
    if abn.activation == "leaky_relu":
        return nn.LeakyReLU(abn.slope)
    if abn.activation == "elu":
        return nn.ELU()
    return nn.Identity()


def _folded(abn):
    bn = nn.BatchNorm2d(abn.num_features, eps=abn.eps, affine=abn.affine)
    with torch.no_grad():
        if abn.affine:
            bn.weight.copy_(abn.weight.abs() + abn.eps)
            bn.bias.copy_(abn.bias)
        bn.running_mean.copy_(abn.running_mean)
        bn.running_var.copy_(abn.running_var)
    return nn.Sequential(bn, _activation(abn)).to(abn.running_mean.device).eval()


def _plain_bn(sync):
    bn = nn.BatchNorm2d(sync.num_features, sync.eps, sync.momentum, sync.affine,
                        sync.track_running_stats)
    bn.load_state_dict(sync.state_dict())
    return bn.to(sync.running_mean.device).eval()


def fold_abn(module):
    """Replace (in place) the ABN family and SyncBatchNorm inside ``module``; returns the count."""
    from inplace_abn import ABN
    count = 0
    for name, child in module.named_children():
        if isinstance(child, ABN):                      # ABN, InPlaceABN, InPlaceABNSync
            setattr(module, name, _folded(child))
            count += 1
        elif isinstance(child, nn.SyncBatchNorm):
            setattr(module, name, _plain_bn(child))
            count += 1
        else:
            count += fold_abn(child)
    return count


class Deployable(nn.Module):
    """(N, 3, H, W) normalised image -> main logits (N, K, H, W) (or at feature size)."""

    def __init__(self, model, upsample=True):
        super().__init__()
        self.model, self.upsample = model, upsample
        self.align_corners = bool(getattr(model, "align_corners", True))

    def forward(self, x):
        from network import main_output
        out = main_output(self.model(x))                                  # (N, K, h, w)
        if self.upsample:
            out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=self.align_corners)
        return out


def _op_name(err):
    text = str(err)
    found = re.search(r"operator '([^']+)'", text) or re.search(r"\b(aten[:.]{1,2}[\w.]+)", text)
    return found.group(1) if found else None


def export_onnx(net, path, size, dynamic=False, opset=MIN_OPSET):
    """Export ``net`` (eval mode) for a (1, 3, H, W) input; H and W dynamic with ``dynamic``."""
    if opset < MIN_OPSET:
        raise ConfigError(f"--opset must be >= {MIN_OPSET}, got {opset}")
    require_onnx()
    net.eval()
    x = torch.randn(1, 3, *size, device=next(net.parameters()).device)
    axes = {"image": {0: "batch", 2: "height", 3: "width"},
            "logits": {0: "batch", 2: "out_height", 3: "out_width"}}
    kwargs = dict(input_names=["image"], output_names=["logits"], opset_version=opset, dynamo=False,
                  dynamic_axes=axes if dynamic else None)
    try:
        # the tracer warns about the models' input checks (constant for the traced size); baked-in
        # sizes are caught by check_export at a second size instead
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(net, (x,), path, **kwargs)
    except Exception as err:  # the exporters raise many types; name the op when there is one
        op = _op_name(err)
        if op is None:
            raise
        raise ConfigError(f"ONNX (opset {opset}) cannot express the operator {op!r} used by this "
                          f"model: {str(err).splitlines()[0]}") from err
    import onnx
    onnx.checker.check_model(onnx.load(path))
    return path


def run_onnx(path, array):
    """Run the exported graph with onnxruntime on the CPU; returns the output array."""
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: array})[0]


def max_relative_error(actual, expected):
    """max |actual - expected| / max |expected| (see the module doc)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        raise ExportCheckError(f"ONNX output shape {actual.shape} != PyTorch {expected.shape}")
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-12))


@torch.no_grad()
def check_export(net, path, sizes, tol=1e-4, seed=0):
    """[(size, max relative error)] of onnxruntime vs PyTorch on random inputs of each size; raises
    ExportCheckError above ``tol``."""
    gen = torch.Generator().manual_seed(seed)
    results = []
    for size in sizes:
        x = torch.randn(1, 3, *size, generator=gen)
        expected = net(x.to(next(net.parameters()).device)).float().cpu().numpy()
        err = max_relative_error(run_onnx(path, x.numpy()), expected)
        results.append((tuple(size), err))
        if not err <= tol:
            raise ExportCheckError(f"{path}: onnxruntime differs from PyTorch at input {size[0]}x{size[1]}: "
                                   f"max relative error {err:.3g} > {tol:g}")
    return results
