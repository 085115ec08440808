"""Batches of similar length, so that a batch pads its sources and targets as little as possible.

A padded position costs as much compute as a real one, and a random batch of 32 sign clips pads about
a third of its tokens (bench/bench_training.py measures it). BucketBatchSampler draws the epoch's
order from its sampler, cuts it into pools of `pool_batches` batches, sorts each pool by length and
cuts it into batches. Which samples share an epoch is unchanged, only the order; each batch then goes
where its earliest-drawn sample was drawn, which is a random order of the pool's batches that needs no
random numbers of its own (so the sampler alone decides the epoch, and under DDP Lightning's per-rank
DistributedSampler can take its place: it re-creates this class with `sampler=`).
"""

from __future__ import annotations

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

    lengths: (N,) or (N, K) per dataset index; with K columns, batches sort by the first, then the next
    (stage 2 gives target steps, then source tokens).
    """

    def __init__(self, sampler: Sampler[int], lengths: np.ndarray | Sequence, batch_size: int,
                 drop_last: bool = False, pool_batches: int = 50) -> None:
        super().__init__(sampler, batch_size, drop_last)
        lengths = np.asarray(lengths)
        self.lengths = lengths.reshape(len(lengths), -1)  # (N, K)
        if pool_batches < 1:
            raise ValueError(f"pool_batches must be positive, got {pool_batches}")
        self.pool_batches = int(pool_batches)

    def __iter__(self) -> Iterator[list[int]]:
        drawn = np.fromiter(iter(self.sampler), dtype=np.int64)  # dataset indices in draw order
        pool_size = self.batch_size * self.pool_batches
        for start in range(0, len(drawn), pool_size):
            pool = drawn[start : start + pool_size]
            keys = self.lengths[pool]  # (P, K)
            # lexsort sorts by its last key first; it is stable, so equal lengths keep their draw order
            by_length = np.lexsort(keys.T[::-1])  # (P,) positions in the pool, shortest first
            batches = [by_length[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
            if self.drop_last and len(batches[-1]) < self.batch_size:
                batches.pop()
            for batch in sorted(batches, key=lambda positions: positions.min()):
                yield pool[batch].tolist()
