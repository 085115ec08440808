"""Batches of similar length, so that a batch pads its sources and targets as little as possible.

A padded position costs as much compute as a real one, and a random batch of 32 stage 2 samples pads
close to half of its positions (bench/bench_training.py measures it). BucketBatchSampler draws the
epoch's order from its sampler and cuts it into pools of `pool_batches` batches. Each pool is sorted by
the first length (decoder steps), cut into groups of about sqrt(pool_batches) batches, and each group is
sorted by the second length (source tokens) before it is cut into batches: two sorts, so that both sides
pad little (one sort by steps alone leaves sources of every length side by side). Which samples share
an epoch is unchanged, only the order. Each batch then goes where its earliest-drawn sample was drawn,
a random order of the pool's batches that needs no random numbers of its own: the sampler alone decides
the epoch, and under DDP Lightning's per-rank DistributedSampler can take its place (it re-creates this
class with `sampler=`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, RandomSampler, Sampler


class EpochRandomSampler(RandomSampler):
    """A shuffle that depends only on (seed, epoch): the same batches for the same seed, also after a resume.

    Lightning calls set_epoch at the start of every epoch (on a batch sampler's `sampler`).
    """

    def __init__(self, data_source: Sequence, seed: int) -> None:
        super().__init__(data_source, generator=torch.Generator().manual_seed(int(seed)))
        self.seed = int(seed)

    def set_epoch(self, epoch: int) -> None:
        self.generator = torch.Generator().manual_seed(self.seed + int(epoch))


class BucketBatchSampler(BatchSampler):
    """Index batches drawn from `sampler`, grouped by length within pools of `pool_batches` batches.

    lengths: (N,) or (N, 2) per dataset index; stage 2 gives [decoder steps, source tokens].
    """

    def __init__(self, sampler: Sampler[int], lengths: np.ndarray | Sequence, batch_size: int,
                 drop_last: bool = False, pool_batches: int = 50) -> None:
        super().__init__(sampler, batch_size, drop_last)
        lengths = np.asarray(lengths)
        if lengths.ndim not in (1, 2) or (lengths.ndim == 2 and lengths.shape[1] not in (1, 2)):
            raise ValueError(f"lengths must be (N,) or (N, 2), got shape {lengths.shape}")
        if pool_batches < 1:
            raise ValueError(f"pool_batches must be positive, got {pool_batches}")
        self.lengths = lengths.reshape(len(lengths), -1)  # (N, 1 or 2)
        self.pool_batches = int(pool_batches)
        self.group_batches = max(1, round(math.sqrt(self.pool_batches)))

    def _sorted(self, pool: np.ndarray) -> np.ndarray:
        """Positions (P,) in the pool: by the first length, then by the last one within each group."""
        first, last = self.lengths[pool, 0], self.lengths[pool, -1]
        order = np.argsort(first, kind="stable")  # stable: equal lengths keep their draw order
        group = self.group_batches * self.batch_size
        return np.concatenate([part[np.argsort(last[part], kind="stable")]
                               for part in np.split(order, range(group, len(order), group))])

    def __iter__(self) -> Iterator[list[int]]:
        drawn = np.fromiter(iter(self.sampler), dtype=np.int64)  # dataset indices in draw order
        pool_size = self.batch_size * self.pool_batches
        for start in range(0, len(drawn), pool_size):
            pool = drawn[start : start + pool_size]
            by_length = self._sorted(pool)
            batches = [by_length[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
            if self.drop_last and len(batches[-1]) < self.batch_size:
                batches.pop()
            for batch in sorted(batches, key=lambda positions: positions.min()):
                yield pool[batch].tolist()
