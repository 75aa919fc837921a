"""utils/accel.py: the reference configuration, channels-last, SGD, torch.compile with fallback."""
import warnings

import pytest
import torch
from torch import nn

import network
from inplace_abn import ABN, InPlaceABN, InPlaceABNSync
from utils import accel
from utils.criterion import CriterionDSN


def _tiny(name, **kw):
    torch.manual_seed(0)
    model = network.get_segmentation_model(name, num_classes=5, depth=50, **kw)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # non-trivial BN statistics and affine parameters, W of the attention != 0
        for mod in model.modules():
            if isinstance(mod, (ABN, nn.BatchNorm2d)):
                mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g) + 0.5)
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * 0.5)
        for name_, p in model.named_parameters():
            if name_.endswith("W.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model


@pytest.mark.parametrize("name", ["resnet101_base_oc_dsn", "resnet101_asp_oc_dsn",
                                  "resnet101_pyramid_oc_dsn"])
def test_reference_model_same_weights_same_fp32_function(name):
    """The reference copy holds the same weights (state_dict equal), has no InPlace-ABN and only
    naive attention left, and computes the same fp32 logits in eval mode and the same loss and
    gradients in a (float64) train step (same dropout masks through the same seed)."""
    ours = _tiny(name)
    ref = accel.reference_model(ours)
    sd_o, sd_r = ours.state_dict(), ref.state_dict()
    assert sd_o.keys() == sd_r.keys()
    assert all(torch.equal(sd_o[k], sd_r[k]) for k in sd_o)
    assert not any(isinstance(m, (InPlaceABN, InPlaceABNSync)) for m in ref.modules())
    assert {m.impl for m in ref.modules() if hasattr(m, "impl")} == {"naive"}
    assert {m.impl for m in ours.modules() if hasattr(m, "impl")} == {"sdpa"}  # ours untouched
    x = torch.randn(2, 3, 49, 49, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out_o, out_r = ours.eval()(x), ref.eval()(x)
    for a, b in zip(out_o, out_r):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    # the train step in float64: fp32 gradients through ~50 train-mode BN layers with random
    # weights differ by float rounding alone by up to ~2% (conv1), which would hide nothing
    ours.double(), ref.double()
    x = x.double()
    labels = torch.randint(0, 5, (2, 49, 49), generator=torch.Generator().manual_seed(3))
    crit = CriterionDSN(use_weight=False)
    losses = []
    for model in (ours.train(), ref.train()):
        torch.manual_seed(7)
        loss = crit(model(x.clone()), labels)
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-10, atol=1e-10)
    # each gradient within 1e-8 of its own norm, plus a floor for the biases of convs followed
    # by a train-mode BN (their true gradient is exactly zero)
    floor = 1e-10 * max(q.grad.norm() for q in ref.parameters())
    for (k, p), q in zip(ours.named_parameters(), ref.parameters()):
        diff = (p.grad - q.grad).norm()
        assert diff <= 1e-8 * q.grad.norm() + floor, (k, float(diff), float(q.grad.norm()))


def test_reference_model_ocr_uses_naive_attention():
    torch.manual_seed(0)
    ours = network.get_segmentation_model("hrnetv2_w18s_ocr", num_classes=5, preset="mmseg")
    ref = accel.reference_model(ours)
    impls = {m.impl for m in ref.modules() if hasattr(m, "impl")}
    assert impls == {"naive"}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(network.main_output(ours.eval()(x)),
                                   network.main_output(ref.eval()(x)), rtol=1e-4, atol=1e-4)


def test_set_attention_impl_rejects_unknown():
    with pytest.raises(ValueError, match="naive"):
        accel.set_attention_impl(nn.Identity(), "flash")


def test_channels_last_same_numbers():
    model = _tiny("resnet101_asp_oc_dsn").eval()
    x = torch.randn(1, 3, 41, 41)
    with torch.no_grad():
        ref = model(x)
        accel.to_channels_last(model)
        out = model(x.contiguous(memory_format=torch.channels_last))
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_build_sgd_matches_the_sgd_formula():
    """fused SGD gives the textbook momentum + weight-decay update (hand-written oracle)."""
    w = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    opt = accel.build_sgd([w], lr=0.1, momentum=0.9, weight_decay=0.01, device="cpu")
    assert opt.defaults["fused"] is True
    buf, ref = None, w.detach().clone()
    for step in range(3):
        grad = torch.tensor([0.5, 0.25, -1.0]) * (step + 1)
        w.grad = grad.clone()
        opt.step()
        d = grad + 0.01 * ref
        buf = d if buf is None else 0.9 * buf + d
        ref = ref - 0.1 * buf
    torch.testing.assert_close(w.detach(), ref)


def test_maybe_compile_without_compiler_warns_once_and_runs_eager(monkeypatch):
    monkeypatch.setattr(accel.shutil, "which", lambda name: None)
    model, crit = nn.Linear(3, 2), nn.MSELoss()
    with pytest.warns(RuntimeWarning, match="no C.. compiler"):
        m, c = accel.maybe_compile(model, crit, True)
    assert m is model and c is crit


def test_compile_failure_falls_back_to_eager_with_one_warning(monkeypatch):
    def broken_compile(module, **kw):
        def run(*a, **k):
            raise RuntimeError("inductor: unsupported op aten::frobnicate\nmore lines")
        return run
    monkeypatch.setattr(accel.torch, "compile", broken_compile)
    model = nn.Linear(3, 2)
    wrapped = accel.CompileFallback(model)
    x = torch.randn(4, 3)
    with pytest.warns(RuntimeWarning, match="frobnicate"):
        out = wrapped(x)
    torch.testing.assert_close(out, model(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(wrapped(x), model(x))  # no second warning
    assert wrapped.eager


def test_compile_mode_reaches_torch_compile_and_is_validated(monkeypatch):
    seen = []

    def fake_compile(module, **kw):
        seen.append(kw)
        return module
    monkeypatch.setattr(accel.torch, "compile", fake_compile)
    monkeypatch.setattr(accel, "compile_available", lambda: None)
    model, crit = nn.Linear(3, 2), nn.MSELoss()
    m, c = accel.maybe_compile(model, crit, True, "reduce-overhead")
    assert seen == [{"mode": "reduce-overhead"}] * 2  # the model and the loss
    x = torch.randn(4, 3)
    torch.testing.assert_close(m(x), model(x))
    with pytest.raises(ValueError, match="compile mode"):
        accel.maybe_compile(model, crit, True, "fastest")


def test_mark_step_only_for_cuda_graphs(monkeypatch):
    calls = []
    monkeypatch.setattr(accel.torch.compiler, "cudagraph_mark_step_begin", lambda: calls.append(1))
    accel.mark_step("default")
    accel.mark_step("max-autotune")
    assert calls == []
    accel.mark_step("reduce-overhead")
    assert calls == [1]


def test_compile_mode_flag():
    from utils.errors import ConfigError
    from utils.options import parse_args
    from utils.options import COMPILE_MODES
    assert COMPILE_MODES == accel.COMPILE_MODES  # the parser's copy (it does not import torch)
    assert parse_args("train", []).compile_mode == "default"
    args = parse_args("train", ["--compile", "--compile-mode", "reduce-overhead"])
    assert args.compile_mode == "reduce-overhead"
    for argv in (["--compile-mode", "reduce-overhead"],  # without --compile
                 ["--compile", "--compile-mode", "fast"]):
        with pytest.raises((SystemExit, ConfigError)):
            parse_args("train", argv)


def test_maybe_compile_disabled_is_identity():
    model, crit = nn.Linear(3, 2), nn.MSELoss()
    assert accel.maybe_compile(model, crit, False) == (model, crit)


@pytest.mark.slow
def test_compiled_and_eager_training_steps_agree():
    """One SGD step of a small conv + InPlace-ABN + attention net, compiled vs eager: same loss,
    same updated weights (inductor may reorder float sums: tolerance 1e-4)."""
    if accel.compile_available() is not None:
        pytest.skip(accel.compile_available())
    from oc_module import BaseOC_Module

    def make():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), InPlaceABNSync(16),
                             BaseOC_Module(16, 16, 8, 8, dropout=0.0), nn.Conv2d(16, 4, 1))
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 4, (2, 12, 12), generator=torch.Generator().manual_seed(2))
    crit = nn.CrossEntropyLoss()
    results = []
    for compiled in (False, True):
        model = make().train()
        for p in model.modules():
            if hasattr(p, "W"):
                nn.init.normal_(p.W.weight, std=0.1)
        opt = accel.build_sgd(model.parameters(), 0.1, 0.9, 1e-4, "cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a fallback would hide the compiler
            fmodel, fcrit = accel.maybe_compile(model, crit, compiled)
            loss = fcrit(fmodel(x), y)
            loss.backward()
        opt.step()
        results.append((loss.detach(), [p.detach().clone() for p in model.parameters()]))
        if compiled:
            assert not fmodel.eager and not fcrit.eager
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-4, atol=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_speed_flags_parse_and_prepare_model():
    from utils.options import parse_args
    args = parse_args("train", ["--compile", "--channels-last", "False"])
    assert args.compile is True and args.channels_last is False
    args = parse_args("train", [])
    assert args.compile is False and args.channels_last is None
    model = nn.Conv2d(3, 4, 3)
    accel.prepare_model(model, "cpu", None)  # default on the CPU: unchanged layout
    assert model.weight.is_contiguous()
    accel.prepare_model(model, "cpu", True)
    assert model.weight.is_contiguous(memory_format=torch.channels_last)
    assert accel.channels_last_default("cuda") and not accel.channels_last_default("cpu")


def test_channels_last_default_per_model():
    """NHWC by default only on CUDA and only without InPlace-ABN (whose kernels read NCHW)."""
    ocnet = network.get_segmentation_model("resnet101_base_oc_dsn", num_classes=3, depth=50)
    ocr = network.get_segmentation_model("hrnetv2_w18s_ocr", num_classes=3)
    assert accel.uses_inplace_abn(ocnet) and not accel.uses_inplace_abn(ocr)
    assert accel.channels_last_default("cuda", ocr)
    assert not accel.channels_last_default("cuda", ocnet)
    assert not accel.channels_last_default("cpu", ocr)
    assert not accel.uses_inplace_abn(accel.reference_model(ocnet))  # converted to stock BN
