# New (the original had only single-process DataParallel). MIT License.
"""Process/device setup shared by train.py and eval.py / generate_submit.py.

Three ways to run, chosen from the environment (no flags to get wrong):

* ``torchrun --nproc_per_node=N train.py --gpu 0,1,...``: one process per GPU, DistributedDataParallel;
  ``--batch-size`` is the global batch, split over the processes. Multi-node works through the usual
  torchrun variables (``--nnodes``, ``--rdzv-endpoint``...).
* ``python train.py --gpu 0,1,2,3`` (no torchrun, several GPUs visible): one process, ``nn.DataParallel``.
* no CUDA, or one GPU: one process, the plain model.

Under torchrun every collective has a deadline (``--dist-timeout``, default 300 s): when another process
dies, the survivors stop with :class:`PeerLostError` (one message, exit status 2) instead of waiting
forever; the collectives below turn the backend's errors into it.
"""
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from utils.errors import ConfigError, OCNetError
from utils.options import gpu_ids

DEFAULT_TIMEOUT_S = 300.0


class PeerLostError(OCNetError, RuntimeError):
    """Another process of a torchrun job died or stopped answering (a collective failed or timed out)."""


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

    Raises ConfigError naming --batch-size / --gpu when the global batch does not divide (only with
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
            timeout = datetime.timedelta(seconds=float(getattr(args, "dist_timeout", DEFAULT_TIMEOUT_S)))
            dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=timeout)
        runtime = Runtime(device, rank, world, local_rank)
    elif cuda:
        count = torch.cuda.device_count()
        runtime = Runtime(torch.device("cuda", 0), dp_devices=tuple(range(count)) if count > 1 else ())
    else:
        runtime = Runtime(torch.device("cpu"))
    divisor = runtime.local_batch_divisor
    if strict_batch and args.batch_size % divisor:
        raise ConfigError(f"--batch-size {args.batch_size} (the global batch) does not divide over {divisor} "
                         f"{'processes' if runtime.distributed else 'GPUs'} (--gpu {args.gpu}); "
                         f"use a multiple of {divisor}")
    return runtime


def cleanup():
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


_PEER_MARKERS = ("gloo", "NCCL", "nccl", "Connection reset", "Connection closed", "Broken pipe", "timed out",
                 "Timed out")


def peer_lost(err, runtime, what):
    """The PeerLostError for ``err`` when it is a failed/timed-out collective under torchrun, else None.

    Covers our own collectives and those inside DistributedDataParallel's backward.
    """
    if not runtime.distributed or isinstance(err, OCNetError):
        return None
    text = str(err).strip()
    if not (isinstance(err, dist.DistError) or any(marker in text for marker in _PEER_MARKERS)):
        return None
    first = text.splitlines()[0] if text else type(err).__name__
    first = first if len(first) <= 160 else first[:157] + "..."
    return PeerLostError(
        f"rank {runtime.rank}: {what} across the {runtime.world_size} processes failed ({first}). Another "
        "process died or stopped answering (see its own message; --dist-timeout bounds the wait). The last "
        "resume file is intact: restart the job with --resume auto.")


def _collective(name, runtime, call, *args, **kwargs):
    """Run a collective; a dead or silent peer becomes PeerLostError (one message, no traceback)."""
    try:
        return call(*args, **kwargs)
    except (RuntimeError, OSError) as err:  # DistBackendError / DistNetworkError / gloo timeouts
        lost = peer_lost(err, runtime, name)
        if lost is None:
            raise
        raise lost from err


def barrier(runtime):
    if runtime.distributed:
        _collective("barrier", runtime, dist.barrier)


def all_gather_object(obj, runtime):
    """[obj of rank 0, obj of rank 1, ...]; [obj] in a single process."""
    if not runtime.distributed:
        return [obj]
    out = [None] * runtime.world_size
    _collective("all_gather_object", runtime, dist.all_gather_object, out, obj)
    return out


def all_reduce_sum(tensor, runtime):
    """In-place sum over processes (no-op in a single process)."""
    if runtime.distributed:
        _collective("all_reduce", runtime, dist.all_reduce, tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_min(tensor, runtime):
    """In-place minimum over processes (no-op in a single process)."""
    if runtime.distributed:
        _collective("all_reduce", runtime, dist.all_reduce, tensor, op=dist.ReduceOp.MIN)
    return tensor
