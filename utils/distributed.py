# New (the original had only single-process DataParallel). MIT License.
"""Process/device setup shared by train.py and eval.py / generate_submit.py.

Three ways to run, chosen from the environment (no flags to get wrong):

* ``torchrun --nproc_per_node=N train.py --gpu 0,1,...``: one process per GPU, DistributedDataParallel;
  ``--batch-size`` is the global batch, split over the processes. Multi-node works through the usual
  torchrun variables (``--nnodes``, ``--rdzv-endpoint``...).
* ``python train.py --gpu 0,1,2,3`` (no torchrun, several GPUs visible): one process, ``nn.DataParallel``.
* no CUDA, or one GPU: one process, the plain model.
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from utils.options import gpu_ids


@dataclass
class Runtime:
    """Where this process runs. ``dp_devices`` > 1 means single-process DataParallel."""
    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    dp_devices: tuple = ()

    @property
    def distributed(self):
        return self.world_size > 1

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def local_batch_divisor(self):
        return self.world_size if self.distributed else max(1, len(self.dp_devices))


def launched_by_torchrun():
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def setup(args, strict_batch=True):
    """Pick the device(s), start the process group under torchrun, check the batch split.

    Raises ValueError naming --batch-size / --gpu when the global batch does not divide (only with
    ``strict_batch``: training; inference just splits as evenly as it can).
    """
    ids = gpu_ids(args)
    if ids and "CUDA_VISIBLE_DEVICES" not in os.environ:
        # faithful: the original set CUDA_VISIBLE_DEVICES from --gpu; we respect one the user already set.
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in ids)
    cuda = torch.cuda.is_available()
    if launched_by_torchrun():
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        if cuda:
            torch.cuda.set_device(local_rank)
            device = torch.device("cuda", local_rank)
        else:
            device = torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if cuda else "gloo")
        runtime = Runtime(device, rank, world, local_rank)
    elif cuda:
        count = torch.cuda.device_count()
        runtime = Runtime(torch.device("cuda", 0), dp_devices=tuple(range(count)) if count > 1 else ())
    else:
        runtime = Runtime(torch.device("cpu"))
    divisor = runtime.local_batch_divisor
    if strict_batch and args.batch_size % divisor:
        raise ValueError(f"--batch-size {args.batch_size} (the global batch) does not divide over {divisor} "
                         f"{'processes' if runtime.distributed else 'GPUs'} (--gpu {args.gpu}); "
                         f"use a multiple of {divisor}")
    return runtime


def cleanup():
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(runtime):
    if runtime.distributed:
        dist.barrier()


def all_gather_object(obj, runtime):
    """[obj of rank 0, obj of rank 1, ...]; [obj] in a single process."""
    if not runtime.distributed:
        return [obj]
    out = [None] * runtime.world_size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(tensor, runtime):
    """In-place sum over processes (no-op in a single process)."""
    if runtime.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
