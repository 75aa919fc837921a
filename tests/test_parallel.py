"""utils/parallel.py: wrapping per runtime; the criterion mean over chunks (single device here)."""
import torch
from torch import nn

from utils.distributed import Runtime
from utils.parallel import DataParallelCriterion, DataParallelModel, wrap_inference, wrap_parallel


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
