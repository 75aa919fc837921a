"""utils/onnx_export.py + scripts/export_onnx.py: ABN folding, export, onnxruntime check, errors."""
import sys

import numpy as np
import pytest
import torch
from torch import nn

from inplace_abn import ABN, InPlaceABNSync
from oc_module import ASP_OC_Module, BaseOC_Module, Pyramid_OC_Module
from utils import onnx_export as X
from utils.errors import ConfigError

pytest.importorskip("onnxruntime")


def _abn_formula(x, abn):
    """act((x - mu) / sqrt(var + eps) * (|w| + eps) + b), written out."""
    shape = (1, -1, 1, 1)
    y = (x - abn.running_mean.view(shape)) / torch.sqrt(abn.running_var.view(shape) + abn.eps)
    y = y * (abn.weight.abs() + abn.eps).view(shape) + abn.bias.view(shape)
    if abn.activation == "leaky_relu":
        return torch.where(y >= 0, y, abn.slope * y)
    if abn.activation == "elu":
        return torch.where(y > 0, y, torch.expm1(y))
    return y


@pytest.mark.parametrize("cls,activation", [(ABN, "elu"), (InPlaceABNSync, "leaky_relu"),
                                            (InPlaceABNSync, "none")])
def test_fold_abn_matches_formula(cls, activation):
    torch.manual_seed(0)
    holder = nn.Sequential(nn.Identity(), cls(5, activation=activation, slope=0.2))
    abn = holder[1]
    with torch.no_grad():
        abn.weight.normal_()            # negative weights too: the fold must use |w| + eps
        abn.bias.normal_()
        abn.running_mean.normal_()
        abn.running_var.uniform_(0.2, 3)
    x = torch.randn(2, 5, 4, 3)
    expected = _abn_formula(x, abn.eval())
    assert X.fold_abn(holder) == 1
    assert isinstance(holder[1][0], nn.BatchNorm2d)
    torch.testing.assert_close(holder.eval()(x.clone()), expected, atol=1e-6, rtol=1e-5)


class _TinyOC(nn.Module):
    """The three OCNet context modules at small widths, in sequence."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=4, padding=1)
        self.base = BaseOC_Module(16, 16, 8, 8, dropout=0.05, sizes=(1, 2))
        self.pyramid = Pyramid_OC_Module(16, 16, dropout=0.05, sizes=(1, 2, 3))
        self.asp = ASP_OC_Module(16, 8, dilations=(1, 2, 3))
        self.cls = nn.Conv2d(16, 4, 1)
        self.align_corners = True

    def forward(self, x):
        return self.cls(self.asp(self.pyramid(self.base(self.stem(x)))))


@pytest.fixture
def tiny_oc():
    torch.manual_seed(0)
    model = _TinyOC()
    for m in model.modules():
        if isinstance(m, nn.Conv2d):           # W starts at 0 in the original: give it weights
            nn.init.normal_(m.weight, std=0.3)
        if isinstance(m, ABN):
            with torch.no_grad():
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2)
    return model.eval()


def test_export_dynamic_attention_modules(tiny_oc, tmp_path):
    with torch.no_grad():
        reference = X.Deployable(tiny_oc)(torch.ones(1, 3, 40, 44))
    X.fold_abn(tiny_oc)
    net = X.Deployable(tiny_oc).eval()
    path = X.export_onnx(net, str(tmp_path / "m.onnx"), (40, 44), dynamic=True)
    results = X.check_export(net, path, [(40, 44), (57, 63)])
    assert [s for s, _ in results] == [(40, 44), (57, 63)]
    assert max(e for _, e in results) <= 1e-4
    out = X.run_onnx(path, np.ones((1, 3, 40, 44), np.float32))
    assert X.max_relative_error(out, reference.numpy()) <= 1e-4   # the unfolded model's output too


def test_mismatch_fails_the_check(tiny_oc, tmp_path):
    X.fold_abn(tiny_oc)
    net = X.Deployable(tiny_oc).eval()
    path = X.export_onnx(net, str(tmp_path / "m.onnx"), (32, 32))
    with torch.no_grad():
        tiny_oc.cls.bias.add_(0.5)
    with pytest.raises(X.ExportCheckError, match="max relative error"):
        X.check_export(net, path, [(32, 32)])


def test_max_relative_error():
    assert X.max_relative_error([1.0, -2.0], [1.0, -4.0]) == pytest.approx(0.5)


class _Cummax(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return torch.cummax(self.conv(x), dim=3)[0]


def test_unsupported_op_is_named(tmp_path):
    with pytest.raises(ConfigError, match="cummax"):
        X.export_onnx(_Cummax().eval(), str(tmp_path / "m.onnx"), (8, 8))


def test_missing_packages_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match="pip install onnxruntime"):
        X.require_onnx()
    with pytest.raises(ConfigError, match="opset must be >= 17"):
        X.export_onnx(_Cummax(), "unused.onnx", (8, 8), opset=13)


@pytest.mark.slow
def test_export_script_registry_model(tmp_path, capsys):
    from scripts import export_onnx
    out = tmp_path / "ocr.onnx"
    results = export_onnx.main(["--network", "hrnetv2_w18s", "--method", "ocr", "--num-classes", "5",
                                "--allow-random-init", "--input-size", "64,64", "--dynamic",
                                "--output", str(out)])
    assert out.is_file() and len(results) == 2 and max(e for _, e in results) <= 1e-4
    assert "max relative error" in capsys.readouterr().out
