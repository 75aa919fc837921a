"""utils/sampler.py: data order as a function of (seed, iteration); per-sample seeded augmentation."""
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from utils.sampler import IterationSampler, PositionSeeded


def test_resume_continues_the_same_order():
    full = list(IterationSampler(10, 4, num_steps=6, seed=1))
    tail = list(IterationSampler(10, 4, num_steps=6, start_iter=3, seed=1))
    assert full[12:] == tail and len(full) == 24


def test_each_pass_is_a_permutation():
    order = [idx for _, idx in IterationSampler(10, 5, num_steps=4, seed=0)]
    assert sorted(order[:10]) == list(range(10)) and sorted(order[10:]) == list(range(10))
    assert order[:10] != order[10:]  # a fresh permutation per pass over the list


def test_ranks_split_the_global_batch():
    full = list(IterationSampler(16, 4, num_steps=3, seed=2))
    r0 = list(IterationSampler(16, 4, num_steps=3, seed=2, rank=0, world_size=2))
    r1 = list(IterationSampler(16, 4, num_steps=3, seed=2, rank=1, world_size=2))
    for it in range(3):
        assert full[4 * it:4 * it + 4] == r0[2 * it:2 * it + 2] + r1[2 * it:2 * it + 2]


def test_indivisible_batch():
    with pytest.raises(ValueError, match="--batch-size 5"):
        IterationSampler(10, 5, num_steps=2, world_size=2)


class Noisy(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.tensor([i, random.random(), np.random.rand(), torch.rand(1).item()], dtype=torch.float64)


def test_position_seeding_is_independent_of_workers_and_restores_rng():
    ds = PositionSeeded(Noisy(), seed=3)
    sampler = IterationSampler(4, 2, num_steps=3, seed=3)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    main = torch.cat(list(DataLoader(ds, batch_size=2, sampler=sampler, num_workers=0,
                                      generator=torch.Generator())))  # as train.py
    assert torch.equal(torch.get_rng_state(), before)  # the global stream is untouched
    workers = torch.cat(list(DataLoader(ds, batch_size=2, sampler=sampler, num_workers=2)))
    assert torch.equal(main, workers)
    assert ds[(0, 1)][1] != ds[(1, 1)][1]  # another position, other random numbers
