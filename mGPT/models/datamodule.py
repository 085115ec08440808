"""Lightning data for both stages, read from the packed cache (stage 1) and the code file (stage 2).

Here the run's config becomes the numbers the datasets of mGPT.data.datasets take as arguments."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from mGPT.config import cache_dir, codes_path, dictionary_path
from mGPT.data.buckets import BucketBatchSampler, EpochRandomSampler
from mGPT.data.codes import load_codes
from mGPT.data.datasets import (
    ClipSourceFactory,
    CodeTextDataset,
    MotionDataset,
    SourceEncoder,
    collate_motion,
    collate_text_codes,
    from_cache,
)
from mGPT.data.dictionary import SignDictionary
from mGPT.data.prepare import PackedSplit, check_cache_settings, load_cache
from mGPT.errors import DataError


def load_split(cfg: DictConfig, split: str) -> PackedSplit:
    """One split of the configured cache; a ConfigError if it was packed at another DATASET.TARGET_FPS or
    MAX_SECONDS than the config says (the cache's frame rate is the one every clip and video runs at)."""
    packed = load_cache(cache_dir(cfg), split)
    check_cache_settings(packed, cache_dir(cfg) / split, cfg.DATASET.TARGET_FPS, cfg.DATASET.MAX_SECONDS)
    return packed


def load_dictionary(cfg: DictConfig, fingerprint: str) -> SignDictionary | None:
    """The retrieval dictionary when LM.RETRIEVAL is on; it must come from the configured tokenizer."""
    if not cfg.LM.RETRIEVAL:
        return None
    path = dictionary_path(cfg)
    if not path.is_file():
        raise DataError(
            f"sign dictionary not found: {path}. Build it with scripts/build_dictionary.py, "
            "or set LM.RETRIEVAL=false."
        )
    dictionary = SignDictionary.load(path)
    if dictionary.tokenizer_fingerprint not in (None, fingerprint):
        raise DataError(f"{path} was built with a different tokenizer; re-run scripts/build_dictionary.py.")
    return dictionary


class SignDataModule(pl.LightningDataModule):
    """Stage 1 (vae): normalised motion windows. Stage 2 (lm): text + codes, and the reference motion on
    the splits that are scored.

    `clip_source` says where the clips come from: the packed cache (the default) or, for benchmarks,
    anything that reads the same clips another way (bench/soke_style_data.py). With a `source_encoder`
    (the generator's encode_sources; train.py passes it) stage 2 encodes every split's sources once, and
    trains on batches of similar length (mGPT.data.buckets). frames_per_code is the tokenizer's
    (2**DOWN_T): clip lengths are cut to multiples of it.
    """

    def __init__(self, cfg: DictConfig, mean133: np.ndarray | None = None, std133: np.ndarray | None = None,
                 fingerprint: str | None = None, clip_source: ClipSourceFactory = from_cache,
                 source_encoder: SourceEncoder | None = None, frames_per_code: int = 4):
        super().__init__()
        self.cfg, self.mean133, self.std133, self.fingerprint = cfg, mean133, std133, fingerprint
        self.clip_source = clip_source
        self.source_encoder = source_encoder
        self.frames_per_code = frames_per_code
        self.datasets: dict[str, Dataset] = {}

    def dataset(self, split: str) -> Dataset:
        if split not in self.datasets:
            self.datasets[split] = self._motion(split) if self.cfg.STAGE == "vae" else self._text_codes(split)
        return self.datasets[split]

    def _motion(self, split: str) -> MotionDataset:
        data = self.cfg.DATASET
        clips = self.clip_source(load_split(self.cfg, split), split)
        return MotionDataset(clips, self.mean133, self.std133, window=data.WINDOW if split == "train" else None,
                             min_frames=data.MIN_FRAMES, max_frames=data.MAX_FRAMES, random_crop=split == "train",
                             frames_per_code=self.frames_per_code)

    def _text_codes(self, split: str) -> CodeTextDataset:
        dictionary = load_dictionary(self.cfg, self.fingerprint)
        packed = load_split(self.cfg, split)
        codes = load_codes(codes_path(self.cfg), split, self.fingerprint)
        if codes.names != list(packed.names):
            raise DataError(
                f"{codes_path(self.cfg)} does not match the '{split}' cache (clips differ). "
                "Re-run scripts/get_motion_code.py after prepare."
            )
        # only scored splits need the reference motion; training batches would carry it for nothing
        scored = split != "train" or split == self.cfg.TEST.SPLIT
        lm, data = self.cfg.LM, self.cfg.DATASET
        return CodeTextDataset(packed.names, packed.texts, codes,
                               clips=self.clip_source(packed, split) if scored else None,
                               dictionary=dictionary,
                               max_keywords=lm.MAX_KEYWORDS, max_triplets=lm.MAX_TRIPLETS,
                               min_frames=data.MIN_FRAMES, max_frames=data.MAX_FRAMES,
                               source_encoder=self.source_encoder, frames_per_code=self.frames_per_code,
                               # only training reads drop keywords: validation and test see them all
                               keyword_dropout=lm.KEYWORD_DROPOUT if split == "train" else 0.0,
                               dropout_mode=lm.KEYWORD_DROPOUT_MODE)

    def _loader(self, split: str, train: bool, batch_size: int) -> DataLoader:
        workers = self.cfg.TRAIN.NUM_WORKERS
        dataset = self.dataset(split)
        common = {"num_workers": workers, "persistent_workers": workers > 0,
                  "collate_fn": collate_motion if self.cfg.STAGE == "vae" else collate_text_codes}
        if train and self.cfg.STAGE == "lm":
            # Stage 2 pads sources and targets to the longest in the batch: batch by length. Stage 1 trains
            # on fixed windows, and evaluation keeps the dataset order.
            batches = BucketBatchSampler(EpochRandomSampler(dataset, self.cfg.SEED), dataset.lengths(),
                                         batch_size)
            return DataLoader(dataset, batch_sampler=batches, **common)
        return DataLoader(dataset, batch_size=batch_size, shuffle=train, drop_last=False, **common)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True, self.cfg.TRAIN.BATCH_SIZE)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False, self.cfg.TRAIN.BATCH_SIZE)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.cfg.TEST.SPLIT, False, self.cfg.TEST.BATCH_SIZE)
