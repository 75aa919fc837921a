"""utils/checkpoint.py: the one reader (wrappers, ``module.`` rule, readable errors, weights-only),
strict loading with a summary error, atomic saves (full disk, non-finite states, leftover temp files).

The oracle for every load is the tensor we put in the file; for every refused file, that nothing was
loaded or executed.
"""
import errno
import io
import logging
import os

import pytest
import torch
from torch import nn

from utils import checkpoint
from utils.checkpoint import (CheckpointMismatchError, atomic_save, load_checkpoint, read_checkpoint,
                              remove_stale_temps, save_snapshot, snapshot_path)
from utils.errors import CheckpointError, DivergenceError, MissingFileError


class Net(nn.Module):
    def __init__(self, classes=4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.head = nn.Conv2d(8, classes, 1)


def random_state(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen) if v.is_floating_point() else v + 3
            for k, v in model.state_dict().items()}


def assert_loaded(model, sd):
    for key, value in sd.items():
        assert torch.equal(model.state_dict()[key], value), key


@pytest.mark.parametrize("wrap", [lambda sd: sd, lambda sd: {"model": sd, "optimizer": {}, "iter": 3},
                                  lambda sd: {"meta": {"a": 1}, "state_dict": sd},
                                  lambda sd: {"epoch": 1, "model_state_dict": sd},
                                  lambda sd: {"module." + k: v for k, v in sd.items()},
                                  lambda sd: {"state_dict": {"module.module." + k: v for k, v in sd.items()}}])
def test_reader_unwraps_every_layout(tmp_path, wrap):
    sd = random_state(Net())
    torch.save(wrap(sd), tmp_path / "c.pth")
    model = Net()
    load_checkpoint(nn.DataParallel(model), str(tmp_path / "c.pth"))
    assert_loaded(model, sd)


def test_module_prefix_is_stripped_only_when_every_key_has_it(tmp_path):
    sd = random_state(Net())
    mixed = {("module." + k if k.startswith("conv") else k): v for k, v in sd.items()}
    torch.save(mixed, tmp_path / "mixed.pth")
    assert set(read_checkpoint(str(tmp_path / "mixed.pth")).state_dict) == set(mixed)
    with pytest.raises(CheckpointMismatchError, match="1 unexpected keys.*module.conv1.weight"):
        load_checkpoint(Net(), str(tmp_path / "mixed.pth"))


def test_no_state_dict_inside(tmp_path):
    torch.save({"meta": {"epoch": 3}, "lr": 0.1}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match=r"holds no state_dict of tensors.*'model', 'state_dict'"):
        read_checkpoint(str(tmp_path / "x.pth"))


def test_other_model_gives_one_summary_error(tmp_path):
    path = tmp_path / "other.pth"
    sd = {f"block{i}.weight": torch.zeros(1) for i in range(40)}
    sd["head.weight"] = torch.zeros(19, 8, 1, 1)  # shape mismatch with Net(classes=4)
    torch.save(sd, path)
    with pytest.raises(CheckpointMismatchError) as err:
        load_checkpoint(Net(), str(path))
    msg = str(err.value)
    assert "40 unexpected keys" in msg and "(+35 more)" in msg
    assert "7 missing keys" in msg  # conv1.weight, bn1 (5 entries), head.bias
    assert "1 shape mismatches: head.weight file (19, 8, 1, 1) vs model (4, 8, 1, 1)" in msg
    assert msg.count("block") <= 6  # a few examples, not the whole list


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(MissingFileError, match="nope.pth"):
        load_checkpoint(Net(), str(tmp_path / "nope.pth"))
    with pytest.raises(CheckpointError, match="is not a file"):
        read_checkpoint(str(tmp_path))


def test_pickled_objects_are_refused_and_trust_is_logged(tmp_path, caplog):
    path = tmp_path / "obj.pth"
    torch.save({"model": Net()}, path)  # a whole pickled module, not a state_dict
    with pytest.raises(CheckpointError, match="refused.*--trust-checkpoint True"):
        checkpoint.read_file(str(path))
    with caplog.at_level(logging.WARNING, logger="ocnet"):
        assert isinstance(checkpoint.read_file(str(path), trust=True)["model"], Net)
    assert "--trust-checkpoint" in caplog.text and "any code stored in the file runs" in caplog.text


class Payload:
    """Unpickling this calls open(<marker>, 'w'): proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"model": {"w": torch.zeros(1)}, "x": Payload(str(marker))}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match=r"refused: it stores Python objects \(.*open\)"):
        read_checkpoint(str(tmp_path / "evil.pth"))
    assert not marker.exists()


@pytest.mark.parametrize("damage,reason", [
    (lambda b: b[:50], "truncated or corrupt"),
    (lambda b: b[: len(b) // 2], "truncated or corrupt"),
    (lambda b: b"", "empty"),
    (lambda b: b"hello world\nthis is text\n", "not a PyTorch checkpoint (it starts with 'hello world')"),
])
def test_unreadable_files_give_one_reason(tmp_path, damage, reason):
    path = tmp_path / "bad.pth"
    torch.save(Net().state_dict(), path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError, match="bad.pth: cannot be read") as err:
        load_checkpoint(Net(), str(path))
    assert reason in str(err.value) and "\n" not in str(err.value)


def test_snapshot_is_plain_state_dict_with_original_name(tmp_path):
    model = Net()
    path = save_snapshot(nn.DataParallel(model), str(tmp_path), 5000)
    assert path == snapshot_path(str(tmp_path), 5000) and path.endswith("CS_scenes_5000.pth")
    loaded = torch.load(path, weights_only=True)
    assert set(loaded) == set(model.state_dict())  # no module. prefix


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = str(tmp_path / "CS_scenes_0.pth")
    atomic_save({"w": torch.ones(3)}, path)
    real_save = torch.save

    def full_disk(obj, handle, *a, **kw):
        handle.write(b"partial bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError, match=r"could not write checkpoint .*CS_scenes_0.pth \(previous file "
                                              r"kept\): the disk is full"):
        atomic_save({"w": torch.zeros(3)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["CS_scenes_0.pth"]  # no temp file left behind


class NearlyFullFile(io.FileIO):
    """A file on a disk with ``room`` bytes left: longer writes are short, then ENOSPC (as write(2))."""
    room = 4096

    def write(self, data):
        n = min(len(data), max(0, self.room - self.tell()))
        if n == 0 and len(data):
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(memoryview(data)[:n])


def _on_full_disk(tmp_path, monkeypatch, opener):
    path = str(tmp_path / "resume.pth")
    atomic_save({"w": torch.ones(3)}, path)
    monkeypatch.setattr(checkpoint, "open", opener, raising=False)
    with pytest.raises(CheckpointError, match=r"could not write checkpoint .*resume.pth \(previous file kept\): "
                                              r"the disk is full") as err:
        atomic_save({"w": torch.zeros(1_000_000)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["resume.pth"]  # the partial temp file is gone
    return err.value.__cause__


def test_torch_writer_error_on_a_nearly_full_disk(tmp_path, monkeypatch):
    """The issue's case: torch's own '[enforce fail at inline_container.cc] unexpected pos' error."""
    cause = _on_full_disk(tmp_path, monkeypatch, lambda name, mode="r": NearlyFullFile(name, mode))
    assert isinstance(cause, RuntimeError) and "inline_container" in str(cause)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_enospc_from_a_full_device(tmp_path, monkeypatch):
    def full_device(name, mode="r"):
        open(name, mode).close()         # the temp file exists, as in a real failed save
        return open("/dev/full", mode)   # ... but every byte goes to a full device (ENOSPC)
    cause = _on_full_disk(tmp_path, monkeypatch, full_device)
    assert isinstance(cause, OSError) and cause.errno == errno.ENOSPC


def test_nonfinite_state_is_never_written(tmp_path):
    path = tmp_path / "resume.pth"
    bad = {"model": {"a": torch.ones(2), "b": torch.tensor([1.0, float("nan")])},
           "optimizer": {"state": {0: {"momentum_buffer": torch.tensor([float("inf")])}}}}
    with pytest.raises(DivergenceError, match=r"2 tensors hold NaN/inf \(model.b, optimizer.state.0"):
        atomic_save(bad, str(path))
    assert not path.exists() and os.listdir(tmp_path) == []


def test_leftover_temp_files_are_removed(tmp_path):
    for name in (".CS_scenes_0.pth.tmp1234", ".resume.pth.tmp99", "CS_scenes_0.pth", ".train.lock", "notes.tmp1"):
        (tmp_path / name).write_bytes(b"x")
    removed = remove_stale_temps(str(tmp_path))
    assert sorted(os.path.basename(p) for p in removed) == [".CS_scenes_0.pth.tmp1234", ".resume.pth.tmp99"]
    assert sorted(os.listdir(tmp_path)) == [".train.lock", "CS_scenes_0.pth", "notes.tmp1"]
