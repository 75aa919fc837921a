"""utils/metric.py: confusion matrix and IoU against a hand-computed example."""

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from utils.metric import ConfusionMatrix, get_confusion_matrix, iou_from_confusion

# Worked example, 4 classes (class 3 never occurs):
#   gt   = [0, 0, 1, 1, 2, 255, 2, 1]
#   pred = [0, 1, 1, 1, 0,   2, 2, 0]
# The 255 pixel is dropped. Pairs (gt, pred): (0,0) (0,1) (1,1) (1,1) (2,0) (2,2) (1,0).
#   cm (rows gt, cols pred) = [[1, 1, 0, 0],
#                              [1, 2, 0, 0],
#                              [1, 0, 1, 0],
#                              [0, 0, 0, 0]]
#   class 0: tp 1, gt 2, pred 3 -> 1 / (2 + 3 - 1) = 0.25
#   class 1: tp 2, gt 3, pred 3 -> 2 / (3 + 3 - 2) = 0.5
#   class 2: tp 1, gt 2, pred 1 -> 1 / (2 + 1 - 1) = 0.5
#   class 3: 0 / max(1, 0)      -> 0
#   mIoU (all 4, faithful) = 1.25 / 4 = 0.3125; over the 3 present classes = 1.25 / 3.
GT = [0, 0, 1, 1, 2, 255, 2, 1]
PRED = [0, 1, 1, 1, 0, 2, 2, 0]
CM = [[1, 1, 0, 0], [1, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]


def test_hand_computed_confusion_and_iou():
    cm = get_confusion_matrix(torch.tensor(GT).reshape(2, 4), torch.tensor(PRED).reshape(2, 4), 4)
    assert cm.dtype == torch.int64
    np.testing.assert_array_equal(cm.numpy(), CM)
    np.testing.assert_allclose(iou_from_confusion(cm).numpy(), [0.25, 0.5, 0.5, 0.0])


def test_accumulates_over_updates():
    m = ConfusionMatrix(4)
    m.update(np.array(GT[:4]), np.array(PRED[:4])).update(torch.tensor(GT[4:]), torch.tensor(PRED[4:]))
    np.testing.assert_array_equal(m.mat.numpy(), CM)
    assert m.miou() == pytest.approx(0.3125)
    assert m.miou_present() == pytest.approx(1.25 / 3)
    np.testing.assert_array_equal(m.present().numpy(), [True, True, True, False])
    m.update(torch.tensor(GT), torch.tensor(PRED))
    np.testing.assert_array_equal(m.mat.numpy(), 2 * np.array(CM))
    assert m.miou() == pytest.approx(0.3125)            # IoU is scale-invariant
    assert np.isnan(ConfusionMatrix(3).miou_present())


def test_bad_values_raise():
    with pytest.raises(ValueError, match="prediction"):
        get_confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 4]), 4)
    with pytest.raises(ValueError, match="ground truth"):
        get_confusion_matrix(torch.tensor([0, 7]), torch.tensor([0, 1]), 4)
    with pytest.raises(ValueError, match="differ"):
        get_confusion_matrix(torch.zeros(2, 2), torch.zeros(4), 4)


def _worker(rank, world, init_file, out):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    m = ConfusionMatrix(4)
    half = slice(0, 4) if rank == 0 else slice(4, 8)
    m.update(torch.tensor(GT[half]), torch.tensor(PRED[half])).reduce()
    torch.save(m.mat, f"{out}.{rank}")
    dist.destroy_process_group()


def test_reduce_sums_across_processes(tmp_path):
    out = str(tmp_path / "cm")
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), out), nprocs=2)
    for rank in range(2):
        np.testing.assert_array_equal(torch.load(f"{out}.{rank}", weights_only=True).numpy(), CM)


@pytest.mark.cuda
def test_on_cuda():
    m = ConfusionMatrix(4)
    m.update(torch.tensor(GT).cuda(), torch.tensor(PRED).cuda())
    assert m.mat.device.type == "cuda"
    assert m.miou() == pytest.approx(0.3125)
