# Port of OCNet.pytorch utils/parallel.py (from PyTorch-Encoding, 679a45b). MIT License.
"""Single-process multi-GPU (``python train.py --gpu 0,1,2,3`` without torchrun).

``DataParallelModel`` does not gather: it returns a list with one output per GPU (each a
``network.SegOutput`` or a tensor), and ``DataParallelCriterion`` evaluates the criterion on each GPU's
chunk and averages: loss = (1/G) * sum_g criterion(out_g, y_g) (:func:`mean_over_chunks`).
# faithful: the per-chunk mean means OHEM's min_kept applies per GPU chunk, as in the original.
With torchrun (DDP) each process already sees only its chunk, so neither class is needed there.
"""
import torch
from torch import nn
from torch.nn.parallel import parallel_apply, replicate, scatter


class DataParallelModel(nn.DataParallel):
    """nn.DataParallel whose ``gather`` is the identity: a list of per-device outputs."""

    def gather(self, outputs, output_device):
        return outputs


def mean_over_chunks(criterion, outputs, targets, devices=None):
    """(1/G) * sum_g criterion(outputs[g], targets[g]) over the G chunks of a batch.

    Args:
        outputs (list): one model output per chunk (``SegOutput`` or tensor).
        targets (list): the matching label chunks (N_g, H, W).
        devices (list[int], optional): CUDA ids: the criterion is replicated and applied in parallel,
            one chunk per device, and the mean lands on ``devices[0]``. None: one chunk after the
            other on the chunks' own device.
    """
    if len(outputs) != len(targets) or not outputs:
        raise ValueError(f"{len(outputs)} output chunks for {len(targets)} target chunks")
    if devices is None:
        losses = [criterion(out, tgt) for out, tgt in zip(outputs, targets)]
        first = losses[0].device
    else:
        replicas = replicate(criterion, devices)
        losses = parallel_apply(replicas, list(zip(outputs, targets)), devices=devices)
        first = torch.device("cuda", devices[0])
    return sum(loss.to(first) for loss in losses) / len(losses)


class DataParallelCriterion(nn.Module):
    """Apply ``criterion`` per device to (output_g, target_g) and return the mean loss on device 0."""

    def __init__(self, criterion, device_ids):
        super().__init__()
        self.criterion = criterion
        self.device_ids = list(device_ids)

    def forward(self, outputs, target):
        # a list is DataParallelModel's per-device outputs; one SegOutput / tensor is a plain forward
        if len(self.device_ids) <= 1 or not isinstance(outputs, list):
            return self.criterion(outputs, target)
        devices = self.device_ids[:len(outputs)]
        targets = scatter(target, devices, dim=0)
        return mean_over_chunks(self.criterion, outputs, targets, devices)


def wrap_parallel(model, criterion, runtime):
    """Wrap for the runtime: DDP under torchrun, DataParallelModel/Criterion for several GPUs in one
    process, unchanged otherwise. Returns (model, criterion)."""
    if runtime.distributed:
        ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids), criterion
    if len(runtime.dp_devices) > 1:
        return (DataParallelModel(model, device_ids=list(runtime.dp_devices)),
                DataParallelCriterion(criterion, runtime.dp_devices))
    return model, criterion


def wrap_inference(model, runtime):
    """For eval/submit: nn.DataParallel (gathering) for several GPUs in one process, else unchanged.
    Under torchrun each process evaluates its share of the list with the plain model."""
    if not runtime.distributed and len(runtime.dp_devices) > 1:
        return nn.DataParallel(model, device_ids=list(runtime.dp_devices))
    return model
