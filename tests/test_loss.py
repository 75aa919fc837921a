"""utils/loss.py: OhemCrossEntropy2d against a NumPy port of the original (loss.py at 679a45b)."""
import numpy as np
import pytest
import torch

from utils.loss import CITYSCAPES_CLASS_WEIGHTS, OhemCrossEntropy2d, ohem_target

# The original's class weights (its criterion.py), copied by hand.
SPEC_WEIGHTS = np.array([0.8373, 0.918, 0.866, 1.0345, 1.0166, 0.9969, 0.9754, 1.0489, 0.8786,
                         1.0023, 0.9539, 0.9843, 1.1116, 0.9037, 1.0865, 1.0955, 1.0865, 1.1529,
                         1.0507])


def np_ohem_target(predict, target, ignore_label, thresh, min_kept):
    """Line-by-line NumPy port of the original OhemCrossEntropy2d.forward's target selection."""
    c = predict.shape[1]
    input_label = target.ravel().astype(np.int32)
    x = np.rollaxis(predict, 1).reshape((c, -1))
    input_prob = np.exp(x - x.max(axis=0).reshape((1, -1)))
    input_prob /= input_prob.sum(axis=0).reshape((1, -1))
    valid_flag = input_label != ignore_label
    valid_inds = np.where(valid_flag)[0]
    label = input_label[valid_flag]
    num_valid = valid_flag.sum()
    if min_kept >= num_valid:
        pass
    elif num_valid > 0:
        prob = input_prob[:, valid_flag]
        pred = prob[label, np.arange(len(label), dtype=np.int32)]
        threshold = thresh
        if min_kept > 0:
            index = pred.argsort()
            threshold_index = index[min(len(index), min_kept) - 1]
            if pred[threshold_index] > thresh:
                threshold = pred[threshold_index]
        kept_flag = pred <= threshold
        valid_inds = valid_inds[kept_flag]
    label = input_label[valid_inds].copy()
    input_label.fill(ignore_label)
    input_label[valid_inds] = label
    return input_label.reshape(target.shape)


def np_weighted_ce(logits, target, weight, ignore_label=255):
    """torch.nn.CrossEntropyLoss(weight, ignore_index) mean: sum w_y nll / sum w_y (float64)."""
    c = logits.shape[1]
    x = np.moveaxis(logits.astype(np.float64), 1, -1).reshape(-1, c)
    t = target.ravel()
    valid = t != ignore_label
    m = x.max(1, keepdims=True)
    logp = x - (m + np.log(np.exp(x - m).sum(1, keepdims=True)))
    nll = -logp[valid, t[valid]]
    w = weight[t[valid]] if weight is not None else np.ones_like(nll)
    return (w * nll).sum() / w.sum()


def np_ohem_loss(predict, target, ignore_label, thresh, min_kept, weight=SPEC_WEIGHTS):
    return np_weighted_ce(predict, np_ohem_target(predict, target, ignore_label, thresh, min_kept),
                          weight, ignore_label)


def _data(seed=0, n=2, h=5, w=6, n_ignore=7):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((n, 19, h, w)) * 2).astype(np.float32)
    target = rng.integers(0, 19, (n, h, w))
    target.ravel()[rng.choice(target.size, n_ignore, replace=False)] = 255
    return logits, target


def test_class_weights_defined_once_as_in_spec():
    np.testing.assert_array_equal(CITYSCAPES_CLASS_WEIGHTS, SPEC_WEIGHTS)


@pytest.mark.parametrize("thresh,min_kept", [(0.6, 0), (0.7, 10), (0.05, 20), (0.01, 7),
                                             (0.9, 0), (0.3, 53), (0.3, 1000)])
def test_ohem_equals_numpy_port(thresh, min_kept):
    logits, target = _data()
    expected_t = np_ohem_target(logits, target, 255, thresh, min_kept)
    got_t = ohem_target(torch.from_numpy(logits), torch.from_numpy(target), 255, thresh, min_kept)
    np.testing.assert_array_equal(got_t.numpy(), expected_t)
    crit = OhemCrossEntropy2d(255, thresh, min_kept)
    loss = crit(torch.from_numpy(logits), torch.from_numpy(target))
    assert loss.item() == pytest.approx(np_ohem_loss(logits, target, 255, thresh, min_kept), rel=1e-5)


def test_min_kept_at_least_valid_keeps_everything():
    # 60 pixels, 7 ignored -> 53 valid. min_kept=53 keeps all valid pixels even when all are easy.
    logits, target = _data()
    logits = logits.copy()
    np.put_along_axis(logits, np.where(target == 255, 0, target)[:, None], 12.0, axis=1)  # p ~ 0.9997
    out = ohem_target(torch.from_numpy(logits), torch.from_numpy(target), 255, 0.7, 53)
    np.testing.assert_array_equal(out.numpy(), target)
    out = ohem_target(torch.from_numpy(logits), torch.from_numpy(target), 255, 0.7, 52)
    assert (out.numpy() != 255).sum() == 52           # threshold = 52nd smallest p (distinct)


def test_ties_at_threshold_are_kept():
    # 2 classes, 8 pixels. Logit gaps give p_gt in {sigmoid(-1), sigmoid(0)=0.5, sigmoid(2)} with
    # counts 2, 4, 2. min_kept=3: the 3rd smallest p is 0.5 > thresh 0.1, so threshold = 0.5 and
    # all four pixels at exactly 0.5 are kept: 6 kept, the 2 easy ones dropped.
    gaps = np.array([-1, -1, 0, 0, 0, 0, 2, 2], np.float32)
    logits = np.zeros((1, 2, 1, 8), np.float32)
    logits[0, 1, 0] = gaps
    target = np.ones((1, 1, 8), np.int64)
    expected = np_ohem_target(logits, target, 255, 0.1, 3)
    got = ohem_target(torch.from_numpy(logits), torch.from_numpy(target), 255, 0.1, 3).numpy()
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got[0, 0], [1, 1, 1, 1, 1, 1, 255, 255])
    # Equal logits everywhere: p = 1/2 == thresh 0.5 for every pixel, all kept with min_kept 0.
    flat = np.zeros((1, 2, 2, 2), np.float32)
    t = np.ones((1, 2, 2), np.int64)
    assert (ohem_target(torch.from_numpy(flat), torch.from_numpy(t), 255, 0.5, 0) == 1).all()


def test_ignore_pixels_never_kept_and_no_grad_on_them():
    logits, target = _data(seed=1)
    x = torch.from_numpy(logits).requires_grad_()
    out = ohem_target(x, torch.from_numpy(target), 255, 1.0, 0)
    assert ((out == 255) == torch.from_numpy(target == 255)).all()
    OhemCrossEntropy2d(255, 1.0, 0)(x, torch.from_numpy(target)).backward()
    g = x.grad.abs().sum(1)
    assert (g[torch.from_numpy(target == 255)] == 0).all() and (g[torch.from_numpy(target != 255)] > 0).all()


def test_unweighted_and_errors():
    logits, target = _data(seed=2)
    loss = OhemCrossEntropy2d(255, 0.6, 0, use_weight=False)(torch.from_numpy(logits),
                                                            torch.from_numpy(target))
    assert loss.item() == pytest.approx(np_ohem_loss(logits, target, 255, 0.6, 0, weight=None), rel=1e-5)
    with pytest.raises(ValueError, match="upsample"):
        OhemCrossEntropy2d()(torch.zeros(1, 19, 2, 2), torch.zeros(1, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="--ohem-keep"):
        OhemCrossEntropy2d(min_kept=-1)


@pytest.mark.cuda
def test_ohem_on_cuda_matches_port():
    logits, target = _data(seed=3)
    crit = OhemCrossEntropy2d(255, 0.7, 10).cuda()
    loss = crit(torch.from_numpy(logits).cuda(), torch.from_numpy(target).cuda())
    assert loss.device.type == "cuda"
    assert loss.item() == pytest.approx(np_ohem_loss(logits, target, 255, 0.7, 10), rel=1e-5)


@pytest.mark.parametrize("min_kept", [0, 5, 10_000])
def test_ohem_target_never_reads_device_values(min_kept):
    """No host synchronisation per step: on the meta device any read of a value (int(), .item(), a
    data-dependent shape such as p[valid]) raises, so OHEM must run there end to end."""
    logits = torch.empty(2, 19, 8, 8, device="meta")
    target = torch.empty(2, 8, 8, dtype=torch.long, device="meta")
    out = ohem_target(logits, target, 255, 0.7, min_kept)
    assert out.shape == target.shape and out.device.type == "meta"
