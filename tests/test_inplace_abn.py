"""InPlace-ABN modules and autograd function against an independent oracle:
F.batch_norm with weight |w| + eps, then the activation (standard autograd)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.graph import saved_tensors_hooks

from inplace_abn import ABN, InPlaceABN, InPlaceABNSync, convert_to_abn, inplace_abn
from inplace_abn import backend as iabn_backend

EPS, MOMENTUM, SLOPE = 1e-5, 0.1, 0.01
ACTIVATIONS = ["leaky_relu", "elu", "none"]


@pytest.fixture(autouse=True)
def _torch_backend_by_default():
    """Tests that do not ask for a backend use torch (no JIT build outside @jit tests)."""
    iabn_backend.set_backend("torch")
    yield
    iabn_backend.set_backend(None)


CUDA_BACKEND = pytest.param("cuda", marks=[pytest.mark.jit, pytest.mark.cuda, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="the cuda backend is tested where a GPU is present")])


@pytest.fixture(params=["torch", pytest.param("cpp", marks=pytest.mark.jit), CUDA_BACKEND])
def abn_backend(request, _torch_backend_by_default):
    """Run the test with the given backend active, then restore the default selection."""
    iabn_backend.set_backend(request.param)
    yield request.param
    iabn_backend.set_backend(None)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=[
    pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")])])
def iabn_device(request):
    return torch.device(request.param)


def oracle(x, w, b, rm, rv, training, activation, slope=SLOPE, eps=EPS, momentum=MOMENTUM):
    """Out-of-place reference; updates rm / rv like BatchNorm (unbiased running variance)."""
    weight = w.abs() + eps if w is not None else None
    y = F.batch_norm(x, rm, rv, weight, b, training, momentum, eps)
    if activation == "leaky_relu":
        return F.leaky_relu(y, slope)
    if activation == "elu":
        return F.elu(y)
    return y


def make_inputs(device, dtype=torch.float64, shape=(2, 3, 4, 5), seed=0):
    gen = torch.Generator().manual_seed(seed)
    c = shape[1]
    x = torch.randn(shape, generator=gen, dtype=dtype) * 2 + 0.5
    w = torch.tensor([1.5, -0.7, 0.3] * (c // 3) + [0.9] * (c % 3), dtype=dtype)  # negative weight
    b = torch.randn(c, generator=gen, dtype=dtype)
    rm = torch.randn(c, generator=gen, dtype=dtype) * 0.1
    rv = torch.rand(c, generator=gen, dtype=dtype) + 0.5
    g = torch.randn(shape, generator=gen, dtype=dtype)
    return [t.to(device) for t in (x, w, b, rm, rv, g)]


def run_both(device, training, activation, dtype=torch.float64, shape=(2, 3, 4, 5)):
    """(out, rm, rv, dx, dw, db) for InPlace-ABN and for the oracle."""
    x, w, b, rm, rv, g = make_inputs(device, dtype, shape)
    results = []
    for fn in ("iabn", "oracle"):
        xl, wl, bl = (t.clone().requires_grad_() for t in (x, w, b))
        rml, rvl = rm.clone(), rv.clone()
        if fn == "iabn":
            out = inplace_abn(xl * 1, wl, bl, rml, rvl, training, MOMENTUM, EPS, activation, SLOPE)
        else:
            out = oracle(xl, wl, bl, rml, rvl, training, activation)
        snapshot = out.detach().clone()
        out.backward(g)
        results.append((snapshot, rml, rvl, xl.grad, wl.grad, bl.grad))
    return results


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("training", [True, False])
def test_forward_backward_match_oracle(abn_backend, iabn_device, activation, training):
    got, want = run_both(iabn_device, training, activation)
    for name, a, e in zip(["out", "running_mean", "running_var", "dx", "dw", "db"], got, want):
        torch.testing.assert_close(a, e, rtol=1e-9, atol=1e-10, msg=name)


def test_float32_matches_oracle(abn_backend, iabn_device):
    got, want = run_both(iabn_device, True, "leaky_relu", dtype=torch.float32, shape=(4, 6, 7, 9))
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_float64(abn_backend, iabn_device, activation, training):
    x, w, b, rm, rv, _ = make_inputs(iabn_device, shape=(2, 3, 3, 2))
    def fn(x_, w_, b_):
        return inplace_abn(x_.clone(), w_, b_, rm.clone(), rv.clone(), training, MOMENTUM, EPS,
                           activation, SLOPE)

    inputs = tuple(t.clone().requires_grad_() for t in (x, w, b))
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7)


def test_running_stats_hand_formula(abn_backend):
    x = torch.arange(12, dtype=torch.float64).reshape(2, 2, 3) ** 1.5  # (N=2, C=2, L=3)
    rm = torch.tensor([0.5, -1.0], dtype=torch.float64)
    rv = torch.tensor([2.0, 0.5], dtype=torch.float64)
    xn = x.numpy().transpose(1, 0, 2).reshape(2, -1)  # (C, N*L)
    want_rm = 0.9 * rm.numpy() + 0.1 * xn.mean(1)
    want_rv = 0.9 * rv.numpy() + 0.1 * xn.var(1, ddof=1)  # unbiased: n / (n - 1)
    inplace_abn(x.clone(), torch.ones(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64),
                rm, rv, True, 0.1, EPS, "none", SLOPE)
    np.testing.assert_allclose(rm.numpy(), want_rm, rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), want_rv, rtol=1e-12)


def _saved_full_size(fn, x, numel):
    """Tensors of x's size packed for backward while running fn(x) (values cloned at save time)."""
    saved = []

    def pack(t):
        if t.numel() == numel:
            saved.append((t.untyped_storage().data_ptr(), t.detach().clone()))
        return t

    with saved_tensors_hooks(pack, lambda t: t):
        out = fn(x)
    return out, saved


def test_input_overwritten_and_not_saved(abn_backend):
    x, w, b, rm, rv, _ = make_inputs("cpu", torch.float32, (2, 6, 5, 5))
    leaf = x.clone().requires_grad_()
    h = leaf * 1  # (2, 6, 5, 5) non-leaf input
    before, ptr = h.detach().clone(), h.data_ptr()
    module = InPlaceABN(6).train()
    out, saved = _saved_full_size(module, h, h.numel())
    assert out.data_ptr() == ptr and torch.equal(h, out)  # the input storage holds the output
    assert not torch.equal(out, before)
    assert len(saved) == 1  # only the output is kept ...
    assert torch.equal(saved[0][1], out.detach()) and not torch.equal(saved[0][1], before)
    # ... whereas BN + activation with plain autograd keeps two full-size tensors
    _, saved_abn = _saved_full_size(ABN(6).train(), leaf * 1, h.numel())
    assert len({p for p, _ in saved_abn}) == 2


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_output_intact_after_backward_and_retain_graph(abn_backend, activation):
    x, w, b, rm, rv, g = make_inputs("cpu")
    xl = x.clone().requires_grad_()
    out = inplace_abn(xl * 1, w, b, rm, rv, True, activation=activation)
    snapshot, g_before = out.detach().clone(), g.clone()
    out.backward(g, retain_graph=True)
    first = xl.grad.clone()
    assert torch.equal(out.detach(), snapshot)
    assert torch.equal(g, g_before)  # the incoming gradient is not modified either
    out.backward(g)
    torch.testing.assert_close(xl.grad, 2 * first)


def test_backward_without_activation_copies_nothing(abn_backend):
    """activation='none' (the backbone's norms): backward reads the saved output and the incoming
    gradient in place; only dx is allocated. With an activation to invert, both are copied."""
    x, w, b, rm, rv, g = make_inputs("cpu", torch.float32, (2, 6, 5, 5))
    copies = {}
    for activation in ("none", "leaky_relu"):
        xl = x.clone().requires_grad_()
        out = inplace_abn(xl * 1, w.clone().requires_grad_(), b.clone().requires_grad_(), rm, rv,
                          True, activation=activation)
        with torch.profiler.profile(record_shapes=True) as prof:
            out.backward(g)
        copies[activation] = sum(  # full-size copies only
            e.count for e in prof.key_averages(group_by_input_shape=True)
            if e.key == "aten::clone" and e.input_shapes and e.input_shapes[0] == list(x.shape))
    assert copies["leaky_relu"] - copies["none"] == 2  # the two transient copies, and the probe works
    if abn_backend != "torch":  # the torch reference ops make temporaries of their own
        assert copies["none"] == 0


def test_non_contiguous_input_written_back(abn_backend):
    x, w, b, rm, rv, _ = make_inputs("cpu", shape=(2, 3, 4, 5))
    xc = x.clone().contiguous(memory_format=torch.channels_last)
    out = inplace_abn(xc, w, b, rm.clone(), rv.clone(), True)
    assert out.data_ptr() == xc.data_ptr()
    torch.testing.assert_close(xc, oracle(x, w, b, rm.clone(), rv.clone(), True, "leaky_relu"))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_computed_in_float(abn_backend, dtype):
    x, w, b, rm, rv, _ = make_inputs("cpu", torch.float32, (2, 3, 4, 5))
    xl = x.to(dtype)
    out = inplace_abn(xl.clone(), w, b, rm.clone(), rv.clone(), True)
    want = oracle(xl.float(), w, b, rm.clone(), rv.clone(), True, "leaky_relu")
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), want, rtol=2e-2, atol=2e-2)


def test_single_value_per_channel_raises():
    module = InPlaceABN(3).train()
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        module(torch.randn(1, 3, 1, 1))
    module.eval()(torch.randn(1, 3, 1, 1))  # eval mode uses the running statistics


@pytest.mark.parametrize("cls", [ABN, InPlaceABN, InPlaceABNSync])
def test_bad_activation_raises(cls):
    with pytest.raises(ValueError, match="relu"):
        cls(4, activation="relu")


@pytest.mark.parametrize("cls", [ABN, InPlaceABN, InPlaceABNSync])
def test_module_state(cls):
    m = cls(5)
    assert sorted(m.state_dict()) == ["bias", "running_mean", "running_var", "weight"]
    assert torch.equal(m.weight, torch.ones(5)) and torch.equal(m.bias, torch.zeros(5))
    assert torch.equal(m.running_var, torch.ones(5))
    assert (m.activation, m.slope) == ("leaky_relu", 0.01)
    assert cls(5, affine=False).weight is None


@pytest.mark.parametrize("affine", [True, False])
def test_modules_agree_on_cpu(abn_backend, affine):
    """ABN, InPlaceABN and InPlaceABNSync (single process) compute the same function."""
    x, _, _, _, _, g = make_inputs("cpu", shape=(3, 6, 4, 4))
    mods = [cls(6, affine=affine).double() for cls in (ABN, InPlaceABN, InPlaceABNSync)]
    if affine:
        for m in mods:
            m.weight.data = torch.linspace(-1, 1, 6, dtype=torch.float64)
            m.bias.data = torch.linspace(0, 1, 6, dtype=torch.float64)
    results = []
    for m in mods:
        xl = x.clone().requires_grad_()
        out = m(xl * 1)
        snapshot = out.detach().clone()
        out.backward(g)
        results.append([snapshot, xl.grad, m.running_mean, m.running_var]
                       + ([m.weight.grad, m.bias.grad] if affine else []))
    for other in results[1:]:
        for a, e in zip(other, results[0]):
            torch.testing.assert_close(a, e, rtol=1e-9, atol=1e-10)


def test_non_invertible_slope_raises():
    x, w, b, rm, rv, _ = make_inputs("cpu")
    with pytest.raises(ValueError, match="slope must be > 0"):
        inplace_abn(x, w, b, rm, rv, True, slope=0.0)


def test_convert_to_abn_keeps_function_and_state():
    net = nn.Sequential(nn.Conv2d(3, 6, 3), InPlaceABNSync(6, activation="elu"),
                        nn.Sequential(nn.Conv2d(6, 6, 1), InPlaceABN(6)))
    with torch.no_grad():
        net[1].weight.copy_(torch.linspace(-1, 1, 6))
    x = torch.randn(2, 3, 7, 7)
    want, state = net(x).detach(), net.state_dict()
    convert_to_abn(net)
    assert type(net[1]) is ABN and type(net[2][1]) is ABN and net[1].activation == "elu"
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    torch.testing.assert_close(net(x), want)
