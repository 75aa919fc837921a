"""scripts/benchmark.py: the quick run end to end (CPU) and its bad-input errors."""
import json

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
