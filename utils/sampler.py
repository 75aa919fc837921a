# Replaces DataLoader(shuffle=True) of OCNet.pytorch train.py (679a45b). MIT License.
"""A data order that is a pure function of (seed, iteration), so that --resume continues exactly.

The original repeated the list ceil(num_steps*batch/len) times and shuffled it once (one long "epoch").
``IterationSampler`` does the same with a seeded permutation; iteration ``i`` of the global batch ``B``
takes positions ``[i*B, (i+1)*B)`` of it, and rank ``r`` of ``W`` takes its contiguous ``B/W`` share
(a DistributedSampler that can start at any iteration).

``PositionSeeded`` makes the random augmentation of each sample a function of (seed, position) as
well, in the main process and in DataLoader workers alike.
"""
import random

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from utils.errors import ConfigError, DatasetError


class IterationSampler(Sampler):
    """Yields ``(position, index)`` pairs for iterations ``[start_iter, num_steps)`` of this rank.

    Args:
        dataset_len: length of the (already repeated) dataset.
        global_batch: --batch-size, the batch over all ranks.
        num_steps, start_iter: iteration range.
        seed: --seed.
        rank, world_size: this process and the number of processes.
    """

    def __init__(self, dataset_len, global_batch, num_steps, start_iter=0, seed=304, rank=0, world_size=1):
        if global_batch % world_size:
            raise ConfigError(f"--batch-size {global_batch} does not divide over {world_size} processes")
        if dataset_len <= 0:
            raise DatasetError("the training list is empty")
        self.dataset_len, self.global_batch = dataset_len, global_batch
        self.num_steps, self.start_iter, self.seed = num_steps, start_iter, seed
        self.rank, self.world_size = rank, world_size
        self.local_batch = global_batch // world_size

    def _permutation(self, epoch):
        gen = torch.Generator().manual_seed(self.seed * 1000003 + epoch)
        return torch.randperm(self.dataset_len, generator=gen)

    def __iter__(self):
        cached_epoch, perm = -1, None
        for it in range(self.start_iter, self.num_steps):
            first = it * self.global_batch + self.rank * self.local_batch
            for pos in range(first, first + self.local_batch):
                epoch, offset = divmod(pos, self.dataset_len)
                if epoch != cached_epoch:  # only when the repeated list is shorter than the run
                    cached_epoch, perm = epoch, self._permutation(epoch)
                yield pos, int(perm[offset])

    def __len__(self):
        return (self.num_steps - self.start_iter) * self.local_batch


class PositionSeeded(Dataset):
    """Wraps a dataset so that ``ds[(position, index)]`` runs ``base[index]`` under RNGs seeded by
    (seed, position); the caller's global RNG states are restored afterwards.
    """

    def __init__(self, base, seed):
        self.base, self.seed = base, seed

    def __len__(self):
        return len(self.base)

    def __getitem__(self, item):
        position, index = item
        sample_seed = (self.seed * 1000003 + position) % (2 ** 32)
        saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
        try:
            random.seed(sample_seed)
            np.random.seed(sample_seed)
            torch.random.default_generator.manual_seed(sample_seed)  # CPU only; CUDA RNG untouched
            return self.base[index]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])
