"""Stage 2 training batches: grouped by length (mGPT.data.buckets), with sources encoded once per split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning_fabric.utilities.data import _replace_dunder_methods
from pytorch_lightning.utilities.data import _update_dataloader
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, SequentialSampler

from mGPT.archs.amg import SignGenerator
from mGPT.config import load_config
from mGPT.data.buckets import BucketBatchSampler, EpochRandomSampler
from mGPT.data.codes import save_codes
from mGPT.data.datasets import collate_text_codes
from mGPT.data.dictionary import SignDictionary
from mGPT.data.prepare import load_cache
from mGPT.data.synthetic import VOCABULARY
from mGPT.models.datamodule import SignDataModule

DEMO_SOKE = Path(__file__).resolve().parents[1] / "configs" / "demo" / "soke.yaml"
SIZES = (16, 16, 16)


def padded_share(batches: list[list[int]], lengths: np.ndarray) -> float:
    """Share of padded positions when every batch pads to its longest sample."""
    padded = sum(len(b) * lengths[b].max() for b in batches)
    return 1.0 - sum(lengths[b].sum() for b in batches) / padded


def test_an_epoch_holds_every_sample_once_in_length_sorted_batches() -> None:
    lengths = np.random.default_rng(0).integers(10, 100, size=203)
    sampler = BucketBatchSampler(EpochRandomSampler(range(203), seed=0), lengths, batch_size=8, pool_batches=4)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 26  # ceil(203 / 8), as without bucketing
    assert sorted(i for b in batches for i in b) == list(range(203))
    assert sorted(len(b) for b in batches)[1:] == [8] * 25  # one short batch at the very end
    # within a pool of 4 batches, the batches are slices of one length order: they do not overlap
    for pool in range(0, 24, 4):
        spans = sorted((lengths[b].min(), lengths[b].max()) for b in batches[pool : pool + 4])
        assert all(high <= low for (_, high), (low, _) in zip(spans, spans[1:], strict=False))
    plain = list(BatchSampler(EpochRandomSampler(range(203), seed=0), 8, drop_last=False))
    assert padded_share(batches, lengths) < 0.5 * padded_share(plain, lengths)  # 16% against 38%


def test_the_order_depends_on_seed_and_epoch_only() -> None:
    lengths = np.arange(64)

    def epoch(seed: int, number: int) -> list[list[int]]:
        sampler = EpochRandomSampler(range(64), seed=seed)
        sampler.set_epoch(number)
        return list(BucketBatchSampler(sampler, lengths, batch_size=4, pool_batches=4))

    assert epoch(3, 5) == epoch(3, 5)  # a resumed run sees the same epoch 5
    assert epoch(3, 5) != epoch(3, 6) and epoch(3, 5) != epoch(4, 5)
    # batches are not served shortest first: within a pool they come in draw order
    served = [[int(lengths[b].sum()) for b in epoch(3, number)[:4]] for number in range(10)]
    assert any(order != sorted(order) for order in served)


def test_pools_sort_by_steps_then_groups_by_source_and_drop_last_drops_the_short_batch() -> None:
    # four tiers of decoder steps, four samples each, sources in no order; with 4 batches of 2 per pool,
    # groups hold 2 batches (4 samples): one tier, which is then sorted by source
    steps = np.repeat([40, 10, 30, 20], 4)
    sources = np.array([9, 2, 7, 4, 8, 1, 6, 3, 5, 5, 2, 0, 3, 9, 1, 4])
    lengths = np.stack([steps, sources], axis=1)
    sampler = BucketBatchSampler(SequentialSampler(range(16)), lengths, batch_size=2, pool_batches=4)
    batches = list(sampler)
    # pool 0 is indices 0-7: steps 40 (0-3) and 10 (4-7); sorted by steps: [4 5 6 7 | 0 1 2 3]; each group by
    # source: [5 7 6 4 | 1 3 2 0]; batches served in the order their earliest-drawn index was drawn
    assert batches[:4] == [[2, 0], [1, 3], [6, 4], [5, 7]]
    assert batches[4:] == [[8, 9], [11, 10], [14, 12], [15, 13]]
    short = BucketBatchSampler(SequentialSampler(range(5)), lengths[:5], batch_size=2, drop_last=True)
    assert len(short) == 2 and all(len(b) == 2 for b in short)


def test_lightning_can_swap_in_a_distributed_sampler() -> None:
    """Under DDP Lightning re-creates the batch sampler around a per-rank DistributedSampler."""
    dataset = list(range(40))
    lengths = np.arange(40)
    with _replace_dunder_methods(DataLoader, "dataset"), _replace_dunder_methods(BatchSampler):
        loader = DataLoader(dataset, batch_sampler=BucketBatchSampler(EpochRandomSampler(dataset, 0), lengths, 4))
    per_rank = []
    for rank in (0, 1):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
        rank_loader = _update_dataloader(loader, sampler)
        assert isinstance(rank_loader.batch_sampler, BucketBatchSampler)
        per_rank.append([i for batch in rank_loader for i in batch.tolist()])
    assert sorted(per_rank[0] + per_rank[1]) == dataset


@pytest.fixture(scope="module")
def stage2(small_sample: Path, tiny_mbart: Path, tmp_path_factory: pytest.TempPathFactory):
    """Config, generator and data module over the sample with random codes and a random dictionary."""
    folder = tmp_path_factory.mktemp("stage2")
    rng = np.random.default_rng(0)
    names, clips = {}, {}
    for split in ("train", "val"):
        packed = load_cache(small_sample / "_cache", split)
        names[split] = list(packed.names)
        clips[split] = [rng.integers(0, 16, size=(int(rng.integers(3, 30)), 3)) for _ in packed.names]
    save_codes(folder / "codes.npz", clips, names, "fingerprint")
    dictionary = SignDictionary({w: rng.integers(0, 16, size=(int(rng.integers(1, 14)), 3))
                                 for w in VOCABULARY[::2]})
    dictionary.save(folder / "dictionary.json")
    cfg = load_config(DEMO_SOKE, [f"DATASET.DATA_ROOT={small_sample}", f"DATASET.CODES_PATH={folder / 'codes.npz'}",
                                  f"DATASET.DICTIONARY_PATH={folder / 'dictionary.json'}",
                                  f"LM.MBART_PATH={tiny_mbart}", "TRAIN.BATCH_SIZE=4", "TRAIN.NUM_WORKERS=0",
                                  # every read the full source, as lengths() reports it; dropout has its own test
                                  "LM.KEYWORD_DROPOUT=0"])
    torch.manual_seed(0)
    generator = SignGenerator(tiny_mbart, codebook_sizes=SIZES).eval()
    data = SignDataModule(cfg, fingerprint="fingerprint", source_encoder=generator.encode_sources)
    return cfg, generator, data


def test_sources_are_encoded_once_and_give_the_same_losses(stage2) -> None:
    _, generator, data = stage2
    train = data.dataset("train")
    items = [train[i] for i in range(len(train))]
    assert sum(bool(it["keywords"]) for it in items) > len(items) // 2  # retrieval adds keyword signs
    for item in items:
        (expected,) = generator.encode_sources([item["text"]], [item["keywords"]])
        assert torch.equal(item["source"], expected)
    assert train.lengths().tolist() == [[len(it["codes"]) + 1, len(it["source"])] for it in items]

    batch = collate_text_codes(items[:5])
    with torch.no_grad():
        encoded = generator(batch["texts"], batch["codes"], batch["keywords"], sources=batch["sources"])
        per_step = generator(batch["texts"], batch["codes"], batch["keywords"])
    for key, value in per_step.items():
        assert torch.equal(encoded[key], value), key
    with pytest.raises(ValueError, match="sources were encoded with its dictionary"):
        train.dictionary = None


def test_training_batches_group_lengths_and_keep_every_clip(stage2) -> None:
    cfg, _, data = stage2
    loader = data.train_dataloader()
    assert isinstance(loader.batch_sampler, BucketBatchSampler)
    lengths = data.dataset("train").lengths()[:, 0]
    batches = [batch["index"].tolist() for batch in loader]
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all("sources" in batch for batch in loader)
    plain = list(BatchSampler(EpochRandomSampler(range(len(lengths)), cfg.SEED), 4, drop_last=False))
    assert padded_share(batches, lengths) < padded_share(plain, lengths)
    assert [b["index"].tolist() for b in data.val_dataloader()][0] == [0, 1, 2, 3]  # evaluation keeps the order


def test_keyword_dropout_reaches_the_train_split_only(stage2) -> None:
    cfg, generator, _ = stage2
    dropping = cfg.copy()
    dropping.LM.KEYWORD_DROPOUT = 0.5
    data = SignDataModule(dropping, fingerprint="fingerprint", source_encoder=generator.encode_sources)
    train, val = data.dataset("train"), data.dataset("val")
    assert (train.keyword_dropout, val.keyword_dropout) == (0.5, 0.0)
    torch.manual_seed(0)
    full = [len(k or []) for k in train._keywords]
    read = [train[i] for i in range(len(train))]
    assert sum(len(it["keywords"] or []) for it in read) < 0.75 * sum(full)  # about half are dropped
    for item in read:  # a dropped item's source is the one of the keywords it kept
        (expected,) = generator.encode_sources([item["text"]], [item["keywords"]])
        assert torch.equal(item["source"], expected)
    assert all(len(val[i]["keywords"] or []) == len(k or []) for i, k in enumerate(val._keywords))
