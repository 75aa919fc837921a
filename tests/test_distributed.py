"""utils/distributed.py: runtime selection and the global-batch split check."""
import argparse

import pytest
import torch

from utils import distributed


def args(batch=8, gpu="0"):
    return argparse.Namespace(batch_size=batch, gpu=gpu)


@pytest.fixture
def no_torchrun(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # never touch a real GPU here


def test_cpu_runtime(no_torchrun, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rt = distributed.setup(args())
    assert rt.device.type == "cpu" and rt.world_size == 1 and rt.is_main and not rt.distributed
    assert distributed.all_gather_object({"a": 1}, rt) == [{"a": 1}]
    t = torch.ones(2)
    assert torch.equal(distributed.all_reduce_sum(t, rt), torch.ones(2))


def test_dataparallel_batch_must_divide(no_torchrun, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    with pytest.raises(ValueError, match=r"--batch-size 8 .*3 GPUs.*--gpu 0,1,2"):
        distributed.setup(args(8, "0,1,2"))
    assert distributed.setup(args(6, "0,1,2")).dp_devices == (0, 1, 2)


def test_torchrun_env_is_detected(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert distributed.launched_by_torchrun()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not distributed.launched_by_torchrun()
