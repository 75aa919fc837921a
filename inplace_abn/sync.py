# Port of the master/worker statistics exchange of OCNet.pytorch@679a45b inplace_abn/functions.py
# (InPlaceABNSync), hardened, plus a torch.distributed reducer. License: MIT (this reproduction).
"""Reducers that turn per-process (per-replica) InPlace-ABN sums into global-batch values.

Statistics are combined EXACTLY for unequal counts (Chan et al.'s parallel variance)::

    n = sum_i n_i,   mu = sum_i n_i mu_i / n,   var = sum_i n_i (var_i + (mu_i - mu)^2) / n

and the backward sums are added: edz = sum_i edz_i, eydz = sum_i eydz_i (with n as above).

* ``DistributedReducer``: the default ``torch.distributed`` process group (DDP under torchrun,
  gloo or nccl); all_gather for the statistics, all_reduce for the backward sums.
* ``ReplicaGroup``: ``nn.DataParallel`` replicas in threads of one process. The original's
  protocol: workers put their values on the master's queue and block on their own queue; the
  master (the first replica, on device_ids[0]) combines and sends the result back. Hardened:
  the group holds exactly the replicas DataParallel created for this call (counted in
  ``_replicate_for_data_parallel``), not ``len(devices)`` from construction, so fewer replicas
  cannot deadlock; every wait has a timeout (``IABN_SYNC_TIMEOUT`` seconds, default 300) that
  raises a clear error instead of hanging.
"""
from __future__ import annotations

import os
import queue
import threading

import torch
import torch.distributed as dist


def combine_stats(items):
    """items: [(n_i, mean_i (C,), var_i (C,))] -> (n, mean, var) of the union (biased var)."""
    n = sum(int(c) for c, _, _ in items)
    mean = sum(c * m.double() for c, m, _ in items) / n
    var = sum(c * (v.double() + (m.double() - mean) ** 2) for c, m, v in items) / n
    return n, mean, var


def combine_grads(items):
    """items: [(n_i, edz_i, eydz_i)] -> (sum n_i, sum edz_i, sum eydz_i)."""
    return (sum(int(c) for c, _, _ in items), sum(e.double() for _, e, _ in items),
            sum(y.double() for _, _, y in items))


class DistributedReducer:
    """Combine over the default torch.distributed process group (every rank must call)."""

    def reduce_stats(self, count, mean, var):
        packed = torch.cat([mean.new_tensor([count]), mean, var]).double()  # (1 + 2C,)
        gathered = [torch.empty_like(packed) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, packed)
        c = mean.numel()
        n, m, v = combine_stats([(int(round(g[0].item())), g[1:1 + c], g[1 + c:])
                                 for g in gathered])
        return n, m.to(mean.dtype), v.to(var.dtype)

    def reduce_grads(self, count, edz, eydz):
        packed = torch.cat([edz.new_tensor([count]), edz, eydz]).double()  # (1 + 2C,)
        dist.all_reduce(packed)
        c = edz.numel()
        return int(round(packed[0].item())), packed[1:1 + c].to(edz.dtype), \
            packed[1 + c:].to(eydz.dtype)


def sync_timeout() -> float:
    return float(os.environ.get("IABN_SYNC_TIMEOUT", "300"))


class ReplicaGroup:
    """The replicas of one InPlaceABNSync created by one DataParallel.replicate call."""

    def __init__(self, timeout: float | None = None):
        self.size = 0
        self.sealed = False
        self.timeout = sync_timeout() if timeout is None else timeout
        self.master_queue: queue.Queue = queue.Queue()
        self.worker_queues: list[queue.Queue] = []

    def add(self) -> int:
        if self.sealed:
            raise RuntimeError("InPlaceABNSync: cannot add a replica to a group already in use")
        self.worker_queues.append(queue.Queue())
        self.size += 1
        return self.size - 1

    def member(self, rank: int) -> "ReplicaMember":
        return ReplicaMember(self, rank)

    def _get(self, q: queue.Queue, rank: int, what: str):
        try:
            return q.get(timeout=self.timeout)
        except queue.Empty:
            raise RuntimeError(
                f"InPlaceABNSync: replica {rank} waited {self.timeout:.0f} s for the {what} of the "
                f"other {self.size - 1} DataParallel replica(s). All replicas must call the layer "
                "the same number of times; set IABN_SYNC_TIMEOUT to wait longer") from None

    def exchange(self, rank: int, tag, payload, combine):
        """Combine `payload` (n, a, b) over all replicas; returns the result on rank's device."""
        if rank != 0:
            self.master_queue.put((rank, tag, payload))
            result = self._get(self.worker_queues[rank], rank, f"master's {tag[0]} result")
            if isinstance(result, BaseException):
                raise RuntimeError("InPlaceABNSync: the master replica failed") from result
            return result
        try:
            items = {0: payload}
            for _ in range(self.size - 1):
                r, t, p = self._get(self.master_queue, rank, f"{tag[0]} values")
                if t != tag:
                    raise RuntimeError(f"InPlaceABNSync: replica {r} sent {t}, expected {tag}: "
                                       "replicas called the layer in different orders")
                items[r] = p
            device = payload[1].device
            n, a, b = combine([(c, x.to(device), y.to(device)) for c, x, y in
                               (items[r] for r in sorted(items))])
        except BaseException as err:
            for r in range(1, self.size):
                self.worker_queues[r].put(err)
            raise
        for r in range(1, self.size):
            _, ref_a, ref_b = items[r]
            self.worker_queues[r].put((n, a.to(ref_a.device, ref_a.dtype),
                                       b.to(ref_b.device, ref_b.dtype)))
        return n, a.to(payload[1].dtype), b.to(payload[2].dtype)


class ReplicaMember:
    """One replica's view of a ReplicaGroup (the reducer passed to the autograd function)."""

    def __init__(self, group: ReplicaGroup, rank: int):
        self.group, self.rank = group, rank
        self.calls = {"stats": 0, "grads": 0}

    def _exchange(self, kind, payload, combine):
        self.calls[kind] += 1
        return self.group.exchange(self.rank, (kind, self.calls[kind]), payload, combine)

    def reduce_stats(self, count, mean, var):
        return self._exchange("stats", (count, mean, var), combine_stats)

    def reduce_grads(self, count, edz, eydz):
        return self._exchange("grads", (count, edz, eydz), combine_grads)


class ReplicaRegistry:
    """Shared by a module and its DataParallel replicas; starts a new group per replicate call."""

    def __init__(self):
        self._lock = threading.Lock()
        self._group: ReplicaGroup | None = None

    def register(self) -> ReplicaMember:
        with self._lock:
            if self._group is None or self._group.sealed:
                self._group = ReplicaGroup()
            return self._group.member(self._group.add())

    def seal(self, group: ReplicaGroup) -> None:
        with self._lock:
            group.sealed = True

    def __deepcopy__(self, memo):  # copy.deepcopy(module) gets its own registry
        return ReplicaRegistry()

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()


def dp_sync_enabled(x: torch.Tensor) -> bool:
    """DataParallel sync only runs on CUDA tensors (the CPU autograd engine runs every replica's
    backward in one thread, so a CPU exchange would wait on itself)."""
    return x.is_cuda


def select_reducer(module, x: torch.Tensor, training: bool):
    """The reducer for one forward of `module` (an InPlaceABNSync or a DataParallel replica of it);
    None means unsynchronised (eval mode, CPU tensors, a single replica, no process group)."""
    member = getattr(module, "_dp_member", None)
    if member is not None:
        module._dp_registry.seal(member.group)  # this replicate round is complete
        if training and member.group.size > 1 and dp_sync_enabled(x):
            return member
        return None
    if training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return DistributedReducer()
    return None
