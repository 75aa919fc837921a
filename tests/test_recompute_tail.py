"""network/recompute_tail.py: the bottleneck tail keeping only its output, against independent oracles
(F.batch_norm with |w| + eps, the literal ResNet graph, full-batch InPlace-ABN, shape arithmetic)."""
import copy
import json
import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inplace_abn import ABN, InPlaceABN, InPlaceABNSync, sync
from inplace_abn.sync import combine_stats
from network import recompute_tail as rt
from network.recompute_tail import recompute_tail, supports_recompute
from network.resnet import MEMORY_MODES, Bottleneck, ResNet, memory_mode
from utils.options import BACKBONE_MEMORY_MODES
from saved_tensors import saved_storages


def _tail_case(dtype=torch.float64, cin=3, cout=8, shape=(2, 4, 5), kernel=1, norm=InPlaceABN):
    gen = torch.Generator().manual_seed(0)
    n, h, w = shape
    conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False).to(dtype)
    bn = norm(cout, activation="none").to(dtype)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen, dtype=dtype))
        bn.weight.copy_(torch.randn(cout, generator=gen, dtype=dtype))  # negative weights too
        bn.bias.copy_(torch.randn(cout, generator=gen, dtype=dtype))
    z2 = torch.randn(n, cin, h, w, generator=gen, dtype=dtype).requires_grad_()
    res = torch.randn(n, cout, h, w, generator=gen, dtype=dtype).requires_grad_()
    return conv, bn, z2, res


def _oracle(z2, conv, bn, res, rm, rv):
    """relu(BN(conv(relu(z2))) + res) with F.batch_norm and gamma = |w| + eps: no InPlace-ABN."""
    c3 = conv(F.relu(z2))
    z3 = F.batch_norm(c3, rm, rv, bn.weight.abs() + bn.eps, bn.bias, True, bn.momentum, bn.eps)
    return F.relu(z3 + res)


class FixedPartner:
    """A reducer whose other replica has fixed statistics and contributes no gradient (its loss
    does not depend on our output): the synchronised function is then an ordinary function of the
    local inputs, so gradcheck applies and checks the count rescaling of the backward sums."""

    def __init__(self, count, mean, var):
        self.partner = (count, mean, var)
        self.calls = {"stats": 0, "grads": 0}

    def reduce_stats(self, count, mean, var):
        self.calls["stats"] += 1
        n, m, v = combine_stats([(count, mean, var), self.partner])
        return n, m.to(mean.dtype), v.to(var.dtype)

    def reduce_grads(self, count, edz, eydz):
        self.calls["grads"] += 1
        return count + self.partner[0], edz, eydz


@pytest.mark.parametrize("kernel", [1, 3])
@pytest.mark.parametrize("with_reducer", [False, True])
def test_gradcheck_float64(kernel, with_reducer, monkeypatch):
    conv, bn, z2, res = _tail_case(kernel=kernel, norm=InPlaceABNSync)
    reducer = None
    if with_reducer:
        gen = torch.Generator().manual_seed(1)
        reducer = FixedPartner(7, torch.randn(8, generator=gen, dtype=torch.float64),
                               torch.rand(8, generator=gen, dtype=torch.float64) + 0.5)
    monkeypatch.setattr(rt, "select_reducer", lambda module, x, training: reducer)

    def fn(z2, w, bw, bb, res):
        return recompute_tail(z2, conv, bn, res)
    assert torch.autograd.gradcheck(fn, (z2, conv.weight, bn.weight, bn.bias, res))
    if with_reducer:
        assert reducer.calls["stats"] > 0 and reducer.calls["grads"] > 0


def test_equals_batch_norm_oracle_values_gradients_running_stats():
    conv, bn, z2, res = _tail_case(cin=6, cout=16, shape=(3, 7, 6))
    g = torch.randn(3, 16, 7, 6, dtype=torch.float64)
    rm, rv = bn.running_mean.clone(), bn.running_var.clone()
    params = (z2, conv.weight, bn.weight, bn.bias, res)
    out = recompute_tail(z2, conv, bn, res)
    grads = torch.autograd.grad(out, params, g)
    ref = _oracle(z2, conv, bn, res, rm, rv)
    ref_grads = torch.autograd.grad(ref, params, g)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(bn.running_mean, rm, rtol=0, atol=1e-14)  # updated once, as F.bn
    torch.testing.assert_close(bn.running_var, rv, rtol=0, atol=1e-14)


def test_refuses_what_it_cannot_compute():
    conv, bn, z2, res = _tail_case()
    with pytest.raises(ValueError, match="residual"):
        recompute_tail(z2, conv, bn, res[:, :4])
    for other in (ABN(8, activation="none"), InPlaceABN(8), nn.BatchNorm2d(8),
                  InPlaceABN(8, activation="none").eval()):
        assert not supports_recompute(other)
        with pytest.raises(ValueError, match="InPlaceABN"):
            recompute_tail(z2, conv, other.double(), res)
    with pytest.raises(ValueError, match="bias-free"):
        recompute_tail(z2, nn.Conv2d(3, 8, 1).double(), bn, res)


def test_memory_mode_names():
    assert MEMORY_MODES == BACKBONE_MEMORY_MODES  # the train.py choices
    assert [memory_mode(v) for v in (False, True, "literal", "relu", "recompute")] == \
        ["literal", "relu", "literal", "relu", "recompute"]
    for bad in ("True", "Recompute", 1, None):
        with pytest.raises(ValueError, match="literal.*relu.*recompute"):
            memory_mode(bad)
    with pytest.raises(ValueError, match="memory mode"):
        ResNet(50, memory_efficient="fast")


def _step(net, x):
    """One training step's outputs, parameter and input gradients, buffers after it."""
    net.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    outs = net(x)
    sum(o.square().mean() for o in outs).backward()
    return ([o.detach() for o in outs], [p.grad for p in net.parameters()], x.grad,
            [b.clone() for b in net.buffers()])


def test_resnet50_recompute_equals_literal_graph():
    """Every bottleneck (the four downsample ones included) through the tail function: the same
    outputs, gradients of all parameters and of the input, and running stats after one step as the
    literal graph (stats updated exactly once: equal to the literal's single update)."""
    torch.manual_seed(0)
    net = ResNet(depth=50).double().set_memory_efficient("recompute")
    calls = []
    real = rt._RecomputeTail.apply
    x = torch.randn(2, 3, 33, 33, dtype=torch.float64)
    before = [b.clone() for b in net.buffers()]
    lit = copy.deepcopy(net).set_memory_efficient(False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rt._RecomputeTail, "apply", lambda *a: calls.append(1) or real(*a))
        got = _step(net, x)
    assert len(calls) == 16  # 3 + 4 + 6 + 3 bottlenecks
    ref = _step(lit, x)
    for a, b in zip(got[0], ref[0]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    for a, b in zip(got[1] + [got[2]], ref[1] + [ref[2]]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    for a, b, old in zip(got[3], ref[3], before):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-14)
    assert not all(torch.equal(a, old) for a, old in zip(got[3], before))


def test_eval_mode_and_other_norms_keep_plain_ops(monkeypatch):
    """Eval mode, BatchNorm2d backbones (OCR) and the ABN reference never reach the function."""
    monkeypatch.setattr(rt._RecomputeTail, "apply", lambda *a: pytest.fail("tail function used"))
    x = torch.randn(2, 64, 9, 9)
    for norm in (nn.BatchNorm2d, lambda c: ABN(c, activation="none")):
        block = Bottleneck(64, 16, norm_layer=norm)
        block.memory_efficient = "recompute"
        block(x).sum().backward()
    block = Bottleneck(64, 16, norm_layer=lambda c: InPlaceABNSync(c, activation="none"))
    block.memory_efficient = "recompute"
    with torch.no_grad():
        block.eval()(x)


def test_saved_bytes_literal_relu_recompute():
    """Counted, not estimated: per bottleneck the literal graph keeps r1 (= relu(bn1), C at
    conv2's input size) and r2 (C) that "relu" recomputes, and z3 = bn3 output (4C) that
    "recompute" recomputes too, which keeps the per-channel mean of bn3 in exchange. The deep
    stem's two norm -> ReLU -> conv pairs keep one activation less in both relu modes."""
    torch.manual_seed(0)
    net = ResNet(depth=50)
    x = torch.randn(1, 3, 65, 65)
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    sizes = {"r": 0, "z3": 0, "mean": 0}  # bytes (float32)

    def relu_input(mod, args, out):  # the conv's input: r1 (conv2), r2 (conv3), stem relus
        sizes["r"] += args[0].numel() * 4

    def bn3_output(mod, args, out):
        sizes["z3"] += out.numel() * 4
        sizes["mean"] += out.shape[1] * 4
    handles = [conv.register_forward_hook(relu_input) for conv in (net.conv2, net.conv3)]
    for m in net.modules():
        if isinstance(m, Bottleneck):
            handles += [m.conv2.register_forward_hook(relu_input),
                        m.conv3.register_forward_hook(relu_input),
                        m.conv3.register_forward_hook(bn3_output)]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    saved = {}
    for mode in MEMORY_MODES:
        net.set_memory_efficient(mode)
        got = saved_storages(lambda: net(x))
        saved[mode] = sum(v for k, v in got.items() if k not in params)
    assert saved["literal"] - saved["relu"] == sizes["r"]
    assert saved["relu"] - saved["recompute"] == sizes["z3"] - sizes["mean"]
    # 12C -> 6C per bottleneck; stem, downsample norms and the strided block keep the whole
    # backbone above 0.5: this size's expected ratio, from the counts above, must be < 0.6
    expected = (saved["literal"] - sizes["r"] - sizes["z3"] + sizes["mean"]) / saved["literal"]
    assert saved["recompute"] / saved["literal"] == pytest.approx(expected, rel=1e-12)
    assert expected < 0.6


def test_bottleneck_autocast_bf16_and_channels_last_equal_relu_path():
    torch.manual_seed(0)
    block = Bottleneck(64, 16, norm_layer=lambda c: InPlaceABNSync(c, activation="none"))
    x = torch.randn(2, 64, 9, 9)
    for autocast, fmt in ((True, torch.contiguous_format), (False, torch.channels_last)):
        results = []
        for mode in ("relu", "recompute"):
            b = copy.deepcopy(block).to(memory_format=fmt)
            b.memory_efficient = mode
            xi = x.contiguous(memory_format=fmt).requires_grad_()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                y = b(xi)
            grads = torch.autograd.grad(y.float().square().sum(), [xi, *b.parameters()])
            results.append((y, *grads, *b.buffers()))
        for a, r in zip(*results):
            assert a.dtype == r.dtype
            torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5)


# ---- synchronised batch statistics (DataParallel replicas in threads, as test_inplace_abn_sync) ----

def _replicas(block, count):
    """Copies of ``block`` whose InPlaceABNSync layers form one replicate() round per layer."""
    reps = [copy.deepcopy(block) for _ in range(count)]
    for name, m in block.named_modules():
        if isinstance(m, InPlaceABNSync):
            for r in reps:
                r.get_submodule(name)._dp_member = m._dp_registry.register()
    return reps


def _run(rep, x, g):
    xl = x.clone().requires_grad_()
    out = rep(xl)
    out.backward(g)
    return out.detach(), xl.grad, [p.grad for p in rep.parameters()], \
        [b.clone() for b in rep.buffers()]


def _threads(fns):
    results, errors = [None] * len(fns), []

    def target(i):
        try:
            results[i] = fns[i]()
        except BaseException as err:  # re-raised below
            errors.append(err)
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "replica threads hung"
    if errors:
        raise errors[0]
    return results


def test_replicas_synchronised_recompute_equals_inplace_abn_and_full_batch(monkeypatch):
    monkeypatch.setattr(sync, "dp_sync_enabled", lambda x: True)
    monkeypatch.setenv("IABN_SYNC_TIMEOUT", "20")
    torch.manual_seed(0)
    down = nn.Sequential(nn.Conv2d(32, 64, 1, bias=False), InPlaceABNSync(64, activation="none"))
    block = Bottleneck(32, 16, norm_layer=lambda c: InPlaceABNSync(c, activation="none"),
                       downsample=down).double()
    xs = [torch.randn(n, 32, 5, 4, dtype=torch.float64) for n in (1, 3)]
    gs = [torch.randn(n, 64, 5, 4, dtype=torch.float64) for n in (1, 3)]
    got = {}
    for mode in ("relu", "recompute"):
        block.memory_efficient = mode
        reps = _replicas(block, 2)
        got[mode] = _threads([lambda r=r, x=x, g=g: _run(r, x, g) for r, x, g in zip(reps, xs, gs)])
    full = copy.deepcopy(block)  # the oracle: one process, the concatenated batch, unsynchronised
    full.memory_efficient = False
    out, dx, dp, bufs = _run(full, torch.cat(xs), torch.cat(gs))
    for mode, results in got.items():
        torch.testing.assert_close(torch.cat([r[0] for r in results]), out, rtol=0, atol=1e-10)
        torch.testing.assert_close(torch.cat([r[1] for r in results]), dx, rtol=0, atol=1e-10)
        for i, ref in enumerate(dp):  # parameter gradients: per-replica contributions add up
            torch.testing.assert_close(results[0][2][i] + results[1][2][i], ref, rtol=0,
                                       atol=1e-10)
        for r in results:
            for a, b in zip(r[3], bufs):
                torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    for a, b in zip(got["relu"][1][2], got["recompute"][1][2]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.slow  # four ResNet-50 models, one timed step each
def test_backbone_memory_benchmark_script(tmp_path):
    from scripts import benchmark_backbone_memory as bench
    out = tmp_path / "bbm"
    assert bench.main(["--depth", "50", "--size", "33", "--steps", "1", "--warmup", "0",
                       "--profile", "1", "--out", str(out)]) == 0
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert list(rows) == ["reference", *MEMORY_MODES]
    saved = [rows[m]["saved_backbone_mib"] for m in MEMORY_MODES]
    assert saved[0] > saved[1] > saved[2]
    text = out.with_suffix(".md").read_text()
    assert text.count("| recompute |") == 2 and "torch profiler" in text


@pytest.mark.slow  # an HRNet OCR model, two sides
def test_backbone_memory_benchmark_script_ocr_model(tmp_path):
    """An OCR model (stock BN): literal and relu only; relu keeps fewer backbone bytes."""
    from scripts import benchmark_backbone_memory as bench
    out = tmp_path / "ocr"
    assert bench.main(["--model", "hrnetv2_w18s_ocr", "--size", "64", "--steps", "1",
                       "--warmup", "0", "--sides", "literal", "relu", "recompute",
                       "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    rows = report["rows"]
    assert list(rows) == ["literal", "relu"] and report["depth"] is None
    assert 0 < rows["relu"]["saved_backbone_mib"] < rows["literal"]["saved_backbone_mib"]
