"""train.py + utils/resume.py: --resume continues exactly.

Oracle: an uninterrupted run. 6 iterations straight must give bit-identical weights to 3 iterations,
a stop (a real SIGINT, as from Ctrl-C or a scheduler), then --resume auto for the remaining 3. The
stand-in model has BatchNorm running stats and Dropout (so the torch RNG stream matters) and the data
pipeline is the real one with random scale/crop/mirror (so the augmentation RNG matters).
"""
import os
import signal

import pytest
import torch

import network
import train
from dataset.synthetic import make_synthetic_cityscapes
from tiny_train import TinySeg
from utils import resume as resume_mod
from utils.errors import CheckpointError, ConfigError


@pytest.fixture
def tiny_setup(tmp_path, monkeypatch):
    monkeypatch.setitem(network.NETWORKS, "tiny_seg", TinySeg)
    root = make_synthetic_cityscapes(str(tmp_path / "data"), n_train=5, n_val=1, n_test=1, size=(32, 64))

    def argv(snap, *extra):
        return ["--network", "tiny", "--method", "seg", "--data-dir", root,
                "--data-list", os.path.join(root, "train.lst"), "--input-size", "24,24",
                "--batch-size", "2", "--num-steps", "6", "--save-pred-every", "100", "--num-workers", "0",
                "--random-mirror", "--random-scale", "--learning-rate", "0.05", "--allow-random-init",
                "--restore-from", str(tmp_path / "none.pth"), "--snapshot-dir", str(tmp_path / snap),
                *extra]
    return argv, tmp_path


def interrupt_at(monkeypatch, iteration):
    """SIGINT ourselves while iteration ``iteration`` runs; the loop stops before the next one."""
    real = train.adjust_learning_rate

    def hooked(optimizer, it, *values):
        if it == iteration:
            os.kill(os.getpid(), signal.SIGINT)
        return real(optimizer, it, *values)
    monkeypatch.setattr(train, "adjust_learning_rate", hooked)


def load(path):
    return torch.load(path, weights_only=True)


def test_three_plus_three_equals_six(tiny_setup, monkeypatch):
    argv, tmp = tiny_setup
    train.main(argv("straight"))
    straight = load(tmp / "straight" / "CS_scenes_6.pth")
    assert (tmp / "straight" / "CS_scenes_0.pth").exists()  # faithful: iteration 0 is saved

    real_lr = train.adjust_learning_rate
    interrupt_at(monkeypatch, 2)
    assert train.main(argv("split")) == 130  # like a shell after Ctrl-C
    state = load(tmp / "split" / "resume.pth")
    assert state["iteration"] == 3 and not (tmp / "split" / "CS_scenes_6.pth").exists()
    monkeypatch.setattr(train, "adjust_learning_rate", real_lr)
    train.main(argv("split", "--resume", "auto"))
    resumed = load(tmp / "split" / "CS_scenes_6.pth")
    assert set(resumed) == set(straight)
    for key in straight:
        assert torch.equal(resumed[key], straight[key]), key
    # a different 6-iteration run really differs (the comparison above is not vacuous)
    first = load(tmp / "straight" / "CS_scenes_0.pth")
    assert not torch.equal(first["cls.weight"], straight["cls.weight"])


def test_resume_from_another_run_lists_every_difference(tiny_setup, monkeypatch, capsys):
    argv, tmp = tiny_setup
    interrupt_at(monkeypatch, 0)
    assert train.main(argv("a")) == 130
    with pytest.raises(ConfigError) as err:
        train.main(argv("a", "--resume", "auto", "--batch-size", "4", "--learning-rate", "0.1", "--ohem"))
    msg = str(err.value)
    for part in ("--batch-size 2 (file) vs 4 (now)", "--learning-rate 0.05 (file) vs 0.1 (now)",
                 "--ohem False (file) vs True (now)", "--resume-override batch-size,learning-rate,ohem"):
        assert part in msg
    with pytest.raises(ConfigError, match="--resume-override: --lr not among"):
        train.main(argv("a", "--resume", "auto", "--resume-override", "lr"))
    capsys.readouterr()
    assert train.main(argv("a", "--resume", "auto", "--learning-rate", "0.1",
                           "--resume-override", "learning-rate")) == 0
    out = capsys.readouterr().out
    assert "--resume-override: --learning-rate changes from 0.05 to 0.1" in out
    assert "resumed from" in out and load(tmp / "a" / "resume.pth")["args"]["learning_rate"] == 0.1


def test_resume_rejects_a_snapshot(tiny_setup):
    argv, tmp = tiny_setup
    snap = tmp / "x.pth"
    torch.save(TinySeg().state_dict(), snap)
    with pytest.raises(CheckpointError, match="not a resume file"):
        train.main(argv("b", "--resume", str(snap)))


def test_rng_state_round_trip():
    import random

    import numpy as np
    state = resume_mod.rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    resume_mod.set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_amp_on_cpu_runs_and_resumes(tiny_setup):
    """--amp on CPU: bfloat16 autocast, no GradScaler state; the loop and resume file still work."""
    argv, tmp = tiny_setup
    train.main(argv("amp", "--amp", "--num-steps", "2"))
    state = load(tmp / "amp" / "resume.pth")
    assert state["iteration"] == 2 and state["scaler"] is None and state["args"]["amp"] is True
    weights = load(tmp / "amp" / "CS_scenes_2.pth")
    assert all(v.dtype == torch.float32 for k, v in weights.items() if v.is_floating_point())
