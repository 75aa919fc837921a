"""utils/parallel.py: wrapping per runtime; the criterion mean over GPU chunks (its reduction on CPU
against NumPy ports of the original's losses; the real multi-GPU path with the multigpu marker)."""
import numpy as np
import pytest
import torch
from test_loss import SPEC_WEIGHTS, np_ohem_loss, np_weighted_ce
from torch import nn

from network import SegOutput
from utils.criterion import CriterionOhemDSN_single
from utils.distributed import Runtime
from utils.parallel import (
    DataParallelCriterion,
    DataParallelModel,
    mean_over_chunks,
    wrap_inference,
    wrap_parallel,
)


def test_single_process_is_unwrapped():
    model, crit = nn.Linear(2, 2), nn.MSELoss()
    rt = Runtime(torch.device("cpu"))
    assert wrap_parallel(model, crit, rt) == (model, crit)
    assert wrap_inference(model, rt) is model


def test_criterion_on_one_device_is_the_criterion():
    crit = DataParallelCriterion(nn.MSELoss(), device_ids=[0])
    out, target = torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0])
    assert crit(out, target).item() == 5.0  # (1 + 9) / 2


def test_model_gather_is_identity():
    dp = DataParallelModel(nn.Identity())
    outs = [torch.ones(1), torch.zeros(1)]
    assert dp.gather(outs, 0) is outs


def _chunked_batch(seed=0, n=4, h=6, w=7):
    """SegOutput logits and labels at the same size (no upsampling), split in 2 chunks like scatter."""
    rng = np.random.default_rng(seed)
    aux = (rng.standard_normal((n, 19, h, w)) * 2).astype(np.float32)
    main = (rng.standard_normal((n, 19, h, w)) * 2).astype(np.float32)
    target = rng.integers(0, 19, (n, h, w))
    target[0, :3] = 255   # chunk 0 has fewer valid pixels than chunk 1
    target[1, :, :2] = 255
    return aux, main, target


def test_criterion_mean_over_chunks_equals_per_chunk_oracle():
    aux, main, target = _chunked_batch()
    crit = CriterionOhemDSN_single(thres=0.7, min_kept=40, dsn_weight=0.4)
    halves = [slice(0, 2), slice(2, 4)]
    outputs = [SegOutput(torch.from_numpy(aux[s]), torch.from_numpy(main[s])) for s in halves]
    targets = [torch.from_numpy(target[s]) for s in halves]
    got = mean_over_chunks(crit, outputs, targets).item()
    # oracle: the NumPy ports of the original's weighted CE and OHEM, applied per chunk, then averaged
    expected = np.mean([0.4 * np_weighted_ce(aux[s], target[s], SPEC_WEIGHTS)
                        + np_ohem_loss(main[s], target[s], 255, 0.7, 40) for s in halves])
    assert got == pytest.approx(expected, rel=1e-5)
    # per-chunk averaging is not the loss of the whole batch (CE means and min_kept are per chunk)
    whole = crit(SegOutput(*(torch.from_numpy(a) for a in (aux, main))), torch.from_numpy(target))
    assert whole.item() != pytest.approx(expected, rel=1e-3)


def test_criterion_mean_over_chunks_rejects_mismatched_chunks():
    with pytest.raises(ValueError, match="2 output chunks for 1 target"):
        mean_over_chunks(nn.MSELoss(), [torch.zeros(1), torch.zeros(1)], [torch.zeros(1)])


@pytest.mark.cuda
def test_dataparallel_gather_keeps_seg_output():
    from torch.nn.parallel import gather
    a = [SegOutput(torch.full((1, 2), float(i), device="cuda"),
                   torch.full((1, 3), 10.0 + i, device="cuda")) for i in range(2)]
    out = gather(a, 0)
    assert isinstance(out, SegOutput)
    assert out.aux.tolist() == [[0.0, 0.0], [1.0, 1.0]] and out.main[:, 0].tolist() == [10.0, 11.0]


@pytest.mark.multigpu
def test_dataparallel_criterion_on_two_gpus_equals_oracle():
    aux, main, target = _chunked_batch()
    crit = DataParallelCriterion(CriterionOhemDSN_single(thres=0.7, min_kept=40), [0, 1])
    outputs = [SegOutput(torch.from_numpy(aux[s]).cuda(d), torch.from_numpy(main[s]).cuda(d))
               for d, s in enumerate([slice(0, 2), slice(2, 4)])]
    got = crit(outputs, torch.from_numpy(target).cuda(0)).item()
    expected = np.mean([0.4 * np_weighted_ce(aux[s], target[s], SPEC_WEIGHTS)
                        + np_ohem_loss(main[s], target[s], 255, 0.7, 40)
                        for s in (slice(0, 2), slice(2, 4))])
    assert got == pytest.approx(expected, rel=1e-5)
