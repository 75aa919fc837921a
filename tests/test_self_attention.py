"""oc_module/self_attention.py against an einsum/softmax oracle written from the paper's formula."""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from oc_module.self_attention import (PyramidSelfAttentionBlock2D, SelfAttentionBlock2D, attention,
                                      pyramid_cells)


def _randomise(block, seed=0):
    """Random weights everywhere (W included) and random running stats, in float64."""
    g = torch.Generator().manual_seed(seed)
    block.double()
    with torch.no_grad():
        for name, t in list(block.named_parameters()) + list(block.named_buffers()):
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g, dtype=t.dtype) * 0.5)
    return block


def _abn_eval(y, abn):
    """Oracle of an eval-mode InPlace-ABN: affine with |w|+eps, then leaky_relu(0.01)."""
    scale = (abn.weight.abs() + abn.eps) / torch.sqrt(abn.running_var + abn.eps)
    y = (y - abn.running_mean[None, :, None, None]) * scale[None, :, None, None]
    return F.leaky_relu(y + abn.bias[None, :, None, None], 0.01)


def _proj(block, x):
    conv, abn = block.f_key[0], block.f_key[1]
    k = _abn_eval(F.conv2d(x, conv.weight, conv.bias), abn)
    v = F.conv2d(x, block.f_value.weight, block.f_value.bias)
    return k, v


def _attend(k, v, ck):
    """einsum oracle over one map: k (N, Ck, h, w), v (N, Cv, h, w) -> (N, Cv, h, w)."""
    n, _, h, w = k.shape
    kf, vf = k.reshape(n, ck, -1), v.reshape(n, v.shape[1], -1)
    sim = torch.softmax(torch.einsum("nci,ncj->nij", kf, kf) * ck ** -0.5, dim=-1)
    return torch.einsum("nij,ncj->nci", sim, vf).reshape(n, -1, h, w)


def oracle_block(block, x):
    h, w = x.shape[2:]
    xs = F.max_pool2d(x, block.scale) if block.scale > 1 else x
    k, v = _proj(block, xs)
    ctx = _attend(k, v, block.key_channels)
    out = F.conv2d(ctx, block.W.weight, block.W.bias)
    if block.scale > 1:
        out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=True)
    return out


def oracle_pyramid(block, x, s):
    k, v = _proj(block, x)
    h, w = x.shape[2:]
    out = torch.zeros(x.shape[0], v.shape[1], h, w, dtype=x.dtype)
    bounds_h = [round(i * (h // s)) for i in range(s)] + [h]
    bounds_w = [round(j * (w // s)) for j in range(s)] + [w]
    for i in range(s):
        for j in range(s):
            r, c = slice(bounds_h[i], bounds_h[i + 1]), slice(bounds_w[j], bounds_w[j + 1])
            out[:, :, r, c] = _attend(k[:, :, r, c], v[:, :, r, c], block.key_channels)
    return F.conv2d(out, block.W.weight, block.W.bias)


@pytest.mark.parametrize("impl", ["sdpa", "naive"])
@pytest.mark.parametrize("scale", [1, 2, 3])
def test_block_matches_einsum_oracle_forward_and_backward(impl, scale):
    block = _randomise(SelfAttentionBlock2D(6, 4, 5, 7, scale=scale, impl=impl)).eval()
    x = torch.randn(2, 6, 9, 11, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out = block(x)
    ref = oracle_block(block, x_ref)
    assert out.shape == (2, 7, 9, 11)
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-10)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, [x] + list(block.parameters()), g)
    grads_ref = torch.autograd.grad(ref, [x_ref] + list(block.parameters()), g)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("impl", ["sdpa", "naive"])
@pytest.mark.parametrize("s", [1, 2, 3])
def test_pyramid_block_matches_cellwise_oracle(impl, s):
    block = _randomise(PyramidSelfAttentionBlock2D(6, 3, 6, 6, scale=s, impl=impl)).eval()
    x = torch.randn(1, 6, 7, 8, dtype=torch.float64)
    torch.testing.assert_close(block(x), oracle_pyramid(block, x, s), rtol=1e-9, atol=1e-10)


def test_sdpa_and_naive_agree_float64():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(2, 37, 8, dtype=torch.float64, generator=g, requires_grad=True)
    k = torch.randn(2, 37, 8, dtype=torch.float64, generator=g, requires_grad=True)
    v = torch.randn(2, 37, 5, dtype=torch.float64, generator=g, requires_grad=True)
    a = attention(q, k, v, 8 ** -0.5, "sdpa")
    b = attention(q, k, v, 8 ** -0.5, "naive")
    assert (a - b).abs().max() < 1e-6
    ga = torch.autograd.grad(a.sum(), [q, k, v])
    gb = torch.autograd.grad(b.sum(), [q, k, v])
    for x, y in zip(ga, gb):
        assert (x - y).abs().max() < 1e-6


def test_pyramid_partition_last_cell_absorbs_remainder():
    # step = 97 // 6 = 16: starts 0, 16, 32, 48, 64, 80; the last cell spans 80..97 (17 rows).
    cells = pyramid_cells(97, 6)
    assert [a for a, _ in cells] == [0, 16, 32, 48, 64, 80]
    assert cells[-1] == (80, 97) and cells[-1][1] - cells[-1][0] == 17
    assert pyramid_cells(97, 2) == [(0, 48), (48, 97)]
    assert pyramid_cells(97, 3) == [(0, 32), (32, 64), (64, 97)]
    with pytest.raises(ValueError, match="cannot be split"):
        pyramid_cells(5, 6)


def test_query_is_key_and_both_in_state_dict():
    block = SelfAttentionBlock2D(8, 4, 4)
    assert block.f_query is block.f_key
    keys = block.state_dict().keys()
    assert "f_query.0.weight" in keys and "f_key.0.weight" in keys
    assert block.state_dict()["f_query.0.weight"].data_ptr() == \
        block.state_dict()["f_key.0.weight"].data_ptr()


def test_W_zero_initialised_gives_zero_context():
    block = SelfAttentionBlock2D(8, 4, 6, 5, scale=2)
    assert torch.count_nonzero(block.W.weight) == 0 and torch.count_nonzero(block.W.bias) == 0
    out = block(torch.randn(2, 8, 6, 6))
    assert out.shape == (2, 5, 6, 6) and torch.count_nonzero(out) == 0


def test_shared_projection_runs_twice_in_train_mode():
    # faithful: f_query is f_key, so its ABN sees the batch twice per forward (momentum 0.1 twice).
    block = SelfAttentionBlock2D(4, 2, 2).train()
    abn = block.f_key[1]
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        y = block.f_key[0](x)
    mean = y.mean(dim=(0, 2, 3))
    block(x)
    expected = 0.9 * (0.9 * 0 + 0.1 * mean) + 0.1 * mean
    torch.testing.assert_close(abn.running_mean, expected, rtol=1e-5, atol=1e-6)


def test_bad_impl_rejected():
    with pytest.raises(ValueError, match="impl"):
        SelfAttentionBlock2D(4, 2, 2, impl="flash")


# --- memory: the fused kernels must run (no L x L matrix) -------------------------------------------

_MEMORY_PROBE = r"""
import sys, torch
from oc_module.self_attention import attention
torch.manual_seed(0)
L, ck, cv, backward = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
def peak():  # peak resident set of this process, bytes
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
# the layout the blocks produce: (N, C, L) projections seen as (N, L, C) transposed views
key = torch.randn(1, ck, L).transpose(1, 2).requires_grad_(backward)
value = torch.randn(1, cv, L).transpose(1, 2).requires_grad_(backward)
with torch.set_grad_enabled(backward):
    warm = attention(key[:, :64], key[:, :64], value[:, :64], ck ** -0.5)
    before = peak()
    out = attention(key, key, value, ck ** -0.5)  # (1, L, cv)
    if backward:
        out.sum().backward()
print(peak() - before)
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc/self/status (Linux)")
@pytest.mark.parametrize("ck,cv,backward", [(256, 256, False), (128, 256, True)])
def test_sdpa_extra_memory_is_linear_in_positions(ck, cv, backward):
    """At L = 16,384 positions (a 1024x1024 crop at stride 8) the Lq x Lk score matrix alone is
    1 GiB in fp32; the naive/math path needs ~2.3 GB more than the inputs. The fused kernels keep
    a few (L, C) buffers (~16 MiB each). Fail when the extra peak memory reaches a quarter of the
    matrix (Base-OC widths forward; ASP-OC widths, which differ, forward + backward)."""
    L = 16384
    env = dict(os.environ, OMP_NUM_THREADS="2")
    res = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(L), str(ck), str(cv),
                          str(int(backward))], capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         timeout=600)
    assert res.returncode == 0, res.stderr
    extra = int(res.stdout.strip().splitlines()[-1])
    matrix = L * L * 4
    assert extra < matrix / 4, (f"attention used {extra / 2**20:.0f} MiB beyond its inputs at L={L}: "
                                f"the {matrix / 2**20:.0f} MiB score matrix is being built")


@pytest.mark.parametrize("ck,cv", [(16, 16), (8, 16), (16, 8)])
def test_sdpa_runs_a_fused_kernel_on_cpu(ck, cv):
    """The op SDPA dispatches to (forward and backward) is the fused CPU flash kernel, never the
    math fallback, for the transposed (N, L, C) views the blocks pass, with equal or unequal
    key/value widths."""
    from torch.profiler import ProfilerActivity, profile
    key = torch.randn(2, ck, 40).transpose(1, 2).requires_grad_()
    value = torch.randn(2, cv, 40).transpose(1, 2).requires_grad_()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        attention(key, key, value, ck ** -0.5).sum().backward()
    ops = {e.key for e in prof.key_averages()}
    assert "aten::_scaled_dot_product_attention_math" not in ops, sorted(ops)
    assert any("flash_attention" in op and "backward" not in op for op in ops), sorted(ops)
    assert any("flash_attention" in op and "backward" in op for op in ops), sorted(ops)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("ck,cv", [(256, 256), (128, 256)])
def test_sdpa_extra_memory_is_linear_on_cuda(dtype, ck, cv):
    """On CUDA the fused kernels keep the extra memory far below the L x L matrix (L = 33,153:
    a 1024x2048 image at stride 8; the matrix alone is 4.4 GB in fp32), and agree with naive."""
    L = 33153
    key = torch.randn(1, ck, L, device="cuda", dtype=dtype).transpose(1, 2)
    value = torch.randn(1, cv, L, device="cuda", dtype=dtype).transpose(1, 2)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = attention(key, key, value, ck ** -0.5)
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - base
    assert extra < L * L * 4 / 16, f"{extra / 2**20:.0f} MiB extra: the score matrix was built"
    idx = torch.arange(0, L, 97, device="cuda")  # a subset of query rows for the naive check
    ref = attention(key[:, idx].float(), key.float(), value.float(), ck ** -0.5, impl="naive")
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(out[:, idx].float(), ref, rtol=tol, atol=tol)
