"""InPlace-ABN backend selection (inplace_abn/backend.py) and the compiled C++/CUDA op API
checked op by op against the torch reference (inplace_abn/reference.py)."""
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from inplace_abn import backend, reference
from inplace_abn.backend import BackendBuildError

REPO = Path(__file__).resolve().parents[1]
HAS_NVCC = shutil.which("nvcc") is not None or Path("/usr/local/cuda/bin/nvcc").exists()


@pytest.fixture
def fresh_backend(monkeypatch):
    """Isolated selection state; restored afterwards."""
    saved_loaded, saved_active = dict(backend._loaded), dict(backend._active)
    backend.reset()
    yield monkeypatch
    backend._loaded.clear()
    backend._loaded.update(saved_loaded)
    backend._active.update(saved_active)


def run_python(code, env_extra, timeout=600):
    env = dict(os.environ, **env_extra)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_invalid_env_value_raises(fresh_backend):
    fresh_backend.setenv("IABN_BACKEND", "fast")
    with pytest.raises(ValueError, match="IABN_BACKEND='fast'"):
        backend.backend_name()


def test_explicit_torch(fresh_backend):
    fresh_backend.setenv("IABN_BACKEND", "torch")
    assert backend.backend_name() == "torch" and backend.get_backend() is reference


def _fake_build(fail):
    def build(name):
        if name in fail:
            raise BackendBuildError(f"error: {name} compiler said no")
        return reference
    return build


@pytest.mark.parametrize("gpu,fail,expect", [(True, {"cuda"}, "cpp"),
                                             (True, {"cuda", "cpp"}, "torch"),
                                             (False, {"cpp"}, "torch")])
def test_auto_falls_back_with_exactly_one_warning(fresh_backend, gpu, fail, expect):
    fresh_backend.setenv("IABN_BACKEND", "auto")
    fresh_backend.setattr(backend, "_build", _fake_build(fail))
    fresh_backend.setattr(torch.cuda, "is_available", lambda: gpu)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert backend.backend_name() == expect
        backend.get_backend()
    assert len(caught) == 1
    for name in fail:
        assert f"{name} compiler said no" in str(caught[0].message)


def test_auto_without_gpu_does_not_try_cuda(fresh_backend):
    fresh_backend.setenv("IABN_BACKEND", "auto")
    fresh_backend.setattr(backend, "_build", _fake_build({"cuda"}))
    fresh_backend.setattr(torch.cuda, "is_available", lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert backend.backend_name() == "cpp"


@pytest.mark.parametrize("name", ["cpp", "cuda"])
def test_explicit_backend_failure_raises(fresh_backend, name):
    fresh_backend.setenv("IABN_BACKEND", name)
    fresh_backend.setattr(backend, "_build", _fake_build({name}))
    with pytest.raises(BackendBuildError, match=f"{name} compiler said no"):
        backend.backend_name()


def test_missing_compiler_is_reported(fresh_backend, tmp_path):
    fresh_backend.setenv("CXX", str(tmp_path / "no-such-c++"))
    fresh_backend.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    with pytest.raises(BackendBuildError, match="no-such-c\\+\\+"):
        backend.load("cpp")


def _fake_toolkit(root, release):
    (root / "bin").mkdir(parents=True)
    (root / "include").mkdir()
    (root / "lib64").mkdir()
    (root / "include" / "cuda_runtime_api.h").write_text("")
    (root / "lib64" / "libcudart.so").write_text("")
    nvcc = root / "bin" / "nvcc"
    nvcc.write_text(f"#!/bin/sh\necho 'Cuda compilation tools, release {release}, V{release}.1'\n")
    nvcc.chmod(0o755)


def test_cuda_toolkit_checks(fresh_backend, tmp_path):
    if torch.version.cuda is None:
        pytest.skip("torch built without CUDA")
    fresh_backend.setenv("CUDA_HOME", str(tmp_path / "missing"))
    with pytest.raises(BackendBuildError, match="lacks bin/nvcc"):
        backend._check_cuda_toolchain()
    major = int(torch.version.cuda.split(".")[0])
    _fake_toolkit(tmp_path / "old", f"{major - 1}.8")
    fresh_backend.setenv("CUDA_HOME", str(tmp_path / "old"))
    with pytest.raises(BackendBuildError, match="does not match"):
        backend._check_cuda_toolchain()
    _fake_toolkit(tmp_path / "ok", torch.version.cuda)
    fresh_backend.setenv("CUDA_HOME", str(tmp_path / "ok"))
    assert backend._check_cuda_toolchain() == str(tmp_path / "ok")


def test_import_compiles_nothing(tmp_path):
    out = run_python("""
        import sys, inplace_abn
        m = inplace_abn.InPlaceABN(3)
        print("cpp_extension" in " ".join(sys.modules))
    """, {"IABN_BACKEND": "cpp", "TORCH_EXTENSIONS_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False" and not any(tmp_path.iterdir())


# ---- compiled backends, op by op against the reference ------------------------------------

OPS_SHAPE = (4, 8, 9, 11)


def _op_inputs(dtype, device):
    gen = torch.Generator().manual_seed(1)
    acc = reference.acc_dtype(dtype)
    x = (torch.randn(OPS_SHAPE, generator=gen) * 3 + 1).to(dtype)
    dz = torch.randn(OPS_SHAPE, generator=gen).to(dtype)
    w = torch.randn(OPS_SHAPE[1], generator=gen).to(acc)  # mixed signs
    b = torch.randn(OPS_SHAPE[1], generator=gen).to(acc)
    return [t.to(device) for t in (x, dz, w, b)]


def _all_ops(mod, x, dz, w, b, affine):
    """Run every op of the API; returns the list of results (inputs are cloned)."""
    x, dz = x.clone(), dz.clone()
    w, b = (w, b) if affine else (w.new_empty(0), b.new_empty(0))
    mean, var = mod.mean_var(x)
    out = [mean, var]
    z = x.clone()
    mod.forward(z, mean, var, w, b, affine, 1e-5)
    out.append(z.clone())
    for act in ("leaky_relu", "elu"):
        za, dza = z.clone(), dz.clone()
        getattr(mod, f"{act}_forward")(*((za, 0.01) if act == "leaky_relu" else (za,)))
        out.append(za.clone())
        getattr(mod, f"{act}_backward")(*((za, dza, 0.01) if act == "leaky_relu" else (za, dza)))
        out += [za, dza]
    edz, eydz = mod.edz_eydz(z, dz, w, b, affine, 1e-5)
    out += [edz, eydz, *mod.backward(z, dz, var, w, b, edz, eydz, affine, 1e-5)]
    return out


def _check_against_reference(name, device, dtype, rtol, atol):
    mod = backend.load(name)
    for affine in (True, False):
        inputs = _op_inputs(dtype, device)
        got = _all_ops(mod, *inputs, affine)
        want = _all_ops(reference, *inputs, affine)
        for i, (g, e) in enumerate(zip(got, want)):
            assert g.dtype == e.dtype, i
            torch.testing.assert_close(g.float(), e.float(), rtol=rtol, atol=atol,
                                       msg=f"op result {i}")


@pytest.mark.jit
def test_cpp_ops_match_reference_float32():
    _check_against_reference("cpp", "cpu", torch.float32, 1e-4, 1e-5)


@pytest.mark.jit
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_cpp_ops_match_reference_other_dtypes(dtype):
    tol = {torch.float64: 1e-10, torch.float16: 2e-3, torch.bfloat16: 2e-2}[dtype]
    _check_against_reference("cpp", "cpu", dtype, tol, tol)


@pytest.mark.jit
@pytest.mark.parametrize("length", [4099, 100_003])
def test_cpp_long_channel_sums_accurate_float32(length):
    """Per-channel sums over long rows (many blocks of partial sums, a ragged tail) with a large
    offset: the float32 statistics and gradient sums stay within float32 rounding of a float64
    NumPy oracle (a naive float32 running sum drifts by orders of magnitude more here)."""
    mod = backend.load("cpp")
    rng = np.random.default_rng(0)
    x64 = rng.normal(1000.0, 0.5, size=(3, 2, length))  # (N, C, S): mean >> std
    dz64 = rng.normal(0.25, 1.0, size=x64.shape)
    w64, b64 = np.array([0.7, -1.3]), np.array([0.2, -0.4])
    x, dz = torch.from_numpy(x64).float(), torch.from_numpy(dz64).float()
    mean, var = mod.mean_var(x)
    xs = x.double().numpy()  # the float32 values the kernel saw
    want_mean = xs.mean(axis=(0, 2))
    want_var = ((xs - want_mean[None, :, None]) ** 2).mean(axis=(0, 2))
    np.testing.assert_allclose(mean.double().numpy(), want_mean, rtol=1e-7)
    np.testing.assert_allclose(var.double().numpy(), want_var, rtol=1e-5)
    w, b = torch.from_numpy(w64).float(), torch.from_numpy(b64).float()
    edz, eydz = mod.edz_eydz(x, dz, w, b, True, 1e-5)
    gamma = np.abs(w.double().numpy()) + 1e-5
    y = (xs - b.double().numpy()[None, :, None]) / gamma[None, :, None]
    g = dz.double().numpy()
    np.testing.assert_allclose(edz.double().numpy(), g.sum(axis=(0, 2)), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(eydz.double().numpy(), (y * g).sum(axis=(0, 2)), rtol=1e-5)


@pytest.mark.jit
def test_cpp_validates_inputs():
    mod = backend.load("cpp")
    assert mod.has_cuda() is False
    x = torch.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match="mean must be Double for a Double input, got Float"):
        mod.forward(x.double(), torch.zeros(3), torch.ones(3), torch.ones(3), torch.zeros(3), True,
                    1e-5)
    with pytest.raises(RuntimeError, match=r"weight must have shape \(3,\)"):
        mod.forward(x, torch.zeros(3), torch.ones(3), torch.ones(4), torch.zeros(4), True, 1e-5)
    with pytest.raises(RuntimeError, match="must be contiguous"):
        mod.mean_var(x.transpose(0, 2))
    with pytest.raises(RuntimeError, match="must be float, double, half or bfloat16"):
        mod.mean_var(torch.ones(2, 3, dtype=torch.int64))


@pytest.mark.jit
@pytest.mark.skipif(not HAS_NVCC, reason="nvcc not found: the CUDA backend cannot be compiled here")
def test_cuda_backend_compiles():
    """Builds ocnet_iabn_cuda in a subprocess (own process, own extension name/cache entry)."""
    env = {"IABN_BACKEND": "cuda"}
    if not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        env["TORCH_CUDA_ARCH_LIST"] = "9.0"
    out = run_python("""
        import time, inplace_abn
        from inplace_abn import backend
        t = time.time()
        assert inplace_abn.backend_name() == "cuda" and backend.get_backend().has_cuda()
        print(f"cuda build/load took {time.time() - t:.1f} s")
    """, env)
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.mark.cuda
@pytest.mark.jit
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_cuda_ops_match_reference(dtype):
    tol = {torch.float32: 1e-4, torch.float64: 1e-10, torch.float16: 2e-3,
           torch.bfloat16: 2e-2}[dtype]
    _check_against_reference("cuda", "cuda", dtype, tol, tol)


@pytest.mark.cuda
@pytest.mark.jit
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_tensor_on_cpp_backend_routes_to_torch(fresh_backend):
    backend.set_backend("cpp")
    x = torch.randn(2, 3, 4, device="cuda")
    with pytest.warns(RuntimeWarning, match="no CUDA kernels"):
        assert backend.backend_for(x) is reference
    with pytest.raises(RuntimeError, match="CUDA support was not enabled"):
        backend.load("cpp").mean_var(x)
