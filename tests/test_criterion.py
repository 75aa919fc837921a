"""utils/criterion.py: the criteria against NumPy ports (upsampling, CE weights, DSN, OHEM) and
the flag logic of build_criterion."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_loss import SPEC_WEIGHTS, np_ohem_loss, np_weighted_ce

from utils.criterion import (
    CriterionCrossEntropy,
    CriterionDSN,
    CriterionOhemDSN,
    CriterionOhemDSN_single,
    build_criterion,
)


def np_upsample_align_corners(x, size):
    """Bilinear, align_corners=True: src = dst * (n_in - 1) / (n_out - 1) (float64 NumPy)."""
    def taps(n_in, n_out):
        src = np.arange(n_out) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        return i0, np.minimum(i0 + 1, n_in - 1), src - i0
    y0, y1, fy = taps(x.shape[2], size[0])
    x0, x1, fx = taps(x.shape[3], size[1])
    x = x.astype(np.float64)
    rows = x[:, :, y0] * (1 - fy)[:, None] + x[:, :, y1] * fy[:, None]
    return rows[..., x0] * (1 - fx) + rows[..., x1] * fx


def _preds(seed=0):
    rng = np.random.default_rng(seed)
    aux = (rng.standard_normal((2, 19, 3, 4)) * 2).astype(np.float32)
    main = (rng.standard_normal((2, 19, 3, 4)) * 2).astype(np.float32)
    target = rng.integers(0, 19, (2, 9, 11))
    target[0, :2] = 255
    return aux, main, target


def _t(*arrays):
    return [torch.from_numpy(a) for a in arrays]


def test_numpy_upsample_oracle_matches_torch_align_corners():
    aux, _, _ = _preds()
    ref = F.interpolate(torch.from_numpy(aux), size=(9, 11), mode="bilinear", align_corners=True)
    np.testing.assert_allclose(np_upsample_align_corners(aux, (9, 11)), ref.numpy(), atol=1e-5)


def test_cross_entropy_upsamples_with_align_corners_and_weights():
    _, main, target = _preds()
    up = np_upsample_align_corners(main, target.shape[1:])
    loss = CriterionCrossEntropy()(*_t(main, target))
    assert loss.item() == pytest.approx(np_weighted_ce(up, target, SPEC_WEIGHTS), rel=1e-5)
    plain = CriterionCrossEntropy(use_weight=False)(*_t(main, target))
    assert plain.item() == pytest.approx(np_weighted_ce(up, target, None), rel=1e-5)
    with pytest.raises(TypeError, match="CriterionDSN"):
        CriterionCrossEntropy()([torch.from_numpy(main)] * 2, torch.from_numpy(target))


def test_dsn_weighting():
    aux, main, target = _preds(1)
    size = target.shape[1:]
    expected = (0.4 * np_weighted_ce(np_upsample_align_corners(aux, size), target, SPEC_WEIGHTS)
                + np_weighted_ce(np_upsample_align_corners(main, size), target, SPEC_WEIGHTS))
    a, m, t = _t(aux, main, target)
    assert CriterionDSN()([a, m], t).item() == pytest.approx(expected, rel=1e-5)
    e2 = (0.25 * np_weighted_ce(np_upsample_align_corners(aux, size), target, None)
          + np_weighted_ce(np_upsample_align_corners(main, size), target, None))
    assert CriterionDSN(use_weight=False, dsn_weight=0.25)([a, m], t).item() == pytest.approx(e2, rel=1e-5)
    with pytest.raises(TypeError, match="aux, main"):
        CriterionDSN()(m, t)


def test_ohem_dsn_both_heads_and_single():
    aux, main, target = _preds(2)
    size = target.shape[1:]
    ua, um = (np_upsample_align_corners(p, size).astype(np.float32) for p in (aux, main))
    a, m, t = _t(aux, main, target)
    both = 0.4 * np_ohem_loss(ua, target, 255, 0.7, 30) + np_ohem_loss(um, target, 255, 0.7, 30)
    got = CriterionOhemDSN(thres=0.7, min_kept=30)([a, m], t)
    assert got.item() == pytest.approx(both, rel=1e-4)
    single = 0.4 * np_weighted_ce(ua, target, SPEC_WEIGHTS) + np_ohem_loss(um, target, 255, 0.7, 30)
    got = CriterionOhemDSN_single(thres=0.7, min_kept=30)([a, m], t)
    assert got.item() == pytest.approx(single, rel=1e-4)


def test_align_corners_false_is_honoured():
    _, main, target = _preds(3)
    up = F.interpolate(torch.from_numpy(main), size=target.shape[1:], mode="bilinear",
                       align_corners=False).numpy()
    loss = CriterionCrossEntropy(align_corners=False)(*_t(main, target))
    assert loss.item() == pytest.approx(np_weighted_ce(up, target, SPEC_WEIGHTS), rel=1e-5)
    assert loss.item() != pytest.approx(CriterionCrossEntropy()(*_t(main, target)).item(), rel=1e-5)


def _options(**kw):
    base = dict(ohem=False, ohem_single=False, ohem_thres=0.7, ohem_keep=0, dsn_weight=0.4,
                use_weight=True, ignore_label=255)
    return {**base, **kw}


@pytest.mark.parametrize("has_aux,flags,cls", [
    (True, {}, CriterionDSN),
    (True, {"ohem": True}, CriterionOhemDSN),
    (True, {"ohem": True, "ohem_single": True}, CriterionOhemDSN_single),
    (True, {"ohem_single": True}, CriterionDSN),          # --ohem-single alone does nothing
    (False, {}, CriterionCrossEntropy),
    (False, {"ohem": True}, CriterionCrossEntropy),       # faithful: baseline ignores --ohem
])
def test_build_criterion_flag_logic(has_aux, flags, cls):
    model = SimpleNamespace(has_aux=has_aux, align_corners=False)
    crit = build_criterion(model, **_options(**flags))
    assert type(crit) is cls and crit.align_corners is False


def test_build_criterion_passes_values():
    model = SimpleNamespace(has_aux=True, align_corners=True)
    crit = build_criterion(model, ohem=True, ohem_single=True, ohem_thres=0.8, ohem_keep=123,
                           dsn_weight=0.3, use_weight=False, ignore_label=250)
    assert crit.dsn_weight == 0.3 and crit.weight is None and crit.ignore_index == 250
    o = crit.criterion_ohem
    assert (o.thresh, o.min_kept, o.ignore_label, o.weight) == (0.8, 123, 250, None)


@pytest.mark.cuda
def test_dsn_on_cuda():
    aux, main, target = _preds(4)
    a, m, t = (x.cuda() for x in _t(aux, main, target))
    size = target.shape[1:]
    expected = (0.4 * np_weighted_ce(np_upsample_align_corners(aux, size), target, SPEC_WEIGHTS)
                + np_weighted_ce(np_upsample_align_corners(main, size), target, SPEC_WEIGHTS))
    assert CriterionOhemDSN_single(min_kept=10 ** 6)([a, m], t).item() == pytest.approx(expected, rel=1e-4)
