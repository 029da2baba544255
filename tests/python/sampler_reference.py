"""Prints list(torch.utils.data.DistributedSampler(...)) for the cases of the C++ sampler test.

usage: sampler_reference.py  (prints one line per case: n world rank seed epoch shuffle drop_last : ids)
"""
import torch
from torch.utils.data import DistributedSampler

CASES = [(10, 1, 0, 0, 0, True, False), (10, 3, 0, 7, 2, True, False), (10, 3, 2, 7, 2, True, False),
         (10, 3, 1, 7, 5, True, True), (7, 4, 3, 1, 0, False, False), (1000, 8, 5, 42, 11, True, True),
         (5, 2, 1, 3, 1, True, False)]
for n, world, rank, seed, epoch, shuffle, drop_last in CASES:
    sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=shuffle, seed=seed,
                                 drop_last=drop_last)
    sampler.set_epoch(epoch)
    print(n, world, rank, seed, epoch, int(shuffle), int(drop_last), ":", *list(sampler))
