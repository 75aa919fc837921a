"""utils/schedule.py: poly lr = (base - min) * (1 - t/T)^p + min, set before the step."""

import pytest
import torch

from utils.schedule import adjust_learning_rate, poly_lr


@pytest.mark.parametrize("it,expected", [
    (0, 0.01),
    (20000, 0.01 * 0.5 ** 0.9),         # 0.005358867312681466
    (39999, 0.01 * (1 / 40000) ** 0.9),  # the last iteration of the paper's schedule
    (40000, 0.0),
])
def test_poly_matches_formula(it, expected):
    assert poly_lr(0.01, it, 40000, 0.9) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_poly_hand_value():
    # (1 - 1/2)^0.9 = 0.5358867312681466 (computed by hand with log: exp(0.9 * ln 0.5))
    assert poly_lr(1.0, 1, 2, 0.9) == pytest.approx(0.5358867312681466, rel=1e-12)


def test_min_lr_floor():
    assert poly_lr(0.01, 0, 100, 0.9, min_lr=1e-4) == pytest.approx(0.01)
    assert poly_lr(0.01, 100, 100, 0.9, min_lr=1e-4) == pytest.approx(1e-4)
    assert poly_lr(0.01, 50, 100, 1.0, min_lr=1e-4) == pytest.approx((0.01 - 1e-4) * 0.5 + 1e-4)
    assert poly_lr(0.01, 500, 100, 0.9, min_lr=1e-4) == pytest.approx(1e-4)


def test_adjust_sets_every_group_and_fix_lr():
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD([{"params": params[:1]}, {"params": params[1:]}], lr=1.0)
    lr = adjust_learning_rate(opt, 5, 0.01, 10, power=0.9, min_lr=0.0)
    assert lr == pytest.approx(0.01 * 0.5 ** 0.9)
    assert [g["lr"] for g in opt.param_groups] == [lr, lr]
    assert adjust_learning_rate(opt, 5, 0.01, 10, fix_lr=True) == 0.01
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.01]


def test_bad_max_iter():
    with pytest.raises(ValueError):
        poly_lr(0.01, 0, 0)
