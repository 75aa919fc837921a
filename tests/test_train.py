"""train.py: model/weights setup rules (the loop itself is covered by test_resume.py and test_scripts.py)."""
import logging

import pytest
import torch

import train
from network.resnet import Bottleneck
from utils.options import parse_args

LOG = logging.getLogger("test")


def test_missing_pretrained_is_an_error_naming_the_flag(tmp_path):
    args = parse_args("train", ["--restore-from", str(tmp_path / "none.pth"), "--method", "baseline"])
    with pytest.raises(FileNotFoundError, match=r"--restore-from .*none\.pth.*--allow-random-init"):
        train.build_model(args, LOG)


def test_random_init_and_zero_init_residual(tmp_path, caplog):
    args = parse_args("train", ["--restore-from", str(tmp_path / "none.pth"), "--method", "baseline",
                                "--allow-random-init", "--zero-init-residual"])
    with caplog.at_level(logging.WARNING):
        model = train.build_model(args, LOG)
    assert "RANDOM init" in caplog.text
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 33  # ResNet-101: 3 + 4 + 23 + 3
    assert all(torch.count_nonzero(b.bn3.weight) == 0 for b in blocks)
    assert torch.all(model.bn3.weight == 1)  # the stem's bn3 is not a bottleneck


def test_start_iters_loads_a_full_model(tmp_path):
    args = parse_args("train", ["--method", "baseline", "--allow-random-init", "--restore-from",
                                str(tmp_path / "none.pth")])
    donor = train.build_model(args, LOG)
    torch.save(donor.state_dict(), tmp_path / "CS_scenes_5000.pth")
    args = parse_args("train", ["--method", "baseline", "--start-iters", "5000",
                                "--restore-from", str(tmp_path / "CS_scenes_5000.pth")])
    model = train.build_model(args, LOG)
    for key, value in donor.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)


def test_unknown_method_lists_the_valid_names(tmp_path):
    args = parse_args("train", ["--method", "base", "--allow-random-init"])  # OCNet issue #13
    with pytest.raises(KeyError, match="resnet101_asp_oc_dsn"):
        train.build_model(args, LOG)
