"""scripts/benchmark.py: the quick run end to end (CPU) and its bad-input errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scripts import benchmark


@pytest.mark.slow
def test_quick_run_writes_results(tmp_path):
    """--quick measures both sides (training and inference) and writes json + md; the two
    configurations hold the same weights, so their fp32 logits agree."""
    assert benchmark.main(["--quick", "--out-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "benchmark_cpu_quick.json").read_text())
    md = (tmp_path / "benchmark_cpu_quick.md").read_text()
    assert report["machine"]["torch"] == torch.__version__ and report["device"] == "cpu"
    (res,) = report["results"]
    assert len(res["train"]["ours"]["times_ms"]) == report["settings"]["steps"]
    for part in ("train", "infer"):
        for side in ("ours", "reference"):
            m = res[part][side]
            assert m["ms"] > 0 and all(t > 0 for t in m["times_ms"])
    assert res["max_rel_diff_fp32"] < 1e-3
    assert "AMP (bf16) skipped" in md and "| resnet101_asp_oc_dsn | fp32 |" in md


def test_compile_mode_compiles_our_training_step_only(tmp_path, monkeypatch):
    """--compile-mode: our side's model and loss go through torch.compile in that mode (a
    recording stand-in here), every training step is marked for the CUDA-graph replay, the
    reference stays eager, and the results get their own file."""
    from utils import accel
    compiled, marks = [], []

    def fake_compile(module, **kw):
        compiled.append((type(module).__name__, kw))
        return module
    monkeypatch.setattr(accel.torch, "compile", fake_compile)
    monkeypatch.setattr(accel, "compile_available", lambda: None)
    monkeypatch.setattr(accel.torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    argv = ["--quick", "--no-infer", "--compile-mode", "reduce-overhead", "--out-dir", str(tmp_path)]
    assert benchmark.main(argv) == 0
    report = json.loads((tmp_path / "benchmark_cpu_quick_compile-reduce-overhead.json").read_text())
    assert report["settings"]["compile_mode"] == "reduce-overhead"
    assert [kw for _, kw in compiled] == [{"mode": "reduce-overhead"}] * 2  # ours: model, loss
    s = report["settings"]
    # warm-up + timed steps + the peak-memory step, ours only
    assert len(marks) == s["warmup"] + s["steps"] + 1


def test_cuda_requested_without_cuda_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--device", "cuda"])
    assert "no CUDA device" in capsys.readouterr().err


def test_unknown_model_is_rejected(capsys):
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--models", "resnet101_nope"])
    assert "unknown model" in capsys.readouterr().err


def test_peak_memory_probe_sees_an_allocation():
    """The CPU probe reports at least the bytes a step keeps alive at its peak."""
    benchmark.release_freed_memory_to_os()
    def step():
        x = torch.ones(64 * 2 ** 20 // 4)  # 64 MiB, touched
        return float(x.sum())
    peak = benchmark.measure_peak(torch.device("cpu"), step)
    if peak is None:
        pytest.skip("/proc/self/clear_refs not available")
    assert peak >= 60 * 2 ** 20


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_gpu_check_without_cuda_says_so(tmp_path):
    """scripts/gpu_check.sh on a machine without CUDA stops at once with exit 2 and says why,
    before running any test or benchmark."""
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path), COMPILE_LIMIT="60")
    proc = subprocess.run(["sh", str(root / "scripts" / "gpu_check.sh")], env=env, cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "no CUDA device visible" in proc.stderr
    assert not list(tmp_path.glob("gpu_check_*.log"))
